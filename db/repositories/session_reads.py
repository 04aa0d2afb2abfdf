"""What the agent reads about crawl sessions: one session, its configuration (with secrets, for
the crawler), the list, and the statistics it reads to decide what to do next. Each one
statement, run in autocommit."""

import uuid

from db.connection.unit_of_work import reads
from db.enums import BugPriority, PageStatus, SessionStatus
from db.errors import InvalidArgument, NotFound
from db.repositories.base import Repository, count_filters_sql, counts_from_row
from db.repositories.statements import Statement
from db.rules.secrets import cipher_of, unseal
from db.schemas import CrawlConfig, CrawlSessionList, CrawlSessionPublic, SessionStatistics

OPEN_SESSION_STATUSES = (SessionStatus.PENDING, SessionStatus.RUNNING)

CONFIG_OF = Statement(
    "crawl_sessions config", "SELECT config FROM crawl_sessions WHERE id = :id", writes=False
)
# get_session_statistics in one statement: the session's row, then one pass over its pages and
# one over its bugs (each an aggregate without GROUP BY: always one row). The passes filter on
# ``session_id`` themselves, so each is planned for that session.
SESSION_STATISTICS = Statement(
    "crawl_sessions statistics",
    f"""
SELECT crawl.*, page_counts.*, bug_counts.*,
    extract(epoch FROM coalesce(crawl.completed_at, now()) - crawl.started_at) AS duration
FROM crawl_sessions AS crawl
CROSS JOIN LATERAL (
    SELECT {count_filters_sql("status", PageStatus)},
        count(*) FILTER (WHERE status = '{PageStatus.CRAWLING.value}'
            AND lease_expires_at > now()) AS pages_leased
    FROM pages WHERE session_id = :session_id
) AS page_counts
CROSS JOIN LATERAL (
    SELECT {count_filters_sql("priority", BugPriority)}
    FROM bugs WHERE session_id = :session_id
) AS bug_counts
WHERE crawl.id = :session_id
""",
    writes=False,
    returns=CrawlSessionPublic,
)


class SessionReads(Repository):
    @reads
    async def get(self, session_id: uuid.UUID) -> CrawlSessionPublic:
        return await self._fetch_one(CrawlSessionPublic, "crawl_sessions", session_id)

    @reads
    async def get_config(self, session_id: uuid.UUID) -> CrawlConfig:
        """The session's crawl configuration *with* secrets: a deliberate call for the crawler
        itself, never used to build tool output."""
        row = await CONFIG_OF.fetchrow(self.session, id=session_id)
        if row is None:
            raise NotFound("crawl session", session_id)
        return CrawlConfig.model_validate(unseal(row["config"], cipher_of(self.session)))

    @reads
    async def list(
        self, status: SessionStatus | None = None, skip: int = 0, limit: int = 20
    ) -> CrawlSessionList:
        """Sessions, newest first, optionally of one status; bounded by ``limit`` ≤ 100."""
        filtered = status is not None
        items, page = await self._list(
            CrawlSessionPublic,
            "crawl_sessions",
            conditions=("status = :status",) if filtered else (),
            arguments={"status": _session_status(status).value} if filtered else None,
            order_by="created_at DESC, id DESC",
            skip=skip,
            limit=limit,
        )
        return CrawlSessionList(items=items, **page.model_dump())

    @reads
    async def get_session_statistics(self, session_id: uuid.UUID) -> SessionStatistics:
        """Pages by status, bugs by priority, progress, cost and duration, in one statement
        (:data:`SESSION_STATISTICS`): one round trip."""
        row = await SESSION_STATISTICS.fetch_aggregate(self.session, session_id=session_id)
        if row is None:
            raise NotFound("crawl session", session_id)
        session = CrawlSessionPublic.model_validate(dict(row))  # the crawl_sessions columns
        by_status = counts_from_row(row, "status", PageStatus)
        by_priority = counts_from_row(row, "priority", BugPriority)
        pages_total = sum(by_status.values())
        finished = by_status[PageStatus.ANALYZED] + by_status[PageStatus.ERROR]
        return SessionStatistics(
            session=session,
            pages_total=pages_total,
            pages_by_status=by_status,
            crawl_progress=round(finished / pages_total, 4) if pages_total else 0.0,
            pages_leased=int(row["pages_leased"]),
            bugs_total=sum(by_priority.values()),
            bugs_by_priority=by_priority,
            total_cost=session.total_cost,
            duration_seconds=None if row["duration"] is None else float(row["duration"]),
        )


def _session_status(value: object) -> SessionStatus:
    try:
        return SessionStatus(str(value))
    except ValueError:
        allowed = ", ".join(m.value for m in SessionStatus)
        raise InvalidArgument("status", f"{value!r} is not one of: {allowed}") from None
