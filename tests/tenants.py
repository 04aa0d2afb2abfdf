"""Multi-tenant mode in tests: a runtime role as a deployment creates it (README, Multi-tenant
mode) — a login role that is not superuser, has no BYPASSRLS and owns nothing, holding only the
grants of ``bughive-mcp grant-runtime-role`` on the shared test database."""

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from db.connection.tenancy import grant_runtime_role, quote_identifier
from tests.conftest import PostgresServer, asyncpg_dsn

ACME, GLOBEX = "acme", "globex"


async def _admin(server: PostgresServer, statement: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(server.admin_url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _as_owner(database_url: URL, role: str, *, revoke: bool = False) -> None:
    owner = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with owner.begin() as conn:
            if revoke:
                await conn.exec_driver_sql(f"DROP OWNED BY {quote_identifier(role)}")
            else:
                await grant_runtime_role(conn, role)
    finally:
        await owner.dispose()


@contextmanager
def runtime_role(server: PostgresServer, database_url: URL) -> Iterator[URL]:
    """A fresh runtime role on ``database_url``'s database; yields its URL, drops it after.
    (Blocking: for module- and session-scoped fixtures, like the ones of ``tests.conftest``.)"""
    role = f"bughive_runtime_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    who = quote_identifier(role)
    asyncio.run(
        _admin(
            server,
            f"CREATE ROLE {who} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE "
            f"PASSWORD '{password}'",
        )
    )
    try:
        asyncio.run(_as_owner(database_url, role))
        yield database_url.set(username=role, password=password)
    finally:
        asyncio.run(_as_owner(database_url, role, revoke=True))
        asyncio.run(_admin(server, f"DROP ROLE {who}"))
