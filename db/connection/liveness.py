"""Checking a pooled connection before a tool call uses it — without paying for it every time.

SQLAlchemy's own ``pool_pre_ping`` sends ``BEGIN; ; ROLLBACK`` (three round trips) at *every*
checkout, i.e. on every tool call; on a busy machine that was a tenth of the server's time and
the largest single item of a call's overhead (docs/benchmarks.md). The two ways a pooled
connection actually dies are cheaper to catch:

- the server ended it (restart, ``pg_terminate_backend``, idle timeout, failover): the socket
  was closed, asyncpg noticed while the connection sat in the pool, and ``is_closed()`` says so
  at no cost — checked at every checkout;
- the network path silently dropped it (a NAT or firewall forgetting an idle flow): nothing on
  this side knows until a packet is sent — so a connection idle for longer than
  ``idle_seconds`` gets one real round trip (``SELECT 1`` by the simple query protocol, outside any
  transaction: PgBouncer-safe) before it is handed out.

A connection that fails either check is replaced: raising ``DisconnectionError`` in the
``checkout`` event makes the pool discard it and check out (or open) another.
"""

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import await_only

_LAST_USED = "bughive_last_used"


def install(engine: AsyncEngine, idle_seconds: float) -> None:
    """Check every connection ``engine``'s pool hands out (see the module docstring)."""
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "connect")
    def _connected(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(pool, "checkin")
    def _returned(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _check(
        dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        driver = dbapi_connection.driver_connection
        if driver.is_closed():
            raise DisconnectionError("the server closed this pooled connection")
        idle = time.monotonic() - record.info.get(_LAST_USED, 0.0)
        if idle <= idle_seconds:
            return
        try:
            await_only(driver.execute("SELECT 1"))
        except Exception as err:  # any failure of the ping means: do not use this connection
            raise DisconnectionError("a pooled connection did not answer its ping") from err
