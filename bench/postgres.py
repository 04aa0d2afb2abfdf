"""The PostgreSQL the benchmarks run on, and one fresh database per workload.

By default a throwaway embedded PostgreSQL (``db.connection.embedded``) in a temporary directory, with its
stock settings (fsync and synchronous_commit on: what a user gets). ``--server-url`` points the
bench at another server instead; its user must be allowed to ``CREATE DATABASE``. Either way
each workload gets its own database, migrated to head with the Alembic migrations, and dropped
at the end.
"""

import shutil
import tempfile
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from db.connection import schema_version
from db.connection.embedded import start_embedded_server, stop_embedded_server

# What the docs report about the server a run used.
REPORTED_SETTINGS = (
    "server_version",
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "maintenance_work_mem",
    "synchronous_commit",
    "fsync",
    "full_page_writes",
    "wal_sync_method",
    "max_wal_size",
    "checkpoint_timeout",
    "max_connections",
    "max_parallel_workers_per_gather",
    "jit",
    "autovacuum",
    "random_page_cost",
)


def asyncpg_dsn(url: URL) -> str:
    """The libpq form of a SQLAlchemy URL, for raw asyncpg connections."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def sqlalchemy_url_text(url: URL) -> str:
    return url.render_as_string(hide_password=False)


async def migrate(url: URL) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(schema_version.upgrade)
    finally:
        await engine.dispose()


class BenchPostgres:
    """A PostgreSQL server plus the databases this run created on it."""

    def __init__(self, admin_url: URL, data_dir: Path | None = None) -> None:
        self.admin_url = admin_url
        self.data_dir = data_dir
        self.created: list[str] = []

    @classmethod
    def start_embedded(cls) -> "BenchPostgres":
        """A new embedded server in a temporary directory (blocking, about a second)."""
        data_dir = Path(tempfile.mkdtemp(prefix="bughive-bench-")) / "pgdata"
        url = start_embedded_server(data_dir, database="postgres", cleanup="delete")
        return cls(url, data_dir)

    @property
    def embedded(self) -> bool:
        return self.data_dir is not None

    async def _admin(self, *statements: str) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(self.admin_url))
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.close()

    async def create_database(self, label: str) -> URL:
        """A new database for one workload, migrated to the newest schema revision."""
        name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
        await self._admin(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        url = self.admin_url.set(database=name)
        await migrate(url)
        return url

    async def drop_database(self, url: URL) -> None:
        name = url.database
        if name in self.created:
            await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.created.remove(name)

    async def drop_all(self) -> None:
        for name in list(self.created):
            await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()

    async def settings(self) -> dict[str, str]:
        conn = await asyncpg.connect(asyncpg_dsn(self.admin_url))
        try:
            found = {name: str(await conn.fetchval(f"SHOW {name}")) for name in REPORTED_SETTINGS}
        finally:
            await conn.close()
        found["embedded"] = "yes" if self.embedded else "no"
        return found

    def stop(self) -> None:
        """Stop an embedded server and delete its directory; a given server is left alone
        (call ``drop_all`` first to remove this run's databases from it)."""
        if self.data_dir is not None:
            stop_embedded_server(self.data_dir)
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)
