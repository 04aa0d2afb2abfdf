"""Builders that bring a session, page or bug to a given status through the repositories'
legal paths, so life-cycle tests can start from any state."""

import uuid

from db.bug_schemas import BugPublic
from db.connection.database import Database
from db.enums import BugStatus, PageStatus, SessionStatus
from db.page_schemas import PagePublic
from db.repositories import BugRepository, CrawlSessionRepository, PageRepository
from db.schemas import CrawlSessionPublic
from tests.factories import make_bug, make_page, make_session


def bug_title(i: int) -> str:
    """A distinct bug title per ``i`` that stays distinct under any title normalization
    (case, spacing and digits folded): bugs filed in a test are never merged as duplicates."""
    return "Defect " + "".join(chr(ord("a") + int(d)) for d in str(i))


async def session_in(db: Database, status: SessionStatus) -> CrawlSessionPublic:
    created = await make_session(db, start=False)
    async with db.session() as s:
        repo = CrawlSessionRepository(s)
        if status == SessionStatus.PENDING:
            return created
        if status == SessionStatus.FAILED:
            return await repo.complete_session(created.id, success=False, error_message="boom")
        running = await repo.start_session(created.id)
        if status == SessionStatus.RUNNING:
            return running
        return await repo.complete_session(created.id)


async def page_in(
    db: Database, status: PageStatus, session_id: uuid.UUID | None = None
) -> PagePublic:
    if session_id is None:
        session_id = (await make_session(db)).id
    page = await make_page(db, session_id, f"https://shop.example/{uuid.uuid4().hex}")
    async with db.session() as s:
        repo = PageRepository(s)
        if status == PageStatus.DISCOVERED:
            return page
        if status == PageStatus.ERROR:
            return await repo.mark_error(page.id, "timeout")
        crawling = await repo.mark_crawling(page.id)
        if status == PageStatus.CRAWLING:
            return crawling
        return await repo.mark_analyzed(page.id, title="Shop")


async def bug_in(db: Database, status: BugStatus) -> BugPublic:
    session = await make_session(db)
    page = await make_page(db, session.id)
    bug = await make_bug(db, session.id, page.id)
    async with db.session() as s:
        repo = BugRepository(s)
        if status == BugStatus.DETECTED:
            return bug
        if status == BugStatus.DISMISSED:
            return await repo.dismiss(bug.id, "duplicate")
        validated = await repo.mark_validated(bug.id)
        if status == BugStatus.VALIDATED:
            return validated
        return await repo.mark_reported(bug.id, "BUG-1", "https://linear.app/acme/issue/BUG-1")
