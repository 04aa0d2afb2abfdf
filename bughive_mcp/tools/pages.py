"""Tools over pages: discovery, the crawl life cycle and the read models of the frontier."""

import json
import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from bughive_mcp.answers import (
    Claimed,
    PageAdded,
    PageAnswer,
    PageLease,
    PageListing,
    Verbose,
    listing,
    projected,
)
from bughive_mcp.state import AppContext, in_unit_of_work, server_settings
from bughive_mcp.tools.params import HttpUrl, Limit, PageId, SessionId, Skip
from bughive_mcp.tools.registry import tool
from db.page_schemas import (
    BulkCreateResult,
    NavigationGraph,
    NewPage,
    PageAnalytics,
    PagePublic,
)
from db.repositories import PageRepository
from db.repositories.discovery import MAX_BULK_LINKS
from db.repositories.leases import DEFAULT_LEASE_SECONDS, MAX_LEASE_SECONDS, MIN_LEASE_SECONDS
from db.rules.untrusted import UNTRUSTED

MAX_JSON_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32
INT32_MAX = 2**31 - 1


def _bounded_json(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Refuse (never truncate) a JSON blob nested deeper than ``MAX_JSON_DEPTH`` levels or
    longer than ``MAX_JSON_BYTES`` once serialized."""
    if value is None:
        return value
    if _json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"must nest at most {MAX_JSON_DEPTH} levels deep")
    if len(json.dumps(value, default=str)) > MAX_JSON_BYTES:
        raise ValueError(f"must serialize to at most {MAX_JSON_BYTES} bytes of JSON")
    return value


def _json_depth(value: Any) -> int:
    """Nesting depth of objects and arrays, without recursion (stops past the limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= MAX_JSON_DEPTH:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


AnalysisResult = Annotated[
    dict[str, Any] | None,
    AfterValidator(_bounded_json),
    UNTRUSTED,
    Field(description="The AI analysis of the page as a JSON object (≤ 256 KiB)."),
]
LeaseSeconds = Annotated[
    int,
    Field(
        ge=MIN_LEASE_SECONDS,
        le=MAX_LEASE_SECONDS,
        description="How long the page stays yours without a heartbeat.",
    ),
]
ClaimToken = Annotated[uuid.UUID, Field(description="claim_token from your claim.")]
OptionalClaimToken = Annotated[
    uuid.UUID | None,
    Field(description="claim_token from your claim; required unless the page is unclaimed."),
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
    verbose: Verbose = False,
) -> PageAdded:
    """Record one discovered URL (status discovered). The URL is normalized; one already
    known in the session is returned with created=false and not counted again. A URL outside
    the session's limits (origin, max_depth, patterns, max_pages) is refused with the reason.
    For many links at once use bulk_create_pages."""
    row = await in_unit_of_work(
        ctx, lambda s: PageRepository(s).create_page(session_id, url, depth, parent_page_id)
    )
    return PageAdded.of(row, verbose=verbose)


@tool("Bulk create pages", toolset="frontier", idempotent=True)
async def bulk_create_pages(
    session_id: SessionId,
    pages: Annotated[list[NewPage], Field(min_length=1, max_length=MAX_BULK_LINKS)],
    ctx: AppContext,
    max_listed: Annotated[
        int,
        Field(
            ge=0,
            le=10_000,
            description="Entries listed per list (0: counts only); counts are exact.",
        ),
    ] = 0,
) -> BulkCreateResult:
    """Record all links found on a page in one call (up to 10,000 distinct URLs, repeats
    included up to 100,000 links: send the page's hrefs as they are). URLs are normalized;
    answers counts of created, existing (already known), refused (outside the crawl's
    limits) and duplicates_in_batch; max_listed>0 lists them (refused with the reason). Only
    new ones raise pages_discovered."""

    async def report(done: int, total: int) -> None:  # large batches: the client shows progress
        await ctx.report_progress(done, total, f"{done} of {total} new pages recorded")

    result = await in_unit_of_work(
        ctx, lambda s: PageRepository(s).bulk_create(pages, session_id=session_id, progress=report)
    )
    return result.listing_at_most(max_listed)


@tool("Get page", toolset="frontier", read_only=True)
async def get_page(page_id: PageId, ctx: AppContext) -> PagePublic:
    """Read one page: URL, status, depth, analysis and HTTP facts."""
    return await in_unit_of_work(ctx, lambda s: PageRepository(s).get(page_id))


@tool("Look at pages to crawl", toolset="frontier", read_only=True)
async def get_pages_to_crawl(
    session_id: SessionId, ctx: AppContext, limit: Limit = 10, skip: Skip = 0
) -> PageListing:
    """Read-only look at the frontier: discovered pages in claim order (highest priority, then shallowest), with the total
    still waiting (paginated: skip=next_skip). Reserves nothing: to get work, call
    claim_pages_to_crawl."""
    rows = await in_unit_of_work(
        ctx, lambda s: PageRepository(s).get_pages_to_crawl(session_id, limit, skip)
    )
    return listing(PageListing, rows)


@tool("Claim pages to crawl", toolset="frontier")
async def claim_pages_to_crawl(
    session_id: SessionId,
    ctx: AppContext,
    limit: Annotated[int, Field(ge=1, le=100, description="Pages to lease (1-100).")] = 10,
    lease_seconds: LeaseSeconds = DEFAULT_LEASE_SECONDS,
) -> Claimed:
    """The way workers get work: atomically lease up to limit discovered pages (highest
    priority, then shallowest) to you; no other worker gets them. At-least-once: if you do
    not finish a page before its lease ends, it is handed out again (after max attempts it
    becomes error). Finish each page with finish_page / mark_page_error passing the claim's
    claim_token; call extend_claim for slow pages. Empty items and remaining=0 means the crawl is done."""
    claim = await in_unit_of_work(
        ctx,
        lambda s: PageRepository(s).claim_pages_to_crawl(
            session_id, limit, lease_seconds, server_settings(ctx).max_attempts
        ),
    )
    return Claimed.of(claim)


@tool("Extend page lease", toolset="frontier")
async def extend_claim(
    page_id: PageId,
    claim_token: ClaimToken,
    ctx: AppContext,
    lease_seconds: LeaseSeconds = DEFAULT_LEASE_SECONDS,
) -> PageLease:
    """Heartbeat for a slow analysis: renew your lease on a claimed page to lease_seconds
    from now. Fails with "lease lost" if the page was handed to another worker: then drop it."""
    row = await in_unit_of_work(
        ctx, lambda s: PageRepository(s).extend_claim(page_id, claim_token, lease_seconds)
    )
    return projected(PageLease, row)


@tool("Mark page crawling", toolset="frontier")
async def mark_crawling(
    page_id: PageId,
    ctx: AppContext,
    lease_seconds: LeaseSeconds = DEFAULT_LEASE_SECONDS,
) -> PageLease:
    """Take one specific discovered page (compare-and-set discovered → crawling) with a
    lease and claim_token, as a claim does. Only one caller wins; others get an error.
    Prefer claim_pages_to_crawl for the crawl loop."""
    row = await in_unit_of_work(
        ctx, lambda s: PageRepository(s).mark_crawling(page_id, lease_seconds)
    )
    return projected(PageLease, row)


@tool("Mark page analyzed", toolset="frontier")
async def mark_analyzed(
    page_id: PageId,
    claim_token: ClaimToken,
    ctx: AppContext,
    title: Annotated[str | None, Field(max_length=500), UNTRUSTED] = None,
    screenshot_url: Annotated[str | None, Field(max_length=2048), UNTRUSTED] = None,
    analysis_result: AnalysisResult = None,
    response_time_ms: Annotated[int | None, Field(ge=0, le=INT32_MAX)] = None,
    status_code: Annotated[int | None, Field(ge=100, le=599)] = None,
    content_type: Annotated[str | None, Field(max_length=255), UNTRUSTED] = None,
    content_length: Annotated[int | None, Field(ge=0, le=INT32_MAX)] = None,
    verbose: Verbose = False,
) -> PageAnswer:
    """Store the analysis of a claimed page (crawling → analyzed) and raise pages_crawled,
    fenced by the claim_token of your claim: if your lease was lost, nothing is written and
    you get a "lease lost" error. File bugs found on the page with create_bug (or do it all
    in one call: finish_page)."""
    row = await in_unit_of_work(
        ctx,
        lambda s: PageRepository(s).mark_analyzed(
            page_id,
            claim_token=claim_token,
            title=title,
            screenshot_url=screenshot_url,
            analysis_result=analysis_result,
            response_time_ms=response_time_ms,
            status_code=status_code,
            content_type=content_type,
            content_length=content_length,
        ),
    )
    return PageAnswer.of(row, verbose=verbose)


@tool("Mark page error", toolset="frontier")
async def mark_page_error(
    page_id: PageId,
    error_message: Annotated[str, Field(min_length=1, max_length=10_000), UNTRUSTED],
    ctx: AppContext,
    claim_token: OptionalClaimToken = None,
    verbose: Verbose = False,
) -> PageAnswer:
    """Give up on a page that could not be loaded or analysed (→ error), with the reason. A
    claimed page needs the claim_token of your claim (fenced like mark_analyzed); only a page
    nobody has claimed (discovered) can be given up without one."""
    row = await in_unit_of_work(
        ctx,
        lambda s: (
            PageRepository(s).give_up_unclaimed(page_id, error_message)
            if claim_token is None
            else PageRepository(s).mark_error(page_id, error_message, claim_token)
        ),
    )
    return PageAnswer.of(row, verbose=verbose)


@tool("Get page analytics", toolset="reporting", read_only=True)
async def get_page_analytics(page_id: PageId, ctx: AppContext) -> PageAnalytics:
    """One page in context: its bugs by priority and category, how many pages it links to,
    and its timing."""
    return await in_unit_of_work(ctx, lambda s: PageRepository(s).get_page_analytics(page_id))


@tool("Get navigation graph", toolset="reporting", read_only=True)
async def get_navigation_graph(
    session_id: SessionId,
    ctx: AppContext,
    max_nodes: Annotated[int, Field(ge=1, le=2000, description="Cap on pages returned.")] = 200,
) -> NavigationGraph:
    """The site map found so far: pages as nodes (shallowest first) and parent → child links
    as edges. truncated=true when the session has more than max_nodes pages."""
    return await in_unit_of_work(
        ctx, lambda s: PageRepository(s).get_navigation_graph(session_id, max_nodes)
    )
