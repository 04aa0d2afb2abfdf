"""Pool exhaustion and statement timeouts through the MCP surface (research plan R4).

- More concurrent tool calls than ``pool_size + max_overflow`` while the calls holding the
  connections are slow (blocked on a row lock another connection holds): the others wait
  ``pool_timeout``, then fail with "server busy … retry", never the pool's own text; once the
  lock is released the slow calls finish — no deadlock — and the pool is idle again.
- A statement slower than ``statement_timeout`` fails with a clear timeout error, changes
  nothing, and leaves no backend idle in a transaction."""

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import asyncpg
import pytest
from mcp import Client
from sqlalchemy.engine import URL

from db.connection.database import APPLICATION_NAME
from tests.bughive_mcp.faults import Figures, fault_server, pool_status
from tests.bughive_mcp.toolcalls import (
    BASE_URL,
    assert_no_leak,
    call,
    call_error,
    call_ok,
    new_session,
    only_text,
)
from tests.conftest import asyncpg_dsn

POOL_SIZE, MAX_OVERFLOW, POOL_TIMEOUT = 2, 1, 0.5
CAPACITY = POOL_SIZE + MAX_OVERFLOW
CALLS = 3 * CAPACITY
STATEMENT_TIMEOUT_MS = 300


@pytest.fixture
async def raw_lock(database_url: URL, empty_tables: None) -> AsyncIterator[asyncpg.Connection]:
    """A connection of another program, to hold row locks the server's calls wait on."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def small_pool_client(database_url: URL, empty_tables: None) -> AsyncIterator[Client]:
    server = fault_server(
        database_url,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT,
        statement_timeout_ms=10_000,
    )
    async with Client(server) as client:
        yield client


@pytest.fixture
async def timeout_client(database_url: URL, empty_tables: None) -> AsyncIterator[Client]:
    server = fault_server(database_url, statement_timeout_ms=STATEMENT_TIMEOUT_MS)
    async with Client(server) as client:
        yield client


async def lock_session_row(raw: asyncpg.Connection, session_id: str) -> Any:
    """Open a transaction on ``raw`` holding the session row: discovery on it must wait."""
    transaction = raw.transaction()
    await transaction.start()
    await raw.execute(
        "SELECT 1 FROM crawl_sessions WHERE id = $1 FOR UPDATE", uuid.UUID(session_id)
    )
    return transaction


async def test_calls_beyond_the_pool_wait_pool_timeout_then_fail_busy_without_deadlock(
    small_pool_client: Client, raw_lock: asyncpg.Connection
) -> None:
    client = small_pool_client
    session = await new_session(client)
    figures = Figures("pool exhaustion", extra={"capacity": CAPACITY})
    busy: list[tuple[str, float]] = []
    created: list[dict[str, Any]] = []
    all_refused = anyio.Event()

    async def discover(n: int) -> None:
        started = time.perf_counter()
        result = await call(
            client, "create_page", {"session_id": session["id"], "url": f"{BASE_URL}/p{n}"}
        )
        figures.calls += 1
        if result.is_error:
            busy.append((only_text(result), time.perf_counter() - started))
            if len(busy) == CALLS - CAPACITY:
                all_refused.set()
        else:
            assert isinstance(result.structured_content, dict)
            created.append(result.structured_content)

    with anyio.fail_after(20):
        lock = await lock_session_row(raw_lock, session["id"])
        async with anyio.create_task_group() as tg:
            for n in range(CALLS):
                tg.start_soon(discover, n)
            # CAPACITY calls hold every connection, blocked on the lock; the rest must give
            # up on their own. Only then is the lock released.
            await all_refused.wait()
            await lock.rollback()
    figures.failed = len(busy)
    figures.succeeded = len(created)
    figures.faults = 1
    figures.slowest_failure_seconds = max(elapsed for _, elapsed in busy)
    for text, elapsed in busy:
        assert text.startswith(
            f"Error executing tool create_page: server busy: all {CAPACITY} database "
            f"connections stayed in use for {POOL_TIMEOUT:g} s; nothing was changed, retry"
        ), text
        assert "QueuePool" not in text and "3o7r" not in text
        assert_no_leak(text)
        assert POOL_TIMEOUT <= elapsed < POOL_TIMEOUT + 2.0, elapsed
    assert len(created) == CAPACITY and all(page["created"] for page in created)
    assert (await pool_status(client))["checked_out"] == 0
    # The refused calls changed nothing: retried now, each creates its page.
    for n in range(CALLS):
        page = await call_ok(
            client, "create_page", session_id=session["id"], url=f"{BASE_URL}/p{n}"
        )
        figures.calls += 1
        figures.succeeded += 1
        assert page["created"] is (page["id"] not in {p["id"] for p in created})
    stats = await call_ok(client, "get_session", session_id=session["id"])
    assert stats["pages_discovered"] == CALLS
    figures.rows_checked = CALLS
    figures.print()


async def test_a_burst_of_ten_times_the_pool_leaves_no_connection_behind(
    database_url: URL, empty_tables: None
) -> None:
    server = fault_server(
        database_url, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, pool_timeout=10
    )
    async with Client(server) as client:
        session = await new_session(client)
        results: list[bool] = []

        async def read() -> None:
            result = await call(client, "get_session_statistics", {"session_id": session["id"]})
            results.append(result.is_error)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(10 * CAPACITY):
                    tg.start_soon(read)
        assert results == [False] * (10 * CAPACITY)
        pool = await pool_status(client)
        assert pool["checked_out"] == 0
        assert pool["idle"] <= POOL_SIZE


async def test_a_slow_statement_fails_with_a_clear_timeout_and_changes_nothing(
    timeout_client: Client, raw_lock: asyncpg.Connection
) -> None:
    client = timeout_client
    session = await new_session(client)
    url = f"{BASE_URL}/slow"
    lock = await lock_session_row(raw_lock, session["id"])
    started = time.perf_counter()
    with anyio.fail_after(10):
        text = await call_error(client, "create_page", session_id=session["id"], url=url)
    elapsed = time.perf_counter() - started
    await lock.rollback()
    assert text == (
        "Error executing tool create_page: timed out: a database statement ran longer than "
        f"the {STATEMENT_TIMEOUT_MS} ms limit and was cancelled; nothing was changed. Retry "
        "later, or ask for less (e.g. a smaller limit)"
    )
    assert elapsed < STATEMENT_TIMEOUT_MS / 1000 + 2.0, elapsed
    page = await call_ok(client, "create_page", session_id=session["id"], url=url)
    assert page["created"] is True
    stuck = await raw_lock.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
        " AND datname = current_database() AND state LIKE 'idle in transaction%'",
        APPLICATION_NAME,
    )
    assert stuck == 0
    assert (await pool_status(client))["checked_out"] == 0
