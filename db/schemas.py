"""Pydantic models of crawl sessions: the crawl configuration an agent gives (with the site's
login, whose password is masked in every output), the session as returned, its listing and
statistics.

The session entity's models, apart from the page's (``db.page_schemas``) and the bug's
(``db.bug_schemas``); the shared base (input and output models, URLs, pagination) is
``db.schema_base``.
"""

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, field_serializer, field_validator
from pydantic_core.core_schema import SerializationInfo

from db.enums import BugPriority, PageStatus, SessionStatus
from db.rules.secrets import ENCRYPTED
from db.rules.urls import TrailingSlash, check_no_userinfo
from db.schema_base import InputModel, OutputModel, Pagination, Url

MASK = "**********"


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


class CrawlSessionList(Pagination):
    items: list[CrawlSessionPublic]


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
