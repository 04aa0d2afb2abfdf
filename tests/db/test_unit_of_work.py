"""db.connection.unit_of_work: one connection and at most one transaction per unit of work, run the way the
repository method declares — a read in autocommit, one write statement in autocommit, a
transaction — and the connection back in the pool (or dropped, when it may be broken)
whatever happens."""

import asyncio
import uuid

import anyio
import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from db.connection.database import Database
from db.connection.unit_of_work import reads, single_write, writes
from db.errors import DatabaseUnavailable
from db.repositories import CrawlSessionRepository, PageRepository
from db.repositories.base import Repository
from db.repositories.statements import Statement
from tests.conftest import make_config, record_queries
from tests.factories import make_page, make_session

BUMP = Statement(
    "test bump",
    "UPDATE crawl_sessions SET bugs_found = bugs_found + 1 WHERE id = :id",
    writes=True,
    register=False,
)


class Bumps(Repository):
    """Methods of each kind, sending a write statement once or twice."""

    @writes
    async def twice_in_a_transaction(self, session_id: uuid.UUID, fail: bool = False) -> None:
        await BUMP.execute(self.session, id=session_id)
        await BUMP.execute(self.session, id=session_id)
        if fail:
            raise RuntimeError("refused after two writes")

    @single_write
    async def once(self, session_id: uuid.UUID) -> None:
        await BUMP.execute(self.session, id=session_id)

    @single_write
    async def twice_as_a_single_write(self, session_id: uuid.UUID) -> None:
        await BUMP.execute(self.session, id=session_id)
        await BUMP.execute(self.session, id=session_id)

    @reads
    async def undeclared_write(self, session_id: uuid.UUID) -> None:
        await BUMP.execute(self.session, id=session_id)


async def bugs_found(raw: asyncpg.Connection, session_id: uuid.UUID) -> int:
    return int(
        await raw.fetchval("SELECT bugs_found FROM crawl_sessions WHERE id = $1", session_id)
    )


async def logged() -> None:
    """Let asyncpg's query loggers run: it hands them each query with ``call_soon``."""
    await asyncio.sleep(0)


async def test_a_transactions_statements_share_one_begin_and_commit(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    with record_queries(db) as sent:
        async with db.session() as s:
            await Bumps(s).twice_in_a_transaction(session.id)
            await Bumps(s).twice_in_a_transaction(session.id)
        await logged()
    assert sent.count("BEGIN") == 1 and sent.count("COMMIT") == 1
    assert len(sent) == 7  # BEGIN, 4 writes, the transaction id (for a lost commit), COMMIT
    assert await bugs_found(raw, session.id) == 4


async def test_a_failed_block_rolls_every_write_back(db: Database, raw: asyncpg.Connection) -> None:
    session = await make_session(db)
    with pytest.raises(RuntimeError, match="refused after two writes"):
        async with db.session() as s:
            await Bumps(s).twice_in_a_transaction(session.id, fail=True)
    assert await bugs_found(raw, session.id) == 0
    assert db.pool_status()["checked_out"] == 0


async def test_a_read_alone_sends_one_statement_and_no_begin_or_commit(db: Database) -> None:
    session = await make_session(db)
    with record_queries(db) as sent:
        async with db.session() as s:
            await CrawlSessionRepository(s).get(session.id)
        await logged()
    assert len(sent) == 1 and sent[0].startswith("SELECT * FROM crawl_sessions")


async def test_a_single_write_alone_commits_by_itself_without_begin_or_commit(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    with record_queries(db) as sent:
        async with db.session() as s:
            await Bumps(s).once(session.id)
        await logged()
    assert sent == [BUMP.sql]
    assert await bugs_found(raw, session.id) == 1


async def test_a_single_write_inside_a_transaction_rolls_back_with_it(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    with pytest.raises(RuntimeError, match="refused"):
        async with db.session() as s:
            await Bumps(s).twice_in_a_transaction(session.id)
            await Bumps(s).once(session.id)
            raise RuntimeError("refused")
    assert await bugs_found(raw, session.id) == 0


async def test_a_second_write_of_a_single_write_method_is_refused_before_it_runs(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    with pytest.raises(RuntimeError, match="write statement outside a transaction"):
        async with db.session() as s:
            await Bumps(s).twice_as_a_single_write(session.id)
    assert await bugs_found(raw, session.id) == 1  # the first, which committed alone


async def test_a_write_outside_a_declared_write_method_is_refused_and_writes_nothing(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    with pytest.raises(RuntimeError, match="declare the repository method @writes"):
        async with db.session() as s:
            await Bumps(s).undeclared_write(session.id)
    assert await bugs_found(raw, session.id) == 0


async def test_the_claim_alone_is_one_statement_and_inside_a_transaction_part_of_it(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    await make_page(db, session.id, "https://shop.example/a")
    with record_queries(db) as sent:
        async with db.session() as s:
            await PageRepository(s).claim_pages_to_crawl(session.id, 1)
        await logged()
    assert len(sent) == 1 and "FOR UPDATE SKIP LOCKED" in sent[0]
    await raw.execute(
        "UPDATE pages SET status = 'discovered', claim_token = NULL, "
        "lease_expires_at = NULL, claimed_at = NULL"
    )
    with pytest.raises(RuntimeError):
        async with db.session() as s:
            s.begin()
            await PageRepository(s).claim_pages_to_crawl(session.id, 1)
            raise RuntimeError("rolled back")
    assert await raw.fetchval("SELECT status FROM pages") == "discovered"


async def test_a_tenants_reads_run_in_a_transaction_that_binds_it_first(db: Database) -> None:
    """The tenant binding lives as long as the transaction: without one it would bind
    nothing, so a tenant's unit of work always has one."""
    with record_queries(db) as sent:
        async with db.session("acme") as s:
            assert await s.scalar(text("SELECT current_setting('bughive.tenant', true)")) == "acme"
        await logged()
    assert sent[0] == "BEGIN" and "set_config('bughive.tenant'" in sent[1]
    assert sent[-1] == "COMMIT"


async def test_a_block_that_sends_nothing_takes_no_connection(db: Database) -> None:
    with record_queries(db) as sent:
        async with db.session() as s:
            s.begin()
        await logged()
    assert sent == [] and db.pool_status()["checked_out"] == 0


async def test_the_connection_goes_back_or_is_dropped_whatever_happens(
    database_url: URL, raw: asyncpg.Connection
) -> None:
    """Back to the pool after a success and after a refused statement; closed — not pooled —
    after the connection was lost or the call cancelled mid-statement."""
    db = Database(make_config(pool_size=1, max_overflow=0, pool_timeout=2), url=database_url)
    pid = text("SELECT pg_backend_pid()")
    try:
        session = await make_session(db)
        async with db.session() as s:
            first = await s.scalar(pid)
        assert db.pool_status()["checked_out"] == 0

        with pytest.raises(asyncpg.UndefinedTableError):
            async with db.session() as s:
                await s.execute(text("SELECT * FROM no_such_table"))
        assert db.pool_status() == {"size": 1, "checked_out": 0, "idle": 1, "overflow": 0}
        async with db.session() as s:  # the same connection, rolled back and still good
            assert await s.scalar(pid) == first

        with anyio.move_on_after(0.2):
            async with db.session() as s:
                await s.execute(text("SELECT pg_sleep(5)"))
        assert db.pool_status()["checked_out"] == 0
        async with db.session() as s:  # a new one: the old was mid-query
            second = await s.scalar(pid)
        assert second != first

        with pytest.raises(DatabaseUnavailable):
            async with db.session() as s:
                await Bumps(s).twice_in_a_transaction(session.id)
                await raw.execute("SELECT pg_terminate_backend($1, 5000)", second)
                await Bumps(s).twice_in_a_transaction(session.id)
        assert db.pool_status()["checked_out"] == 0
        async with db.session() as s:
            assert await s.scalar(pid) not in (first, second)
        assert await bugs_found(raw, session.id) == 0
    finally:
        await db.close()
