"""Pydantic models of the pages of a crawl: the discovered link given to ``bulk_create``, the
page as returned, the frontier's claims, the bulk-discovery result, the page listing and
analytics, and the navigation graph.

The page entity's models, apart from the session's (``db.schemas``) and the bug's
(``db.bug_schemas``); the shared base is ``db.schema_base``.
"""

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from db.enums import BugCategory, BugPriority, PageStatus
from db.schema_base import InputModel, OutputModel, Pagination, Url

PRIORITY = "Higher: claimed sooner (e.g. 5: checkout)."


class NewPage(InputModel):
    """A discovered link, as passed to ``bulk_create``."""

    url: Url
    depth: int = Field(default=0, ge=0, le=1000)
    parent_page_id: uuid.UUID | None = None
    priority: int = Field(default=0, ge=-10, le=10, description=PRIORITY)


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
    priority: int = Field(default=0, description="Claimed highest first (-10..10).")
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


class PageList(Pagination):
    items: list[PagePublic]


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


class NewLink(InputModel):
    """A link found on the page being finished (``finish_page``)."""

    url: Url
    depth: int | None = Field(
        default=None, ge=0, le=1000, description="Link depth; default: the page's depth + 1."
    )
    priority: int = Field(default=0, ge=-10, le=10, description=PRIORITY)


class LinkCounts(BaseModel):
    created: int = Field(description="New pages added to the frontier.")
    known: int = Field(description="Already known, or repeats within the call (one page each).")
    refused: int = Field(description="Outside the crawl's limits (origin, depth, patterns…).")


class FiledBugRef(BaseModel):
    id: uuid.UUID
    created: bool = Field(description="False: grouped with a known bug of the session.")
    occurrences: int


class FinishedPage(BaseModel):
    """What ``finish_page`` changed, in a few bytes: no row is echoed back (nor the page id
    the caller sent)."""

    status: PageStatus
    links: LinkCounts
    bugs: list[FiledBugRef]
