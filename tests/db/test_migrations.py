"""The Alembic migrations build exactly the models' schema, and take it down again."""

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from db.connection import schema_version
from db.connection.database import Database
from db.models import Base
from tests.conftest import PostgresServer, make_config


@pytest.fixture
async def empty_engine(postgres_server: PostgresServer) -> AsyncIterator[AsyncEngine]:
    """An engine on a brand-new database with no tables at all."""
    url = await postgres_server.create_database_async()
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        yield engine
    finally:
        await engine.dispose()


def schema_differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


def public_tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def test_upgrade_head_on_an_empty_database_gives_the_models_schema(
    empty_engine: AsyncEngine,
) -> None:
    async with empty_engine.begin() as conn:
        await conn.run_sync(schema_version.upgrade)
    async with empty_engine.connect() as conn:
        assert await conn.run_sync(schema_differences) == []


async def test_an_empty_database_differs_from_the_models(empty_engine: AsyncEngine) -> None:
    """The comparison used above does see a missing schema (so its silence means something)."""
    async with empty_engine.connect() as conn:
        differences = await conn.run_sync(schema_differences)
    added = {d[1].name for d in differences if d[0] == "add_table"}
    assert added == set(Base.metadata.tables)
    assert {"crawl_sessions", "pages", "bugs"} <= added


async def test_upgrade_head_records_the_head_revision(empty_engine: AsyncEngine) -> None:
    async with empty_engine.begin() as conn:
        await conn.run_sync(schema_version.upgrade)
    async with empty_engine.connect() as conn:
        current = await conn.run_sync(schema_version.current_revision)
    assert current is not None
    assert current == schema_version.head_revision()


async def test_upgrade_head_twice_changes_nothing(empty_engine: AsyncEngine) -> None:
    async with empty_engine.begin() as conn:
        await conn.run_sync(schema_version.upgrade)
    async with empty_engine.begin() as conn:
        await conn.run_sync(schema_version.upgrade)
    async with empty_engine.connect() as conn:
        assert await conn.run_sync(schema_differences) == []


async def test_downgrade_base_removes_every_table(empty_engine: AsyncEngine) -> None:
    async with empty_engine.begin() as conn:
        await conn.run_sync(schema_version.upgrade)
    async with empty_engine.begin() as conn:
        await conn.run_sync(schema_version.downgrade)
    async with empty_engine.connect() as conn:
        assert await conn.run_sync(public_tables) <= {"alembic_version"}
        assert await conn.run_sync(schema_version.current_revision) is None
        leftovers = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relname NOT LIKE 'alembic_version%'"
            )
        )
    assert leftovers == 0


async def test_upgrade_after_downgrade_rebuilds_the_schema(empty_engine: AsyncEngine) -> None:
    async with empty_engine.begin() as conn:
        await conn.run_sync(schema_version.upgrade)
        await conn.run_sync(schema_version.downgrade)
        await conn.run_sync(schema_version.upgrade)
    async with empty_engine.connect() as conn:
        assert await conn.run_sync(schema_differences) == []


async def test_migrations_started_together_on_an_empty_database_all_succeed(
    postgres_server: PostgresServer,
) -> None:
    """N servers started at once on an empty database each migrate it (``init_db``): they take
    turns, and the later ones find the schema at head instead of racing to create it."""
    url = await postgres_server.create_database_async("bughive_race")
    databases = [Database(make_config(), url=url) for _ in range(3)]
    try:
        async with anyio.create_task_group() as group:
            for database in databases:
                group.start_soon(database.init_db)
        revisions = [await database.schema_revision() for database in databases]
    finally:
        for database in databases:
            await database.close()

    assert revisions == [schema_version.head_revision()] * len(databases)
