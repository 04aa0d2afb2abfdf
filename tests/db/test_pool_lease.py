"""A driver-only unit of work (``Database.session(driver_only=True)``) runs on a connection
leased straight from the pool (db.driver.PoolLease), in a transaction of asyncpg's — with every
promise of any other unit of work: one transaction, rolled back on failure, a connection lost
before the commit writes nothing, a commit whose answer was lost is settled, and the pool gets
its connection back whatever happened."""

import logging
import uuid

import anyio
import asyncpg
import pytest
from sqlalchemy import text

from db.database import Database
from db.driver import PoolLease, driver_connection
from db.errors import DatabaseUnavailable
from tests.db.test_driver import BUMP, bugs_found, logged, new_session
from tests.db.test_liveness import queries_on


async def bump(db: Database, session_id: uuid.UUID) -> None:
    async with db.session(driver_only=True) as s:
        await (await driver_connection(s)).execute(BUMP, session_id)


async def test_its_statements_share_one_transaction_on_a_leased_connection(
    db: Database, raw: asyncpg.Connection
) -> None:
    session_id = await new_session(db)
    sent = await queries_on(db)
    async with db.session(driver_only=True) as s:
        conn = await driver_connection(s)
        await conn.execute(BUMP, session_id)
        await (await driver_connection(s)).execute(BUMP, session_id)  # same transaction
        assert await bugs_found(raw, session_id) == 0  # nothing visible before the commit
        assert db.pool_status()["checked_out"] == 1  # the lease's; the session holds none
        assert not s.in_transaction()
    await logged()
    assert [q for q in sent if q.startswith(("BEGIN", "COMMIT"))] == ["BEGIN;", "COMMIT;"]
    assert await bugs_found(raw, session_id) == 2
    assert db.pool_status()["checked_out"] == 0


async def test_it_rolls_back_when_the_block_fails(db: Database, raw: asyncpg.Connection) -> None:
    session_id = await new_session(db)
    with pytest.raises(RuntimeError, match="tool failed"):
        async with db.session(driver_only=True) as s:
            await (await driver_connection(s)).execute(BUMP, session_id)
            raise RuntimeError("tool failed")
    assert await bugs_found(raw, session_id) == 0
    assert db.pool_status()["checked_out"] == 0
    await bump(db, session_id)  # the connection went back clean: no transaction left open
    assert await bugs_found(raw, session_id) == 1


async def test_using_the_orm_session_too_is_refused_and_writes_nothing(
    db: Database, raw: asyncpg.Connection
) -> None:
    """The ORM's statements would run on another connection, outside the lease's
    transaction: a programming error, caught before anything is committed."""
    session_id = await new_session(db)
    with pytest.raises(RuntimeError, match="also used the ORM session"):
        async with db.session(driver_only=True) as s:
            await (await driver_connection(s)).execute(BUMP, session_id)
            await s.execute(text("SELECT 1"))  # (a write of the same row would wait)
    assert await bugs_found(raw, session_id) == 0
    assert db.pool_status()["checked_out"] == 0


async def test_a_connection_killed_mid_transaction_is_unavailable_and_writes_nothing(
    db: Database, raw: asyncpg.Connection
) -> None:
    session_id = await new_session(db)
    with anyio.fail_after(5), pytest.raises(DatabaseUnavailable, match="nothing was changed"):
        async with db.session(driver_only=True) as s:
            conn = await driver_connection(s)
            await conn.execute(BUMP, session_id)
            await raw.execute("SELECT pg_terminate_backend($1, 5000)", conn.get_server_pid())
            await conn.execute(BUMP, session_id)
    assert await bugs_found(raw, session_id) == 0
    assert db.pool_status()["checked_out"] == 0
    await bump(db, session_id)  # served again, by a new connection
    assert await bugs_found(raw, session_id) == 1


async def test_a_commit_cut_off_before_it_happened_is_unavailable_and_writes_nothing(
    db: Database, raw: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = await new_session(db)
    commit = PoolLease.commit

    async def killed_before_commit(lease: PoolLease) -> None:
        pid = (await lease.connection()).get_server_pid()
        await raw.execute("SELECT pg_terminate_backend($1, 5000)", pid)
        await commit(lease)

    monkeypatch.setattr(PoolLease, "commit", killed_before_commit)
    with anyio.fail_after(5), pytest.raises(DatabaseUnavailable, match="nothing was changed"):
        await bump(db, session_id)
    assert await bugs_found(raw, session_id) == 0
    assert db.pool_status()["checked_out"] == 0


async def test_a_commit_whose_answer_was_lost_is_the_success_it_was(
    db: Database,
    raw: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The transaction id is asked for before the commit (the statement did not hand it
    over), and the database then says the transaction committed."""
    session_id = await new_session(db)
    commit = PoolLease.commit

    async def answer_lost(lease: PoolLease) -> None:
        await commit(lease)
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(PoolLease, "commit", answer_lost)
    with caplog.at_level(logging.WARNING, logger="db.database"), anyio.fail_after(5):
        await bump(db, session_id)
    assert await bugs_found(raw, session_id) == 1
    assert any("is committed" in r.getMessage() for r in caplog.records)
    assert db.pool_status()["checked_out"] == 0


async def test_in_multi_tenant_or_pgbouncer_mode_the_session_connection_is_used(
    db: Database,
) -> None:
    """A tenant binding lives in the session's transaction: the promise changes nothing."""
    async with db.session("acme", driver_only=True) as s:
        conn = await driver_connection(s)
        assert await conn.fetchval("SELECT current_setting('bughive.tenant', true)") == "acme"
        assert s.in_transaction()
