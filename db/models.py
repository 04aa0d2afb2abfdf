"""ORM models: exactly the seed's tables, columns, types and indexes (database-architecture.md).

PostgreSQL enforces the invariants: vocabularies and ranges are CHECK constraints, uniqueness
of a page per session is a unique index, relations are foreign keys with the seed's delete rules.
Timestamps are ``timestamptz``; ``created_at``/``updated_at`` are set by the database and
``updated_at`` moves on every UPDATE issued through SQLAlchemy (ORM or Core).
"""

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db.enums import BugCategory, BugPriority, BugStatus, PageStatus, SessionStatus

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _one_of(column: str, values: type[StrEnum]) -> str:
    allowed = ", ".join(f"'{member.value}'" for member in values)
    return f"{column} IN ({allowed})"


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True),
        primary_key=True,
        server_default=text("gen_random_uuid()"),
    )


# The tenant (project) a row belongs to (revision 0003). Filled by the database from the
# transaction's ``bughive.tenant`` setting, so no repository has to pass it; row-level security
# policies compare against the same setting. Single-tenant deployments see 'default'.
TENANT_DEFAULT = "coalesce(nullif(current_setting('bughive.tenant', true), ''), 'default')"


def _tenant() -> Mapped[str]:
    return mapped_column(String(100), nullable=False, server_default=text(TENANT_DEFAULT))


def _owned_by(table: str) -> Mapped[uuid.UUID]:
    """A required, indexed reference to a row of ``table``: the row goes with it (CASCADE)."""
    return mapped_column(
        UUID(as_uuid=True),
        ForeignKey(f"{table}.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )


def _json_array() -> Mapped[Any]:
    """A JSON array, empty unless given."""
    return mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def _updated_at() -> Mapped[datetime]:
    return mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )


class CrawlSession(Base):
    __tablename__ = "crawl_sessions"

    id: Mapped[uuid.UUID] = _uuid_pk()
    base_url: Mapped[str] = mapped_column(String(2048), nullable=False, index=True)
    status: Mapped[str] = mapped_column(
        String(20), nullable=False, index=True, server_default=SessionStatus.PENDING.value
    )
    config: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pages_discovered: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    pages_crawled: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    bugs_found: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    total_cost: Mapped[Decimal] = mapped_column(Numeric(10, 4), nullable=False, server_default="0")
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    tenant: Mapped[str] = _tenant()
    # A client-chosen key that makes create_session safe to retry (revision 0003).
    idempotency_key: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        CheckConstraint(_one_of("status", SessionStatus), name="status"),
        Index("ix_crawl_sessions_tenant", "tenant"),
        Index("uq_crawl_sessions_tenant_idempotency_key", "tenant", "idempotency_key", unique=True),
        CheckConstraint(
            "pages_discovered >= 0 AND pages_crawled >= 0 AND bugs_found >= 0",
            name="counters_non_negative",
        ),
        CheckConstraint("total_cost >= 0", name="total_cost_non_negative"),
        Index(None, "status", "created_at"),
        Index(None, "base_url", "status"),
    )


class Page(Base):
    __tablename__ = "pages"

    id: Mapped[uuid.UUID] = _uuid_pk()
    session_id: Mapped[uuid.UUID] = _owned_by("crawl_sessions")
    parent_page_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("pages.id", ondelete="SET NULL"), index=True
    )
    url: Mapped[str] = mapped_column(String(2048), nullable=False, index=True)
    title: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(
        String(20), nullable=False, index=True, server_default=PageStatus.DISCOVERED.value
    )
    depth: Mapped[int] = mapped_column(Integer, nullable=False, index=True, server_default="0")
    screenshot_url: Mapped[str | None] = mapped_column(String(2048))
    analysis_result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    response_time_ms: Mapped[int | None] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer, index=True)
    content_type: Mapped[str | None] = mapped_column(String(255))
    content_length: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    discovered_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    crawled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    # The crawl frontier (revision 0002): a page in 'crawling' is leased to one worker, who
    # proves it holds the lease with claim_token; attempts counts leases handed out.
    claim_token: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # Claimed highest first, then shallowest, then oldest (revision 0007).
    priority: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="0")
    tenant: Mapped[str] = _tenant()

    __table_args__ = (
        CheckConstraint(_one_of("status", PageStatus), name="status"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        CheckConstraint("priority BETWEEN -10 AND 10", name="priority_range"),
        CheckConstraint(
            f"(status = '{PageStatus.CRAWLING.value}') = "
            "(claim_token IS NOT NULL AND lease_expires_at IS NOT NULL)",
            name="lease_iff_crawling",
        ),
        Index(
            "ix_pages_frontier",
            "session_id",
            text("priority DESC"),
            "depth",
            "discovered_at",
            "id",
            postgresql_where=text(f"status = '{PageStatus.DISCOVERED.value}'"),
        ),
        Index(
            "ix_pages_leases",
            "session_id",
            "lease_expires_at",
            # not "status = 'crawling'" (the same rows, by lease_iff_crawling): see revision 0005
            postgresql_where=text("lease_expires_at IS NOT NULL"),
        ),
        CheckConstraint("depth >= 0", name="depth_non_negative"),
        CheckConstraint(
            "status_code IS NULL OR status_code BETWEEN 100 AND 599", name="status_code_range"
        ),
        CheckConstraint(
            "(response_time_ms IS NULL OR response_time_ms >= 0)"
            " AND (content_length IS NULL OR content_length >= 0)",
            name="measures_non_negative",
        ),
        Index(None, "session_id", "status"),
        Index(None, "session_id", "depth"),
        Index("uq_pages_url_session_id", "url", "session_id", unique=True),
    )


class Bug(Base):
    __tablename__ = "bugs"

    id: Mapped[uuid.UUID] = _uuid_pk()
    session_id: Mapped[uuid.UUID] = _owned_by("crawl_sessions")
    page_id: Mapped[uuid.UUID] = _owned_by("pages")
    category: Mapped[str] = mapped_column(String(50), nullable=False, index=True)
    priority: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    title: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    steps_to_reproduce: Mapped[list[str]] = _json_array()
    evidence: Mapped[list[dict[str, Any]]] = _json_array()
    confidence: Mapped[float] = mapped_column(Float, nullable=False, index=True)
    status: Mapped[str] = mapped_column(
        String(20), nullable=False, index=True, server_default=BugStatus.DETECTED.value
    )
    linear_issue_id: Mapped[str | None] = mapped_column(String(100), index=True)
    linear_issue_url: Mapped[str | None] = mapped_column(String(500))
    expected_behavior: Mapped[str | None] = mapped_column(Text)
    actual_behavior: Mapped[str | None] = mapped_column(Text)
    affected_users: Mapped[str | None] = mapped_column(String(255))
    browser_info: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    dismissed_reason: Mapped[str | None] = mapped_column(Text)
    dismissed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), index=True
    )
    updated_at: Mapped[datetime] = _updated_at()
    # Deduplication (revision 0002): one row per distinct bug of a session; every report of it
    # (from any page) is a BugOccurrence, and occurrences counts them.
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    occurrences: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    tenant: Mapped[str] = _tenant()

    __table_args__ = (
        CheckConstraint(_one_of("category", BugCategory), name="category"),
        CheckConstraint("occurrences >= 1", name="occurrences_positive"),
        Index("uq_bugs_session_id_fingerprint", "session_id", "fingerprint", unique=True),
        CheckConstraint(_one_of("priority", BugPriority), name="priority"),
        CheckConstraint(_one_of("status", BugStatus), name="status"),
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence_range"),
        Index(None, "session_id", "priority"),
        Index(None, "session_id", "category"),
        Index(None, "session_id", "status"),
        Index(None, "page_id", "priority"),
    )


class BugOccurrence(Base):
    """One report of a bug from one page. A repeated report from the same page is the same
    occurrence (retries never inflate the count)."""

    __tablename__ = "bug_occurrences"

    id: Mapped[uuid.UUID] = _uuid_pk()
    bug_id: Mapped[uuid.UUID] = _owned_by("bugs")
    session_id: Mapped[uuid.UUID] = _owned_by("crawl_sessions")
    page_id: Mapped[uuid.UUID] = _owned_by("pages")
    evidence: Mapped[list[dict[str, Any]]] = _json_array()
    created_at: Mapped[datetime] = _created_at()
    tenant: Mapped[str] = _tenant()

    __table_args__ = (Index("uq_bug_occurrences_bug_id_page_id", "bug_id", "page_id", unique=True),)
