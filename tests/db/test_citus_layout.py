"""``docs/citus.sql`` — the Citus layout keeping every crawl session on one shard — checked
against the models on plain PostgreSQL.

The file is applied as written to a database migrated to the newest revision, with stand-ins
for Citus's ``create_distributed_table`` / ``create_reference_table`` that record their calls.
Then the catalog must show what Citus will insist on — the distribution column in every primary
key, unique index and foreign key between distributed tables — and that nothing the models
guarantee was lost on the way: every unique key and foreign key is still there, with the
session added.
"""

import asyncio
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import ForeignKeyConstraint, UniqueConstraint

from db.models import Base
from tests.conftest import PostgresServer, _migrate, asyncpg_dsn

LAYOUT = Path(__file__).resolve().parents[2] / "docs" / "citus.sql"
SESSIONS = "crawl_sessions"
# Each table's distribution column: the crawl session.
DISTRIBUTION = {
    "crawl_sessions": "id",
    "pages": "session_id",
    "bugs": "session_id",
    "bug_occurrences": "session_id",
}
# Unique keys of the models that cannot include the session; docs/citus.sql says what replaces
# each (they keep a plain index for the lookup).
NOT_UNIQUE_ON_CITUS = {("crawl_sessions", frozenset({"tenant", "idempotency_key"}))}

STAND_INS = """
CREATE TABLE citus_calls (
    function text, table_name text, distribution_column text, colocate_with text
);
CREATE FUNCTION create_distributed_table(
    table_name regclass, distribution_column text, colocate_with text DEFAULT 'default'
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO citus_calls
    VALUES ('create_distributed_table', table_name::text, distribution_column, colocate_with)
$$;
CREATE FUNCTION create_reference_table(table_name regclass) RETURNS void LANGUAGE sql AS $$
    INSERT INTO citus_calls VALUES ('create_reference_table', table_name::text, NULL, NULL)
$$;
"""

KEYS = """
SELECT c.conrelid::regclass::text AS table_name, c.contype::text AS kind, c.conname AS name,
       array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n
             ORDER BY k.i) AS columns,
       c.confrelid::regclass::text AS referenced_table,
       array(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n
             ORDER BY k.i) AS referenced_columns,
       c.confdeltype::text AS on_delete,
       array(SELECT a.attname::text FROM unnest(c.confdelsetcols) k(n)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n) AS set_null
FROM pg_constraint c
WHERE c.connamespace = current_schema()::regnamespace AND c.contype IN ('p', 'u', 'f')
UNION ALL
SELECT i.indrelid::regclass::text, 'i', ci.relname::text,
       array(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
             ORDER BY k.o),
       NULL, NULL, NULL, NULL
FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid
WHERE ci.relnamespace = current_schema()::regnamespace AND i.indisunique
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
"""
ON_DELETE = {"c": "CASCADE", "n": "SET NULL", "a": "NO ACTION", "r": "RESTRICT", "d": "SET DEFAULT"}


@dataclass(frozen=True)
class Key:
    table: str
    kind: str  # p primary key, u unique constraint, i unique index, f foreign key
    name: str
    columns: tuple[str, ...]
    referenced_table: str | None = None
    referenced_columns: tuple[str, ...] = ()
    on_delete: str | None = None
    set_null: tuple[str, ...] = ()

    @property
    def unique(self) -> bool:
        return self.kind in ("p", "u", "i")


@dataclass(frozen=True)
class Layout:
    keys: list[Key]
    calls: list[tuple[str, str, str | None, str | None]]
    plain_indexes: dict[str, list[str]]


async def apply_layout(server: PostgresServer) -> Layout:
    url = await server.create_database_async("bughive_citus")
    await _migrate(url)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(STAND_INS)
        await conn.execute(LAYOUT.read_text())
        rows = await conn.fetch(KEYS)
        calls = await conn.fetch("SELECT * FROM citus_calls")
        indexes = await conn.fetch(
            "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        )
    finally:
        await conn.close()
    keys = [
        Key(
            table=r["table_name"],
            kind=r["kind"],
            name=r["name"],
            columns=tuple(r["columns"]),
            referenced_table=r["referenced_table"],
            referenced_columns=tuple(r["referenced_columns"] or ()),
            on_delete=ON_DELETE.get(r["on_delete"] or ""),
            set_null=tuple(r["set_null"] or ()),
        )
        for r in rows
        if r["table_name"] in DISTRIBUTION
    ]
    plain: dict[str, list[str]] = {}
    for r in indexes:
        plain.setdefault(r["tablename"], []).append(r["indexdef"])
    return Layout(keys, [(c[0], c[1], c[2], c[3]) for c in calls], plain)


@pytest.fixture(scope="module")
def layout(postgres_server: PostgresServer) -> Layout:
    return asyncio.run(apply_layout(postgres_server))


def model_unique_keys() -> list[tuple[str, frozenset[str]]]:
    keys = []
    for table in Base.metadata.sorted_tables:
        keys.append((table.name, frozenset(c.name for c in table.primary_key.columns)))
        for index in table.indexes:
            if index.unique:
                keys.append((table.name, frozenset(c.name for c in index.columns)))
        for constraint in table.constraints:
            if isinstance(constraint, UniqueConstraint):
                keys.append((table.name, frozenset(c.name for c in constraint.columns)))
    return keys


def model_foreign_keys() -> list[ForeignKeyConstraint]:
    return [
        constraint
        for table in Base.metadata.sorted_tables
        for constraint in table.constraints
        if isinstance(constraint, ForeignKeyConstraint)
    ]


def test_every_table_of_the_models_is_distributed_by_its_session_and_co_located(
    layout: Layout,
) -> None:
    assert set(Base.metadata.tables) == set(DISTRIBUTION)
    expected = [("create_distributed_table", SESSIONS, "id", "default")] + [
        ("create_distributed_table", table, column, SESSIONS)
        for table, column in DISTRIBUTION.items()
        if table != SESSIONS
    ]
    assert sorted(layout.calls) == sorted(expected)
    # parents before children: Citus checks foreign keys when it distributes a table
    distributed = [call[1] for call in layout.calls]
    assert distributed.index(SESSIONS) == 0
    assert distributed.index("pages") < distributed.index("bugs")
    assert distributed.index("bugs") < distributed.index("bug_occurrences")


def test_every_primary_key_and_unique_index_includes_the_distribution_column(
    layout: Layout,
) -> None:
    unique = [key for key in layout.keys if key.unique]
    assert len(unique) >= 7
    for key in unique:
        assert DISTRIBUTION[key.table] in key.columns, key


def test_every_foreign_key_joins_the_distribution_columns_of_both_tables(layout: Layout) -> None:
    foreign = [key for key in layout.keys if key.kind == "f"]
    assert len(foreign) == len(model_foreign_keys())
    for key in foreign:
        assert key.referenced_table in DISTRIBUTION, key
        position = key.columns.index(DISTRIBUTION[key.table])
        assert key.referenced_columns[position] == DISTRIBUTION[key.referenced_table], key


def test_every_unique_key_of_the_models_is_kept_with_the_session_added(layout: Layout) -> None:
    kept = {(key.table, frozenset(key.columns)) for key in layout.keys if key.unique}
    for table, columns in model_unique_keys():
        if (table, columns) in NOT_UNIQUE_ON_CITUS:
            assert any(
                d.startswith("CREATE INDEX") and all(c in d for c in columns)
                for d in layout.plain_indexes[table]
            ), f"{table} {sorted(columns)} lost its lookup index"
            continue
        assert (table, columns | {DISTRIBUTION[table]}) in kept, (table, sorted(columns))


def test_every_foreign_key_of_the_models_is_kept_with_the_session_added(layout: Layout) -> None:
    foreign = [key for key in layout.keys if key.kind == "f"]
    for constraint in model_foreign_keys():
        table = constraint.table.name
        columns = {c.name for c in constraint.columns}
        referenced = constraint.referred_table.name
        matches = [
            key
            for key in foreign
            if key.table == table
            and key.referenced_table == referenced
            and set(key.columns) == columns | {DISTRIBUTION[table]}
        ]
        assert len(matches) == 1, (table, sorted(columns), referenced)
        (key,) = matches
        assert key.on_delete == (constraint.ondelete or "NO ACTION").upper()
        if key.on_delete == "SET NULL" and DISTRIBUTION[table] not in columns:
            # clearing the whole composite key would null the (NOT NULL) session column
            assert set(key.set_null) == columns
