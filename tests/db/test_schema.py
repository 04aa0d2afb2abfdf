"""The schema as PostgreSQL sees it (catalogs, not the ORM): every column, type, index, foreign
key and CHECK of the seed (database-architecture.md), and the defaults the database fills in.

Later revisions may add columns, indexes and tables; what is checked here is that everything of
the seed is present, exactly as the seed describes it."""

import re
import uuid
from decimal import Decimal
from enum import StrEnum
from typing import Any

import asyncpg
import pytest

from db.connection.database import Database
from db.enums import BugCategory, BugPriority, BugStatus, PageStatus, SessionStatus
from db.repositories import BugRepository, CrawlSessionRepository, PageRepository
from tests.factories import make_bug, make_page, make_session

VARCHAR = "character varying"
TIMESTAMPTZ = "timestamp with time zone"

# (data_type, character_maximum_length, numeric_precision, numeric_scale) per column.
Column = tuple[str, int | None, int | None, int | None]


def varchar(length: int) -> Column:
    return (VARCHAR, length, None, None)


UUID_: Column = ("uuid", None, None, None)
TEXT: Column = ("text", None, None, None)
JSONB: Column = ("jsonb", None, None, None)
INTEGER: Column = ("integer", None, 32, 0)
DOUBLE: Column = ("double precision", None, 53, None)
TS: Column = (TIMESTAMPTZ, None, None, None)

SEED_COLUMNS: dict[str, dict[str, Column]] = {
    "crawl_sessions": {
        "id": UUID_,
        "base_url": varchar(2048),
        "status": varchar(20),
        "config": JSONB,
        "started_at": TS,
        "completed_at": TS,
        "pages_discovered": INTEGER,
        "pages_crawled": INTEGER,
        "bugs_found": INTEGER,
        "total_cost": ("numeric", None, 10, 4),
        "error_message": TEXT,
        "created_at": TS,
        "updated_at": TS,
    },
    "pages": {
        "id": UUID_,
        "session_id": UUID_,
        "parent_page_id": UUID_,
        "url": varchar(2048),
        "title": varchar(500),
        "status": varchar(20),
        "depth": INTEGER,
        "screenshot_url": varchar(2048),
        "analysis_result": JSONB,
        "response_time_ms": INTEGER,
        "status_code": INTEGER,
        "content_type": varchar(255),
        "content_length": INTEGER,
        "error_message": TEXT,
        "discovered_at": TS,
        "crawled_at": TS,
        "created_at": TS,
        "updated_at": TS,
    },
    "bugs": {
        "id": UUID_,
        "session_id": UUID_,
        "page_id": UUID_,
        "category": varchar(50),
        "priority": varchar(20),
        "title": varchar(255),
        "description": TEXT,
        "steps_to_reproduce": JSONB,
        "evidence": JSONB,
        "confidence": DOUBLE,
        "status": varchar(20),
        "linear_issue_id": varchar(100),
        "linear_issue_url": varchar(500),
        "expected_behavior": TEXT,
        "actual_behavior": TEXT,
        "affected_users": varchar(255),
        "browser_info": JSONB,
        "dismissed_reason": TEXT,
        "dismissed_at": TS,
        "reported_at": TS,
        "created_at": TS,
        "updated_at": TS,
    },
}

# (columns, unique) of every index of the seed, primary keys included.
SEED_INDEXES: dict[str, set[tuple[tuple[str, ...], bool]]] = {
    "crawl_sessions": {
        (("id",), True),
        (("base_url",), False),
        (("status",), False),
        (("status", "created_at"), False),
        (("base_url", "status"), False),
    },
    "pages": {
        (("id",), True),
        (("session_id",), False),
        (("parent_page_id",), False),
        (("url",), False),
        (("status",), False),
        (("depth",), False),
        (("status_code",), False),
        (("crawled_at",), False),
        (("session_id", "status"), False),
        (("session_id", "depth"), False),
        (("url", "session_id"), True),
    },
    "bugs": {
        (("id",), True),
        (("session_id",), False),
        (("page_id",), False),
        (("category",), False),
        (("priority",), False),
        (("title",), False),
        (("status",), False),
        (("confidence",), False),
        (("linear_issue_id",), False),
        (("created_at",), False),
        (("reported_at",), False),
        (("session_id", "priority"), False),
        (("session_id", "category"), False),
        (("session_id", "status"), False),
        (("page_id", "priority"), False),
    },
}

INDEX_DEF = re.compile(
    r"^CREATE (?P<unique>UNIQUE )?INDEX \S+ ON \S+ USING (?P<method>\w+) \((?P<columns>[^)]*)\)"
    r"(?P<where> WHERE .*)?$"
)


async def table_columns(raw: asyncpg.Connection, table: str) -> dict[str, Column]:
    rows = await raw.fetch(
        """
        SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = $1
        """,
        table,
    )
    return {
        r["column_name"]: (
            r["data_type"],
            r["character_maximum_length"],
            r["numeric_precision"],
            r["numeric_scale"],
        )
        for r in rows
    }


async def table_indexes(raw: asyncpg.Connection, table: str) -> list[tuple[tuple[str, ...], bool]]:
    """(columns, unique) of every plain B-tree index on ``table``, read from ``pg_indexes``
    (partial indexes, which the seed does not have, are left out)."""
    defs = await raw.fetch(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1", table
    )
    indexes = []
    for row in defs:
        match = INDEX_DEF.match(row["indexdef"])
        assert match is not None, row["indexdef"]
        if match["method"] != "btree" or match["where"]:
            continue
        columns = tuple(c.strip() for c in match["columns"].split(","))
        indexes.append((columns, match["unique"] is not None))
    return indexes


@pytest.mark.parametrize("table", sorted(SEED_COLUMNS))
async def test_table_has_every_seed_column_with_its_type_and_length(
    raw: asyncpg.Connection, table: str
) -> None:
    columns = await table_columns(raw, table)
    assert {name: columns.get(name) for name in SEED_COLUMNS[table]} == SEED_COLUMNS[table]


@pytest.mark.parametrize("table", sorted(SEED_INDEXES))
async def test_table_has_every_seed_index(raw: asyncpg.Connection, table: str) -> None:
    indexes = await table_indexes(raw, table)
    assert SEED_INDEXES[table] - set(indexes) == set()


@pytest.mark.parametrize("table", sorted(SEED_INDEXES))
async def test_no_seed_index_is_declared_twice(raw: asyncpg.Connection, table: str) -> None:
    indexes = await table_indexes(raw, table)
    assert len(indexes) == len(set(indexes))


@pytest.mark.parametrize("table", sorted(SEED_COLUMNS))
async def test_primary_key_is_the_uuid_id(raw: asyncpg.Connection, table: str) -> None:
    keys = await raw.fetch(
        """
        SELECT array_agg(a.attname ORDER BY a.attname) AS columns
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
        WHERE c.contype = 'p' AND c.conrelid = $1::regclass
        GROUP BY c.oid
        """,
        table,
    )
    assert [k["columns"] for k in keys] == [["id"]]


async def test_foreign_keys_and_their_delete_rules(raw: asyncpg.Connection) -> None:
    rows = await raw.fetch(
        """
        SELECT c.conrelid::regclass::text AS tbl,
               (SELECT array_agg(attname) FROM pg_attribute
                 WHERE attrelid = c.conrelid AND attnum = ANY (c.conkey)) AS columns,
               c.confrelid::regclass::text AS ref_table,
               (SELECT array_agg(attname) FROM pg_attribute
                 WHERE attrelid = c.confrelid AND attnum = ANY (c.confkey)) AS ref_columns,
               c.confdeltype::text AS on_delete
        FROM pg_constraint c
        WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
        """
    )
    found = {
        (r["tbl"], tuple(r["columns"]), r["ref_table"], tuple(r["ref_columns"]), r["on_delete"])
        for r in rows
    }
    # confdeltype: c = CASCADE, n = SET NULL
    seed = {
        ("pages", ("session_id",), "crawl_sessions", ("id",), "c"),
        ("bugs", ("session_id",), "crawl_sessions", ("id",), "c"),
        ("pages", ("parent_page_id",), "pages", ("id",), "n"),
        ("bugs", ("page_id",), "pages", ("id",), "c"),
    }
    assert seed - found == set()
    on_seed_tables = {fk[:2] for fk in found if fk[0] in SEED_COLUMNS}
    assert on_seed_tables == {fk[:2] for fk in seed}, "a seed column has a second foreign key"


async def test_deleting_a_session_deletes_its_pages_and_bugs(
    db: Database, raw: asyncpg.Connection
) -> None:
    doomed = await make_session(db)
    kept = await make_session(db)
    doomed_page = await make_page(db, doomed.id)
    await make_bug(db, doomed.id, doomed_page.id)
    kept_page = await make_page(db, kept.id)
    await make_bug(db, kept.id, kept_page.id)

    await raw.execute("DELETE FROM crawl_sessions WHERE id = $1", doomed.id)

    assert await raw.fetchval("SELECT count(*) FROM pages WHERE session_id = $1", doomed.id) == 0
    assert await raw.fetchval("SELECT count(*) FROM bugs WHERE session_id = $1", doomed.id) == 0
    assert await raw.fetchval("SELECT count(*) FROM pages WHERE session_id = $1", kept.id) == 1
    assert await raw.fetchval("SELECT count(*) FROM bugs WHERE session_id = $1", kept.id) == 1


async def test_deleting_a_parent_page_keeps_its_children_without_parent(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    parent = await make_page(db, session.id, "https://shop.example/")
    child = await make_page(db, session.id, "https://shop.example/a", 1, parent.id)

    await raw.execute("DELETE FROM pages WHERE id = $1", parent.id)

    assert await raw.fetchval("SELECT parent_page_id FROM pages WHERE id = $1", child.id) is None
    assert await raw.fetchval("SELECT count(*) FROM pages") == 1


# --- CHECK constraints ---------------------------------------------------------------------


@pytest.fixture
async def page_row(raw: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID]:
    """A session and a page inserted with raw SQL: (session_id, page_id)."""
    session_id = await raw.fetchval(
        "INSERT INTO crawl_sessions (base_url) VALUES ('https://raw.example') RETURNING id"
    )
    page_id = await raw.fetchval(
        "INSERT INTO pages (session_id, url) VALUES ($1, 'https://raw.example/') RETURNING id",
        session_id,
    )
    return session_id, page_id


async def insert_bug(
    raw: asyncpg.Connection, ids: tuple[uuid.UUID, uuid.UUID], **overrides: Any
) -> None:
    values: dict[str, Any] = {
        "session_id": ids[0],
        "page_id": ids[1],
        "category": "ui_ux",
        "priority": "high",
        "title": "t",
        "description": "d",
        "confidence": 0.5,
        "status": "detected",
    }
    values.update(overrides)
    columns = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await raw.execute(f"INSERT INTO bugs ({columns}) VALUES ({params})", *values.values())


@pytest.mark.parametrize("status", ["paused", "Pending", ""])
async def test_crawl_session_status_outside_the_vocabulary_is_refused(
    raw: asyncpg.Connection, status: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await raw.execute(
            "INSERT INTO crawl_sessions (base_url, status) VALUES ('https://x.example', $1)",
            status,
        )


@pytest.mark.parametrize("status", ["done", "Analyzed", "queued"])
async def test_page_status_outside_the_vocabulary_is_refused(
    raw: asyncpg.Connection, page_row: tuple[uuid.UUID, uuid.UUID], status: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await raw.execute(
            "INSERT INTO pages (session_id, url, status) VALUES ($1, 'https://raw.example/b', $2)",
            page_row[0],
            status,
        )


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("category", "typo"),
        ("category", "UI_UX"),
        ("priority", "urgent"),
        ("priority", "Critical"),
        ("status", "open"),
        ("status", "Reported"),
        ("confidence", -0.01),
        ("confidence", 1.01),
        ("confidence", float("nan")),
    ],
)
async def test_bug_value_outside_its_vocabulary_or_range_is_refused(
    raw: asyncpg.Connection, page_row: tuple[uuid.UUID, uuid.UUID], column: str, value: object
) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await insert_bug(raw, page_row, **{column: value})


@pytest.mark.parametrize("confidence", [0.0, 1.0])
async def test_bug_confidence_bounds_are_accepted(
    raw: asyncpg.Connection, page_row: tuple[uuid.UUID, uuid.UUID], confidence: float
) -> None:
    await insert_bug(raw, page_row, confidence=confidence)
    assert await raw.fetchval("SELECT confidence FROM bugs") == confidence


VOCABULARIES: list[tuple[str, str, type[StrEnum]]] = [
    ("crawl_sessions", "status", SessionStatus),
    ("pages", "status", PageStatus),
    ("bugs", "category", BugCategory),
    ("bugs", "priority", BugPriority),
    ("bugs", "status", BugStatus),
]


@pytest.mark.parametrize(
    ("table", "column", "vocabulary"),
    VOCABULARIES,
    ids=[f"{table}.{column}" for table, column, _ in VOCABULARIES],
)
async def test_check_constraint_allows_exactly_the_enum_values(
    raw: asyncpg.Connection, table: str, column: str, vocabulary: type[StrEnum]
) -> None:
    """The CHECK on the column alone (read from ``pg_constraint``) lists the StrEnum's values,
    no more and no fewer."""
    definitions = await raw.fetch(
        """
        SELECT pg_get_constraintdef(c.oid) AS definition
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attname = $2
        WHERE c.contype = 'c' AND c.conrelid = $1::regclass AND c.conkey = ARRAY[a.attnum]
        """,
        table,
        column,
    )
    allowed = [set(re.findall(r"'([^']*)'", d["definition"])) for d in definitions]
    assert allowed == [{member.value for member in vocabulary}]


async def test_duplicate_url_in_one_session_is_refused_by_the_unique_index(
    raw: asyncpg.Connection, page_row: tuple[uuid.UUID, uuid.UUID]
) -> None:
    with pytest.raises(asyncpg.UniqueViolationError):
        await raw.execute(
            "INSERT INTO pages (session_id, url) VALUES ($1, 'https://raw.example/')", page_row[0]
        )


# --- defaults ------------------------------------------------------------------------------


async def test_new_session_row_gets_the_database_defaults(raw: asyncpg.Connection) -> None:
    row = await raw.fetchrow(
        "INSERT INTO crawl_sessions (base_url) VALUES ('https://d.example') RETURNING *"
    )
    assert row is not None
    assert isinstance(row["id"], uuid.UUID)
    assert row["status"] == "pending"
    assert (row["pages_discovered"], row["pages_crawled"], row["bugs_found"]) == (0, 0, 0)
    assert row["total_cost"] == Decimal("0")
    assert row["config"] == "{}"
    assert row["created_at"] is not None
    assert row["updated_at"] is not None
    assert row["created_at"].tzinfo is not None
    assert (row["started_at"], row["completed_at"], row["error_message"]) == (None, None, None)


async def test_new_page_and_bug_rows_get_the_database_defaults(
    raw: asyncpg.Connection, page_row: tuple[uuid.UUID, uuid.UUID]
) -> None:
    page = await raw.fetchrow("SELECT * FROM pages WHERE id = $1", page_row[1])
    assert page is not None
    assert (page["status"], page["depth"]) == ("discovered", 0)
    assert page["discovered_at"] is not None
    assert page["created_at"] is not None
    assert page["updated_at"] is not None

    await insert_bug(raw, page_row)
    bug = await raw.fetchrow("SELECT * FROM bugs")
    assert bug is not None
    assert (bug["steps_to_reproduce"], bug["evidence"]) == ("[]", "[]")
    assert bug["created_at"] is not None
    assert bug["updated_at"] is not None


async def test_updated_at_moves_when_a_repository_changes_a_session(db: Database) -> None:
    created = await make_session(db, start=False)
    async with db.session() as s:
        started = await CrawlSessionRepository(s).start_session(created.id)
    assert started.updated_at > created.updated_at
    assert started.created_at == created.created_at


async def test_updated_at_moves_when_a_counter_is_incremented(
    db: Database, raw: asyncpg.Connection
) -> None:
    created = await make_session(db)
    async with db.session() as s:
        await CrawlSessionRepository(s).increment_bugs_found(created.id)
    updated_at = await raw.fetchval(
        "SELECT updated_at FROM crawl_sessions WHERE id = $1", created.id
    )
    assert updated_at > created.updated_at


async def test_updated_at_moves_when_a_repository_changes_a_page(db: Database) -> None:
    session = await make_session(db)
    page = await make_page(db, session.id)
    async with db.session() as s:
        crawling = await PageRepository(s).mark_crawling(page.id)
    assert crawling.updated_at > page.updated_at


async def test_updated_at_moves_when_a_repository_changes_a_bug(db: Database) -> None:
    session = await make_session(db)
    page = await make_page(db, session.id)
    bug = await make_bug(db, session.id, page.id)
    async with db.session() as s:
        validated = await BugRepository(s).mark_validated(bug.id)
    assert validated.updated_at > bug.updated_at
