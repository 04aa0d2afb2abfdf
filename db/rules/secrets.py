"""Site credentials at rest: the password of ``config.credentials`` is stored as a Fernet token.

Keys come from ``BUGHIVE_ENCRYPTION_KEY`` (``DatabaseConfig.encryption_key``): one or more
Fernet keys, comma-separated. The first encrypts; every key decrypts (``MultiFernet``), so a key
is rotated by putting the new one first, running ``db.repositories.credentials.rotate`` (``bughive-mcp
rotate-credentials``), then dropping the old one. The database — and its backups and replicas —
only ever hold ciphertext; the key never travels in SQL.

The stored form of a session's credentials is ``{"username", "login_url",
"password_encrypted": "<token>"}``. Output models mask it (``db.schemas.mask_config``); only
``CrawlSessionRepository.get_config`` decrypts, for the crawler itself.
"""

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from db.errors import DomainError, InvalidArgument

if TYPE_CHECKING:
    from db.connection.unit_of_work import UnitOfWork

ENCRYPTED = "password_encrypted"
KEY_SETTING = "BUGHIVE_ENCRYPTION_KEY"
# The start-up check's question, answered for every tenant (migration 0006).
STORED_CREDENTIALS = "bughive_stored_credentials()"


class CredentialsUnavailable(DomainError):
    """Stored credentials cannot be used: no key is configured, or no configured key opens them."""


def parse_keys(raw: str) -> list[str]:
    """The comma-separated keys of ``BUGHIVE_ENCRYPTION_KEY``; raises ``ValueError`` (without
    the value) unless each is a Fernet key (32 url-safe base64-encoded bytes)."""
    keys = [part.strip() for part in raw.split(",") if part.strip()]
    if not keys:
        raise ValueError(f"{KEY_SETTING} is set but holds no key")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ValueError(
                f"{KEY_SETTING}: key {position} is not a Fernet key (32 url-safe base64-encoded "
                "bytes); make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            ) from None
    return keys


class CredentialCipher:
    """Encrypts with the first key, decrypts with any."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def __repr__(self) -> str:
        return "CredentialCipher(<keys hidden>)"

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except (InvalidToken, ValueError):
            raise CredentialsUnavailable(
                f"the stored site credentials cannot be decrypted with the keys in {KEY_SETTING} "
                "(was a key removed before `bughive-mcp rotate-credentials` ran?)"
            ) from None

    def rotate(self, token: str) -> str:
        """The token re-encrypted under the first key (decryptable after older keys go)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise CredentialsUnavailable(
                f"stored site credentials cannot be decrypted with the keys in {KEY_SETTING}"
            ) from None


def cipher_of(session: "UnitOfWork") -> CredentialCipher | None:
    """The credential cipher of the unit of work's database (None: no key configured)."""
    return session.cipher


def seal(stored: dict[str, Any], cipher: CredentialCipher | None) -> dict[str, Any]:
    """A config as dumped for storage, with the credentials password encrypted. Refuses
    (:class:`CredentialsUnavailable`) credentials when no key is configured: they are never
    stored in clear text."""
    credentials = stored.get("credentials")
    if not isinstance(credentials, dict) or "password" not in credentials:
        return stored
    if cipher is None:
        raise InvalidArgument(
            "config.credentials",
            "this server has no encryption key, so it cannot store site credentials; its "
            f"operator must set {KEY_SETTING} (nothing was stored)",
        )
    sealed = {k: v for k, v in credentials.items() if k != "password"}
    sealed[ENCRYPTED] = cipher.encrypt(str(credentials["password"]))
    return {**stored, "credentials": sealed}


def unseal(stored: dict[str, Any], cipher: CredentialCipher | None) -> dict[str, Any]:
    """A stored config with the credentials password decrypted (for the crawler only)."""
    credentials = stored.get("credentials")
    if not isinstance(credentials, dict) or ENCRYPTED not in credentials:
        return stored
    if cipher is None:
        raise CredentialsUnavailable(
            f"the session's site credentials are encrypted and {KEY_SETTING} is not set"
        )
    opened = {k: v for k, v in credentials.items() if k != ENCRYPTED}
    opened["password"] = cipher.decrypt(credentials[ENCRYPTED])
    return {**stored, "credentials": opened}


def without_credentials(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored config for everything but logging in (crawl scope): no credentials at all."""
    return {**stored, "credentials": None}
