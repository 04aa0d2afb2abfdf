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
work (so it still commits or rolls back as one), on a connection of the same pool, with the
same settings (``statement_timeout``, read-only, tenant binding, PgBouncer mode), and their
errors are mapped to domain errors by :class:`db.database.Database` like any other. A unit of
work that sends nothing else (the crawl loop's hot tools) does not even need the ORM session's
connection: it runs on a :class:`PoolLease`.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any, cast

import asyncpg
from asyncpg.transaction import Transaction
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

# Where Database.session() puts the unit of work's PoolLease, when it has one.
LEASE_KEY = "bughive_pool_lease"


class PoolLease:
    """One connection of the engine's pool, checked out for a unit of work whose statements
    all go through the driver path, without the ORM session's machinery.

    Such a unit of work needs nothing of the session but a connection: the session's
    connection bookkeeping, ``commit`` and ``close`` (each a greenlet hop, ``close`` a task of
    its own) cost 0.3-0.4 ms per call here — as much as a statement's own round trip
    (``python -m bench.layers``). The lease takes the connection straight from the same pool
    (same size, timeout, liveness check and connection settings), runs the unit of work's
    transaction on it with asyncpg — or none, for a single statement, which commits by itself
    — and puts it back, or drops it when it may be broken.

    The ORM session must then stay unused: its statements would run on another connection,
    outside this transaction (``Database.session()`` refuses a unit of work that did both)."""

    def __init__(self, engine: AsyncEngine, *, transaction: bool) -> None:
        self._engine = engine
        self._wants_transaction = transaction
        self._checked_out: PoolProxiedConnection | None = None
        self._transaction: Transaction | None = None

    @property
    def used(self) -> bool:
        return self._checked_out is not None

    @property
    def in_transaction(self) -> bool:
        return self._transaction is not None

    async def connection(self) -> asyncpg.Connection:
        """The leased connection, checked out (and its transaction begun) on first use."""
        if self._checked_out is None:
            # Read at every checkout: Engine.dispose() replaces the pool.
            self._checked_out = await greenlet_spawn(self._engine.sync_engine.pool.connect)
        adapter: Any = self._checked_out.dbapi_connection
        conn = cast(asyncpg.Connection, adapter._connection)
        if self._wants_transaction and self._transaction is None:
            transaction = conn.transaction()  # READ COMMITTED, as SQLAlchemy's would be
            await transaction.start()
            self._transaction = transaction
        return conn

    async def commit(self) -> None:
        transaction, self._transaction = self._transaction, None
        if transaction is not None:
            await transaction.commit()

    async def release(self) -> None:
        """Return the connection to the pool, its transaction (if still open) rolled back.
        A pool within its size takes it back without waiting on anything; one that closes it
        instead (overflow, ``NullPool``) may be cancelled while closing, and asyncpg then
        aborts the socket: nothing is leaked."""
        transaction, self._transaction = self._transaction, None
        if transaction is not None:
            try:
                await transaction.rollback()
            except BaseException:
                await self.discard()
                raise
        checked_out, self._checked_out = self._checked_out, None
        if checked_out is not None:
            await greenlet_spawn(checked_out.close)

    async def discard(self) -> None:
        """Close the connection instead of pooling it (its transaction, if any, ends with it):
        the unit of work failed in a way that may have left it broken or mid-statement (lost,
        cancelled). Runs to its end even when the caller is being cancelled, so the pool's
        count of connections stays right."""
        self._transaction = None
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


async def fetch_aggregate(
    conn: asyncpg.Connection, statement: str, *args: object
) -> asyncpg.Record | None:
    """The one row of an aggregate over many rows (statistics), or None when there is none.

    Not ``fetchrow``: asyncpg asks the server for one row at a time then (a row limit on the
    portal), and PostgreSQL plans no parallel workers for a portal it may have to suspend.
    Fetched whole, the passes run on 3 processes here: get_session_statistics of a
    100,000-page session 33.7 → 26.6 ms, get_bug_statistics of 100,000 bugs 45.0 → 31.5 ms
    (the same statements on the same connection, median of 5 rounds)."""
    rows: list[asyncpg.Record] = await conn.fetch(statement, *args)
    return rows[0] if rows else None


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection of ``session``'s unit of work, with its transaction begun.

    In a unit of work that uses only the driver path (``Database.session(single_statement=
    True)`` or ``driver_only=True``) that is the connection of its :class:`PoolLease`: in a
    transaction of asyncpg's, or — single statement — in none, the statement committing by
    itself. (Cheaper than SQLAlchemy's ``AUTOCOMMIT`` isolation level, which sets and resets
    the connection's characteristics on every checkout: 90 + 74 µs per call.)

    Otherwise it is the session's own connection. SQLAlchemy's asyncpg adapter sends ``BEGIN``
    lazily, before its own first statement; a statement sent past it must not run before that
    (it would autocommit), so the transaction is begun here when it has not been yet — exactly
    as the adapter would (same isolation level and read-only flag), and it is the adapter that
    commits or rolls it back."""
    lease = session.info.get(LEASE_KEY)
    if isinstance(lease, PoolLease):
        return await lease.connection()
    connection = await session.connection()
    pooled = await connection.get_raw_connection()
    adapter: Any = pooled.dbapi_connection
    if adapter._transaction is None:
        await adapter._start_transaction()
    return cast(asyncpg.Connection, adapter._connection)
