"""db.driver: statements sent straight through asyncpg belong to the unit of work's transaction —
they commit and roll back with it, see its earlier writes, and are invisible to others until the
commit — and they never open a second transaction of their own."""

import asyncio
import uuid

import anyio
import asyncpg
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import URL

from db.database import Database
from db.driver import driver_connection
from db.errors import DatabaseUnavailable
from db.models import CrawlSession
from tests.conftest import make_config
from tests.db.test_liveness import queries_on


async def new_session(db: Database) -> uuid.UUID:
    async with db.session() as s:
        session = CrawlSession(base_url="https://shop.example", config={})
        s.add(session)
        await s.flush()
        return session.id


async def bugs_found(raw: asyncpg.Connection, session_id: uuid.UUID) -> int:
    return int(
        await raw.fetchval("SELECT bugs_found FROM crawl_sessions WHERE id = $1", session_id)
    )


BUMP = "UPDATE crawl_sessions SET bugs_found = bugs_found + 1 WHERE id = $1"


async def logged() -> None:
    """Let asyncpg's query loggers run: it hands them each query with ``call_soon``."""
    await asyncio.sleep(0)


async def test_driver_statements_roll_back_with_the_unit_of_work(
    db: Database, raw: asyncpg.Connection
) -> None:
    session_id = await new_session(db)
    with pytest.raises(RuntimeError, match="tool failed"):
        async with db.session() as s:
            conn = await driver_connection(s)
            await conn.execute(BUMP, session_id)
            assert (
                await conn.fetchval(
                    "SELECT bugs_found FROM crawl_sessions WHERE id = $1", session_id
                )
                == 1
            )
            raise RuntimeError("tool failed")
    assert await bugs_found(raw, session_id) == 0


async def test_driver_and_orm_statements_share_one_transaction(
    db: Database, raw: asyncpg.Connection
) -> None:
    session_id = await new_session(db)
    async with db.session() as s:
        await s.execute(
            text("UPDATE crawl_sessions SET bugs_found = 5 WHERE id = :id"), {"id": session_id}
        )
        conn = await driver_connection(s)
        await conn.execute(BUMP, session_id)  # sees the ORM side's write
        assert (
            await s.scalar(select(CrawlSession.bugs_found).where(CrawlSession.id == session_id))
            == 6
        )
        assert await bugs_found(raw, session_id) == 0  # nothing visible before the commit
    assert await bugs_found(raw, session_id) == 6


async def test_the_driver_path_begins_the_transaction_once(db: Database) -> None:
    session_id = await new_session(db)
    sent = await queries_on(db)
    async with db.session() as s:
        conn = await driver_connection(s)
        await conn.execute(BUMP, session_id)
        await driver_connection(s)  # again: no second BEGIN
        await s.execute(text("SELECT 1"))
    await logged()
    assert sent.count("BEGIN;") + sent.count("BEGIN") == 1
    assert sent.count("COMMIT;") + sent.count("COMMIT") == 1


async def test_a_connection_lost_on_the_driver_path_is_dropped_not_pooled(
    db: Database, raw: asyncpg.Connection
) -> None:
    """SQLAlchemy does not see a driver-path statement fail, so the unit of work itself drops
    the connection: the caller gets DatabaseUnavailable, the next unit of work a new one."""
    session_id = await new_session(db)
    with pytest.raises(DatabaseUnavailable):
        async with db.session() as s:
            conn = await driver_connection(s)
            lost = await conn.fetchval("SELECT pg_backend_pid()")
            assert await raw.fetchval("SELECT pg_terminate_backend($1, 5000)", lost)
            await conn.execute(BUMP, session_id)
    assert db.pool_status()["checked_out"] == 0
    async with db.session() as s:
        conn = await driver_connection(s)
        assert await conn.fetchval("SELECT pg_backend_pid()") != lost
        await conn.execute(BUMP, session_id)
    assert await bugs_found(raw, session_id) == 1


def begins(sent: list[str]) -> int:
    """BEGINs sent (after autocommit, SQLAlchemy restores the isolation level by naming it)."""
    return sum(query.startswith("BEGIN") for query in sent)


async def test_a_single_statement_unit_of_work_sends_no_begin_or_commit(
    db: Database, raw: asyncpg.Connection
) -> None:
    """One statement is atomic on its own: BEGIN and COMMIT would be two round trips for
    nothing. Its write still lands (autocommit), and the pooled connection is back in
    transaction mode for the next caller."""
    session_id = await new_session(db)
    sent = await queries_on(db)
    async with db.session(single_statement=True) as s:
        conn = await driver_connection(s)
        await conn.execute(BUMP, session_id)
    await logged()
    assert sent == [BUMP]
    assert await bugs_found(raw, session_id) == 1
    with pytest.raises(RuntimeError):
        async with db.session() as s:  # the same (only) pooled connection, a transaction again
            conn = await driver_connection(s)
            await conn.execute(BUMP, session_id)
            raise RuntimeError("rolled back")
    await logged()
    assert begins(sent) == 1
    assert await bugs_found(raw, session_id) == 1


async def test_a_tenant_bound_single_statement_still_runs_in_a_transaction(
    db: Database, raw: asyncpg.Connection
) -> None:
    """The tenant binding lives as long as the transaction: without one it would bind
    nothing, so the promise of a single statement does not drop the transaction here."""
    sent = await queries_on(db)
    async with db.session("acme", single_statement=True) as s:
        conn = await driver_connection(s)
        assert await conn.fetchval("SELECT current_setting('bughive.tenant', true)") == "acme"
    await logged()
    assert begins(sent) == 1


async def test_orm_changes_of_a_single_statement_unit_of_work_are_not_lost(
    db: Database, raw: asyncpg.Connection
) -> None:
    """Autocommit skips the commit, but not the flush an ORM change still waits for."""
    async with db.session(single_statement=True) as s:
        s.add(CrawlSession(base_url="https://autocommit.example", config={}))
    assert (
        await raw.fetchval(
            "SELECT count(*) FROM crawl_sessions WHERE base_url = 'https://autocommit.example'"
        )
        == 1
    )


async def test_a_single_statement_unit_of_work_returns_its_connection_whatever_happens(
    database_url: URL, raw: asyncpg.Connection
) -> None:
    """Its connection comes straight from the pool (db.driver.PoolLease), past the ORM
    session: it must go back after a success and after a refused statement, and be closed —
    not pooled — after the connection was lost or the call cancelled mid-statement."""
    db = Database(make_config(pool_size=1, max_overflow=0, pool_timeout=2), url=database_url)
    try:
        session_id = await new_session(db)
        async with db.session(single_statement=True) as s:
            first = await (await driver_connection(s)).fetchval("SELECT pg_backend_pid()")
        assert db.pool_status()["checked_out"] == 0

        with pytest.raises(asyncpg.UndefinedTableError):
            async with db.session(single_statement=True) as s:
                await (await driver_connection(s)).execute("SELECT * FROM no_such_table")
        assert db.pool_status() == {"size": 1, "checked_out": 0, "idle": 1, "overflow": 0}
        async with db.session(single_statement=True) as s:  # the same connection, still good
            assert await (await driver_connection(s)).fetchval("SELECT pg_backend_pid()") == first

        with anyio.move_on_after(0.2):
            async with db.session(single_statement=True) as s:
                await (await driver_connection(s)).execute("SELECT pg_sleep(5)")
        assert db.pool_status()["checked_out"] == 0
        async with db.session(single_statement=True) as s:  # a new one: the old was mid-query
            second = await (await driver_connection(s)).fetchval("SELECT pg_backend_pid()")
        assert second != first

        with pytest.raises(DatabaseUnavailable):
            async with db.session(single_statement=True) as s:
                conn = await driver_connection(s)
                await raw.execute("SELECT pg_terminate_backend($1, 5000)", second)
                await conn.execute(BUMP, session_id)
        assert db.pool_status()["checked_out"] == 0
        async with db.session(single_statement=True) as s:  # served again, by a new connection
            await (await driver_connection(s)).execute(BUMP, session_id)
        assert await bugs_found(raw, session_id) == 1
    finally:
        await db.close()
