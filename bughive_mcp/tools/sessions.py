"""Tools over crawl sessions: the start and the end of every crawl."""

from typing import Annotated

from pydantic import Field

from bughive_mcp.answers import SessionAnswer, SessionEnded, SessionListing, Verbose, listing
from bughive_mcp.state import AppContext, in_unit_of_work
from bughive_mcp.tools.params import HttpUrl, Limit, SessionId, Skip
from bughive_mcp.tools.registry import tool
from db.enums import SessionStatus
from db.repositories import CrawlSessionRepository
from db.rules.untrusted import UNTRUSTED
from db.schemas import CrawlConfig, CrawlSessionPublic, SessionStatistics


@tool("Create crawl session", toolset="sessions")
async def create_session(
    base_url: Annotated[HttpUrl, Field(description="Site to crawl, e.g. https://shop.example")],
    ctx: AppContext,
    config: CrawlConfig | None = None,
    idempotency_key: Annotated[str | None, Field(min_length=1, max_length=255)] = None,
    verbose: Verbose = False,
) -> SessionAnswer:
    """Start here: create a crawl session (status pending) for a site; pass its id to every
    other tool. Next: start_session, then create_page for the base URL. With an
    idempotency_key, a retry with the same key returns the same session."""
    row = await in_unit_of_work(
        ctx, lambda s: CrawlSessionRepository(s).create_session(base_url, config, idempotency_key)
    )
    return SessionAnswer.after(
        row, "start_session, then create_page with the base URL", verbose=verbose
    )


@tool("Start crawl session", toolset="sessions")
async def start_session(session_id: SessionId, ctx: AppContext) -> SessionAnswer:
    """Move a session from pending to running and stamp started_at. Call once, before
    crawling pages."""
    row = await in_unit_of_work(ctx, lambda s: CrawlSessionRepository(s).start_session(session_id))
    return SessionAnswer.after(
        row,
        "create_page with the base URL, then claim_pages_to_crawl and finish_page per page",
        verbose=False,
    )


@tool("Complete crawl session", toolset="sessions")
async def complete_session(
    session_id: SessionId,
    ctx: AppContext,
    success: Annotated[bool, Field(description="True: completed. False: failed.")] = True,
    error_message: Annotated[
        str | None,
        Field(max_length=10_000, description="Why the crawl failed (success=false)."),
        UNTRUSTED,
    ] = None,
    force: Annotated[
        bool, Field(description="Complete even while workers hold leases (their pages → error).")
    ] = False,
    verbose: Verbose = False,
) -> SessionEnded:
    """End a crawl: running → completed (success=true), or pending/running → failed with an
    error message. Refused while pages are leased to workers unless force=true. Call when a
    claim returns no pages and remaining is 0, or when the crawl must stop. unfinished_pages
    says how many pages were never crawled or were stopped."""
    row = await in_unit_of_work(
        ctx,
        lambda s: CrawlSessionRepository(s).complete_session(
            session_id, success, error_message, force=force
        ),
    )
    return SessionEnded.of_completed(row, verbose=verbose)


@tool("Get crawl session", toolset="sessions", read_only=True)
async def get_session(session_id: SessionId, ctx: AppContext) -> CrawlSessionPublic:
    """Read one session: status, counters (pages_discovered, pages_crawled, bugs_found),
    cost and configuration (secrets masked)."""
    return await in_unit_of_work(ctx, lambda s: CrawlSessionRepository(s).get(session_id))


@tool("List crawl sessions", toolset="sessions", read_only=True)
async def list_sessions(
    ctx: AppContext,
    status: SessionStatus | None = None,
    limit: Limit = 20,
    skip: Skip = 0,
) -> SessionListing:
    """List sessions (id, site, status, counters), newest first, optionally only those in one
    status. Paginated: when has_more is true, call again with skip=next_skip."""
    rows = await in_unit_of_work(
        ctx, lambda s: CrawlSessionRepository(s).list(status, skip=skip, limit=limit)
    )
    return listing(SessionListing, rows)


@tool("Add AI cost", toolset="sessions")
async def add_cost(
    session_id: SessionId,
    cost_usd: Annotated[float, Field(ge=0, le=10_000, description="Spend to add, in USD.")],
    ctx: AppContext,
) -> SessionAnswer:
    """Add the AI spend of a step (e.g. one page analysis) to the session's total_cost.
    Not idempotent: call once per spend."""
    row = await in_unit_of_work(
        ctx, lambda s: CrawlSessionRepository(s).add_cost(session_id, cost_usd)
    )
    return SessionAnswer.after(row, None, verbose=False)


@tool("Get session statistics", toolset="reporting", read_only=True)
async def get_session_statistics(session_id: SessionId, ctx: AppContext) -> SessionStatistics:
    """Progress of a crawl: pages by status, share finished, bugs by priority, cost and
    duration. Use it to decide whether to keep crawling or complete the session."""
    return await in_unit_of_work(
        ctx, lambda s: CrawlSessionRepository(s).get_session_statistics(session_id)
    )
