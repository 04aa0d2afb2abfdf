"""Connecting through PgBouncer in transaction pooling mode (``BUGHIVE_DB_PGBOUNCER=true``).

There, consecutive transactions of one client connection may run on different server
connections, and a server connection serves many clients in turn. So nothing may outlive a
transaction on the server side:

- **prepared statements**: asyncpg's statement cache and SQLAlchemy's prepared-statement cache
  are off. asyncpg then prepares every statement *unnamed* and parses it again in the same
  round trip that executes it, inside the transaction: no statement name can collide with another
  client's on a shared server connection (``prepared statement "__asyncpg_stmt_1__" already
  exists``), and none is left behind to pile up;
- **settings**: PgBouncer refuses startup parameters it does not track (``unsupported startup
  parameter: statement_timeout``), and a plain ``SET`` would stick to whichever server connection
  ran it, for the next client. Only ``application_name`` is sent at connect time; the others are
  set for each transaction by its first statement, ``set_config(name, value, true)`` — i.e.
  ``SET LOCAL``, which ends with the transaction.

The price: one extra statement per transaction, and a parse per statement (no plan reuse).
"""

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

# Startup parameters PgBouncer accepts from clients (and restores per server connection).
STARTUP_PARAMETERS = frozenset({"application_name"})
# A session default that must be set on the current transaction itself.
_PER_TRANSACTION = {"default_transaction_read_only": "transaction_read_only"}


def connect_args(args: dict[str, Any]) -> dict[str, Any]:
    """``args`` for asyncpg's ``connect`` made safe for transaction pooling: statement caches
    off, and only the startup parameters PgBouncer accepts."""
    settings: dict[str, str] = args.get("server_settings", {})
    return {
        **args,
        "server_settings": {k: v for k, v in settings.items() if k in STARTUP_PARAMETERS},
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
    }


def per_transaction_statement(settings: dict[str, str]) -> str | None:
    """One ``SELECT set_config(…, true), …`` applying ``settings`` (those PgBouncer does not
    take at connect time) to the current transaction only; None when there are none."""
    calls = [
        f"set_config({_literal(_PER_TRANSACTION.get(name, name))}, {_literal(value)}, true)"
        for name, value in settings.items()
        if name not in STARTUP_PARAMETERS
    ]
    return f"SELECT {', '.join(calls)}" if calls else None


def set_per_transaction(engine: AsyncEngine, settings: dict[str, str]) -> None:
    """Make the first statement of every transaction on ``engine`` apply ``settings``."""
    statement = per_transaction_statement(settings)
    if statement is None:
        return

    @event.listens_for(engine.sync_engine, "begin")
    def _apply(conn: Connection) -> None:
        conn.exec_driver_sql(statement)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
