"""db.connection.liveness: a pooled connection the server closed, or one idle past the threshold that no
longer answers, is replaced before a caller gets it — and a live, recently used one costs no
round trip at all."""

import asyncio

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL

from db.connection.database import Database
from tests.conftest import asyncpg_dsn, make_config


async def backend_pid(database: Database) -> int:
    async with database.session() as s:
        return int(await s.scalar(text("SELECT pg_backend_pid()")) or 0)


async def queries_on(database: Database) -> list[str]:
    """Every simple query the pool's connections send from now on (asyncpg's query logger)."""
    sent: list[str] = []
    async with database.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        raw.driver_connection.add_query_logger(lambda record: sent.append(record.query))  # type: ignore[union-attr]
    return sent


async def test_a_connection_the_server_closed_is_replaced_without_an_error(
    database_url: URL,
) -> None:
    database = Database(make_config(pool_size=1, max_overflow=0), url=database_url)
    try:
        first = await backend_pid(database)
        admin = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            # waits (5 s at most) until the backend is gone: its socket is closed by then
            assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", first)
        finally:
            await admin.close()
        await asyncio.sleep(0.05)  # the connection sits in the pool; asyncpg reads the EOF
        # the pool still holds the dead connection; the caller never sees it
        second = await backend_pid(database)
        assert second != first
        assert database.pool_status()["checked_out"] == 0
    finally:
        await database.close()


async def test_a_recently_used_connection_is_handed_out_without_a_ping(
    database_url: URL,
) -> None:
    database = Database(make_config(pool_size=1, max_overflow=0), url=database_url)
    try:
        sent = await queries_on(database)
        for _ in range(3):
            await backend_pid(database)
        assert "SELECT 1" not in sent
        assert sent.count("BEGIN;") + sent.count("BEGIN") == 3
    finally:
        await database.close()


async def test_a_connection_idle_past_the_threshold_is_pinged_first(database_url: URL) -> None:
    database = Database(
        make_config(pool_size=1, max_overflow=0, pool_pre_ping_idle_seconds=0), url=database_url
    )
    try:
        sent = await queries_on(database)
        pid = await backend_pid(database)
        assert sent.count("SELECT 1") == 1
        assert await backend_pid(database) == pid  # a live connection passes and is reused
        assert sent.count("SELECT 1") == 2
    finally:
        await database.close()


async def test_with_pre_ping_off_nothing_checks_the_connection(database_url: URL) -> None:
    database = Database(
        make_config(pool_size=1, max_overflow=0, pool_pre_ping=False), url=database_url
    )
    try:
        sent = await queries_on(database)
        await backend_pid(database)
        assert "SELECT 1" not in sent
    finally:
        await database.close()
