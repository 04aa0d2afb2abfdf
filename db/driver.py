"""The hot statements' path: asyncpg itself, inside the unit of work's own transaction.

A tool call's statements normally go through SQLAlchemy, which costs Python time per statement
(building and caching the statement, the greenlet hop, the dialect's cursor, ORM entity
loading) on top of the round trip. Measured here on an idle machine (``bench`` workload 1,
``get_pages_to_crawl``'s three statements in one transaction): raw asyncpg 0.86 ms,
SQLAlchemy ``text()`` 1.41 ms, the ORM 2.86 ms. For the few statements every crawl step sends
(look at the frontier, claim, finish a page, file a bug) that Python time was most of the call,
so those repositories send hand-written SQL through :func:`driver_connection` and build their
pydantic results straight from the rows. Everything else stays on the ORM.

Nothing else changes: the statements run in the same transaction as the rest of the unit of
work (so it still commits or rolls back as one), on the same pooled connection, with the same
settings (``statement_timeout``, read-only, tenant binding, PgBouncer mode), and their errors
are mapped to domain errors by :class:`db.database.Database` like any other.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any, cast

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

# Set by Database.session(single_statement=True) when nothing needs a transaction: the one
# statement then goes out without BEGIN, and commits by itself (autocommit). The value is the
# unit of work's PoolLease.
SINGLE_STATEMENT_KEY = "bughive_single_statement"


class PoolLease:
    """One connection of the engine's pool, checked out for a single-statement unit of work
    without going through the ORM session.

    A statement that needs no transaction needs none of the session's machinery either: its
    connection bookkeeping, ``commit`` and ``close`` (each a greenlet hop, ``close`` a task of
    its own) cost 0.3-0.4 ms per call here — as much as the statement's own round trip
    (``python -m bench.layers``). The lease takes the connection straight from the same pool
    (same size, timeout, liveness check and connection settings) and puts it back, or drops it
    when it broke."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._checked_out: PoolProxiedConnection | None = None

    async def connection(self) -> asyncpg.Connection:
        """The leased connection, checked out on first use."""
        if self._checked_out is None:
            # Read at every checkout: Engine.dispose() replaces the pool.
            self._checked_out = await greenlet_spawn(self._engine.sync_engine.pool.connect)
        adapter: Any = self._checked_out.dbapi_connection
        return cast(asyncpg.Connection, adapter._connection)

    async def release(self) -> None:
        """Return the connection to the pool. A pool within its size takes it back without
        waiting on anything; one that closes it instead (overflow, ``NullPool``) may be
        cancelled while closing, and asyncpg then aborts the socket: nothing is leaked."""
        checked_out, self._checked_out = self._checked_out, None
        if checked_out is not None:
            await greenlet_spawn(checked_out.close)

    async def discard(self) -> None:
        """Close the connection instead of pooling it: the unit of work failed in a way that
        may have left it broken or mid-statement (lost, cancelled). Runs to its end even when
        the caller is being cancelled, so the pool's count of connections stays right."""
        checked_out, self._checked_out = self._checked_out, None
        if checked_out is not None:
            await run_to_completion(greenlet_spawn(checked_out.invalidate))


async def run_to_completion(work: Coroutine[Any, Any, None]) -> None:
    """Await ``work`` in a task of its own, to its end, even if the caller is cancelled
    meanwhile (the cancellation is re-raised afterwards) — for clean-up that must not be
    abandoned halfway, like returning a connection to its pool."""
    task = asyncio.ensure_future(work)
    cancelled: BaseException | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as err:
            if task.done() and task.cancelled():
                raise
            cancelled = err
    task.result()
    if cancelled is not None:
        raise cancelled


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under ``session``, with the session's transaction begun on it.

    SQLAlchemy's asyncpg adapter sends ``BEGIN`` lazily, before its own first statement; a
    statement sent past it must not run before that (it would autocommit), so the transaction
    is begun here when it has not been yet — exactly as the adapter would (same isolation
    level and read-only flag), and it is the adapter that commits or rolls it back.

    In a single-statement unit of work (:data:`SINGLE_STATEMENT_KEY`) no transaction is begun:
    the statement commits by itself, on the unit of work's :class:`PoolLease`. (Cheaper than
    SQLAlchemy's ``AUTOCOMMIT`` isolation level, which sets and resets the connection's
    characteristics on every checkout: 90 + 74 µs per call.)"""
    lease = session.info.get(SINGLE_STATEMENT_KEY)
    if isinstance(lease, PoolLease):
        return await lease.connection()
    connection = await session.connection()
    pooled = await connection.get_raw_connection()
    adapter: Any = pooled.dbapi_connection
    if adapter._transaction is None and not autocommitted(session):
        await adapter._start_transaction()
    return cast(asyncpg.Connection, adapter._connection)


def autocommitted(session: AsyncSession) -> bool:
    """Whether ``session``'s driver statements commit by themselves (see above)."""
    return bool(session.info.get(SINGLE_STATEMENT_KEY))
