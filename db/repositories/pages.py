"""Pages of a crawl: discovery (single and bulk, idempotent per URL and session), the
discovered → crawling → analyzed | error life cycle, and the read models over them.

Counters live with the data: creating pages raises the session's ``pages_discovered`` by the
number of rows actually inserted, analysing a page raises ``pages_crawled`` — in the caller's
transaction, so they can never drift from the rows.
"""

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ARRAY, Integer, String, bindparam, func, select
from sqlalchemy.dialects.postgresql import UUID, insert

from db.enums import BugCategory, BugPriority, PageStatus, SessionStatus
from db.errors import InvalidArgument, InvalidTransition, NotFound
from db.models import Bug, CrawlSession, Page
from db.repositories.base import Repository, check_page_bounds, count_by, counts_from_row
from db.repositories.sessions import CrawlSessionRepository
from db.schemas import (
    BulkCreateResult,
    GraphEdge,
    GraphNode,
    NavigationGraph,
    NewPage,
    PageAnalytics,
    PageCreated,
    PageList,
    PagePublic,
    PageRef,
    Pagination,
)

OPEN_SESSION_STATUSES = (SessionStatus.PENDING, SessionStatus.RUNNING)
MAX_BULK_PAGES = 10_000
MAX_GRAPH_NODES = 5_000


class PageRepository(Repository):
    async def _require_open_session(self, session_id: uuid.UUID) -> None:
        status = await self.session.scalar(
            select(CrawlSession.status).where(CrawlSession.id == session_id)
        )
        if status is None:
            raise NotFound("crawl session", session_id, field="session_id")
        if status not in OPEN_SESSION_STATUSES:
            raise InvalidTransition(
                "crawl session", session_id, "add pages to", status, OPEN_SESSION_STATUSES
            )

    async def _require_parent(
        self, session_id: uuid.UUID, parent_ids: Iterable[uuid.UUID | None]
    ) -> None:
        wanted = {p for p in parent_ids if p is not None}
        if not wanted:
            return
        found = set(
            (
                await self.session.scalars(
                    select(Page.id).where(Page.id.in_(wanted), Page.session_id == session_id)
                )
            ).all()
        )
        missing = wanted - found
        if missing:
            raise NotFound("page", sorted(missing, key=str)[0], field="parent_page_id")

    async def create_page(
        self,
        session_id: uuid.UUID,
        url: str,
        depth: int = 0,
        parent_page_id: uuid.UUID | None = None,
    ) -> PageCreated:
        """Record a discovered URL. Idempotent: a URL already known in the session is returned
        as it is, with ``created=False``, and is not counted again."""
        new = _validate_new_page({"url": url, "depth": depth, "parent_page_id": parent_page_id})
        result = await self.bulk_create([new], session_id=session_id)
        ref = (result.created or result.existing)[0]
        page = await self.get(ref.id)
        return PageCreated(**page.model_dump(), created=bool(result.created))

    async def bulk_create(
        self,
        pages: Sequence[NewPage | Mapping[str, Any]],
        *,
        session_id: uuid.UUID | None = None,
    ) -> BulkCreateResult:
        """Insert many discovered pages in one statement (``unnest`` + ``ON CONFLICT DO
        NOTHING``). Duplicates — in the batch or already stored — are skipped, not errors; the
        result lists which pages were new and which already known.

        All pages belong to one session: ``session_id`` here, or the ``session_id`` key of each
        mapping (as in the architecture notes)."""
        if len(pages) > MAX_BULK_PAGES:
            raise InvalidArgument("pages", f"at most {MAX_BULK_PAGES} pages per call, got {len(pages)}")
        session_id = _single_session(pages, session_id)
        unique: dict[str, NewPage] = {}
        for item in pages:
            new = item if isinstance(item, NewPage) else _validate_new_page(item)
            unique.setdefault(new.url, new)
        if not unique:
            return BulkCreateResult(created=[], existing=[], created_count=0, existing_count=0)
        await self._require_open_session(session_id)
        await self._require_parent(session_id, (p.parent_page_id for p in unique.values()))

        batch = list(unique.values())
        rows = func.unnest(
            bindparam("urls", [p.url for p in batch], type_=ARRAY(String)),
            bindparam("depths", [p.depth for p in batch], type_=ARRAY(Integer)),
            bindparam("parents", [p.parent_page_id for p in batch], type_=ARRAY(UUID(as_uuid=True))),
        ).table_valued("url", "depth", "parent_page_id").render_derived()
        source = select(
            bindparam("session_id", session_id, type_=UUID(as_uuid=True)),
            rows.c.url,
            rows.c.depth,
            rows.c.parent_page_id,
        )
        stmt = (
            insert(Page)
            .from_select(["session_id", "url", "depth", "parent_page_id"], source)
            .on_conflict_do_nothing(index_elements=["url", "session_id"])
            .returning(Page.id, Page.url)
        )
        created = [PageRef(id=r.id, url=r.url) for r in (await self.session.execute(stmt)).all()]
        created_urls = {ref.url for ref in created}
        existing: list[PageRef] = []
        known = [url for url in unique if url not in created_urls]
        if known:
            found = await self.session.execute(
                select(Page.id, Page.url).where(Page.session_id == session_id, Page.url.in_(known))
            )
            by_url = {r.url: r.id for r in found}
            existing = [PageRef(id=by_url[url], url=url) for url in known if url in by_url]
        if created:
            await CrawlSessionRepository(self.session).increment_pages_discovered(
                session_id, len(created)
            )
        return BulkCreateResult(
            created=created,
            existing=existing,
            created_count=len(created),
            existing_count=len(existing),
        )

    async def get(self, page_id: uuid.UUID) -> PagePublic:
        row = await self.session.get(Page, page_id, populate_existing=True)
        if row is None:
            raise NotFound("page", page_id)
        return PagePublic.model_validate(row)

    async def mark_crawling(self, page_id: uuid.UUID) -> PagePublic:
        """discovered → crawling (compare-and-set: only one caller can win a page)."""
        row = await self._transition(
            Page,
            page_id,
            action="mark crawling",
            allowed_from=[PageStatus.DISCOVERED],
            values={"status": PageStatus.CRAWLING},
        )
        return PagePublic.model_validate(row)

    async def mark_analyzed(
        self,
        page_id: uuid.UUID,
        title: str | None = None,
        screenshot_url: str | None = None,
        analysis_result: dict[str, Any] | None = None,
        response_time_ms: int | None = None,
        status_code: int | None = None,
        content_type: str | None = None,
        content_length: int | None = None,
    ) -> PagePublic:
        """crawling → analyzed; stores the analysis and raises the session's
        ``pages_crawled`` by one in the same transaction."""
        row = await self._transition(
            Page,
            page_id,
            action="mark analyzed",
            allowed_from=[PageStatus.CRAWLING],
            values={
                "status": PageStatus.ANALYZED,
                "title": title,
                "screenshot_url": screenshot_url,
                "analysis_result": analysis_result,
                "response_time_ms": response_time_ms,
                "status_code": status_code,
                "content_type": content_type,
                "content_length": content_length,
                "crawled_at": func.now(),
                "error_message": None,
            },
        )
        await CrawlSessionRepository(self.session).increment_pages_crawled(row.session_id)
        return PagePublic.model_validate(row)

    async def mark_error(self, page_id: uuid.UUID, error_message: str) -> PagePublic:
        """discovered | crawling → error, with the reason (e.g. a timeout or a 5xx)."""
        row = await self._transition(
            Page,
            page_id,
            action="mark error",
            allowed_from=[PageStatus.DISCOVERED, PageStatus.CRAWLING],
            values={"status": PageStatus.ERROR, "error_message": error_message, "crawled_at": func.now()},
        )
        return PagePublic.model_validate(row)

    async def get_pages_to_crawl(self, session_id: uuid.UUID, limit: int = 10) -> PageList:
        """A read-only look at the frontier: discovered pages, shallowest first, then oldest."""
        check_page_bounds(0, limit)
        await self._require_session(session_id)
        where = (Page.session_id == session_id, Page.status == PageStatus.DISCOVERED)
        total = await self.session.scalar(select(func.count()).select_from(Page).where(*where))
        rows = (
            await self.session.scalars(
                select(Page)
                .where(*where)
                .order_by(Page.depth, Page.discovered_at, Page.id)
                .limit(limit)
            )
        ).all()
        items = [PagePublic.model_validate(r) for r in rows]
        return PageList(items=items, **Pagination.of(int(total or 0), 0, limit, len(items)).model_dump())

    async def _require_session(self, session_id: uuid.UUID) -> None:
        if await self.session.scalar(select(CrawlSession.id).where(CrawlSession.id == session_id)) is None:
            raise NotFound("crawl session", session_id, field="session_id")

    async def get_page_analytics(self, page_id: uuid.UUID) -> PageAnalytics:
        """The page, its bugs by priority and category, its children and its timing."""
        page = await self.get(page_id)
        priorities = [p.value for p in BugPriority]
        categories = [c.value for c in BugCategory]
        bug_counts = (
            await self.session.execute(
                select(
                    *count_by(Bug.priority, priorities), *count_by(Bug.category, categories)
                ).where(Bug.page_id == page_id)
            )
        ).one()._mapping
        children = await self.session.scalar(
            select(func.count()).select_from(Page).where(Page.parent_page_id == page_id)
        )
        by_priority = counts_from_row(bug_counts, "priority", priorities)
        seconds = (
            (page.crawled_at - page.discovered_at).total_seconds()
            if page.crawled_at is not None and page.status == PageStatus.ANALYZED
            else None
        )
        return PageAnalytics(
            page=page,
            bugs_total=sum(by_priority.values()),
            bugs_by_priority=by_priority,  # type: ignore[arg-type]
            bugs_by_category=counts_from_row(bug_counts, "category", categories),  # type: ignore[arg-type]
            children_count=int(children or 0),
            response_time_ms=page.response_time_ms,
            seconds_to_crawl=seconds,
        )

    async def get_navigation_graph(
        self, session_id: uuid.UUID, max_nodes: int = 500
    ) -> NavigationGraph:
        """Pages as nodes and parent → child links as edges, shallowest ``max_nodes`` pages
        first; ``truncated`` says when the session has more."""
        if not 1 <= max_nodes <= MAX_GRAPH_NODES:
            raise InvalidArgument("max_nodes", f"must be between 1 and {MAX_GRAPH_NODES}, got {max_nodes}")
        await self._require_session(session_id)
        total = await self.session.scalar(
            select(func.count()).select_from(Page).where(Page.session_id == session_id)
        )
        rows = (
            await self.session.execute(
                select(Page.id, Page.url, Page.title, Page.depth, Page.status, Page.parent_page_id)
                .where(Page.session_id == session_id)
                .order_by(Page.depth, Page.discovered_at, Page.id)
                .limit(max_nodes)
            )
        ).all()
        ids = {r.id for r in rows}
        nodes = [GraphNode(id=r.id, url=r.url, title=r.title, depth=r.depth, status=r.status) for r in rows]
        edges = [
            GraphEdge(source=r.parent_page_id, target=r.id)
            for r in rows
            if r.parent_page_id is not None and r.parent_page_id in ids
        ]
        total_nodes = int(total or 0)
        return NavigationGraph(
            session_id=session_id,
            nodes=nodes,
            edges=edges,
            total_nodes=total_nodes,
            truncated=total_nodes > len(nodes),
        )


def _validate_new_page(data: Mapping[str, Any]) -> NewPage:
    fields = {k: v for k, v in data.items() if k != "session_id"}
    try:
        return NewPage.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "pages"
        raise InvalidArgument(field, str(err["msg"])) from None


def _single_session(
    pages: Sequence[NewPage | Mapping[str, Any]], session_id: uuid.UUID | None
) -> uuid.UUID:
    ids = {uuid.UUID(str(p["session_id"])) for p in pages if isinstance(p, Mapping) and p.get("session_id")}
    if session_id is not None:
        ids.add(session_id)
    if len(ids) != 1:
        raise InvalidArgument(
            "session_id",
            "give exactly one session: pass session_id=… or the same 'session_id' in every page"
            if ids or not pages
            else "missing: pass session_id=… or a 'session_id' key in every page",
        )
    return ids.pop()
