"""The ``Database``: one pooled asyncpg engine and a unit-of-work ``session()`` per caller.

Connection failures are turned into :class:`db.errors.DatabaseUnavailable` here, once, so no
caller ever sees driver text (which may carry host names or SQL).
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from db import schema_version
from db.config import DatabaseConfig
from db.errors import DatabaseUnavailable
from db.models import Base
from db.tenancy import bind_tenant

log = logging.getLogger(__name__)

APPLICATION_NAME = "bughive-mcp"

# Errors that mean "could not talk to the database", as opposed to "the database said no".
_UNAVAILABLE = (OSError, TimeoutError, ConnectionError, sa_exc.TimeoutError)


def _is_unavailable(err: BaseException) -> bool:
    if isinstance(err, _UNAVAILABLE):
        return True
    if isinstance(err, sa_exc.DBAPIError) and err.connection_invalidated:
        return True
    if isinstance(err, sa_exc.InterfaceError | sa_exc.OperationalError):
        return True
    origin = getattr(err, "orig", None) or err.__cause__
    name = type(origin).__name__ if origin is not None else ""
    return name in {
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "CannotConnectNowError",
        "AdminShutdownError",
        "TooManyConnectionsError",
        "InterfaceError",
    }


def resolve_url(config: DatabaseConfig) -> URL:
    """The configured URL, or the embedded PostgreSQL's when none is configured (blocking)."""
    if config.url is not None:
        return config.url
    from db.embedded import start_embedded_server

    return start_embedded_server(config.embedded_data_dir)


class Database:
    """Engine + session factory for one database. Create it once per process."""

    def __init__(self, config: DatabaseConfig | None = None, *, url: URL | None = None) -> None:
        self.config = config or DatabaseConfig()
        self.url = url or resolve_url(self.config)
        server_settings = {"application_name": APPLICATION_NAME}
        if self.config.read_only:
            server_settings["default_transaction_read_only"] = "on"
        if self.config.statement_timeout_ms:
            server_settings["statement_timeout"] = str(self.config.statement_timeout_ms)
        engine_args: dict[str, Any] = {
            "echo": self.config.echo,
            "hide_parameters": not self.config.echo,
            "pool_pre_ping": self.config.pool_pre_ping,
            "connect_args": {
                "server_settings": server_settings,
                "timeout": self.config.connect_timeout,
            },
        }
        if self.config.testing:
            engine_args["poolclass"] = NullPool
        else:
            engine_args.update(
                pool_size=self.config.pool_size,
                max_overflow=self.config.max_overflow,
                pool_timeout=self.config.pool_timeout,
                pool_recycle=self.config.pool_recycle,
            )
        self.engine: AsyncEngine = create_async_engine(self.url, **engine_args)
        self.session_factory = async_sessionmaker(self.engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @asynccontextmanager
    async def session(self, tenant: str | None = None) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits when the block exits normally, rolls back on any exception.

        With ``tenant``, its first statement binds the transaction to that tenant (multi-tenant
        mode, see :mod:`db.tenancy`); the binding ends with the transaction.

        Connection-level failures surface as :class:`DatabaseUnavailable` (retryable)."""
        try:
            async with self.session_factory() as session:
                try:
                    if tenant is not None:
                        await bind_tenant(session, tenant)
                    yield session
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    raise
        except Exception as err:
            if _is_unavailable(err):
                log.warning("database unavailable: %s", type(err).__name__)
                raise DatabaseUnavailable() from err
            raise

    async def init_db(self) -> None:
        """Bring the schema to the newest revision (runs the Alembic migrations)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(schema_version.upgrade)

    async def drop_db(self) -> None:
        """Drop every table of the model and Alembic's version table. Destroys data."""
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))

    async def schema_revision(self) -> str | None:
        async with self.engine.connect() as conn:
            return await conn.run_sync(_current_revision)

    async def check_health(self) -> bool:
        """True when a round trip to the server succeeds (``SELECT 1``)."""
        try:
            async with self.engine.connect() as conn:
                return (await conn.scalar(text("SELECT 1"))) == 1
        except Exception as err:
            log.warning("database health check failed: %s", type(err).__name__)
            return False

    def pool_status(self) -> dict[str, int]:
        """Pool figures for diagnostics: connections checked out, idle, and overflow."""
        pool: Any = self.engine.pool
        if isinstance(pool, NullPool):
            return {"size": 0, "checked_out": 0, "idle": 0, "overflow": 0}
        return {
            "size": pool.size(),
            "checked_out": pool.checkedout(),
            "idle": pool.checkedin(),
            "overflow": max(pool.overflow(), 0),
        }

    async def close(self) -> None:
        await self.engine.dispose()


def _current_revision(conn: Connection) -> str | None:
    return schema_version.current_revision(conn)


# --- module-level API of the architecture notes ----------------------------------------

_database: Database | None = None


def get_database() -> Database:
    """The process-wide ``Database`` (created on first use from the environment)."""
    global _database
    if _database is None:
        _database = Database()
    return _database


async def close_database() -> None:
    global _database
    if _database is not None:
        await _database.close()
        _database = None


async def init_database(drop_existing: bool = False) -> Database:
    db = get_database()
    if drop_existing:
        await db.drop_db()
    await db.init_db()
    return db


async def get_db() -> AsyncIterator[AsyncSession]:
    """FastAPI-style dependency: yields a session that commits after the request."""
    async with get_database().session() as session:
        yield session


async def check_database_health() -> bool:
    return await get_database().check_health()
