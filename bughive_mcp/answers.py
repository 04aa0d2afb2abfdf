"""What the tools answer: ids, what changed and the next step — not whole rows.

For an agent every byte of an answer is context, and a crawl makes a few calls per page: the
seed's answers echoed the whole row (~700 bytes per mark_analyzed, ~750 per create_bug) though
the caller had just sent most of it. The repositories still return whole rows (library users
and the reports want them); this module is where the MCP layer decides what an agent sees:
a compact projection of each row, the row itself only when the caller asks (``verbose``), and
listings of summaries cut to a byte budget, saying so (``truncated``) and how to go on.
"""

import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Self, TypeVar

import pydantic_core
from pydantic import BaseModel, Field

from db.bug_schemas import BugFiled, BugList, BugPublic, Grouping
from db.enums import BugCategory, BugPriority, BugStatus, PageStatus, SessionStatus
from db.page_schemas import ClaimResult, PageList, PagePublic
from db.schema_base import Pagination
from db.schemas import CrawlSessionList, CrawlSessionPublic, SessionCompleted

LISTING_BYTE_BUDGET = 16_000
"""A listing answer's items stop before this many bytes of JSON (~4,000 tokens): 100 bug
summaries with long titles would be ~45 KB, a tenth of an agent's working context."""

Verbose = Annotated[bool, Field(description="true: the whole row too.")]


def _is_none(value: object) -> bool:
    return value is None


def _is_zero(value: object) -> bool:
    return value == 0


ModelT = TypeVar("ModelT", bound=BaseModel)


def projected(shape: type[ModelT], row: BaseModel) -> ModelT:
    """``row`` as ``shape``: the fields ``shape`` has, taken from the row (a summary of a row, or
    a row without the extra fields of a subclass such as ``created`` or ``claim_token``)."""
    return shape.model_validate(row.model_dump(include=set(shape.model_fields)))


def when_verbose() -> Any:
    """The field holding the whole row: absent from the JSON unless verbose=true asked for it
    (a ``null`` in every answer would be bytes saying nothing)."""
    return Field(default=None, exclude_if=_is_none, description="With verbose=true.")


# --- sessions -------------------------------------------------------------------------------


class SessionSummary(BaseModel):
    """A session's identity, status and counters; get_session has its configuration."""

    id: uuid.UUID
    base_url: str
    status: SessionStatus
    pages_discovered: int
    pages_crawled: int
    bugs_found: int = Field(description="Distinct bugs (after grouping).")
    total_cost: float
    error_message: str | None = None
    created_at: datetime


class SessionAnswer(SessionSummary):
    next: str | None = Field(description="What to call next.")
    session: CrawlSessionPublic | None = when_verbose()

    @classmethod
    def after(
        cls, row: CrawlSessionPublic, next_step: str | None, *, verbose: bool, **extra: Any
    ) -> Self:
        return cls(
            **projected(SessionSummary, row).model_dump(),
            next=next_step,
            session=row if verbose else None,
            **extra,
        )


class SessionEnded(SessionAnswer):
    unfinished_pages: dict[PageStatus, int] = Field(
        description="Pages not finished when the session ended: 'discovered' ones were never "
        "crawled (they stay so); 'crawling' ones were stopped (now error)."
    )

    @classmethod
    def of_completed(cls, row: SessionCompleted, *, verbose: bool) -> Self:
        return cls.after(
            projected(CrawlSessionPublic, row),
            "read the report (export_session_report) and triage with get_session_bugs",
            verbose=verbose,
            unfinished_pages=row.unfinished_pages,
        )


class Listing(Pagination):
    """Summaries of rows, as many as fit the byte budget (see :func:`listing`)."""

    item_type: ClassVar[type[BaseModel]]
    truncated: bool = Field(
        default=False, description="True when the byte budget cut the list: go on at next_skip."
    )


class SessionListing(Listing):
    item_type = SessionSummary
    items: list[SessionSummary]


# --- pages ----------------------------------------------------------------------------------


class PageLease(BaseModel):
    """A page leased to you (mark_crawling, extend_claim): finish it with claim_token."""

    id: uuid.UUID
    url: str
    depth: int
    attempts: int = Field(description="How many times the page was handed to a worker.")
    claim_token: uuid.UUID
    lease_expires_at: datetime | None


class ClaimedPage(BaseModel):
    """A page of a claim: fetch url; its links are at depth + 1."""

    id: uuid.UUID
    url: str
    depth: int


class Claimed(BaseModel):
    """A claim: its pages and the one token that finishes any of them."""

    items: list[ClaimedPage] = Field(description="Pages now leased to you, in claim order.")
    claim_token: uuid.UUID | None = Field(
        description="Pass it with each of these pages to finish_page / mark_page_error."
    )
    lease_seconds: int = Field(
        description="Each page is yours this long from now; extend_claim for more."
    )
    remaining: int = Field(
        description="Discovered pages still waiting after this claim, counted up to 100 "
        "(100 means at least that many); 0 means the frontier is empty."
    )
    requeued: int = Field(
        default=0,
        exclude_if=_is_zero,
        description="Items handed out again: their earlier lease expired (absent: none).",
    )
    gave_up: int = Field(
        default=0,
        exclude_if=_is_zero,
        description="Pages set to error by this call: retry budget used up (absent: none).",
    )

    @classmethod
    def of(cls, claim: ClaimResult) -> Self:
        return cls(
            items=[projected(ClaimedPage, item) for item in claim.items],
            claim_token=claim.items[0].claim_token if claim.items else None,
            lease_seconds=claim.lease_seconds,
            remaining=claim.remaining,
            requeued=claim.requeued,
            gave_up=claim.gave_up,
        )


class PageAnswer(BaseModel):
    """A page after a write: its id and new status."""

    id: uuid.UUID
    status: PageStatus
    page: PagePublic | None = when_verbose()

    @classmethod
    def of(cls, row: PagePublic, *, verbose: bool) -> Self:
        return cls(
            **row.model_dump(include=set(cls.model_fields) - {"page"}),
            page=projected(PagePublic, row) if verbose else None,
        )


class PageAdded(PageAnswer):
    url: str = Field(description="The URL as stored (normalized).")
    depth: int
    created: bool = Field(description="False when the URL was already known in this session.")


class PageSummary(BaseModel):
    id: uuid.UUID
    url: str
    depth: int
    priority: int
    status: PageStatus
    attempts: int


class PageListing(Listing):
    item_type = PageSummary
    items: list[PageSummary]


# --- bugs -----------------------------------------------------------------------------------


class BugAnswer(BaseModel):
    """A filed report: which bug it is, whether it was new, and why it grouped."""

    id: uuid.UUID
    created: bool = Field(description="False: grouped with a known bug of the session.")
    occurrences: int = Field(description="Pages this bug was reported from.")
    grouping: Grouping
    bug: BugPublic | None = when_verbose()

    @classmethod
    def of(cls, filed: BugFiled, *, verbose: bool) -> Self:
        return cls(
            id=filed.id,
            created=filed.created,
            occurrences=filed.occurrences,
            grouping=filed.grouping,
            bug=projected(BugPublic, filed) if verbose else None,
        )


class BugChanged(BaseModel):
    """A bug after a triage step: its new status and what to do next."""

    id: uuid.UUID
    status: BugStatus
    linear_issue_id: str | None
    next: str = Field(description="What to do next with this bug.")
    bug: BugPublic | None = when_verbose()

    @classmethod
    def after(cls, row: BugPublic, next_step: str, *, verbose: bool) -> Self:
        return cls(
            id=row.id,
            status=row.status,
            linear_issue_id=row.linear_issue_id,
            next=next_step,
            bug=row if verbose else None,
        )


class BugSummary(BaseModel):
    """A bug in a listing: get_bug has its description, steps and evidence."""

    id: uuid.UUID
    page_id: uuid.UUID
    category: BugCategory
    priority: BugPriority
    status: BugStatus
    title: str
    confidence: float
    occurrences: int
    linear_issue_id: str | None


class BugListing(Listing):
    item_type = BugSummary
    items: list[BugSummary]


# --- listings -------------------------------------------------------------------------------

ListingT = TypeVar("ListingT", SessionListing, PageListing, BugListing)


def listing(
    shape: type[ListingT],
    rows: CrawlSessionList | PageList | BugList,
    budget: int = LISTING_BYTE_BUDGET,
) -> ListingT:
    """``rows`` as summaries of ``shape``'s item type, as many as fit in ``budget`` bytes of
    JSON (at least one, so a listing always moves on); when the budget cuts it, has_more and
    next_skip point at the first item left out."""
    items: list[Any] = []
    spent = 0
    for row in rows.items:
        item = projected(shape.item_type, row)
        size = len(pydantic_core.to_json(item)) + 1
        if items and spent + size > budget:
            break
        items.append(item)
        spent += size
    truncated = len(items) < len(rows.items)
    page = Pagination.of(rows.total, rows.skip, rows.limit, len(items))
    return shape(**page.model_dump(), items=items, truncated=truncated)
