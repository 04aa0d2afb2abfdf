"""Alembic environment (async). Reads the same ``DatabaseConfig`` as the server, or runs on a
connection handed over by ``db.connection.schema_version`` (how the server migrates itself)."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from db.connection import schema_version
from db.connection.config import DatabaseConfig
from db.connection.database import resolve_url
from db.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(resolve_url(DatabaseConfig()), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            # Concurrent migrations take turns (db.connection.schema_version takes it on a handed-over one).
            await connection.run_sync(schema_version.take_migration_lock)
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=str(resolve_url(DatabaseConfig()).render_as_string(hide_password=False)),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    handed_over = context.config.attributes.get("connection")
    if handed_over is not None:
        _run(handed_over)
    else:
        asyncio.run(_run_online())
