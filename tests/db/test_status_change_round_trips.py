"""A status change reads its own transaction id in its UPDATE, so its unit of work need not ask
for it before the commit (the id settles a commit whose answer is lost; asking for it was one
more round trip per call)."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from db.connection.database import Database
from db.connection.unit_of_work import UnitOfWork
from db.enums import BugStatus, PageStatus, SessionStatus
from db.errors import InvalidTransition
from db.repositories import BugRepository, CrawlSessionRepository, PageRepository
from tests.conftest import record_queries
from tests.factories import make_bug, make_page, make_session

ChangeOf = Callable[[UnitOfWork, dict[str, Any]], Awaitable[Any]]


@pytest.fixture
def executed(db: Database) -> Iterator[list[str]]:
    """Every statement sent on ``db``'s connections from now on."""
    with record_queries(db) as statements:
        yield statements


async def claimed_page(db: Database, session_id: uuid.UUID) -> Any:
    async with db.session() as s:
        claim = await PageRepository(s).claim_pages_to_crawl(session_id, 1)
    return claim.items[0]


CHANGES: dict[str, ChangeOf] = {
    "start_session": lambda s, ids: CrawlSessionRepository(s).start_session(ids["pending"]),
    "complete_session": lambda s, ids: CrawlSessionRepository(s).complete_session(
        ids["session"], force=True
    ),
    "mark_validated": lambda s, ids: BugRepository(s).mark_validated(ids["bug"]),
    "dismiss_bug": lambda s, ids: BugRepository(s).dismiss(ids["bug"], "a duplicate"),
    "mark_crawling": lambda s, ids: PageRepository(s).mark_crawling(ids["page"]),
    "extend_claim": lambda s, ids: PageRepository(s).extend_claim(
        ids["claimed"], ids["token"], 120
    ),
    "add_cost": lambda s, ids: CrawlSessionRepository(s).add_cost(ids["session"], 0.25),
    "mark_page_error (fenced)": lambda s, ids: PageRepository(s).mark_error(
        ids["claimed"], "timeout", ids["token"]
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_status_change_reads_its_transaction_id_in_its_update(
    db: Database, executed: list[str], change: str
) -> None:
    session = await make_session(db)
    pending = await make_session(db, "https://other.example", start=False)
    page = await make_page(db, session.id, "https://shop.example/a")
    bug = await make_bug(db, session.id, page.id)
    await make_page(db, session.id, "https://shop.example/b", depth=1)
    claimed = await claimed_page(db, session.id)  # /a is claimed first (shallowest)
    other = await make_page(db, session.id, "https://shop.example/c", depth=2)
    ids = {
        "session": session.id,
        "pending": pending.id,
        "bug": bug.id,
        "page": other.id,
        "claimed": claimed.id,
        "token": claimed.claim_token,
    }

    executed.clear()
    async with db.session() as s:
        await CHANGES[change](s, ids)
        known = s.known_transaction_id
        actual = await s.scalar(text("SELECT pg_current_xact_id_if_assigned()::text"))
    await asyncio.sleep(0)  # asyncpg hands queries to its loggers with call_soon

    assert known is not None and known == actual
    statements = [q for q in executed if q not in ("BEGIN", "COMMIT")]
    asked = [q for q in statements if "pg_current_xact_id_if_assigned" in q]
    assert asked == [statements[-1]], executed  # only the check above: the commit did not ask
    assert any("pg_current_xact_id()" in q for q in statements[:-1])


async def test_a_refused_status_change_remembers_no_transaction_id(db: Database) -> None:
    session = await make_session(db)
    page = await make_page(db, session.id)
    bug = await make_bug(db, session.id, page.id)
    async with db.session() as s:
        await BugRepository(s).dismiss(bug.id, "a duplicate")

    with pytest.raises(InvalidTransition, match="dismissed"):
        async with db.session() as s:
            try:
                await BugRepository(s).mark_validated(bug.id)
            finally:
                assert s.known_transaction_id is None


async def test_the_changed_rows_are_returned_as_they_are_now(db: Database) -> None:
    session = await make_session(db, start=False)
    page = await make_page(db, session.id)
    bug = await make_bug(db, session.id, page.id)
    async with db.session() as s:
        started = await CrawlSessionRepository(s).start_session(session.id)
        validated = await BugRepository(s).mark_validated(bug.id)
        crawling = await PageRepository(s).mark_crawling(page.id)
    assert (started.status, started.started_at is not None) == (SessionStatus.RUNNING, True)
    assert validated.status == BugStatus.VALIDATED
    assert (crawling.status, crawling.claim_token is not None) == (PageStatus.CRAWLING, True)
