"""Tools over pages: discovery, the crawl life cycle and the read models of the frontier."""

import json
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from bughive_mcp.state import AppContext, unit_of_work
from bughive_mcp.tools.params import HttpUrl, Limit, PageId, SessionId
from bughive_mcp.tools.registry import tool
from db.repositories import PageRepository
from db.schemas import (
    BulkCreateResult,
    NavigationGraph,
    NewPage,
    PageAnalytics,
    PageCreated,
    PageList,
    PagePublic,
)

MAX_JSON_BYTES = 256 * 1024
INT32_MAX = 2**31 - 1


def _bounded_json(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value, default=str)) > MAX_JSON_BYTES:
        raise ValueError(f"must serialize to at most {MAX_JSON_BYTES} bytes of JSON")
    return value


AnalysisResult = Annotated[
    dict[str, Any] | None,
    AfterValidator(_bounded_json),
    Field(description="The AI analysis of the page as a JSON object (≤ 256 KiB)."),
]
Depth = Annotated[int, Field(ge=0, le=1000, description="Link depth from the base URL (0 = base).")]


@tool("Create page", toolset="frontier", idempotent=True)
async def create_page(
    session_id: SessionId,
    url: HttpUrl,
    ctx: AppContext,
    depth: Depth = 0,
    parent_page_id: Annotated[
        PageId | None, Field(description="Page on which the link was found.")
    ] = None,
) -> PageCreated:
    """Record one discovered URL (status discovered). Idempotent: a URL already known in the
    session is returned with created=false and not counted again. Raises pages_discovered.
    For many links at once use bulk_create_pages."""
    async with unit_of_work(ctx) as s:
        return await PageRepository(s).create_page(session_id, url, depth, parent_page_id)


@tool("Bulk create pages", toolset="frontier", idempotent=True)
async def bulk_create_pages(
    session_id: SessionId,
    pages: Annotated[list[NewPage], Field(min_length=1, max_length=10_000)],
    ctx: AppContext,
) -> BulkCreateResult:
    """Record all links found on a page in one call (up to 10,000). Already-known URLs are
    skipped and listed under existing; only new ones raise pages_discovered."""
    async with unit_of_work(ctx) as s:
        return await PageRepository(s).bulk_create(pages, session_id=session_id)


@tool("Get page", toolset="frontier", read_only=True)
async def get_page(page_id: PageId, ctx: AppContext) -> PagePublic:
    """Read one page: URL, status, depth, analysis and HTTP facts."""
    async with unit_of_work(ctx) as s:
        return await PageRepository(s).get(page_id)


@tool("Look at pages to crawl", toolset="frontier", read_only=True)
async def get_pages_to_crawl(session_id: SessionId, ctx: AppContext, limit: Limit = 10) -> PageList:
    """Read-only look at the frontier: discovered pages, shallowest first, with the total
    still waiting. Does not reserve anything; call mark_crawling on a page before working on it."""
    async with unit_of_work(ctx) as s:
        return await PageRepository(s).get_pages_to_crawl(session_id, limit)


@tool("Mark page crawling", toolset="frontier")
async def mark_crawling(page_id: PageId, ctx: AppContext) -> PagePublic:
    """Take a discovered page for crawling (discovered → crawling). Only one caller can win a
    page; others get an error saying it is already taken. Next: mark_analyzed or mark_page_error."""
    async with unit_of_work(ctx) as s:
        return await PageRepository(s).mark_crawling(page_id)


@tool("Mark page analyzed", toolset="frontier")
async def mark_analyzed(
    page_id: PageId,
    ctx: AppContext,
    title: Annotated[str | None, Field(max_length=500)] = None,
    screenshot_url: Annotated[str | None, Field(max_length=2048)] = None,
    analysis_result: AnalysisResult = None,
    response_time_ms: Annotated[int | None, Field(ge=0, le=INT32_MAX)] = None,
    status_code: Annotated[int | None, Field(ge=100, le=599)] = None,
    content_type: Annotated[str | None, Field(max_length=255)] = None,
    content_length: Annotated[int | None, Field(ge=0, le=INT32_MAX)] = None,
) -> PagePublic:
    """Store the analysis of a crawled page (crawling → analyzed) and raise pages_crawled.
    File bugs found on it with create_bug."""
    async with unit_of_work(ctx) as s:
        return await PageRepository(s).mark_analyzed(
            page_id,
            title=title,
            screenshot_url=screenshot_url,
            analysis_result=analysis_result,
            response_time_ms=response_time_ms,
            status_code=status_code,
            content_type=content_type,
            content_length=content_length,
        )


@tool("Mark page error", toolset="frontier")
async def mark_page_error(
    page_id: PageId,
    error_message: Annotated[str, Field(min_length=1, max_length=10_000)],
    ctx: AppContext,
) -> PagePublic:
    """Give up on a page that could not be loaded or analysed (discovered/crawling → error),
    with the reason."""
    async with unit_of_work(ctx) as s:
        return await PageRepository(s).mark_error(page_id, error_message)


@tool("Get page analytics", toolset="reporting", read_only=True)
async def get_page_analytics(page_id: PageId, ctx: AppContext) -> PageAnalytics:
    """One page in context: its bugs by priority and category, how many pages it links to,
    and its timing."""
    async with unit_of_work(ctx) as s:
        return await PageRepository(s).get_page_analytics(page_id)


@tool("Get navigation graph", toolset="reporting", read_only=True)
async def get_navigation_graph(
    session_id: SessionId,
    ctx: AppContext,
    max_nodes: Annotated[int, Field(ge=1, le=2000, description="Cap on pages returned.")] = 200,
) -> NavigationGraph:
    """The site map found so far: pages as nodes (shallowest first) and parent → child links
    as edges. truncated=true when the session has more than max_nodes pages."""
    async with unit_of_work(ctx) as s:
        return await PageRepository(s).get_navigation_graph(session_id, max_nodes)
