"""Crawl sessions: creation, life cycle (pending → running → completed | failed), counters and
cost, and the statistics an agent reads to decide what to do next."""

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Numeric, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import CursorResult

from db.driver import driver_connection, fetch_aggregate
from db.enums import BugPriority, PageStatus, SessionStatus
from db.errors import Conflict, CounterLimit, InvalidArgument, NotFound
from db.models import TENANT_DEFAULT, CrawlSession, Page
from db.repositories.base import Repository, count_filters_sql, counts_from_row
from db.schemas import (
    CrawlConfig,
    CrawlSessionList,
    CrawlSessionPublic,
    SessionCompleted,
    SessionStatistics,
)
from db.scope import CrawlScope
from db.secrets import cipher_of, seal, unseal
from db.urls import InvalidUrl

MAX_COST_PER_CALL = Decimal("10000")
# The statuses of pages a completion leaves unfinished (reported by complete_session).
_UNFINISHED = (PageStatus.DISCOVERED, PageStatus.CRAWLING)
# total_cost is NUMERIC(10, 4): at most 999999.9999 (USD), in steps of 0.0001. Derived from the
# column, so a wider column widens the limit.
_COST_TYPE = CrawlSession.__table__.c.total_cost.type
assert isinstance(_COST_TYPE, Numeric)
COST_STEP = Decimal(1).scaleb(-int(_COST_TYPE.scale or 0))
MAX_TOTAL_COST = (
    Decimal(10) ** (int(_COST_TYPE.precision or 0) - int(_COST_TYPE.scale or 0)) - COST_STEP
)


class CrawlSessionRepository(Repository):
    async def create_session(
        self,
        base_url: str,
        config: CrawlConfig | Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> CrawlSessionPublic:
        """Create a session in status ``pending`` with all counters at 0.

        With ``idempotency_key`` the call is replay-safe: the first call with a key creates the
        session; every later call with the same key (in the same tenant) creates nothing and
        returns that session as it is now (its first config stands), even when both run at
        once — the unique index on ``(tenant, idempotency_key)`` decides. A key already used
        for another base URL is a :class:`Conflict`."""
        if isinstance(config, CrawlConfig):
            crawl_config = config
        else:
            try:
                crawl_config = CrawlConfig.model_validate(dict(config or {}))
            except ValidationError as exc:
                raise InvalidArgument("config", _first_error(exc)) from None
        try:
            base_url = CrawlScope(base_url, crawl_config).normalize(base_url)
        except InvalidUrl as exc:
            raise InvalidArgument("base_url", str(exc)) from None
        if idempotency_key is not None:
            return await self._create_once(base_url, crawl_config, idempotency_key)
        row = CrawlSession(base_url=base_url, config=self._stored_config(crawl_config))
        self.session.add(row)
        await self.session.flush()
        await self.session.refresh(row)
        return CrawlSessionPublic.model_validate(row)

    async def _create_once(
        self, base_url: str, crawl_config: CrawlConfig, idempotency_key: str
    ) -> CrawlSessionPublic:
        created = await self.session.scalar(
            insert(CrawlSession)
            .values(
                base_url=base_url,
                config=self._stored_config(crawl_config),
                idempotency_key=idempotency_key,
            )
            .on_conflict_do_nothing(index_elements=["tenant", "idempotency_key"])
            .returning(CrawlSession.id)
        )
        if created is not None:
            return await self.get(created)
        row = await self.session.scalar(
            select(CrawlSession)
            .where(
                CrawlSession.tenant == literal_column(TENANT_DEFAULT),
                CrawlSession.idempotency_key == idempotency_key,
            )
            .execution_options(populate_existing=True)
        )
        # The key is the caller's text: named, never echoed (it may be huge, or a secret).
        if row is None:  # the row that conflicted is gone again (deleted meanwhile)
            raise Conflict("the idempotency_key is in use by a session being deleted; retry")
        if row.base_url != base_url:
            raise Conflict(
                f"the idempotency_key was already used to create crawl session {row.id} for "
                "another base_url; use a new key for another site"
            )
        return CrawlSessionPublic.model_validate(row)

    def _stored_config(self, config: CrawlConfig) -> dict[str, Any]:
        """The config as stored: the credentials password encrypted (refused without a key)."""
        return seal(config.to_storage(), cipher_of(self.session))

    async def _get_row(self, session_id: uuid.UUID) -> CrawlSession:
        row = await self.session.get(CrawlSession, session_id, populate_existing=True)
        if row is None:
            raise NotFound("crawl session", session_id)
        return row

    async def get(self, session_id: uuid.UUID) -> CrawlSessionPublic:
        return await self._fetch_one(CrawlSessionPublic, "crawl_sessions", session_id)

    async def get_config(self, session_id: uuid.UUID) -> CrawlConfig:
        """The session's crawl configuration *with* secrets: a deliberate call for the crawler
        itself, never used to build tool output."""
        stored = (await self._get_row(session_id)).config
        return CrawlConfig.model_validate(unseal(stored, cipher_of(self.session)))

    async def list(
        self, status: SessionStatus | None = None, skip: int = 0, limit: int = 20
    ) -> CrawlSessionList:
        """Sessions, newest first, optionally of one status; bounded by ``limit`` ≤ 100."""
        filtered = status is not None
        items, page = await self._list(
            CrawlSessionPublic,
            "crawl_sessions",
            conditions=("status = $1",) if filtered else (),
            arguments=(_session_status(status).value,) if filtered else (),
            order_by="created_at DESC, id DESC",
            skip=skip,
            limit=limit,
        )
        return CrawlSessionList(items=items, **page.model_dump())

    async def start_session(self, session_id: uuid.UUID) -> CrawlSessionPublic:
        """pending → running; sets ``started_at``."""
        row = await self._transition(
            CrawlSession,
            session_id,
            action="start",
            allowed_from=[SessionStatus.PENDING],
            values={"status": SessionStatus.RUNNING, "started_at": func.now()},
        )
        return CrawlSessionPublic.model_validate(row)

    async def complete_session(
        self,
        session_id: uuid.UUID,
        success: bool = True,
        error_message: str | None = None,
        force: bool = False,
    ) -> SessionCompleted:
        """running → completed (``success``), or pending | running → failed (with the error).

        Refused (:class:`Conflict`) while a worker still holds a live lease on a page of the
        session, unless ``force``. On completion every page still in ``crawling`` becomes
        ``error`` (its lease can no longer be honoured), so no page is left in flight. The
        answer says how many pages were left unfinished: still discovered, and stopped."""
        crawling = Page.status == PageStatus.CRAWLING
        leased, discovered = (
            await self.session.execute(
                select(
                    func.count().filter(crawling, Page.lease_expires_at > func.now()),
                    func.count().filter(Page.status == PageStatus.DISCOVERED),
                ).where(Page.session_id == session_id, Page.status.in_(_UNFINISHED))
            )
        ).one()
        if leased and not force:
            raise Conflict(
                f"cannot complete crawl session {session_id}: {leased} page(s) are still leased "
                "to workers; wait for them to finish, or pass force=true to stop them"
            )
        # Pages first, then the session row: the order in which every other write of a
        # session's rows takes its locks (mark_analyzed, create_bug and discovery change pages,
        # then the session's counters), so two of them can never deadlock. A refused status
        # change below rolls this back with the rest.
        stopped = await self.session.execute(
            update(Page)
            .where(Page.session_id == session_id, crawling)
            .values(
                status=PageStatus.ERROR,
                error_message="the crawl session ended while the page was being crawled",
                crawled_at=func.now(),
                claim_token=None,
                lease_expires_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        if success:
            target, allowed = SessionStatus.COMPLETED, [SessionStatus.RUNNING]
        else:
            target, allowed = SessionStatus.FAILED, [SessionStatus.PENDING, SessionStatus.RUNNING]
        row = await self._transition(
            CrawlSession,
            session_id,
            action="complete" if success else "fail",
            allowed_from=allowed,
            values={
                "status": target,
                "completed_at": func.now(),
                "error_message": None if success else error_message,
            },
        )
        assert isinstance(stopped, CursorResult)  # an UPDATE's result: it has a rowcount
        unfinished = {PageStatus.DISCOVERED: discovered, PageStatus.CRAWLING: stopped.rowcount}
        public = CrawlSessionPublic.model_validate(row)
        return SessionCompleted(**dict(public), unfinished_pages=unfinished)

    async def _increment(
        self,
        session_id: uuid.UUID,
        column: str,
        amount: int | Decimal,
        at_most: Decimal | None = None,
    ) -> CrawlSession:
        """``SET column = column + amount`` in SQL, so concurrent increments never get lost;
        returns the session as it is now (and its transaction's id, see _update_returning).

        With ``at_most``, the same statement changes nothing when the sum would pass it
        (:class:`CounterLimit`, after one read to say so): the check and the increment cannot
        be separated by a concurrent one."""
        col = CrawlSession.__table__.c[column]
        stmt = update(CrawlSession).where(CrawlSession.id == session_id)
        if at_most is not None:
            stmt = stmt.where(col + amount <= at_most)
        row = await self._update_returning(CrawlSession, stmt.values({column: col + amount}))
        if row is None:
            current = await self.session.scalar(select(col).where(CrawlSession.id == session_id))
            if current is None:
                raise NotFound("crawl session", session_id)
            assert at_most is not None  # without a limit, only a missing row matches nothing
            raise CounterLimit("crawl session", session_id, column, current, amount, at_most)
        return row

    async def increment_pages_discovered(self, session_id: uuid.UUID, count: int = 1) -> None:
        await self._increment(session_id, "pages_discovered", _non_negative("count", count))

    async def increment_pages_crawled(self, session_id: uuid.UUID, count: int = 1) -> None:
        await self._increment(session_id, "pages_crawled", _non_negative("count", count))

    async def increment_bugs_found(self, session_id: uuid.UUID, count: int = 1) -> None:
        await self._increment(session_id, "bugs_found", _non_negative("count", count))

    async def add_cost(self, session_id: uuid.UUID, cost: float | Decimal) -> CrawlSessionPublic:
        """Add AI spend (USD) to the session's ``total_cost``; returns the updated session.

        Refused (:class:`CounterLimit`, nothing changed) when the total would pass
        ``MAX_TOTAL_COST``, the most its column holds."""
        amount = Decimal(str(cost))
        if not amount.is_finite() or amount < 0 or amount > MAX_COST_PER_CALL:
            raise InvalidArgument(
                "cost", f"must be between 0 and {MAX_COST_PER_CALL} USD, got {cost}"
            )
        row = await self._increment(
            session_id, "total_cost", amount.quantize(COST_STEP), at_most=MAX_TOTAL_COST
        )
        return CrawlSessionPublic.model_validate(row)

    async def get_session_statistics(self, session_id: uuid.UUID) -> SessionStatistics:
        """Pages by status, bugs by priority, progress, cost and duration.

        One statement (:data:`SESSION_STATISTICS`, on the driver path), which the tool runs in
        autocommit: one round trip, where the ORM's unit of work took three."""
        conn = await driver_connection(self.session)
        row = await fetch_aggregate(conn, SESSION_STATISTICS, session_id)
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


# get_session_statistics in one statement, $1: session_id: the session's row, then one pass
# over its pages and one over its bugs (each an aggregate without GROUP BY: always one row).
# The passes filter on ``session_id = $1`` themselves, so each is planned for that session.
SESSION_STATISTICS = f"""
SELECT crawl.*, page_counts.*, bug_counts.*,
    extract(epoch FROM coalesce(crawl.completed_at, now()) - crawl.started_at) AS duration
FROM crawl_sessions AS crawl
CROSS JOIN LATERAL (
    SELECT {count_filters_sql("status", PageStatus)},
        count(*) FILTER (WHERE status = 'crawling' AND lease_expires_at > now()) AS pages_leased
    FROM pages WHERE session_id = $1
) AS page_counts
CROSS JOIN LATERAL (
    SELECT {count_filters_sql("priority", BugPriority)}
    FROM bugs WHERE session_id = $1
) AS bug_counts
WHERE crawl.id = $1
"""


def _session_status(value: object) -> SessionStatus:
    try:
        return SessionStatus(str(value))
    except ValueError:
        allowed = ", ".join(m.value for m in SessionStatus)
        raise InvalidArgument("status", f"{value!r} is not one of: {allowed}") from None


def _non_negative(field: str, value: int) -> int:
    if value < 0:
        raise InvalidArgument(field, f"must be 0 or more, got {value}")
    return value


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else str(err["msg"])
