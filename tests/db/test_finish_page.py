"""finish_page: the analysis, the links, the bugs and every counter in one transaction,
fenced by the claim token — all or nothing, and a replay changes nothing."""

import uuid
from typing import Any

import asyncpg
import pytest

from db.connection.database import Database
from db.errors import Conflict, InvalidArgument, LeaseLost
from db.page_schemas import FinishedPage
from db.repositories import PageRepository
from tests.factories import make_page, make_session

BUG = {
    "category": "ui_ux",
    "priority": "medium",
    "title": "Logo image has no alt text",
    "description": "The header logo has no alt attribute.",
}
LINKS = [
    {"url": "https://shop.example/a"},
    {"url": "https://shop.example/a#top"},  # the same page
    {"url": "https://shop.example/b?utm_source=nav"},  # tracking parameter dropped
    {"url": "https://shop.example/"},  # the page itself: known
    {"url": "https://elsewhere.example/x"},  # another origin: refused
]


async def claimed(db: Database, session_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    async with db.session() as s:
        claim = await PageRepository(s).claim_pages_to_crawl(session_id, limit=1)
    [page] = claim.items
    return page.id, page.claim_token


async def finish(db: Database, page_id: uuid.UUID, token: uuid.UUID, **extra: Any) -> FinishedPage:
    fields: dict[str, Any] = {"title": "Home", "status_code": 200, "links": LINKS, "bugs": [BUG]}
    fields.update(extra)
    async with db.session() as s:
        return await PageRepository(s).finish_page(page_id, token, **fields)


async def state(raw: asyncpg.Connection) -> dict[str, Any]:
    session = await raw.fetchrow(
        "SELECT pages_discovered, pages_crawled, bugs_found FROM crawl_sessions"
    )
    return {
        **dict(session),
        "pages": await raw.fetchval("SELECT count(*) FROM pages"),
        "analyzed": await raw.fetchval("SELECT count(*) FROM pages WHERE status = 'analyzed'"),
        "bugs": await raw.fetchval("SELECT count(*) FROM bugs"),
        "occurrences": await raw.fetchval("SELECT count(*) FROM bug_occurrences"),
    }


async def test_one_call_stores_the_analysis_links_bugs_and_counters(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    await make_page(db, session.id)
    page_id, token = await claimed(db, session.id)

    finished = await finish(db, page_id, token)

    assert finished.status == "analyzed"
    assert finished.links.model_dump() == {"created": 2, "known": 2, "refused": 1}
    [bug] = finished.bugs
    assert (bug.created, bug.occurrences) == (True, 1)
    assert await state(raw) == {
        "pages_discovered": 3,
        "pages_crawled": 1,
        "bugs_found": 1,
        "pages": 3,
        "analyzed": 1,
        "bugs": 1,
        "occurrences": 1,
    }
    children = await raw.fetch("SELECT url, depth, parent_page_id FROM pages WHERE depth > 0")
    assert {(r["url"], r["depth"], r["parent_page_id"]) for r in children} == {
        ("https://shop.example/a", 1, page_id),
        ("https://shop.example/b", 1, page_id),
    }
    assert await raw.fetchval("SELECT title FROM pages WHERE id = $1", page_id) == "Home"


async def test_the_same_defect_on_the_next_page_is_an_occurrence_not_a_bug(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    await make_page(db, session.id)
    first_page, first_token = await claimed(db, session.id)
    await finish(db, first_page, first_token)
    second_page, second_token = await claimed(db, session.id)

    second = await finish(db, second_page, second_token, links=LINKS)

    assert [(b.created, b.occurrences) for b in second.bugs] == [(False, 2)]
    assert second.links.created == 0
    assert (await state(raw))["bugs_found"] == 1


async def test_a_replay_changes_nothing(db: Database, raw: asyncpg.Connection) -> None:
    session = await make_session(db)
    await make_page(db, session.id)
    page_id, token = await claimed(db, session.id)
    await finish(db, page_id, token)
    before = await state(raw)

    with pytest.raises(Conflict, match="already analyzed"):
        await finish(db, page_id, token)

    assert await state(raw) == before


async def test_a_lost_lease_or_a_bad_bug_changes_nothing(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    await make_page(db, session.id)
    page_id, token = await claimed(db, session.id)
    before = await state(raw)

    with pytest.raises((LeaseLost, InvalidArgument), match=r"claim_token|lease"):
        await finish(db, page_id, uuid.uuid4())
    with pytest.raises(InvalidArgument, match="category"):
        await finish(db, page_id, token, bugs=[BUG, {**BUG, "category": "cosmic"}])

    assert await state(raw) == before
    assert await raw.fetchval("SELECT status FROM pages WHERE id = $1", page_id) == "crawling"
    assert (await finish(db, page_id, token)).status == "analyzed"  # the holder still can
