"""Finishing a page in one transaction: its analysis, the links found on it, the bugs filed
from it and every counter — the crawl loop's one call per page (``finish_page``).

All or nothing, fenced by the claim token: a worker whose lease was lost changes nothing,
and a replay of a finished call is refused with "already analyzed; nothing more is needed",
so the same call twice changes nothing the second time. Locks in the order of every write
(db.repositories): the session's discovery turn (only with links), the page, the new pages,
the bugs and their occurrences, and the session row once, last, for all its counters.
"""

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from db.connection.unit_of_work import writes
from db.enums import PageStatus
from db.errors import InvalidArgument, InvalidTransition, NotFound
from db.page_schemas import FiledBugRef, FinishedPage, LinkCounts, NewLink, NewPage
from db.repositories.base import RETURNING_XID, sql_list
from db.repositories.bugs import FILE_BUG_UNCOUNTED, BugRepository
from db.repositories.discovery import MAX_BULK_LINKS, PageDiscovery
from db.repositories.frontier import FINISHING_WRITE, PageFrontier
from db.repositories.session_reads import OPEN_SESSION_STATUSES
from db.repositories.sessions import raise_counters_sql
from db.repositories.statements import Statement

MAX_BUGS_PER_PAGE = 50

PAGE_TO_FINISH = Statement(
    "pages to finish", "SELECT session_id, url, depth FROM pages WHERE id = :id", writes=False
)
FINISH_HELD_PAGE = Statement(
    "pages finish held",
    f"{FINISHING_WRITE} RETURNING id, {RETURNING_XID}",
    writes=True,
)
# New pages count only in an open session (as a discovery's do): no row, it was closed
# meanwhile, and the whole call rolls back.
COUNT_FINISHED_PAGE = Statement(
    "crawl_sessions count finished page",
    raise_counters_sql(
        {"pages_crawled": "1", "pages_discovered": ":discovered", "bugs_found": ":bugs"},
        "id = :session_id AND (CAST(:discovered AS integer) = 0 "
        f"OR status IN ({sql_list(OPEN_SESSION_STATUSES)}))",
    )
    + " RETURNING status",
    writes=True,
)


class PageFinishing(PageDiscovery, PageFrontier):
    @writes
    async def finish_page(
        self,
        page_id: uuid.UUID,
        claim_token: uuid.UUID,
        *,
        title: str | None = None,
        screenshot_url: str | None = None,
        analysis_result: dict[str, Any] | None = None,
        response_time_ms: int | None = None,
        status_code: int | None = None,
        content_type: str | None = None,
        content_length: int | None = None,
        links: Sequence[NewLink | Mapping[str, Any]] = (),
        bugs: Sequence[Mapping[str, Any]] = (),
    ) -> FinishedPage:
        """crawling → analyzed with the analysis (as ``mark_analyzed``), the ``links`` found
        on the page discovered (as ``bulk_create``, parent: this page), the ``bugs`` filed or
        grouped (as ``create_bug``), and ``pages_crawled``, ``pages_discovered`` and
        ``bugs_found`` raised together — one transaction, fenced by ``claim_token``."""
        if len(links) > MAX_BULK_LINKS:
            raise InvalidArgument("links", f"at most {MAX_BULK_LINKS} per call, got {len(links)}")
        if len(bugs) > MAX_BUGS_PER_PAGE:
            raise InvalidArgument("bugs", f"at most {MAX_BUGS_PER_PAGE} per call, got {len(bugs)}")
        found = [
            link if isinstance(link, NewLink) else NewLink.model_validate(link) for link in links
        ]
        page = await PAGE_TO_FINISH.fetchrow(self.session, id=page_id)
        if page is None:
            raise NotFound("page", page_id)
        session_id: uuid.UUID = page["session_id"]
        turn = await self._take_turn(session_id) if found else None
        finished = await FINISH_HELD_PAGE.fetchrow(
            self.session,
            id=page_id,
            claim_token=claim_token,
            title=title,
            screenshot_url=screenshot_url,
            analysis_result=None if analysis_result is None else json.dumps(analysis_result),
            response_time_ms=response_time_ms,
            status_code=status_code,
            content_type=content_type,
            content_length=content_length,
        )
        if finished is None:
            await self._refuse_fenced_write(page_id, claim_token)
        self.session.remember_transaction_id(finished["xid"])
        counts = LinkCounts(created=0, known=0, refused=0)
        if turn is not None:
            scope, capacity = turn
            child_depth = int(page["depth"]) + 1
            given = [
                NewPage(
                    url=link.url,
                    depth=child_depth if link.depth is None else link.depth,
                    priority=link.priority,
                    parent_page_id=page_id,
                )
                for link in found
            ]
            result = await self._discover(
                session_id, given, scope, capacity, known_parents=frozenset({page_id})
            )
            counts = LinkCounts(
                created=result.created_count,
                known=result.existing_count + result.duplicates_in_batch_count,
                refused=result.refused_count,
            )
        bug_repository = BugRepository(self.session)
        filed = [
            await bug_repository.file_on_page(
                FILE_BUG_UNCOUNTED, session_id, page_id, page["url"], **bug
            )
            for bug in bugs
        ]
        counted = await COUNT_FINISHED_PAGE.fetchrow(
            self.session,
            session_id=session_id,
            discovered=counts.created,
            bugs=sum(bug.created for bug in filed),
        )
        if counted is None:  # completed meanwhile: nothing of the call stands
            status = await self._current_status("crawl_sessions", session_id)
            raise InvalidTransition(
                "crawl session", session_id, "add pages to", str(status), OPEN_SESSION_STATUSES
            )
        return FinishedPage(
            status=PageStatus.ANALYZED,
            links=counts,
            bugs=[
                FiledBugRef(id=b.id, created=b.created, occurrences=b.occurrences) for b in filed
            ],
        )
