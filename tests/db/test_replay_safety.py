"""Replay safety of the writes agents retry after a reconnect: the same call twice yields one
row. ``create_session`` takes an idempotency key; ``create_bug`` is idempotent by its dedup
fingerprint; ``mark_reported`` returns an already-reported bug unchanged for the same issue."""

from collections.abc import AsyncIterator

import anyio
import asyncpg
import pytest
from sqlalchemy.engine import URL

from db.connection.database import Database
from db.enums import BugStatus, SessionStatus
from db.errors import Conflict, InvalidTransition
from db.repositories import BugRepository, CrawlSessionRepository
from db.schemas import CrawlSessionPublic
from tests.conftest import make_config
from tests.db.states import bug_in
from tests.factories import make_bug, make_page, make_session

BASE_URL = "https://shop.example"
LINEAR_URL = "https://linear.app/acme/issue/BUG-1"
CONCURRENT = 10


async def create_session(
    db: Database, key: str | None, base_url: str = BASE_URL, **config: object
) -> CrawlSessionPublic:
    async with db.session() as s:
        return await CrawlSessionRepository(s).create_session(base_url, config, key)


# --- create_session with an idempotency key ----------------------------------------------------


async def test_create_session_twice_with_one_key_returns_one_session(
    db: Database, raw: asyncpg.Connection
) -> None:
    first = await create_session(db, "crawl-42")
    again = await create_session(db, "crawl-42")
    assert again == first
    assert await raw.fetchval("SELECT count(*) FROM crawl_sessions") == 1
    assert await raw.fetchval("SELECT idempotency_key FROM crawl_sessions") == "crawl-42"


async def test_a_replayed_create_session_returns_the_session_as_it_is_now(db: Database) -> None:
    first = await create_session(db, "crawl-42")
    async with db.session() as s:
        started = await CrawlSessionRepository(s).start_session(first.id)
    again = await create_session(db, "crawl-42")
    assert (again.id, again.status) == (first.id, SessionStatus.RUNNING)
    assert again == started


async def test_the_first_config_stands_when_a_key_is_replayed(db: Database) -> None:
    first = await create_session(db, "crawl-42", max_pages=7)
    again = await create_session(db, "crawl-42", max_pages=500)
    assert again.id == first.id
    assert again.config["max_pages"] == 7


async def test_different_keys_and_no_key_create_separate_sessions(
    db: Database, raw: asyncpg.Connection
) -> None:
    ids = {
        (await create_session(db, "a")).id,
        (await create_session(db, "b")).id,
        (await create_session(db, None)).id,
        (await create_session(db, None)).id,
    }
    assert len(ids) == 4
    assert await raw.fetchval("SELECT count(*) FROM crawl_sessions") == 4


async def test_a_key_reused_for_another_site_is_a_conflict_and_creates_nothing(
    db: Database, raw: asyncpg.Connection
) -> None:
    first = await create_session(db, "crawl-42")
    with pytest.raises(Conflict) as excinfo:
        await create_session(db, "crawl-42", base_url="https://other.example")
    message = str(excinfo.value)
    assert "idempotency_key" in message and str(first.id) in message
    assert "crawl-42" not in message
    assert await raw.fetchval("SELECT count(*) FROM crawl_sessions") == 1


@pytest.fixture
async def wide_db(database_url: URL, empty_tables: None) -> AsyncIterator[Database]:
    database = Database(make_config(pool_size=CONCURRENT, max_overflow=0), url=database_url)
    try:
        yield database
    finally:
        await database.close()


async def test_concurrent_create_session_with_one_key_creates_one_row(
    wide_db: Database, raw: asyncpg.Connection
) -> None:
    results: list[CrawlSessionPublic] = []

    async def create() -> None:
        results.append(await create_session(wide_db, "same-key"))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for _ in range(CONCURRENT):
                tg.start_soon(create)
    assert len(results) == CONCURRENT
    assert len({r.id for r in results}) == 1
    assert await raw.fetchval("SELECT count(*) FROM crawl_sessions") == 1


# --- create_bug: naturally idempotent ------------------------------------------------------


async def test_the_same_create_bug_twice_files_one_bug_with_one_occurrence(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    page = await make_page(db, session.id)
    first = await make_bug(db, session.id, page.id)
    async with db.session() as s:
        again = await BugRepository(s).create_bug(
            session.id,
            page.id,
            "ui_ux",
            "high",
            "Button overlaps text",
            "On mobile viewports the buy button covers the price.",
            steps_to_reproduce=["Open /products on a 375px viewport"],
            evidence=[{"type": "screenshot", "url": "https://cdn.example/s.png"}],
            confidence=0.9,
        )
    assert again.created is False
    assert again.id == first.id
    assert again.occurrences == first.occurrences == 1
    counts = await raw.fetchrow(
        "SELECT (SELECT count(*) FROM bugs) AS bugs, "
        "(SELECT count(*) FROM bug_occurrences) AS occurrences, "
        "(SELECT bugs_found FROM crawl_sessions) AS bugs_found"
    )
    assert counts is not None
    assert tuple(counts) == (1, 1, 1)


# --- mark_reported: idempotent for the same issue -------------------------------------------


async def test_mark_reported_again_with_the_same_issue_returns_the_bug_unchanged(
    db: Database,
) -> None:
    reported = await bug_in(db, BugStatus.REPORTED)
    assert reported.linear_issue_id == "BUG-1"
    async with db.session() as s:
        again = await BugRepository(s).mark_reported(reported.id, "BUG-1", LINEAR_URL)
    assert again == reported


async def test_mark_reported_with_another_issue_is_still_refused(
    db: Database, raw: asyncpg.Connection
) -> None:
    reported = await bug_in(db, BugStatus.REPORTED)
    with pytest.raises(InvalidTransition) as excinfo:
        async with db.session() as s:
            await BugRepository(s).mark_reported(reported.id, "BUG-2", LINEAR_URL)
    assert excinfo.value.current == BugStatus.REPORTED
    assert await raw.fetchval("SELECT linear_issue_id FROM bugs") == "BUG-1"


async def test_mark_reported_on_a_dismissed_bug_with_its_old_issue_is_refused(
    db: Database,
) -> None:
    reported = await bug_in(db, BugStatus.REPORTED)
    async with db.session() as s:
        await BugRepository(s).dismiss(reported.id, "duplicate")
    with pytest.raises(InvalidTransition):
        async with db.session() as s:
            await BugRepository(s).mark_reported(reported.id, "BUG-1", LINEAR_URL)
