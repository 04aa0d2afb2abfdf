"""Pydantic models of bugs: the evidence an agent files with a bug (an input), the bug as
returned, the bug listing and statistics, and a line of a session report's bug table.

The bug entity's models, apart from the session's (``db.schemas``) and the page's
(``db.page_schemas``); the shared base is ``db.schema_base``.
"""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from db.enums import BugCategory, BugPriority, BugStatus, EvidenceType
from db.rules.untrusted import UNTRUSTED
from db.schema_base import InputModel, OutputModel, Pagination, Url


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


class Grouping(BaseModel):
    """Why a report was filed as a new bug or grouped with a known one: what its fingerprint
    was made of (db/rules/fingerprint.py)."""

    key: Literal["title", "dedup_key"] = Field(
        description="title: the category and normalized title; dedup_key: the category and key."
    )
    scope: Literal["site", "template", "page"] | None = Field(
        description="Where one title is one bug: the whole session (site), pages of one path "
        "template, or one page. None with a dedup_key."
    )
    normalized: str = Field(description="The title (or key) as compared.")
    fingerprint_version: int


class FiledBugRow(BugPublic):
    """What the filing statement returns: the bug's row, and whether it was new."""

    created: bool = Field(
        description="False when this is a known bug of the session (a new occurrence of it)."
    )


class BugFiled(FiledBugRow):
    grouping: Grouping


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
