"""``finish_page``: the crawl loop's one call per page — the analysis, the links, the bugs and
every counter in one transaction, answered in a few hundred bytes."""

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from bughive_mcp.state import AppContext, in_unit_of_work
from bughive_mcp.tools.bugs import Confidence, GroupBy, Step
from bughive_mcp.tools.pages import (
    INT32_MAX,
    MAX_JSON_BYTES,
    AnalysisResult,
    ClaimToken,
    _bounded_json,
)
from bughive_mcp.tools.params import PageId
from bughive_mcp.tools.registry import tool
from db.bug_schemas import Evidence
from db.enums import BugCategory, BugPriority
from db.page_schemas import FinishedPage, NewLink
from db.repositories import PageRepository
from db.repositories.discovery import MAX_BULK_LINKS
from db.repositories.finishing import MAX_BUGS_PER_PAGE
from db.rules.untrusted import UNTRUSTED


class BugReport(BaseModel):
    """A bug found on the page: create_bug's fields, without session_id and page_id."""

    category: BugCategory
    priority: BugPriority
    title: Annotated[str, Field(min_length=1, max_length=255), UNTRUSTED]
    description: Annotated[str, Field(min_length=1, max_length=20_000), UNTRUSTED]
    steps_to_reproduce: Annotated[list[Step], Field(max_length=50)] = []
    evidence: Annotated[list[Evidence], Field(max_length=20)] = []
    confidence: Confidence = 0.5
    expected_behavior: Annotated[str | None, Field(max_length=10_000), UNTRUSTED] = None
    actual_behavior: Annotated[str | None, Field(max_length=10_000), UNTRUSTED] = None
    affected_users: Annotated[str | None, Field(max_length=255), UNTRUSTED] = None
    browser_info: Annotated[
        dict[str, Any] | None,
        AfterValidator(_bounded_json),
        UNTRUSTED,
        Field(description=f"Browser/device facts, JSON ≤ {MAX_JSON_BYTES} bytes."),
    ] = None
    dedup_key: Annotated[str | None, Field(max_length=255), UNTRUSTED] = None
    group_by: GroupBy = "site"


@tool("Finish page", toolset="frontier")
async def finish_page(
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
    links: Annotated[
        list[NewLink],
        Field(
            max_length=MAX_BULK_LINKS,
            description="Every href on the page, as found (repeats and fragments are fine).",
        ),
    ] = [],  # noqa: B006
    bugs: Annotated[list[BugReport], Field(max_length=MAX_BUGS_PER_PAGE)] = [],  # noqa: B006
) -> FinishedPage:
    """The one call per claimed page: stores its analysis (crawling → analyzed), adds its
    links to the frontier, files its bugs (one bug per defect: the same category and title in
    the session groups, as create_bug) and moves every counter — all or nothing, fenced by
    claim_token; a replay changes nothing. Answers counts and bug ids only. For a page that
    failed, mark_page_error."""
    return await in_unit_of_work(
        ctx,
        lambda s: PageRepository(s).finish_page(
            page_id,
            claim_token,
            title=title,
            screenshot_url=screenshot_url,
            analysis_result=analysis_result,
            response_time_ms=response_time_ms,
            status_code=status_code,
            content_type=content_type,
            content_length=content_length,
            links=links,
            bugs=[bug.model_dump() for bug in bugs],
        ),
    )
