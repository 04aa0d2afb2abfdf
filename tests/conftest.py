"""Fixtures shared by the whole suite: one real PostgreSQL per test run.

With ``DATABASE_URL`` set, the suite creates a throwaway database on that server; without it,
it starts a throwaway embedded PostgreSQL (deleted at the end). Either way the schema is built
by the Alembic migrations, exactly as in production, and every test starts from empty tables.
"""

import asyncio
import inspect
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from db.connection import schema_version
from db.connection.config import DatabaseConfig
from db.connection.database import Database
from db.connection.embedded import start_embedded_server, stop_embedded_server

# Emptied after each test, children first (bug_occurrences follows bugs by ON DELETE CASCADE).
TABLES = ("bugs", "pages", "crawl_sessions")


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Run every ``async def`` test on anyio (asyncio backend) without per-test markers.

    Marking the function before pytest builds its items (what anyio's own auto mode does) keeps
    ``@pytest.mark.parametrize`` intact; marking the items afterwards made anyio rebuild them
    and drop their parameters."""
    is_test = isinstance(collector, pytest.Module | pytest.Class) and collector.istestfunction(
        obj, name
    )
    if is_test and inspect.iscoroutinefunction(obj):
        pytest.mark.usefixtures("anyio_backend")(obj)
        pytest.mark.anyio(obj)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def asyncpg_dsn(url: URL) -> str:
    """The plain libpq form of a SQLAlchemy URL, for raw asyncpg connections."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresServer:
    """The test run's PostgreSQL server: hands out fresh databases on it."""

    def __init__(self, admin_url: URL) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    async def _admin(self, *statements: str) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(self.admin_url))
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.close()

    def create_database(self, prefix: str = "bughive_test") -> URL:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        asyncio.run(self._admin(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.admin_url.set(database=name)

    async def create_database_async(self, prefix: str = "bughive_tmp") -> URL:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        await self._admin(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.admin_url.set(database=name)

    def drop_all(self) -> None:
        async def drop() -> None:
            for name in self.created:
                await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        asyncio.run(drop())


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    configured = DatabaseConfig(_env_file=None).url
    if configured is not None:
        server = PostgresServer(configured)
        yield server
        server.drop_all()
        return
    data_dir = Path(tempfile.mkdtemp(prefix="bughive-test-")) / "pgdata"
    admin_url = start_embedded_server(data_dir, database="postgres", cleanup="delete")
    server = PostgresServer(admin_url)
    # A throwaway cluster needs no durability: trade it for a much faster suite.
    asyncio.run(
        server._admin(
            "ALTER SYSTEM SET fsync = off",
            "ALTER SYSTEM SET synchronous_commit = off",
            "ALTER SYSTEM SET full_page_writes = off",
            "SELECT pg_reload_conf()",
        )
    )
    yield server
    stop_embedded_server(data_dir)


async def _migrate(url: URL) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(schema_version.upgrade)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def database_url(postgres_server: PostgresServer) -> URL:
    """A database migrated to head, shared by the run (tables are emptied after each test)."""
    url = postgres_server.create_database()
    asyncio.run(_migrate(url))
    return url


# The suite's key for site credentials (they are encrypted at rest, and refused without one).
TEST_ENCRYPTION_KEY = Fernet.generate_key().decode()


def make_config(**overrides: Any) -> DatabaseConfig:
    """A config independent of the developer's environment and ``.env`` (with the suite's
    encryption key unless ``encryption_key`` is given)."""
    return DatabaseConfig(_env_file=None, **{"encryption_key": TEST_ENCRYPTION_KEY, **overrides})


@pytest.fixture
async def empty_tables(database_url: URL) -> AsyncIterator[None]:
    """Empties the shared database's tables after the test, whichever way it wrote to them.

    ``DELETE`` rather than ``TRUNCATE``: on a test's few rows it is ~40 times faster, and
    ``TRUNCATE`` was most of a test's cost."""
    yield
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for table in TABLES:
            await conn.execute(f"DELETE FROM {table}")
    finally:
        await conn.close()


@pytest.fixture
async def db(database_url: URL, empty_tables: None) -> AsyncIterator[Database]:
    database = Database(make_config(), url=database_url)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def raw(database_url: URL, empty_tables: None) -> AsyncIterator[asyncpg.Connection]:
    """A raw asyncpg connection, for checking what really is in the tables."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        yield conn
    finally:
        await conn.close()


@contextmanager
def record_queries(database: Database) -> Iterator[list[str]]:
    """Every SQL statement ``database`` sends while the block runs, as the driver sends it
    (asyncpg's query logger on each connection checked out meanwhile)."""
    seen: list[str] = []
    logged: list[Any] = []

    def log(record: Any) -> None:
        seen.append(record.query)

    def checked_out(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        driver.add_query_logger(log)
        logged.append(driver)

    def checked_in(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.remove_query_logger(log)

    pool = database.engine.sync_engine.pool
    event.listen(pool, "checkout", checked_out)
    event.listen(pool, "checkin", checked_in)
    try:
        yield seen
    finally:
        event.remove(pool, "checkout", checked_out)
        event.remove(pool, "checkin", checked_in)
        for driver in logged:
            driver.remove_query_logger(log)
