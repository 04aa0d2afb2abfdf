"""Database: the unit of work, health checks, the module-level API of the architecture notes,
and what a caller sees when the server cannot be reached."""

from collections.abc import AsyncIterator

import anyio
import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

import db.connection.database
from db.connection.config import DatabaseConfig
from db.connection.database import (
    Database,
    check_database_health,
    close_database,
    get_database,
    get_db,
    init_database,
)
from db.errors import DatabaseUnavailable
from db.repositories import CrawlSessionRepository
from tests.conftest import PostgresServer, asyncpg_dsn, make_config

PASSWORD = "n0t-a-real-pa55word"
# Two ways for a server to be unreachable that fail at once (no network wait): a Unix socket
# directory that does not exist, and a loopback port nothing listens on. Driver errors for the
# latter name the host, so it also shows whether such text leaks.
UNREACHABLE = {
    "missing-socket-dir": URL.create(
        "postgresql+asyncpg",
        username="bughive",
        password=PASSWORD,
        host="/nonexistent/bughive-socket-dir",
        database="bughive",
    ),
    "refused-port": URL.create(
        "postgresql+asyncpg",
        username="bughive",
        password=PASSWORD,
        host="127.0.0.1",
        port=1,
        database="bughive",
    ),
}


class Boom(Exception):
    pass


@pytest.fixture(params=sorted(UNREACHABLE))
async def unreachable(request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    """A Database whose server cannot be reached."""
    url = UNREACHABLE[request.param]
    database = Database(make_config(connect_timeout=1), url=url)
    try:
        yield database
    finally:
        await database.close()


async def session_count(raw: asyncpg.Connection) -> int:
    return int(await raw.fetchval("SELECT count(*) FROM crawl_sessions"))


# --- unit of work ----------------------------------------------------------------------------


async def test_session_commits_when_the_block_exits(db: Database, raw: asyncpg.Connection) -> None:
    async with db.session() as s:
        created = await CrawlSessionRepository(s).create_session("https://commit.example/")
    stored = await raw.fetchval("SELECT base_url FROM crawl_sessions WHERE id = $1", created.id)
    assert stored == "https://commit.example/"


async def test_session_work_is_invisible_to_others_before_the_block_exits(
    db: Database, raw: asyncpg.Connection
) -> None:
    async with db.session() as s:
        await CrawlSessionRepository(s).create_session("https://pending.example")
        assert await session_count(raw) == 0
    assert await session_count(raw) == 1


async def test_session_rolls_back_when_the_block_raises(
    db: Database, raw: asyncpg.Connection
) -> None:
    with pytest.raises(Boom):
        async with db.session() as s:
            await CrawlSessionRepository(s).create_session("https://rollback.example")
            raise Boom
    assert await session_count(raw) == 0


async def test_session_rolls_back_when_a_statement_fails(
    db: Database, raw: asyncpg.Connection
) -> None:
    with pytest.raises(Exception, match="division by zero"):
        async with db.session() as s:
            await CrawlSessionRepository(s).create_session("https://rollback.example")
            await s.execute(text("SELECT 1 / 0"))
    assert await session_count(raw) == 0


async def test_session_lets_the_callers_exception_through_unchanged(db: Database) -> None:
    with pytest.raises(Boom):
        async with db.session():
            raise Boom


async def test_session_returns_its_connection_to_the_pool(db: Database) -> None:
    async with db.session() as s:
        await s.execute(text("SELECT 1"))
        assert db.pool_status()["checked_out"] == 1
    assert db.pool_status()["checked_out"] == 0


# --- health and availability -----------------------------------------------------------------


async def test_check_health_is_true_against_the_real_server(db: Database) -> None:
    assert await db.check_health() is True


async def test_check_health_is_false_when_the_server_is_unreachable(
    unreachable: Database,
) -> None:
    with anyio.fail_after(5):
        assert await unreachable.check_health() is False


async def test_session_on_an_unreachable_database_raises_database_unavailable(
    unreachable: Database,
) -> None:
    with anyio.fail_after(5), pytest.raises(DatabaseUnavailable):
        async with unreachable.session() as s:
            await s.execute(text("SELECT 1"))


async def test_database_unavailable_message_has_no_password_or_host(
    unreachable: Database,
) -> None:
    with anyio.fail_after(5), pytest.raises(DatabaseUnavailable) as excinfo:
        async with unreachable.session() as s:
            await s.execute(text("SELECT 1"))
    message = str(excinfo.value)
    assert unreachable.url.host is not None
    assert PASSWORD not in message
    assert unreachable.url.host not in message
    assert "retry" in message


async def test_init_db_and_drop_db_build_and_remove_the_schema(
    postgres_server: PostgresServer,
) -> None:
    url = await postgres_server.create_database_async()
    database = Database(make_config(), url=url)
    try:
        await database.init_db()
        assert await database.schema_revision() is not None
        async with database.session() as s:
            await CrawlSessionRepository(s).create_session("https://init.example")
        await database.drop_db()
        assert await database.schema_revision() is None
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            tables = await conn.fetchval(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            )
        finally:
            await conn.close()
        assert tables == 0
    finally:
        await database.close()


# --- module-level API ------------------------------------------------------------------------


@pytest.fixture
async def env_database_url(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[URL]:
    """DATABASE_URL pointing at a fresh empty database; the process-wide Database is reset
    before and closed after."""
    url = await postgres_server.create_database_async()
    monkeypatch.setenv("DATABASE_URL", url.render_as_string(hide_password=False))
    monkeypatch.delenv("TESTING", raising=False)
    monkeypatch.setattr(db.connection.database, "_database", None)
    try:
        yield url
    finally:
        await close_database()


async def test_get_database_builds_one_database_from_the_environment(
    env_database_url: URL,
) -> None:
    first = get_database()
    assert first is get_database()
    assert first.url == env_database_url


async def test_init_database_creates_the_tables(env_database_url: URL) -> None:
    database = await init_database()
    assert database is get_database()
    async with database.session() as s:
        created = await CrawlSessionRepository(s).create_session("https://module.example")
    async with database.session() as s:
        assert (await CrawlSessionRepository(s).get(created.id)).base_url == created.base_url


async def test_init_database_drop_existing_starts_from_empty_tables(env_database_url: URL) -> None:
    database = await init_database()
    async with database.session() as s:
        await CrawlSessionRepository(s).create_session("https://dropped.example")
    await init_database(drop_existing=True)
    async with database.session() as s:
        assert (await CrawlSessionRepository(s).list()).total == 0


async def test_get_db_yields_a_session_that_commits_after_the_request(
    env_database_url: URL,
) -> None:
    await init_database()
    async for s in get_db():
        created = await CrawlSessionRepository(s).create_session("https://dependency.example")
    conn = await asyncpg.connect(asyncpg_dsn(env_database_url))
    try:
        count = await conn.fetchval("SELECT count(*) FROM crawl_sessions WHERE id = $1", created.id)
    finally:
        await conn.close()
    assert count == 1


async def test_check_database_health_is_true_for_the_configured_database(
    env_database_url: URL,
) -> None:
    assert await check_database_health() is True


async def test_close_database_forgets_the_process_wide_database(env_database_url: URL) -> None:
    first = get_database()
    await close_database()
    assert db.connection.database._database is None
    assert get_database() is not first


async def test_close_database_without_a_database_does_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(db.connection.database, "_database", None)
    await close_database()
    assert db.connection.database._database is None


async def test_config_of_get_database_comes_from_the_environment(
    env_database_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUGHIVE_DB_POOL_SIZE", "7")
    assert isinstance(get_database().config, DatabaseConfig)
    assert get_database().config.pool_size == 7
