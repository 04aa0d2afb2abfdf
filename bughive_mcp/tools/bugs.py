"""Tools over bugs: filing what the agent found, triage, and the views of a session's bugs."""

from typing import Annotated, Any

from pydantic import AfterValidator, Field

from bughive_mcp.answers import BugAnswer, BugChanged, BugListing, Verbose, listing
from bughive_mcp.state import AppContext, in_unit_of_work
from bughive_mcp.tools.pages import MAX_JSON_BYTES, _bounded_json
from bughive_mcp.tools.params import BugId, Limit, PageId, SessionId, Skip
from bughive_mcp.tools.registry import tool
from db.bug_schemas import BugPublic, BugStatistics, Evidence
from db.enums import BugCategory, BugPriority, BugStatus
from db.repositories import BugRepository
from db.rules.fingerprint import Scope
from db.rules.untrusted import UNTRUSTED

Confidence = Annotated[float, Field(ge=0, le=1, description="How sure the analysis is, 0..1.")]
Step = Annotated[str, Field(min_length=1, max_length=1000), UNTRUSTED]
GroupBy = Annotated[
    Scope,
    Field(
        description="Where one title is one bug: site (the whole session), template (pages of "
        "one path template, /products/{n}) or page."
    ),
]


@tool("File bug", toolset="bugs", idempotent=True)
async def create_bug(
    session_id: SessionId,
    page_id: Annotated[PageId, Field(description="Page the bug was found on.")],
    category: BugCategory,
    priority: BugPriority,
    title: Annotated[str, Field(min_length=1, max_length=255), UNTRUSTED],
    description: Annotated[str, Field(min_length=1, max_length=20_000), UNTRUSTED],
    ctx: AppContext,
    steps_to_reproduce: Annotated[list[Step], Field(max_length=50)] = [],  # noqa: B006
    evidence: Annotated[list[Evidence], Field(max_length=20)] = [],  # noqa: B006
    confidence: Confidence = 0.5,
    expected_behavior: Annotated[str | None, Field(max_length=10_000), UNTRUSTED] = None,
    actual_behavior: Annotated[str | None, Field(max_length=10_000), UNTRUSTED] = None,
    affected_users: Annotated[str | None, Field(max_length=255), UNTRUSTED] = None,
    browser_info: Annotated[
        dict[str, Any] | None,
        AfterValidator(_bounded_json),
        UNTRUSTED,
        Field(description=f"Browser/device facts, JSON ≤ {MAX_JSON_BYTES} bytes."),
    ] = None,
    dedup_key: Annotated[
        str | None,
        Field(
            max_length=255,
            description="Same key = same bug on any page; overrides the title and group_by.",
        ),
        UNTRUSTED,
    ] = None,
    group_by: GroupBy = "site",
    verbose: Verbose = False,
) -> BugAnswer:
    """File a bug found on a page (status detected). One bug per defect: the same category
    and title (case, spacing, counts and ids ignored; status codes kept) anywhere in the
    session is one bug with an occurrence per page — created=false, and grouping says why.
    Repeating a call adds nothing. Give concrete steps and evidence. Next: mark_validated or
    dismiss_bug."""
    filed = await in_unit_of_work(
        ctx,
        lambda s: BugRepository(s).create_bug(
            session_id,
            page_id,
            category,
            priority,
            title,
            description,
            steps_to_reproduce=steps_to_reproduce,
            evidence=evidence,
            confidence=confidence,
            expected_behavior=expected_behavior,
            actual_behavior=actual_behavior,
            affected_users=affected_users,
            browser_info=browser_info,
            dedup_key=dedup_key,
            group_by=group_by,
        ),
    )
    return BugAnswer.of(filed, verbose=verbose)


@tool("Get bug", toolset="bugs", read_only=True)
async def get_bug(bug_id: BugId, ctx: AppContext) -> BugPublic:
    """Read one bug with its steps, evidence, status and Linear link."""
    return await in_unit_of_work(ctx, lambda s: BugRepository(s).get(bug_id))


@tool("Validate bug", toolset="bugs")
async def mark_validated(bug_id: BugId, ctx: AppContext, verbose: Verbose = False) -> BugChanged:
    """Confirm a detected bug is real (detected → validated). Next: file it in Linear, then
    mark_reported."""
    row = await in_unit_of_work(ctx, lambda s: BugRepository(s).mark_validated(bug_id))
    return BugChanged.after(
        row, "file it in Linear (get_bug has the details), then mark_reported", verbose=verbose
    )


@tool("Mark bug reported", toolset="bugs", idempotent=True)
async def mark_reported(
    bug_id: BugId,
    linear_issue_id: Annotated[
        str, Field(min_length=1, max_length=100, description="e.g. BUG-123")
    ],
    linear_issue_url: Annotated[
        str, Field(min_length=1, max_length=500, pattern=r"^[hH][tT][tT][pP][sS]?://\S+$")
    ],
    ctx: AppContext,
    verbose: Verbose = False,
) -> BugChanged:
    """Record that a validated bug was filed in Linear (validated → reported). Repeating it
    with the same linear_issue_id changes nothing."""
    row = await in_unit_of_work(
        ctx, lambda s: BugRepository(s).mark_reported(bug_id, linear_issue_id, linear_issue_url)
    )
    return BugChanged.after(
        row, "nothing more is needed: the bug is tracked in Linear", verbose=verbose
    )


@tool("Dismiss bug", toolset="bugs")
async def dismiss_bug(
    bug_id: BugId,
    reason: Annotated[str, Field(min_length=1, max_length=10_000), UNTRUSTED],
    ctx: AppContext,
    verbose: Verbose = False,
) -> BugChanged:
    """Dismiss a bug from any status (false positive, duplicate, won't fix), with the reason."""
    row = await in_unit_of_work(ctx, lambda s: BugRepository(s).dismiss(bug_id, reason))
    return BugChanged.after(row, "nothing more is needed", verbose=verbose)


@tool("List high-confidence bugs", toolset="bugs", read_only=True)
async def get_high_confidence_bugs(
    session_id: SessionId,
    ctx: AppContext,
    min_confidence: Confidence = 0.8,
    limit: Limit = 20,
    skip: Skip = 0,
) -> BugListing:
    """Bugs at or above min_confidence that are not dismissed, most confident first: the
    best candidates to validate and report. Summaries (get_bug has the details); paginated
    (skip=next_skip)."""
    rows = await in_unit_of_work(
        ctx,
        lambda s: BugRepository(s).get_high_confidence_bugs(
            session_id, min_confidence, skip=skip, limit=limit
        ),
    )
    return listing(BugListing, rows)


@tool("List critical bugs", toolset="bugs", read_only=True)
async def get_critical_bugs(
    session_id: SessionId, ctx: AppContext, limit: Limit = 20, skip: Skip = 0
) -> BugListing:
    """Critical bugs of a session that are not dismissed: summaries (get_bug has the
    details), paginated (skip=next_skip)."""
    rows = await in_unit_of_work(
        ctx, lambda s: BugRepository(s).get_critical_bugs(session_id, skip=skip, limit=limit)
    )
    return listing(BugListing, rows)


@tool("Get bug statistics", toolset="reporting", read_only=True)
async def get_bug_statistics(session_id: SessionId, ctx: AppContext) -> BugStatistics:
    """Counts of a session's bugs by priority, category and status, and the average
    confidence."""
    return await in_unit_of_work(ctx, lambda s: BugRepository(s).get_bug_statistics(session_id))


@tool("List session bugs", toolset="bugs", read_only=True)
async def get_session_bugs(
    session_id: SessionId,
    ctx: AppContext,
    status: BugStatus | None = None,
    priority: BugPriority | None = None,
    category: BugCategory | None = None,
    skip: Skip = 0,
    limit: Limit = 20,
) -> BugListing:
    """A session's bugs, optionally filtered, most urgent first: summaries (get_bug has the
    details). Paginated: when has_more, call again with skip=next_skip."""
    rows = await in_unit_of_work(
        ctx,
        lambda s: BugRepository(s).get_session_bugs(
            session_id, status, priority, category, skip=skip, limit=limit
        ),
    )
    return listing(BugListing, rows)
