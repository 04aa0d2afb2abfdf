"""The crawl frontier: leased claims with fencing, and finishing a page.

Contract: **at-least-once delivery with fenced completion.** A claim leases pages to one
worker for ``lease_seconds``; if the worker dies, the lease runs out and the next claim hands
the page out again (up to ``max_attempts`` leases, then the page becomes ``error``).
Completion (``mark_analyzed`` / ``mark_error`` with the ``claim_token``) and ``extend_claim``
succeed only while the token still holds the page, so a stale worker's late write changes
nothing. Finishing a page raises the session's ``pages_crawled`` in the same statement: page
row first, session row last (the lock order of every write, db.repositories).
"""

import functools
import json
import uuid
from collections.abc import Mapping
from typing import Any, NoReturn

from db.connection.unit_of_work import single_write, writes
from db.enums import PageStatus
from db.errors import (
    InvalidArgument,
    InvalidTransition,
    NotFound,
)
from db.page_schemas import ClaimResult, PageClaim, PagePublic
from db.repositories.base import RETURNING_XID, Repository, Transition, sql_list
from db.repositories.leases import (
    CLAIM_LEASE_GRANTED,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    HELD_BY_TOKEN,
    LEASE_ENDED,
    LEASE_GRANTED,
    LEASE_OF_PAGE,
    check_lease,
    fenced_refusal,
)
from db.repositories.session_reads import OPEN_SESSION_STATUSES
from db.repositories.sessions import counting_statement
from db.repositories.statements import Statement, family

MAX_CLAIM = 100
# A claim reports how many pages still wait, but counts no further than this (docs/benchmarks.md:
# counting them all made every claim a pass over the frontier). Enough to say "more work is
# waiting"; get_session_statistics has the exact figures.
REMAINING_COUNT_CAP = 100
_CRAWLING = f"'{PageStatus.CRAWLING.value}'"
_DISCOVERED = f"'{PageStatus.DISCOVERED.value}'"

# mark_analyzed in one statement: crawling → analyzed for page :id — only while :claim_token
# holds it, when one is given — with the analysis, and the session's pages_crawled raised with
# it. No row: the page was not changed (the caller asks why).
FINISHING_WRITE = f"""
    UPDATE pages
    SET status = '{PageStatus.ANALYZED.value}', title = :title, screenshot_url = :screenshot_url,
        analysis_result = :analysis_result, response_time_ms = :response_time_ms,
        status_code = :status_code, content_type = :content_type,
        content_length = :content_length, crawled_at = now(), error_message = NULL,
        {LEASE_ENDED}, updated_at = now()
    WHERE id = :id AND status = {_CRAWLING}
        AND (CAST(:claim_token AS uuid) IS NULL OR claim_token = :claim_token)"""
_FINISHING = FINISHING_WRITE + "\n    RETURNING *\n"
FINISH_PAGE = counting_statement(
    "pages finish",
    "finished",
    _FINISHING,
    counter="pages_crawled",
    where="id = (SELECT session_id FROM finished)",
    returns=PagePublic,
)
MARK_CRAWLING = Transition(
    "pages", "mark crawling", [PageStatus.DISCOVERED], LEASE_GRANTED, returns=PageClaim
)
EXTEND_CLAIM = Statement(
    "pages extend claim",
    f"""
UPDATE pages SET lease_expires_at = now() + :lease_seconds * interval '1 second',
    updated_at = now()
WHERE id = :id AND {HELD_BY_TOKEN}
RETURNING *, {RETURNING_XID}
""",
    writes=True,
    returns=PageClaim,
)
_ERROR_SET = (
    f"status = '{PageStatus.ERROR.value}', error_message = :error_message, crawled_at = now(), "
    f"{LEASE_ENDED}"
)
MARK_ERROR = Transition(
    "pages",
    "mark error",
    [PageStatus.DISCOVERED, PageStatus.CRAWLING],
    _ERROR_SET,
    returns=PagePublic,
)
GIVE_UP_UNCLAIMED = Transition(
    "pages", "give up on", [PageStatus.DISCOVERED], _ERROR_SET, returns=PagePublic
)
MARK_ERROR_FENCED = Statement(
    "pages mark error fenced",
    f"""
UPDATE pages SET {_ERROR_SET}, updated_at = now()
WHERE id = :id AND {HELD_BY_TOKEN}
RETURNING *, {RETURNING_XID}
""",
    writes=True,
    returns=PagePublic,
)
# The whole claim in one statement (one round trip). Its parts, in the order they act:
# - ``crawl``: the session's status — no row: it does not exist; not open: nothing is taken;
# - ``expired``: leases that ran out, oldest first, locked with SKIP LOCKED. A page has a lease
#   if and only if it is crawling (CHECK lease_iff_crawling), so there is no status condition:
#   one would let the planner read every in-flight page through the status index instead of
#   the expired range of ix_pages_leases (revision 0005);
# - ``spent``: those whose retry budget is used up become 'error';
# - ``retry`` + ``fresh`` → ``picked``: the pages handed out — expired ones first, then
#   discovered ones by priority (highest first), then shallowest and oldest (ix_pages_frontier), up to {limit} in all (a
#   fresh page locked but not picked, because expired ones came first, is free at the commit);
# - ``token``: the claim's one claim_token, drawn once (MATERIALIZED);
# - ``claimed``: the lease itself, by primary key (``= ANY(ARRAY(…))``: the row estimate of a
#   LIMIT must not tempt the planner into a hash join over the table); the final row(s) add
#   the counts and the transaction's id (NULL when nothing was written). Both updates also
#   name the session (redundant here): on Citus (docs/scaling.md) that keeps the whole
#   statement on the session's shard. A statement's snapshot does not see its own updates:
#   ``waiting`` still counts this claim's fresh pages, and the repository subtracts them.
_CLAIM_TEMPLATE = f"""
WITH crawl AS (
    SELECT status FROM crawl_sessions WHERE id = :session_id
), open_crawl AS (
    SELECT 1 FROM crawl WHERE status IN ({sql_list(OPEN_SESSION_STATUSES)})
), expired AS (
    SELECT id, attempts FROM pages
    WHERE session_id = :session_id AND lease_expires_at < now()
        AND EXISTS (SELECT 1 FROM open_crawl)
    ORDER BY lease_expires_at
    LIMIT {{expired_batch}}
    FOR UPDATE SKIP LOCKED
), spent AS (
    UPDATE pages AS p
    SET status = '{PageStatus.ERROR.value}',
        error_message = format('gave up after %s attempts: the lease expired each time (the '
            'worker died or took longer than lease_seconds)', p.attempts),
        crawled_at = now(), {LEASE_ENDED}, updated_at = now()
    WHERE p.id = ANY(ARRAY(SELECT id FROM expired WHERE attempts >= :max_attempts))
        AND p.session_id = :session_id
    RETURNING p.id
), retry AS (
    SELECT id FROM expired WHERE attempts < :max_attempts LIMIT {{limit}}
), fresh AS (
    SELECT id FROM pages
    WHERE session_id = :session_id AND status = {_DISCOVERED}
        AND EXISTS (SELECT 1 FROM open_crawl)
    ORDER BY priority DESC, depth, discovered_at, id
    LIMIT {{limit}}
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id FROM (
        SELECT id, 0 AS rank FROM retry UNION ALL SELECT id, 1 AS rank FROM fresh
    ) AS candidates
    ORDER BY rank
    LIMIT {{limit}}
), token AS MATERIALIZED (
    SELECT gen_random_uuid() AS value
), claimed AS (
    UPDATE pages AS p
    SET {CLAIM_LEASE_GRANTED}, updated_at = now()
    WHERE p.id = ANY(ARRAY(SELECT id FROM picked)) AND p.session_id = :session_id
    RETURNING p.*
)
SELECT crawl.status AS crawl_status,
    (SELECT count(*) FROM retry) AS requeued,
    (SELECT count(*) FROM spent) AS gave_up,
    (SELECT count(*) FROM (
        SELECT 1 FROM pages WHERE session_id = :session_id AND status = {_DISCOVERED}
        LIMIT {{count_cap}}) AS w) AS waiting,
    pg_current_xact_id_if_assigned()::text AS xid,
    claimed.*
FROM crawl LEFT JOIN claimed ON true
ORDER BY claimed.priority DESC, claimed.depth, claimed.discovered_at, claimed.id
"""


@functools.cache
def claim_statement(limit: int) -> Statement:
    """The claim of up to ``limit`` pages (1…MAX_CLAIM, checked by the caller).

    The limits are literals, not parameters: with ``LIMIT $n`` the planner cannot know the
    plan's cost without the value, so PostgreSQL planned the statement afresh on every
    execution; with literals its cached generic plan is as good as a custom one and is reused
    (docs/benchmarks.md). One prepared statement per distinct limit."""
    sql = _CLAIM_TEMPLATE.format(
        limit=int(limit), expired_batch=MAX_CLAIM, count_cap=REMAINING_COUNT_CAP + int(limit)
    )
    return Statement(f"pages claim {limit}", sql, writes=True, returns=PageClaim, register=False)


family("pages claim", lambda: claim_statement(10))


class PageFrontier(Repository):
    @single_write
    async def claim_pages_to_crawl(
        self,
        session_id: uuid.UUID,
        limit: int = 10,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> ClaimResult:
        """Atomically lease up to ``limit`` pages to the caller under one ``claim_token``
        (each page row holds it; every page of the claim carries it): first pages whose earlier lease expired (their worker died; counted in
        ``requeued``), then discovered pages, shallowest first, then oldest. An expired page
        whose ``max_attempts`` leases are spent becomes ``error`` instead (``gave_up``).

        One statement (:func:`claim_statement`): the session check, the expired leases, the
        pick with ``FOR UPDATE SKIP LOCKED`` and the update — so concurrent callers never
        receive the same page, never wait for each other, and a claim costs one round trip.
        The picks are served by the partial indexes ``ix_pages_leases`` and
        ``ix_pages_frontier``: the cost does not grow with the number of pages.

        ``remaining`` is exact up to ``REMAINING_COUNT_CAP`` (100) and says 100 beyond it
        ("at least that many"); 0 still means the frontier is empty."""
        if not 1 <= limit <= MAX_CLAIM:
            raise InvalidArgument("limit", f"must be between 1 and {MAX_CLAIM}, got {limit}")
        if max_attempts < 1:
            raise InvalidArgument("max_attempts", f"must be 1 or more, got {max_attempts}")
        check_lease(lease_seconds)
        rows = await claim_statement(limit).fetch(
            self.session,
            session_id=session_id,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
        )
        if not rows:
            raise NotFound("crawl session", session_id, field="session_id")
        first = rows[0]
        if first["crawl_status"] not in OPEN_SESSION_STATUSES:
            raise InvalidTransition(
                "crawl session",
                session_id,
                "claim pages of",
                first["crawl_status"],
                OPEN_SESSION_STATUSES,
            )
        self.session.remember_transaction_id(first["xid"])
        items = [PageClaim.model_validate(dict(r)) for r in rows if r["id"] is not None]
        requeued = int(first["requeued"])
        # The statement's snapshot still counts its own fresh picks as waiting.
        waiting = int(first["waiting"]) - (len(items) - requeued)
        return ClaimResult(
            items=items,
            lease_seconds=lease_seconds,
            remaining=min(max(waiting, 0), REMAINING_COUNT_CAP),
            requeued=requeued,
            gave_up=int(first["gave_up"]),
        )

    @writes
    async def mark_crawling(
        self, page_id: uuid.UUID, lease_seconds: int = DEFAULT_LEASE_SECONDS
    ) -> PageClaim:
        """Take one discovered page (compare-and-set discovered → crawling): only one caller
        can win a page. Returns it with a ``claim_token`` and a lease, like a claim."""
        return await self._transition(
            MARK_CRAWLING, page_id, lease_seconds=check_lease(lease_seconds)
        )

    @writes
    async def extend_claim(
        self,
        page_id: uuid.UUID,
        claim_token: uuid.UUID,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
    ) -> PageClaim:
        """Heartbeat: renew the lease to ``lease_seconds`` from now, if ``claim_token`` still
        holds the page. A slow but live worker is not overtaken."""
        row = await self._fenced(
            EXTEND_CLAIM, page_id, claim_token, lease_seconds=check_lease(lease_seconds)
        )
        return PageClaim.model_validate(dict(row))

    async def _fenced(
        self, statement: Statement, page_id: uuid.UUID, claim_token: uuid.UUID, **params: Any
    ) -> Mapping[str, Any]:
        """Run a write fenced by ``claim_token`` (its ``WHERE`` has :data:`HELD_BY_TOKEN`);
        when it matched nothing, say why (:meth:`_refuse_fenced_write`)."""
        row = await statement.fetchrow(self.session, id=page_id, claim_token=claim_token, **params)
        if row is None:
            await self._refuse_fenced_write(page_id, claim_token)
        self.session.remember_transaction_id(row["xid"])
        found: Mapping[str, Any] = row
        return found

    async def _refuse_fenced_write(self, page_id: uuid.UUID, claim_token: uuid.UUID) -> NoReturn:
        """Why a fenced write matched nothing, from one read of the page's lease (only on this
        failure path): the write's own statement cannot say, as it sees the row as it was when
        it started, not as the refusal found it."""
        lease = await LEASE_OF_PAGE.fetchrow(self.session, id=page_id)
        if lease is None:
            raise NotFound("page", page_id)
        raise fenced_refusal(page_id, claim_token, lease)

    @writes
    async def mark_analyzed(
        self,
        page_id: uuid.UUID,
        title: str | None = None,
        screenshot_url: str | None = None,
        analysis_result: dict[str, Any] | None = None,
        response_time_ms: int | None = None,
        status_code: int | None = None,
        content_type: str | None = None,
        content_length: int | None = None,
        claim_token: uuid.UUID | None = None,
    ) -> PagePublic:
        """crawling → analyzed; stores the analysis and raises the session's
        ``pages_crawled`` by one in the same statement (:data:`FINISH_PAGE`). With
        ``claim_token`` the write is fenced: refused unless the token still holds the page
        (:func:`fenced_refusal` says why: not the page's token, lease lost, or already
        finished). A second statement only to say why, when the page was not changed."""
        row = await FINISH_PAGE.fetchrow(
            self.session,
            id=page_id,
            claim_token=claim_token,
            title=title,
            screenshot_url=screenshot_url,
            analysis_result=None if analysis_result is None else json.dumps(analysis_result),
            response_time_ms=response_time_ms,
            status_code=status_code,
            content_type=content_type,
            content_length=content_length,
        )
        if row is None:
            if claim_token is not None:
                await self._refuse_fenced_write(page_id, claim_token)
            await self._refuse_transition(
                "pages", page_id, action="mark analyzed", allowed_from=[PageStatus.CRAWLING]
            )
        self.session.remember_transaction_id(row["xid"])
        return PagePublic.model_validate(dict(row))

    @writes
    async def mark_error(
        self, page_id: uuid.UUID, error_message: str, claim_token: uuid.UUID | None = None
    ) -> PagePublic:
        """discovered | crawling → error, with the reason (e.g. a timeout or a 5xx); fenced
        like ``mark_analyzed`` when ``claim_token`` is given."""
        if claim_token is None:
            return await self._transition(MARK_ERROR, page_id, error_message=error_message)
        row = await self._fenced(
            MARK_ERROR_FENCED, page_id, claim_token, error_message=error_message
        )
        return PagePublic.model_validate(dict(row))

    @writes
    async def give_up_unclaimed(self, page_id: uuid.UUID, error_message: str) -> PagePublic:
        """discovered → error, for a page nobody has claimed, so no claim_token exists. A
        claimed page is refused, naming ``claim_token``: only the worker holding it may give
        it up (:meth:`mark_error` with the token), or a stale worker could end another's
        lease."""
        row = await GIVE_UP_UNCLAIMED.statement.fetchrow(
            self.session, id=page_id, error_message=error_message
        )
        if row is None:
            if await self._current_status("pages", page_id) == PageStatus.CRAWLING:
                raise InvalidArgument(
                    "claim_token",
                    f"page {page_id} is claimed (status '{PageStatus.CRAWLING.value}'): pass "
                    "the claim_token of your claim; nothing was changed",
                )
            await self._refuse_transition(
                "pages", page_id, action="give up on", allowed_from=[PageStatus.DISCOVERED]
            )
        self.session.remember_transaction_id(row["xid"])
        return PagePublic.model_validate(dict(row))
