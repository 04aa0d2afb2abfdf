"""Site credentials are encrypted at rest (issue 6, "Secrets"): Fernet tokens in the row, a
clear refusal without a key, decryption only through ``get_config``, key rotation, and a server
that will not start on credentials it cannot open."""

import json
import uuid
from typing import Any

import asyncpg
import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError
from sqlalchemy.engine import URL

from db.connection.config import DatabaseConfig
from db.connection.database import Database
from db.errors import InvalidArgument
from db.repositories import CrawlSessionRepository, credentials
from db.repositories.credentials import check_stored_credentials
from db.rules import secrets
from db.rules.secrets import ENCRYPTED, CredentialsUnavailable, cipher_of
from db.schemas import MASK, CrawlConfig, SiteCredentials
from tests.conftest import TEST_ENCRYPTION_KEY, make_config

pytestmark = pytest.mark.anyio

PASSWORD = "s3cret-site-password-\u00e9"
BASE_URL = "https://shop.example"


def with_credentials(password: str = PASSWORD) -> CrawlConfig:
    return CrawlConfig(
        credentials=SiteCredentials(username="qa", password=password, login_url=f"{BASE_URL}/login")
    )


async def create(db: Database, config: CrawlConfig | None = None) -> uuid.UUID:
    async with db.session() as session:
        created = await CrawlSessionRepository(session).create_session(
            BASE_URL, config or with_credentials()
        )
    return created.id


async def stored_config(raw: asyncpg.Connection, session_id: uuid.UUID) -> dict[str, Any]:
    text = await raw.fetchval("SELECT config::text FROM crawl_sessions WHERE id = $1", session_id)
    assert PASSWORD not in text and json.dumps(PASSWORD)[1:-1] not in text
    stored: dict[str, Any] = json.loads(text)
    return stored


def other_database(database_url: URL, **overrides: Any) -> Database:
    return Database(make_config(**overrides), url=database_url)


async def test_the_raw_row_holds_a_fernet_token_and_no_plaintext(
    db: Database, raw: asyncpg.Connection
) -> None:
    session_id = await create(db)

    credentials = (await stored_config(raw, session_id))["credentials"]

    assert set(credentials) == {"username", "login_url", ENCRYPTED}
    assert credentials[ENCRYPTED].startswith("gAAAAA")
    assert Fernet(TEST_ENCRYPTION_KEY).decrypt(credentials[ENCRYPTED]).decode() == PASSWORD


async def test_only_get_config_decrypts_the_password(db: Database) -> None:
    session_id = await create(db)

    async with db.session() as session:
        repo = CrawlSessionRepository(session)
        public = await repo.get(session_id)
        crawler = await repo.get_config(session_id)

    assert public.model_dump(mode="json")["config"]["credentials"] == {
        "username": "qa",
        "login_url": f"{BASE_URL}/login",
        "password": MASK,
    }
    assert ENCRYPTED not in public.model_dump_json()
    assert crawler.credentials is not None
    assert crawler.credentials.password.get_secret_value() == PASSWORD


async def test_two_sessions_with_one_password_get_different_tokens(
    db: Database, raw: asyncpg.Connection
) -> None:
    first, second = await create(db), await create(db)

    tokens = [(await stored_config(raw, s))["credentials"][ENCRYPTED] for s in (first, second)]

    assert tokens[0] != tokens[1]


async def test_credentials_without_a_key_are_refused_and_nothing_is_stored(
    database_url: URL, raw: asyncpg.Connection
) -> None:
    keyless = other_database(database_url, encryption_key=None)
    try:
        with pytest.raises(InvalidArgument, match="BUGHIVE_ENCRYPTION_KEY") as refused:
            await create(keyless)
        assert refused.value.field == "config.credentials"
        assert await raw.fetchval("SELECT count(*) FROM crawl_sessions") == 0
        await create(keyless, CrawlConfig())  # no credentials: no key needed
    finally:
        await keyless.close()


async def test_a_rotated_key_still_opens_old_tokens_and_rotate_moves_them_to_the_new_key(
    db: Database, database_url: URL, raw: asyncpg.Connection
) -> None:
    session_id = await create(db)  # under the suite's key
    new_key = Fernet.generate_key().decode()
    both = other_database(database_url, encryption_key=f"{new_key},{TEST_ENCRYPTION_KEY}")
    only_new = other_database(database_url, encryption_key=new_key)
    try:
        async with both.session() as session:
            opened = await CrawlSessionRepository(session).get_config(session_id)
            assert opened.credentials is not None
            rotated = await credentials.rotate(session, _cipher(session))
        async with both.session() as session:
            again = await credentials.rotate(session, _cipher(session))
        async with only_new.session() as session:
            crawler = await CrawlSessionRepository(session).get_config(session_id)
    finally:
        await both.close()
        await only_new.close()

    assert (rotated, again) == (1, 1)
    assert crawler.credentials is not None
    assert crawler.credentials.password.get_secret_value() == PASSWORD
    token = (await stored_config(raw, session_id))["credentials"][ENCRYPTED]
    assert Fernet(new_key).decrypt(token).decode() == PASSWORD


async def test_rotate_encrypts_passwords_stored_in_clear_by_older_versions(
    db: Database, raw: asyncpg.Connection
) -> None:
    legacy = {"credentials": {"username": "qa", "password": PASSWORD}}
    session_id = await raw.fetchval(
        "INSERT INTO crawl_sessions (base_url, config) VALUES ($1, $2::jsonb) RETURNING id",
        BASE_URL,
        json.dumps(legacy),
    )

    async with db.session() as session:
        assert await credentials.rotate(session, _cipher(session)) == 1
    async with db.session() as session:
        crawler = await CrawlSessionRepository(session).get_config(session_id)

    assert (await stored_config(raw, session_id))["credentials"][ENCRYPTED].startswith("gAAAAA")
    assert crawler.credentials is not None
    assert crawler.credentials.password.get_secret_value() == PASSWORD


async def test_the_start_check_refuses_encrypted_credentials_without_a_key(
    db: Database, database_url: URL
) -> None:
    await create(db)
    keyless = other_database(database_url, encryption_key=None)
    try:
        async with keyless.session() as session:
            with pytest.raises(CredentialsUnavailable, match="BUGHIVE_ENCRYPTION_KEY is not set"):
                await check_stored_credentials(session, cipher_of(session))
    finally:
        await keyless.close()


async def test_the_start_check_refuses_a_key_that_opens_nothing(
    db: Database, database_url: URL
) -> None:
    await create(db)
    wrong = other_database(database_url, encryption_key=Fernet.generate_key().decode())
    try:
        async with wrong.session() as session:
            with pytest.raises(CredentialsUnavailable, match="cannot be decrypted"):
                await check_stored_credentials(session, cipher_of(session))
    finally:
        await wrong.close()


async def test_the_start_check_passes_with_the_key_and_counts_the_sessions(db: Database) -> None:
    await create(db)
    await create(db, CrawlConfig())

    async with db.session() as session:
        assert await check_stored_credentials(session, cipher_of(session)) == 1


def test_a_malformed_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as refused:
        DatabaseConfig(_env_file=None, encryption_key="not-a-key-but-a-secret")

    assert "not a Fernet key" in str(refused.value)
    assert "not-a-key-but-a-secret" not in str(refused.value)


def test_keys_are_read_comma_separated_newest_first() -> None:
    keys = [Fernet.generate_key().decode() for _ in range(2)]

    config = DatabaseConfig(_env_file=None, encryption_key=f" {keys[0]} , {keys[1]} ")

    assert config.encryption_keys == keys
    assert keys[0] not in repr(config)


def _cipher(session: Any) -> secrets.CredentialCipher:
    cipher = cipher_of(session)
    assert cipher is not None
    return cipher
