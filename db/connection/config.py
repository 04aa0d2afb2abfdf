"""Database settings, read from the environment (and `.env`).

Every knob has one environment name, listed in the README. The connection URL is a secret: it
is kept as :class:`pydantic.SecretStr`, so neither ``repr(config)`` nor a log line that formats
the config can show the password; :attr:`DatabaseConfig.safe_url` is the only form meant for
humans.
"""

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

from db.rules.secrets import parse_keys

ASYNC_DRIVER = "postgresql+asyncpg"


def normalize_database_url(raw: str) -> str:
    """Turn any PostgreSQL URL users paste (``postgres://``, ``postgresql://``,
    ``postgresql+psycopg://``) into the asyncpg form the engine needs."""
    scheme, sep, rest = raw.partition("://")
    if not sep:
        raise ValueError("DATABASE_URL must look like postgresql://user:password@host:5432/dbname")
    base = scheme.split("+", 1)[0].lower()
    if base not in ("postgres", "postgresql"):
        raise ValueError(
            f"DATABASE_URL must be a PostgreSQL URL (postgresql://…), got scheme {scheme!r}"
        )
    return f"{ASYNC_DRIVER}://{rest}"


def _secret_text(value: object) -> str | None:
    """A secret setting's text as given (plain or a ``SecretStr``); None when unset or empty."""
    if value is None or value == "":
        return None
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def _as_url(secret: SecretStr | None) -> URL | None:
    return None if secret is None else make_url(secret.get_secret_value())


class DatabaseConfig(BaseSettings):
    """Connection and pool settings. Defaults are the production ones of the architecture notes."""

    model_config = SettingsConfigDict(
        env_prefix="BUGHIVE_DB_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
        # A refused value would otherwise be echoed in the error, password included.
        hide_input_in_errors=True,
    )

    database_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("database_url", "DATABASE_URL"),
        description="PostgreSQL URL; unset means: start the embedded PostgreSQL.",
    )
    database_read_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("database_read_url", "DATABASE_READ_URL"),
        description="A read replica of DATABASE_URL for the read-only tools (optional).",
    )
    pool_size: int = Field(default=5, ge=1, le=200)
    max_overflow: int = Field(default=10, ge=0, le=500)
    pool_timeout: float = Field(default=30.0, gt=0)
    pool_recycle: int = Field(default=3600, ge=-1)
    pool_pre_ping: bool = Field(
        default=True,
        description="Check each pooled connection before use: free when it was used within "
        "pool_pre_ping_idle_seconds, one round trip when idle longer (db/connection/liveness.py).",
    )
    pool_pre_ping_idle_seconds: float = Field(
        default=10.0,
        ge=0,
        description="A pooled connection idle longer than this is pinged before use.",
    )
    echo: bool = Field(
        default=False,
        description="Log every SQL statement, never its parameters, through the server's log.",
    )
    statement_timeout_ms: int = Field(
        default=30_000, ge=0, description="Upper bound for every statement (0 = no limit)."
    )
    connect_timeout: float = Field(default=10.0, gt=0)
    connect_retry_seconds: float = Field(
        default=30.0,
        ge=0,
        description="At start, how long to keep retrying (with backoff) a database that is not "
        "reachable yet before giving up (0 = give up at once).",
    )
    read_only: bool = Field(
        default=False,
        description="Open every transaction READ ONLY (default_transaction_read_only=on).",
    )
    pgbouncer: bool = Field(
        default=False,
        description="Connect through PgBouncer in transaction pooling mode: no prepared-statement "
        "caches; statement_timeout and read-only set per transaction, not per connection.",
    )
    testing: bool = Field(
        default=False,
        validation_alias=AliasChoices("testing", "TESTING"),
        description="TESTING=1 selects NullPool (no connection kept between sessions).",
    )
    embedded_data_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("embedded_data_dir", "BUGHIVE_DATA_DIR"),
        description="Where the embedded PostgreSQL keeps its data (default: per-user data dir).",
    )
    encryption_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("encryption_key", "BUGHIVE_ENCRYPTION_KEY"),
        description="Fernet key(s) encrypting stored site credentials, comma-separated: the "
        "first encrypts, all decrypt (key rotation).",
    )

    @field_validator("encryption_key", mode="before")
    @classmethod
    def _check_encryption_keys(cls, value: object) -> object:
        raw = _secret_text(value)
        return None if raw is None else SecretStr(",".join(parse_keys(raw)))

    @property
    def encryption_keys(self) -> list[str]:
        """The configured keys, newest (encrypting) first; empty when none is set."""
        if self.encryption_key is None:
            return []
        return self.encryption_key.get_secret_value().split(",")

    @field_validator("database_url", "database_read_url", mode="before")
    @classmethod
    def _normalize_url(cls, value: object) -> object:
        raw = _secret_text(value)
        return None if raw is None else SecretStr(normalize_database_url(raw))

    @property
    def url(self) -> URL | None:
        """The URL as SQLAlchemy understands it; its ``str()`` and ``repr()`` mask the password."""
        return _as_url(self.database_url)

    @property
    def read_url(self) -> URL | None:
        """The read replica's URL, or None when reads go to the primary too."""
        return _as_url(self.database_read_url)

    @property
    def safe_url(self) -> str:
        """The URL with the password replaced by ``***`` — the only form to print or log."""
        url = self.url
        return "<embedded PostgreSQL>" if url is None else url.render_as_string(hide_password=True)
