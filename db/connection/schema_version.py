"""Alembic, driven from code: the server and ``Database.init_db`` bring the schema to head
through the same migrations the ``alembic`` command runs, so there is one path to a schema."""

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).parent

# The advisory lock every migration of a database holds: any bigint would do, this one spells
# "bughive" (so it is recognisable in pg_locks).
MIGRATION_LOCK_KEY = int.from_bytes(b"bughive", "big")
_TAKE_MIGRATION_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations; with ``connection``, env.py runs
    the migration on it instead of opening its own."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def take_migration_lock(connection: Connection) -> None:
    """Wait until no other migration of this database runs, and keep others waiting until this
    transaction ends. Every way into Alembic takes it first (``upgrade``, ``downgrade``, the
    ``alembic`` command through migrations/env.py).

    Servers started together on an empty database otherwise all found no schema and all
    created it: every one but the first died on a duplicate ``alembic_version``. Under the lock
    the later ones read the version table once the first has committed, find it at head and do
    nothing. Taken *before* Alembic starts, it also keeps two migrations in one process apart
    (Alembic keeps a running migration's context in module globals). A transaction-scoped
    lock, not a session one: the commit or rollback releases it whatever happens, and it works
    through PgBouncer in transaction pooling mode. The wait counts against
    ``statement_timeout``; it lasts as long as the other migration."""
    connection.execute(_TAKE_MIGRATION_LOCK, {"key": MIGRATION_LOCK_KEY})


def upgrade(connection: Connection, revision: str = "head") -> None:
    take_migration_lock(connection)
    command.upgrade(alembic_config(connection), revision)


def downgrade(connection: Connection, revision: str = "base") -> None:
    take_migration_lock(connection)
    command.downgrade(alembic_config(connection), revision)


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


@cache
def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
