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

from typing import Any, cast

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

# Set by Database.session(single_statement=True) when nothing needs a transaction: the one
# statement then goes out without BEGIN, and commits by itself (autocommit).
SINGLE_STATEMENT_KEY = "bughive_single_statement"


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under ``session``, with the session's transaction begun on it.

    SQLAlchemy's asyncpg adapter sends ``BEGIN`` lazily, before its own first statement; a
    statement sent past it must not run before that (it would autocommit), so the transaction
    is begun here when it has not been yet — exactly as the adapter would (same isolation
    level and read-only flag), and it is the adapter that commits or rolls it back.

    In a single-statement unit of work (:data:`SINGLE_STATEMENT_KEY`) no transaction is begun:
    the statement commits by itself, and the adapter, having begun nothing, has nothing to
    commit or roll back. (Cheaper than SQLAlchemy's ``AUTOCOMMIT`` isolation level, which sets
    and resets the connection's characteristics on every checkout: 90 + 74 µs per call.)"""
    connection = await session.connection()
    pooled = await connection.get_raw_connection()
    adapter: Any = pooled.dbapi_connection
    if adapter._transaction is None and not autocommitted(session):
        await adapter._start_transaction()
    return cast(asyncpg.Connection, adapter._connection)


def autocommitted(session: AsyncSession) -> bool:
    """Whether ``session``'s driver statements commit by themselves (see above)."""
    return bool(session.info.get(SINGLE_STATEMENT_KEY))
