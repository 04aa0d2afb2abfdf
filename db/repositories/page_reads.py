"""What the agent reads about pages: one page, a look at the frontier, a page's analytics, the
navigation graph. Each one statement, run in autocommit (no ``BEGIN``/``COMMIT``)."""

import functools
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from db.connection.unit_of_work import reads
from db.enums import BugCategory, BugPriority, PageStatus
from db.errors import InvalidArgument, NotFound
from db.page_schemas import (
    GraphEdge,
    GraphNode,
    NavigationGraph,
    PageAnalytics,
    PageList,
    PagePublic,
)
from db.repositories.base import (
    Repository,
    check_page_bounds,
    count_filters_sql,
    counts_from_row,
    listed_rows,
    listing_statement,
)
from db.repositories.statements import Statement, family

MAX_GRAPH_NODES = 5_000
_FRONTIER = (f"status = '{PageStatus.DISCOVERED.value}'",)
_SHALLOWEST = "depth, discovered_at, id"  # shallowest first, then oldest
_NEXT_TO_CLAIM = f"priority DESC, {_SHALLOWEST}"  # the claim's order (ix_pages_frontier)
_GRAPH_COLUMNS = "id, url, title, depth, status, parent_page_id"


@functools.lru_cache(maxsize=256)
def frontier_page_statement(limit: int, skip: int) -> Statement:
    """get_pages_to_crawl's statement for one page of the frontier (bounds checked by the
    caller): the session check, the count of discovered pages and the requested page of them,
    in the order claims take them: highest priority, then shallowest, then oldest
    (``ix_pages_frontier``), or one row of NULLs past the end.
    Limit and offset are literals, for the reason claim_statement gives."""
    return listing_statement(
        "pages", _FRONTIER, _NEXT_TO_CLAIM, skip, limit, of_session=True, returns=PagePublic
    )


family("pages frontier", lambda: frontier_page_statement(10, 0))

# get_page_analytics in one statement: the page's row, one pass over its bugs, a count of its
# children (no row: no such page).
PAGE_ANALYTICS = Statement(
    "pages analytics",
    f"""
SELECT page.*, bug_counts.*, children.children_count
FROM pages AS page
CROSS JOIN LATERAL (
    SELECT {count_filters_sql("priority", BugPriority)},
        {count_filters_sql("category", BugCategory)}
    FROM bugs WHERE page_id = page.id
) AS bug_counts
CROSS JOIN LATERAL (
    SELECT count(*) AS children_count FROM pages WHERE parent_page_id = page.id
) AS children
WHERE page.id = :id
""",
    writes=False,
    returns=PagePublic,
)


def frontier_page(rows: Sequence[Mapping[str, Any]], skip: int, limit: int) -> PageList:
    """The answer of get_pages_to_crawl from its statement's rows."""
    items, page = listed_rows(rows, PagePublic, skip, limit)
    return PageList(items=items, **page.model_dump())


class PageReads(Repository):
    @reads
    async def get(self, page_id: uuid.UUID) -> PagePublic:
        return await self._fetch_one(PagePublic, "pages", page_id)

    @reads
    async def get_pages_to_crawl(
        self, session_id: uuid.UUID, limit: int = 10, skip: int = 0
    ) -> PageList:
        """A read-only look at the frontier: discovered pages, shallowest first, then oldest.
        Reserves nothing — ``claim_pages_to_crawl`` does. One statement
        (:func:`frontier_page_statement`)."""
        check_page_bounds(skip, limit)
        rows = await frontier_page_statement(limit, skip).fetch(self.session, session_id=session_id)
        if not rows:
            raise NotFound("crawl session", session_id, field="session_id")
        return frontier_page(rows, skip, limit)

    @reads
    async def get_page_analytics(self, page_id: uuid.UUID) -> PageAnalytics:
        """The page, its bugs by priority and category, its children and its timing, in one
        statement (:data:`PAGE_ANALYTICS`)."""
        row = await PAGE_ANALYTICS.fetchrow(self.session, id=page_id)
        if row is None:
            raise NotFound("page", page_id)
        page = PagePublic.model_validate(dict(row))  # the pages columns
        by_priority = counts_from_row(row, "priority", BugPriority)
        seconds = (
            (page.crawled_at - page.discovered_at).total_seconds()
            if page.crawled_at is not None and page.status == PageStatus.ANALYZED
            else None
        )
        return PageAnalytics(
            page=page,
            bugs_total=sum(by_priority.values()),
            bugs_by_priority=by_priority,
            bugs_by_category=counts_from_row(row, "category", BugCategory),
            children_count=int(row["children_count"]),
            response_time_ms=page.response_time_ms,
            seconds_to_crawl=seconds,
        )

    @reads
    async def get_navigation_graph(
        self, session_id: uuid.UUID, max_nodes: int = 500
    ) -> NavigationGraph:
        """Pages as nodes and parent → child links as edges, shallowest ``max_nodes`` pages
        first; ``truncated`` says when the session has more."""
        if not 1 <= max_nodes <= MAX_GRAPH_NODES:
            raise InvalidArgument(
                "max_nodes", f"must be between 1 and {MAX_GRAPH_NODES}, got {max_nodes}"
            )
        statement = listing_statement(
            "pages",
            (),
            _SHALLOWEST,
            0,
            max_nodes,
            of_session=True,
            returns=GraphNode,
            columns=_GRAPH_COLUMNS,
        )
        listed = await statement.fetch(self.session, session_id=session_id)
        if not listed:
            raise NotFound("crawl session", session_id, field="session_id")
        rows = [r for r in listed if r["id"] is not None]
        ids = {r["id"] for r in rows}
        nodes = [GraphNode.model_validate(dict(r)) for r in rows]
        edges = [
            GraphEdge(source=r["parent_page_id"], target=r["id"])
            for r in rows
            if r["parent_page_id"] in ids
        ]
        total_nodes = int(listed[0]["total"] or 0)
        return NavigationGraph(
            session_id=session_id,
            nodes=nodes,
            edges=edges,
            total_nodes=total_nodes,
            truncated=total_nodes > len(nodes),
        )
