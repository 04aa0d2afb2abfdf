"""Pydantic v2 models shared by the repositories and the MCP tools.

Inputs (``CrawlConfig``, ``Evidence``, ``NewPage``) forbid unknown fields, so a typo is an error
rather than silently ignored data. Outputs (``*Public`` and the result models) are what the
repositories return and what the tools hand to the agent unchanged: one path for data.
"""

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core.core_schema import SerializationInfo

from db.enums import (
    BugCategory,
    BugPriority,
    BugStatus,
    EvidenceType,
    PageStatus,
    SessionStatus,
)
from db.rules.secrets import ENCRYPTED
from db.rules.untrusted import UNTRUSTED
from db.rules.urls import TrailingSlash, check_no_userinfo

MAX_URL_LENGTH = 2048
MASK = "**********"

Url = Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH)]


class InputModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OutputModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- crawl configuration ---------------------------------------------------------------


class Viewport(InputModel):
    width: int = Field(default=1280, ge=240, le=7680, description="Viewport width in CSS px.")
    height: int = Field(default=800, ge=240, le=4320, description="Viewport height in CSS px.")


class SiteCredentials(InputModel):
    """A login the crawler uses on the site under test. The password is a secret: it is never
    shown in tool output or logs (it serializes as ``**********``)."""

    username: str = Field(min_length=1, max_length=255)
    password: SecretStr = Field(min_length=1, max_length=1024)
    login_url: Url | None = None

    @field_validator("login_url")
    @classmethod
    def _no_userinfo(cls, value: str | None) -> str | None:
        """Stored in clear like every URL: the password belongs in ``password``."""
        return None if value is None else check_no_userinfo(value)

    @field_serializer("password")
    def _mask_password(self, value: SecretStr, info: SerializationInfo) -> str:
        if info.context and info.context.get("reveal_secrets"):
            return value.get_secret_value()
        return MASK


class CrawlConfig(InputModel):
    """How a crawl session explores a site. Every field has a safe default."""

    max_depth: int = Field(default=3, ge=0, le=50, description="Deepest link level to follow.")
    max_pages: int = Field(
        default=100, ge=1, le=1_000_000, description="Stop discovering after this many pages."
    )
    same_origin: bool = Field(default=True, description="Only follow links on the base origin.")
    include_patterns: list[Annotated[str, Field(max_length=500)]] = Field(
        default_factory=list, max_length=50, description="Glob patterns a URL must match."
    )
    exclude_patterns: list[Annotated[str, Field(max_length=500)]] = Field(
        default_factory=list, max_length=50, description="Glob patterns that exclude a URL."
    )
    drop_tracking_params: bool = Field(
        default=True, description="Drop utm_*, gclid, fbclid… from discovered URLs."
    )
    trailing_slash: TrailingSlash = Field(
        default=TrailingSlash.KEEP,
        description="keep: /a and /a/ differ; strip: store /a; add: store /a/.",
    )
    viewport: Viewport = Field(default_factory=Viewport)
    user_agent: str | None = Field(default=None, max_length=500)
    respect_robots_txt: bool = True
    credentials: SiteCredentials | None = None

    def to_storage(self) -> dict[str, Any]:
        """The config as JSON with the password in clear: the repository encrypts it before
        storing (``db.rules.secrets.seal``)."""
        return self.model_dump(mode="json", context={"reveal_secrets": True})


# --- evidence and bug inputs ------------------------------------------------------------


class Evidence(InputModel):
    """One piece of evidence for a bug: inline ``content`` (a log excerpt, a DOM snippet) and/or
    a ``url`` (a screenshot, a HAR file)."""

    type: EvidenceType
    content: Annotated[str | None, UNTRUSTED] = Field(default=None, max_length=20_000)
    url: Annotated[Url | None, UNTRUSTED] = None
    description: Annotated[str | None, UNTRUSTED] = Field(default=None, max_length=2_000)

    @model_validator(mode="after")
    def _content_or_url(self) -> "Evidence":
        if self.content is None and self.url is None:
            raise ValueError("evidence needs 'content' or 'url' (or both)")
        return self


class NewPage(InputModel):
    """A discovered link, as passed to ``bulk_create``."""

    url: Url
    depth: int = Field(default=0, ge=0, le=1000)
    parent_page_id: uuid.UUID | None = None


# --- outputs ----------------------------------------------------------------------------


class CrawlSessionPublic(OutputModel):
    id: uuid.UUID
    base_url: str
    status: SessionStatus
    config: dict[str, Any] = Field(description="Crawl configuration; secrets are masked.")
    started_at: datetime | None
    completed_at: datetime | None
    pages_discovered: int
    pages_crawled: int
    bugs_found: int
    total_cost: float = Field(description="Accumulated AI cost in USD.")
    error_message: str | None
    created_at: datetime
    updated_at: datetime

    @field_serializer("config")
    def _mask_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return mask_config(config)


class SessionCompleted(CrawlSessionPublic):
    unfinished_pages: dict[PageStatus, int] = Field(
        description="Pages not finished when the session ended: 'discovered' ones were never "
        "crawled (they stay so); 'crawling' ones were stopped (now error)."
    )


def mask_config(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stored config with the credential password (clear or encrypted) replaced
    by a mask."""
    credentials = config.get("credentials")
    if not isinstance(credentials, dict) or not {"password", ENCRYPTED} & credentials.keys():
        return config
    shown = {key: value for key, value in credentials.items() if key != ENCRYPTED}
    return {**config, "credentials": {**shown, "password": MASK}}


class PagePublic(OutputModel):
    id: uuid.UUID
    session_id: uuid.UUID
    parent_page_id: uuid.UUID | None
    url: str
    title: str | None
    status: PageStatus
    depth: int
    screenshot_url: str | None
    analysis_result: dict[str, Any] | None
    response_time_ms: int | None
    status_code: int | None
    content_type: str | None
    content_length: int | None
    error_message: str | None
    discovered_at: datetime
    crawled_at: datetime | None
    attempts: int = Field(description="How many times the page was handed to a worker.")
    lease_expires_at: datetime | None = Field(
        description="While crawling: when the worker's lease runs out."
    )
    created_at: datetime
    updated_at: datetime


class PageCreated(PagePublic):
    created: bool = Field(description="False when the URL was already known in this session.")


class PageClaim(PagePublic):
    """A page leased to one worker. Pass ``claim_token`` to mark_analyzed / mark_page_error /
    extend_claim: it proves the lease is still yours."""

    claim_token: uuid.UUID


class ClaimResult(BaseModel):
    items: list[PageClaim] = Field(description="Pages now leased to you, shallowest first.")
    lease_seconds: int
    remaining: int = Field(
        description="Discovered pages still waiting after this claim, counted up to 100 "
        "(100 means at least that many); 0 means the frontier is empty."
    )
    requeued: int = Field(description="Items handed out again: their earlier lease expired.")
    gave_up: int = Field(description="Pages set to error by this call: retry budget used up.")


class PageRef(BaseModel):
    id: uuid.UUID
    url: str


class RefusedPage(BaseModel):
    url: str = Field(description="The URL as given (a user name or password in it masked).")
    reason: str


class DuplicateUrl(BaseModel):
    url: str = Field(description="The URL as given.")
    same_as: str = Field(description="The earlier entry of the batch it repeats, as stored.")


class BulkCreateResult(BaseModel):
    """Every URL given is in exactly one of the lists (the counts add up to the batch)."""

    created: list[PageRef] = Field(description="Pages that were new (URLs as stored).")
    existing: list[PageRef] = Field(description="Pages that were already known (not counted).")
    refused: list[RefusedPage] = Field(
        default_factory=list, description="Not stored: outside the crawl's limits, with why."
    )
    duplicates_in_batch: list[DuplicateUrl] = Field(
        default_factory=list,
        description="Entries repeating an earlier one of this batch once normalized: one page.",
    )
    created_count: int
    existing_count: int
    refused_count: int = 0
    duplicates_in_batch_count: int = 0
    truncated: bool = Field(
        default=False,
        description="True when a list holds only its first max_listed entries; counts are exact.",
    )

    def listing_at_most(self, max_listed: int) -> "BulkCreateResult":
        """This result with each list cut to its first ``max_listed`` entries (counts kept).

        An agent's answer must fit its context: 10,000 new pages listed are ~1 MB of JSON,
        where Claude Code refuses a tool answer over 25,000 tokens by default."""
        lists = (self.created, self.existing, self.refused, self.duplicates_in_batch)
        if max(len(listed) for listed in lists) <= max_listed:
            return self
        return self.model_copy(
            update={
                "created": self.created[:max_listed],
                "existing": self.existing[:max_listed],
                "refused": self.refused[:max_listed],
                "duplicates_in_batch": self.duplicates_in_batch[:max_listed],
                "truncated": True,
            }
        )

    @classmethod
    def of(
        cls,
        created: list[PageRef],
        existing: list[PageRef],
        refused: list[RefusedPage],
        duplicates_in_batch: list[DuplicateUrl] | None = None,
    ) -> "BulkCreateResult":
        """The result with its counts derived from the lists (so they cannot disagree)."""
        duplicates = duplicates_in_batch or []
        return cls(
            created=created,
            existing=existing,
            refused=refused,
            duplicates_in_batch=duplicates,
            created_count=len(created),
            existing_count=len(existing),
            refused_count=len(refused),
            duplicates_in_batch_count=len(duplicates),
        )


class BugPublic(OutputModel):
    id: uuid.UUID
    session_id: uuid.UUID
    page_id: uuid.UUID
    category: BugCategory
    priority: BugPriority
    title: str
    description: str
    steps_to_reproduce: list[str]
    evidence: list[dict[str, Any]]
    confidence: float
    status: BugStatus
    linear_issue_id: str | None
    linear_issue_url: str | None
    expected_behavior: str | None
    actual_behavior: str | None
    affected_users: str | None
    browser_info: dict[str, Any] | None
    dismissed_reason: str | None
    dismissed_at: datetime | None
    reported_at: datetime | None
    occurrences: int = Field(description="Pages this bug was reported from (deduplicated).")
    created_at: datetime
    updated_at: datetime


class BugFiled(BugPublic):
    created: bool = Field(
        description="False when this is a known bug of the session (a new occurrence of it)."
    )


class Pagination(BaseModel):
    """Offset pagination facts carried by every list result."""

    total: int = Field(description="Rows matching the filters, over all pages.")
    skip: int
    limit: int
    has_more: bool
    next_skip: int | None = Field(description="Pass as 'skip' to get the next page; null at end.")

    @classmethod
    def of(cls, total: int, skip: int, limit: int, returned: int) -> "Pagination":
        has_more = skip + returned < total
        return cls(
            total=total,
            skip=skip,
            limit=limit,
            has_more=has_more,
            next_skip=skip + returned if has_more else None,
        )


class CrawlSessionList(Pagination):
    items: list[CrawlSessionPublic]


class PageList(Pagination):
    items: list[PagePublic]


class BugList(Pagination):
    items: list[BugPublic]


class BugStatistics(BaseModel):
    session_id: uuid.UUID
    total: int = Field(description="Distinct bugs (after deduplication).")
    total_occurrences: int = Field(description="Reports of those bugs, over all pages.")
    by_priority: dict[BugPriority, int]
    by_category: dict[BugCategory, int]
    by_status: dict[BugStatus, int]
    average_confidence: float | None = Field(description="Null when the session has no bugs.")


class SessionStatistics(BaseModel):
    session: CrawlSessionPublic
    pages_total: int
    pages_by_status: dict[PageStatus, int]
    pages_leased: int = Field(description="Pages held by a worker under a live lease now.")
    crawl_progress: float = Field(
        description="Share of known pages that are finished (analyzed or error), 0..1."
    )
    bugs_total: int
    bugs_by_priority: dict[BugPriority, int]
    total_cost: float
    duration_seconds: float | None = Field(
        description="From start to completion (or to now while running); null before start."
    )


class PageAnalytics(BaseModel):
    page: PagePublic
    bugs_total: int
    bugs_by_priority: dict[BugPriority, int]
    bugs_by_category: dict[BugCategory, int]
    children_count: int
    response_time_ms: int | None
    seconds_to_crawl: float | None = Field(
        description="Time from discovery to analysis; null until analyzed."
    )


class ReportBug(BaseModel):
    """One line of a session report's bug table."""

    id: uuid.UUID
    title: str
    category: BugCategory
    priority: BugPriority
    status: BugStatus
    confidence: float
    occurrences: int
    page_url: str
    linear_issue_url: str | None


class GraphNode(BaseModel):
    id: uuid.UUID
    url: str
    title: str | None
    depth: int
    status: PageStatus


class GraphEdge(BaseModel):
    source: uuid.UUID = Field(description="Parent page id.")
    target: uuid.UUID = Field(description="Child page id.")


class NavigationGraph(BaseModel):
    session_id: uuid.UUID
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    total_nodes: int = Field(description="Pages in the session, including those not returned.")
    truncated: bool = Field(description="True when only the shallowest max_nodes were returned.")
