"""What a unit of work (``Database.session()``) promises when the database fails under it.

- A connection lost before the commit: :class:`DatabaseUnavailable`, and nothing was written.
- A connection lost *during* the commit: the database is asked what became of the transaction,
  so the caller hears "nothing was changed" only when that is true, and a commit that did
  happen (only its answer was lost) is the success it was.
- No free connection within ``pool_timeout``: :class:`ServerBusy`, never the pool's own text.
- A statement past ``statement_timeout``: :class:`StatementTimeout`, and nothing was written.

Faults are real: backends are ended with ``pg_terminate_backend`` from another connection, the
pool is really exhausted, statements really time out. Only "the commit's answer was lost" is
simulated (a commit that succeeds, then a connection error), since PostgreSQL cannot be made
to drop exactly that packet."""

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import anyio
import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from db.connection.database import Database
from db.connection.unit_of_work import UnitOfWork
from db.errors import ConcurrentUpdate, DatabaseUnavailable, ServerBusy, StatementTimeout
from db.repositories import CrawlSessionRepository
from tests.conftest import make_config

BASE_URL = "https://shop.example"


async def session_rows(raw: asyncpg.Connection) -> int:
    return int(await raw.fetchval("SELECT count(*) FROM crawl_sessions"))


async def terminate(raw: asyncpg.Connection, pid: int) -> None:
    """End backend ``pid`` and wait until it is gone (PostgreSQL 14+: timeout in ms)."""
    assert await raw.fetchval("SELECT pg_terminate_backend($1, 5000)", pid) is True


@pytest.fixture
async def small_db(database_url: URL, empty_tables: None) -> AsyncIterator[Database]:
    """A pool of 1 + 1 connections that gives up after 0.3 s, and a 300 ms statement limit."""
    database = Database(
        make_config(pool_size=1, max_overflow=1, pool_timeout=0.3, statement_timeout_ms=300),
        url=database_url,
    )
    try:
        yield database
    finally:
        await database.close()


Commit = Callable[[UnitOfWork], Awaitable[None]]
REAL_COMMIT = UnitOfWork.commit


def use_commit(monkeypatch: pytest.MonkeyPatch, commit: Commit) -> None:
    """Every unit of work commits with ``commit`` for the rest of the test."""
    monkeypatch.setattr(UnitOfWork, "commit", commit)


# --- connection lost before the commit -----------------------------------------------------


async def test_a_connection_killed_mid_transaction_is_unavailable_and_writes_nothing(
    db: Database, raw: asyncpg.Connection
) -> None:
    with anyio.fail_after(5), pytest.raises(DatabaseUnavailable) as excinfo:
        async with db.session() as s:
            await CrawlSessionRepository(s).create_session(BASE_URL)
            await terminate(raw, int(await s.scalar(text("SELECT pg_backend_pid()")) or 0))
            await s.execute(text("SELECT 1"))
    message = str(excinfo.value)
    assert message.startswith("database unavailable")
    assert "nothing was changed" in message and "retry" in message
    assert await session_rows(raw) == 0


async def test_the_next_unit_of_work_after_a_killed_connection_succeeds(
    db: Database, raw: asyncpg.Connection
) -> None:
    async with db.session() as s:
        pid = int(await s.scalar(text("SELECT pg_backend_pid()")) or 0)
    await terminate(raw, pid)
    async with db.session() as s:
        created = await CrawlSessionRepository(s).create_session(BASE_URL)
    assert await raw.fetchval("SELECT id FROM crawl_sessions") == created.id


# --- connection lost during the commit ----------------------------------------------------


def killed_before_commit(raw: asyncpg.Connection) -> Commit:
    """Its backend is ended after the transaction id was read, right before COMMIT is sent."""

    async def commit(uow: UnitOfWork) -> None:
        if uow.in_transaction:
            await terminate(raw, int(await uow.scalar(text("SELECT pg_backend_pid()")) or 0))
        await REAL_COMMIT(uow)

    return commit


async def commit_answer_lost(uow: UnitOfWork) -> None:
    """COMMIT reaches the server and succeeds; the answer is lost with the connection."""
    committing = uow.in_transaction
    await REAL_COMMIT(uow)
    if committing:
        raise ConnectionResetError("connection reset by peer")


async def test_a_commit_cut_off_before_it_happened_is_unavailable_and_writes_nothing(
    db: Database, raw: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_commit(monkeypatch, killed_before_commit(raw))
    with anyio.fail_after(5), pytest.raises(DatabaseUnavailable) as excinfo:
        async with db.session() as s:
            await CrawlSessionRepository(s).create_session(BASE_URL)
    assert "nothing was changed" in str(excinfo.value)
    assert await session_rows(raw) == 0


async def test_a_commit_whose_answer_was_lost_is_the_success_it_was(
    db: Database,
    raw: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_commit(monkeypatch, commit_answer_lost)
    with caplog.at_level(logging.WARNING, logger="db.connection.database"), anyio.fail_after(5):
        async with db.session() as s:
            created = await CrawlSessionRepository(s).create_session(BASE_URL)
    assert await raw.fetchval("SELECT id FROM crawl_sessions") == created.id
    assert any("is committed" in r.getMessage() for r in caplog.records)


async def test_a_lost_commit_of_a_read_only_unit_of_work_keeps_its_result(
    db: Database, raw: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_commit(monkeypatch, commit_answer_lost)
    async with db.session() as s:
        answer = await s.scalar(text("SELECT 42"))
    assert answer == 42


# --- pool exhaustion ---------------------------------------------------------------------


async def test_a_full_pool_fails_after_pool_timeout_with_server_busy(small_db: Database) -> None:
    async with AsyncExitStack() as holders:
        for _ in range(2):  # pool_size + max_overflow
            s = await holders.enter_async_context(small_db.session())
            await s.execute(text("SELECT 1"))
        started = time.perf_counter()
        with anyio.fail_after(5), pytest.raises(ServerBusy) as excinfo:
            async with small_db.session() as s:
                await s.execute(text("SELECT 1"))
        waited = time.perf_counter() - started
    message = str(excinfo.value)
    assert 0.3 <= waited < 1.3, waited
    assert message.startswith("server busy: all 2 database connections")
    assert "retry" in message and "QueuePool" not in message and "3o7r" not in message


async def test_the_pool_is_idle_again_after_it_was_exhausted(small_db: Database) -> None:
    with pytest.raises(ServerBusy):
        async with AsyncExitStack() as holders:
            for _ in range(3):
                s = await holders.enter_async_context(small_db.session())
                await s.execute(text("SELECT 1"))
    assert small_db.pool_status()["checked_out"] == 0
    async with small_db.session() as s:
        assert await s.scalar(text("SELECT 1")) == 1
    assert small_db.pool_status()["checked_out"] == 0


# --- statement timeout ------------------------------------------------------------------


async def test_a_statement_past_statement_timeout_fails_fast_and_writes_nothing(
    small_db: Database, raw: asyncpg.Connection
) -> None:
    started = time.perf_counter()
    with anyio.fail_after(5), pytest.raises(StatementTimeout) as excinfo:
        async with small_db.session() as s:
            await CrawlSessionRepository(s).create_session(BASE_URL)
            await s.execute(text("SELECT pg_sleep(3)"))
    assert time.perf_counter() - started < 1.5
    message = str(excinfo.value)
    assert message.startswith("timed out:") and "300 ms" in message
    assert "nothing was changed" in message
    assert await session_rows(raw) == 0


async def test_a_statement_waiting_on_a_lock_is_bounded_by_statement_timeout(
    small_db: Database, raw: asyncpg.Connection
) -> None:
    async with small_db.session() as s:
        created = await CrawlSessionRepository(s).create_session(BASE_URL)
    async with raw.transaction():
        await raw.execute("SELECT 1 FROM crawl_sessions WHERE id = $1 FOR UPDATE", created.id)
        with anyio.fail_after(5), pytest.raises(StatementTimeout):
            async with small_db.session() as s:
                await CrawlSessionRepository(s).start_session(created.id)
    assert await raw.fetchval("SELECT status FROM crawl_sessions") == "pending"


# --- nothing leaks --------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["busy", "timeout", "killed"])
async def test_fault_messages_carry_no_driver_text_or_secrets(
    fault: str, database_url: URL, raw: asyncpg.Connection
) -> None:
    database = Database(
        make_config(pool_size=1, max_overflow=0, pool_timeout=0.2, statement_timeout_ms=200),
        url=database_url,
    )
    try:
        with pytest.raises((DatabaseUnavailable, StatementTimeout)) as excinfo:
            async with database.session() as s:
                if fault == "busy":
                    await s.execute(text("SELECT 1"))
                    async with database.session() as other:
                        await other.execute(text("SELECT 1"))
                elif fault == "timeout":
                    await s.execute(text("SELECT pg_sleep(1)"))
                else:
                    pid = int(await s.scalar(text("SELECT pg_backend_pid()")) or 0)
                    await terminate(raw, pid)
                    await s.execute(text("SELECT 1"))
    finally:
        await database.close()
    message = str(excinfo.value)
    for leak in ("SELECT", "sqlalchemy", "asyncpg", "QueuePool", "postgresql"):
        assert leak not in message, message
    for secret in (database_url.host, database_url.password, database_url.database):
        assert not secret or secret not in message, message


# --- conflicts PostgreSQL resolves by rolling one transaction back -----------------------


async def test_the_loser_of_a_deadlock_is_told_to_retry_and_wrote_nothing(
    db: Database, raw: asyncpg.Connection
) -> None:
    """Two units of work lock two rows in opposite orders: PostgreSQL aborts one of them
    (deadlock_detected). Its caller gets a clear "conflict … retry" instead of an internal
    error, and none of its writes stay; the winner's do."""
    ids = []
    for _ in range(2):
        async with db.session() as s:
            ids.append((await CrawlSessionRepository(s).create_session(BASE_URL)).id)
    first_locked = [anyio.Event(), anyio.Event()]
    bump = text("UPDATE crawl_sessions SET bugs_found = bugs_found + 1 WHERE id = :id")
    outcomes: dict[int, str] = {}

    async def worker(me: int) -> None:
        mine, theirs = ids[me], ids[1 - me]
        try:
            async with db.session() as s:
                await s.execute(bump, {"id": mine})
                first_locked[me].set()
                await first_locked[1 - me].wait()
                await s.execute(bump, {"id": theirs})
            outcomes[me] = "committed"
        except ConcurrentUpdate as refused:
            assert "retry" in str(refused) and "nothing was changed" in str(refused)
            outcomes[me] = "refused"

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(worker, 0)
            tasks.start_soon(worker, 1)
    assert sorted(outcomes.values()) == ["committed", "refused"]
    found = [
        await raw.fetchval("SELECT bugs_found FROM crawl_sessions WHERE id = $1", i) for i in ids
    ]
    assert found == [1, 1]  # the winner's two increments, none of the loser's
    assert db.pool_status()["checked_out"] == 0
