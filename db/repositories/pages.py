"""Pages of a crawl: discovery (idempotent per normalized URL and session, within the session's
crawl limits), the crawl frontier (leased claims with fencing), and the read models.

Counters live with the data: creating pages raises the session's ``pages_discovered`` by the
number of rows actually inserted, analysing a page raises ``pages_crawled`` — in the caller's
transaction, so they can never drift from the rows.

Frontier contract: **at-least-once delivery with fenced completion.** A claim leases pages to
one worker for ``lease_seconds``; if the worker dies, the lease runs out and the next claim
hands the page out again (up to ``max_attempts`` leases, then the page becomes ``error``).
Completion (``mark_analyzed`` / ``mark_error`` with the ``claim_token``) and ``extend_claim``
succeed only while the token still holds the page, so a stale worker's late write changes
nothing.
"""

import functools
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, NoReturn

from pydantic import ValidationError
from sqlalchemy import ARRAY, Integer, String, bindparam, func, literal, select, update
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import ColumnElement

from db.database import remember_transaction_id
from db.driver import driver_connection
from db.enums import BugCategory, BugPriority, PageStatus, SessionStatus
from db.errors import (
    ConcurrentUpdate,
    Conflict,
    DomainError,
    InvalidArgument,
    InvalidTransition,
    LeaseLost,
    NotFound,
    OutOfScope,
)
from db.models import CrawlSession, Page
from db.repositories.base import (
    Repository,
    check_page_bounds,
    count_filters_sql,
    counts_from_row,
    listed_rows,
    listing_statement,
)
from db.repositories.sessions import CrawlSessionRepository
from db.schemas import (
    BulkCreateResult,
    ClaimResult,
    CrawlConfig,
    DuplicateUrl,
    GraphEdge,
    GraphNode,
    NavigationGraph,
    NewPage,
    PageAnalytics,
    PageClaim,
    PageCreated,
    PageList,
    PagePublic,
    PageRef,
    RefusedPage,
)
from db.scope import CrawlScope
from db.secrets import without_credentials

PAGES = Page.metadata.tables[Page.__tablename__]  # typed as a Table (a Core insert)
OPEN_SESSION_STATUSES = (SessionStatus.PENDING, SessionStatus.RUNNING)
MAX_BULK_PAGES = 10_000
# New pages per INSERT of bulk_create: each chunk written is one progress report.
INSERT_CHUNK = 1000
MAX_GRAPH_NODES = 5_000
MAX_CLAIM = 100
DEFAULT_LEASE_SECONDS = 300
MAX_LEASE_SECONDS = 24 * 3600
DEFAULT_MAX_ATTEMPTS = 3
# A claim reports how many pages still wait, but counts no further than this: counting them
# all made every claim a pass over the frontier (94 ms at 1M pending pages, vs 5 ms raw), and
# even 1,000 was a third of a claim's time in the database on a busy frontier (the index
# entries of pages already claimed each cost a heap visit until vacuum). Enough to say "more
# work is waiting"; get_session_statistics has the exact figures.
REMAINING_COUNT_CAP = 100

_OPEN = ", ".join(f"'{s.value}'" for s in OPEN_SESSION_STATUSES)

# mark_analyzed in one statement: crawling → analyzed for page $1 — only while claim token $2
# holds it, when one is given — with the analysis ($3…$9), and the session's pages_crawled
# raised with it. No row: the page was not changed (the caller asks why).
FINISH_PAGE = """
WITH finished AS (
    UPDATE pages
    SET status = 'analyzed', title = $3, screenshot_url = $4, analysis_result = $5,
        response_time_ms = $6, status_code = $7, content_type = $8, content_length = $9,
        crawled_at = now(), error_message = NULL, claim_token = NULL, lease_expires_at = NULL,
        updated_at = now()
    WHERE id = $1 AND status = 'crawling' AND ($2::uuid IS NULL OR claim_token = $2)
    RETURNING *
), counted AS (
    UPDATE crawl_sessions SET pages_crawled = pages_crawled + 1, updated_at = now()
    WHERE id = (SELECT session_id FROM finished)
    RETURNING id
)
SELECT finished.*, pg_current_xact_id()::text AS xid FROM finished
"""


# get_pages_to_crawl in one statement: no row — the session ($1) does not exist; otherwise the
# count of discovered pages and the requested page of them, shallowest first
# (ix_pages_frontier), or one row of NULLs past the end. Limit and offset are literals, for
# the reason claim_statement gives (planning was 0.2 ms of a 0.65 ms statement).
@functools.lru_cache(maxsize=256)
def frontier_page_statement(limit: int, skip: int) -> str:
    """get_pages_to_crawl's statement for one page of the frontier (bounds checked by the
    caller): discovered pages, shallowest first, then oldest (``ix_pages_frontier``)."""
    return listing_statement("pages", _FRONTIER, _SHALLOWEST, skip, limit, of_session=True)


_FRONTIER = ("status = 'discovered'",)
_SHALLOWEST = "depth, discovered_at, id"  # shallowest first, then oldest
_GRAPH_COLUMNS = "id, url, title, depth, status, parent_page_id"

# get_page_analytics in one statement, $1: page_id — the page's row, one pass over its bugs,
# a count of its children (no row: no such page).
PAGE_ANALYTICS = f"""
SELECT page.*, bug_counts.*, children.children_count
FROM pages AS page
CROSS JOIN LATERAL (
    SELECT {count_filters_sql("priority", BugPriority)},
        {count_filters_sql("category", BugCategory)}
    FROM bugs WHERE page_id = page.id
) AS bug_counts
CROSS JOIN LATERAL (
    SELECT count(*) AS children_count FROM pages WHERE parent_page_id = page.id
) AS children
WHERE page.id = $1
"""


def frontier_page(rows: Sequence[Mapping[str, Any]], skip: int, limit: int) -> PageList:
    """The answer of get_pages_to_crawl from its statement's rows."""
    items, page = listed_rows(rows, PagePublic, skip, limit)
    return PageList(items=items, **page.model_dump())


# The whole claim in one statement (one round trip, on the driver path: db.driver), with
# parameters $1 session_id, $2 lease_seconds, $3 max_attempts; the limits are literals, see
# claim_statement. Its parts, in the order they act:
# - ``crawl``: the session's status — no row: it does not exist; not open: nothing is taken;
# - ``expired``: leases that ran out, oldest first, locked with SKIP LOCKED. A page has a lease
#   if and only if it is crawling (CHECK lease_iff_crawling), so there is no status condition:
#   one would let the planner read every in-flight page through the status index instead of
#   the expired range of ix_pages_leases (revision 0005);
# - ``spent``: those whose retry budget is used up become 'error';
# - ``retry`` + ``fresh`` → ``picked``: the pages handed out — expired ones first, then
#   discovered ones shallowest and oldest first (ix_pages_frontier), up to {limit} in all (a
#   fresh page locked but not picked, because expired ones came first, is free at the commit);
# - ``claimed``: the lease itself, by primary key (``= ANY(ARRAY(…))``: the row estimate of a
#   parameterized LIMIT must not tempt the planner into a hash join over the table); the
#   final row(s) add the counts and the transaction's id (known once a row was locked; NULL
#   when nothing was written), so the unit of work need not ask for it. Both updates also
#   name the session (redundant here): on Citus (docs/scaling.md) that keeps the whole
#   statement on the session's shard. A statement's
#   snapshot does not see its own updates: ``waiting`` still counts this claim's fresh
#   pages, and the repository subtracts them.
_CLAIM_TEMPLATE = """
WITH crawl AS (
    SELECT status FROM crawl_sessions WHERE id = $1
), open_crawl AS (
    SELECT 1 FROM crawl WHERE status IN ({open_statuses})
), expired AS (
    SELECT id, attempts FROM pages
    WHERE session_id = $1 AND lease_expires_at < now()
        AND EXISTS (SELECT 1 FROM open_crawl)
    ORDER BY lease_expires_at
    LIMIT {expired_batch}
    FOR UPDATE SKIP LOCKED
), spent AS (
    UPDATE pages AS p
    SET status = 'error',
        error_message = format('gave up after %s attempts: the lease expired each time (the '
            'worker died or took longer than lease_seconds)', p.attempts),
        crawled_at = now(), claim_token = NULL, claimed_at = NULL, lease_expires_at = NULL,
        updated_at = now()
    WHERE p.id = ANY(ARRAY(SELECT id FROM expired WHERE attempts >= $3)) AND p.session_id = $1
    RETURNING p.id
), retry AS (
    SELECT id FROM expired WHERE attempts < $3 LIMIT {limit}
), fresh AS (
    SELECT id FROM pages
    WHERE session_id = $1 AND status = 'discovered'
        AND EXISTS (SELECT 1 FROM open_crawl)
    ORDER BY depth, discovered_at, id
    LIMIT {limit}
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id FROM (
        SELECT id, 0 AS rank FROM retry UNION ALL SELECT id, 1 AS rank FROM fresh
    ) AS candidates
    ORDER BY rank
    LIMIT {limit}
), claimed AS (
    UPDATE pages AS p
    SET status = 'crawling', claim_token = gen_random_uuid(), claimed_at = now(),
        lease_expires_at = now() + $2 * interval '1 second',
        attempts = p.attempts + 1, updated_at = now()
    WHERE p.id = ANY(ARRAY(SELECT id FROM picked)) AND p.session_id = $1
    RETURNING p.*
)
SELECT crawl.status AS crawl_status,
    (SELECT count(*) FROM retry) AS requeued,
    (SELECT count(*) FROM spent) AS gave_up,
    (SELECT count(*) FROM (
        SELECT 1 FROM pages WHERE session_id = $1 AND status = 'discovered'
        LIMIT {count_cap}) AS w) AS waiting,
    pg_current_xact_id_if_assigned()::text AS xid,
    claimed.*
FROM crawl LEFT JOIN claimed ON true
ORDER BY claimed.depth, claimed.discovered_at, claimed.id
"""


@functools.cache
def claim_statement(limit: int) -> str:
    """The claim of up to ``limit`` pages (1…MAX_CLAIM, checked by the caller).

    The limits are literals, not parameters: with ``LIMIT $n`` the planner cannot know the
    plan's cost without the value, so PostgreSQL planned the statement afresh on every
    execution (0.3 ms of a 1.2 ms claim); with literals its cached generic plan is as good as
    a custom one and is reused. One prepared statement per distinct limit."""
    return _CLAIM_TEMPLATE.format(
        open_statuses=_OPEN,
        limit=int(limit),
        expired_batch=MAX_CLAIM,
        count_cap=REMAINING_COUNT_CAP + int(limit),
    )


# What a refused fenced write needs to say why, $1: page_id (no row: no such page).
LEASE_OF_PAGE = """
SELECT status, claim_token, attempts, lease_expires_at > now() AS live FROM pages WHERE id = $1
"""


def fenced_refusal(
    page_id: uuid.UUID, claim_token: uuid.UUID, lease: Mapping[str, Any]
) -> DomainError:
    """The error for a write with ``claim_token`` that did not match ``page_id`` now, from
    the page's ``lease`` (:data:`LEASE_OF_PAGE`). Tokens of earlier claims are not kept, so a
    token that is not the current one is told apart only by the page's history: claimed once
    — it was never the page's token; claimed again — it may be from an earlier claim, whose
    lease expired."""
    status = PageStatus(lease["status"])
    if status == PageStatus.ANALYZED:
        return Conflict(
            f"page {page_id} is already analyzed, so the claim_token holds nothing now; nothing "
            "was changed, and nothing more is needed for this page"
        )
    if status == PageStatus.ERROR:
        return Conflict(
            f"page {page_id} is already finished with status 'error', so the claim_token holds "
            "nothing now; nothing was changed. Drop this page and claim new work "
            "(claim_pages_to_crawl)"
        )
    if status == PageStatus.DISCOVERED:
        return InvalidArgument(
            "claim_token",
            f"page {page_id} is not claimed (status 'discovered'), so no claim_token holds it; "
            "nothing was changed. Get work with claim_pages_to_crawl",
        )
    if lease["claim_token"] == claim_token:  # matched by the time of the read: it raced
        return ConcurrentUpdate()
    if lease["attempts"] <= 1:
        return InvalidArgument(
            "claim_token",
            f"it is not the claim token of page {page_id}, which has been claimed once, under "
            "another token; nothing was changed. Pass the claim_token your claim returned for "
            "this page",
        )
    current = "holds it now" if lease["live"] else "has expired too"
    return LeaseLost(
        page_id,
        "the claim_token is not its current one: after an earlier lease expired, the page was "
        f"claimed again (claim {lease['attempts']} {current}), so a token from an earlier claim "
        "no longer counts",
    )


def _check_lease(seconds: int) -> int:
    if not 1 <= seconds <= MAX_LEASE_SECONDS:
        raise InvalidArgument(
            "lease_seconds", f"must be between 1 and {MAX_LEASE_SECONDS}, got {seconds}"
        )
    return seconds


def _lease(seconds: int) -> ColumnElement[Any]:
    """``now() + seconds`` as the end of a lease (for the ORM statements)."""
    return func.now() + literal(timedelta(seconds=_check_lease(seconds)))


# Told (done, total) new pages written, as a large bulk_create goes.
Progress = Callable[[int, int], Awaitable[None]]


def _fenced(page_id: uuid.UUID, claim_token: uuid.UUID) -> Update:
    """An UPDATE of the page that matches only while ``claim_token`` holds its lease: a worker
    whose lease expired (and went to another) changes nothing."""
    return update(Page).where(
        Page.id == page_id, Page.status == PageStatus.CRAWLING, Page.claim_token == claim_token
    )


class PageRepository(Repository):
    # --- discovery ---------------------------------------------------------------------

    async def _lock_open_session(self, session_id: uuid.UUID) -> tuple[CrawlScope, int]:
        """Lock the session row for discovery (``FOR NO KEY UPDATE``: concurrent discovery of
        one session is serialized, so ``max_pages`` holds exactly; foreign-key checks of other
        writers are not blocked). Returns its scope and how many more pages it may take."""
        row = (
            await self.session.execute(
                select(
                    CrawlSession.status,
                    CrawlSession.base_url,
                    CrawlSession.config,
                    CrawlSession.pages_discovered,
                )
                .where(CrawlSession.id == session_id)
                .with_for_update(key_share=True)
            )
        ).one_or_none()
        if row is None:
            raise NotFound("crawl session", session_id, field="session_id")
        if row.status not in OPEN_SESSION_STATUSES:
            raise InvalidTransition(
                "crawl session", session_id, "add pages to", row.status, OPEN_SESSION_STATUSES
            )
        config = CrawlConfig.model_validate(without_credentials(row.config))
        return CrawlScope(row.base_url, config), max(config.max_pages - row.pages_discovered, 0)

    async def _require_parent(
        self, session_id: uuid.UUID, parent_ids: Iterable[uuid.UUID | None]
    ) -> None:
        wanted = {p for p in parent_ids if p is not None}
        if not wanted:
            return
        found = set(
            (
                await self.session.scalars(
                    select(Page.id).where(Page.id.in_(wanted), Page.session_id == session_id)
                )
            ).all()
        )
        missing = wanted - found
        if missing:
            raise NotFound("page", sorted(missing, key=str)[0], field="parent_page_id")

    async def create_page(
        self,
        session_id: uuid.UUID,
        url: str,
        depth: int = 0,
        parent_page_id: uuid.UUID | None = None,
    ) -> PageCreated:
        """Record a discovered URL. Idempotent: a URL already known in the session (after
        normalization) is returned as it is, with ``created=False``, and is not counted again.
        A URL outside the session's crawl limits raises :class:`OutOfScope`."""
        new = _validate_new_page({"url": url, "depth": depth, "parent_page_id": parent_page_id})
        result = await self.bulk_create([new], session_id=session_id)
        if result.refused:
            raise OutOfScope(result.refused[0].url, result.refused[0].reason)
        ref = (result.created or result.existing)[0]
        page = await self.get(ref.id)
        return PageCreated(**page.model_dump(), created=bool(result.created))

    async def bulk_create(
        self,
        pages: Sequence[NewPage | Mapping[str, Any]],
        *,
        session_id: uuid.UUID | None = None,
        progress: Progress | None = None,
    ) -> BulkCreateResult:
        """Insert many discovered pages (``unnest`` + ``ON CONFLICT DO NOTHING``, one statement
        per ``INSERT_CHUNK`` new pages). URLs are normalized first; duplicates — in the batch or
        already stored — are skipped, not errors (and reported: ``duplicates_in_batch``,
        ``existing``); URLs outside the crawl limits (origin, depth,
        patterns, ``max_pages``) are refused with the reason. Nothing refused is stored.

        The session is locked, judged against and counted once per batch, however many chunks
        it takes; ``progress`` hears after each chunk when there is more than one.

        All pages belong to one session: ``session_id`` here, or the ``session_id`` key of each
        mapping (as in the architecture notes)."""
        if len(pages) > MAX_BULK_PAGES:
            raise InvalidArgument(
                "pages", f"at most {MAX_BULK_PAGES} pages per call, got {len(pages)}"
            )
        session_id = _single_session(pages, session_id)
        given = [p if isinstance(p, NewPage) else _validate_new_page(p) for p in pages]
        if not given:
            return BulkCreateResult.of([], [], [])
        scope, capacity = await self._lock_open_session(session_id)

        refused: list[RefusedPage] = []
        duplicates: list[DuplicateUrl] = []
        candidates: dict[str, NewPage] = {}
        for page in given:
            verdict = scope.judge(page.url, page.depth)
            if verdict.reason is not None:
                refused.append(RefusedPage(url=verdict.url, reason=verdict.reason))
            elif verdict.url in candidates:  # the first entry of a URL stands for it
                duplicates.append(DuplicateUrl(url=page.url, same_as=verdict.url))
            else:
                candidates[verdict.url] = page
        await self._require_parent(session_id, (p.parent_page_id for p in candidates.values()))

        # Which URLs are stored already matters before the insert only when not all of them
        # fit under max_pages (the new ones come first, in order); otherwise the insert sorts
        # them out itself (ON CONFLICT) and the look-up below finds the known ones: one round
        # trip and one index pass fewer for a batch of new links.
        fits = len(candidates) <= capacity
        known = {} if fits else await self._existing(session_id, list(candidates))
        fresh = [url for url in candidates if url not in known]
        for url in fresh[capacity:]:
            refused.append(
                RefusedPage(url=candidates[url].url, reason="the session reached its max_pages")
            )
        created = await self._insert_in_chunks(
            session_id, {url: candidates[url] for url in fresh[:capacity]}, progress
        )
        # Rows already stored (or, after a look-up, inserted by another writer since) count
        # as existing.
        stored = {r.url for r in created}  # built once: per URL it made the batch O(n²)
        late = [url for url in fresh[:capacity] if url not in stored]
        known.update(await self._existing(session_id, late))
        if created:
            await CrawlSessionRepository(self.session).increment_pages_discovered(
                session_id, len(created)
            )
        existing = [PageRef(id=known[url], url=url) for url in candidates if url in known]
        return BulkCreateResult.of(created, existing, refused, duplicates)

    async def _existing(self, session_id: uuid.UUID, urls: list[str]) -> dict[str, uuid.UUID]:
        if not urls:
            return {}
        rows = await self.session.execute(
            select(Page.url, Page.id).where(
                Page.session_id == session_id,
                Page.url == func.any(bindparam("urls", urls, type_=ARRAY(String))),
            )
        )
        return {r.url: r.id for r in rows}

    async def _insert_in_chunks(
        self, session_id: uuid.UUID, batch: dict[str, NewPage], progress: Progress | None
    ) -> list[PageRef]:
        urls = list(batch)
        created: list[PageRef] = []
        for start in range(0, len(urls), INSERT_CHUNK):
            chunk = urls[start : start + INSERT_CHUNK]
            created += await self._insert(session_id, {url: batch[url] for url in chunk})
            if progress is not None and len(urls) > INSERT_CHUNK:
                await progress(start + len(chunk), len(urls))
        return created

    async def _insert(self, session_id: uuid.UUID, batch: dict[str, NewPage]) -> list[PageRef]:
        if not batch:
            return []
        pages = list(batch.values())
        rows = (
            func.unnest(
                bindparam("urls", list(batch), type_=ARRAY(String)),
                bindparam("depths", [p.depth for p in pages], type_=ARRAY(Integer)),
                bindparam(
                    "parents", [p.parent_page_id for p in pages], type_=ARRAY(UUID(as_uuid=True))
                ),
            )
            .table_valued("url", "depth", "parent_page_id")
            .render_derived()
        )
        source = select(
            bindparam("session_id", session_id, type_=UUID(as_uuid=True)),
            rows.c.url,
            rows.c.depth,
            rows.c.parent_page_id,
        )
        # A Core insert on the table: the ORM-enabled form ran every returned row through the
        # ORM's loading machinery for nothing (no entity is returned).
        stmt = (
            insert(PAGES)
            .from_select(["session_id", "url", "depth", "parent_page_id"], source)
            .on_conflict_do_nothing(index_elements=["url", "session_id"])
            .returning(PAGES.c.id, PAGES.c.url)
        )
        # Unpacking a row is cheaper than its attribute access (10,000 rows: ~7 ms).
        return [PageRef(id=id_, url=url) for id_, url in (await self.session.execute(stmt)).all()]

    # --- reads ---------------------------------------------------------------------------

    async def get(self, page_id: uuid.UUID) -> PagePublic:
        return await self._fetch_one(PagePublic, "pages", page_id)

    async def get_pages_to_crawl(
        self, session_id: uuid.UUID, limit: int = 10, skip: int = 0
    ) -> PageList:
        """A read-only look at the frontier: discovered pages, shallowest first, then oldest.
        Reserves nothing — ``claim_pages_to_crawl`` does.

        One statement (:func:`frontier_page_statement`, on the driver path): the session
        check, the count and the page of rows, where they were three round trips."""
        check_page_bounds(skip, limit)
        conn = await driver_connection(self.session)
        rows = await conn.fetch(frontier_page_statement(limit, skip), session_id)
        if not rows:
            raise NotFound("crawl session", session_id, field="session_id")
        return frontier_page(rows, skip, limit)

    # --- the frontier ----------------------------------------------------------------------

    async def claim_pages_to_crawl(
        self,
        session_id: uuid.UUID,
        limit: int = 10,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> ClaimResult:
        """Atomically lease up to ``limit`` pages to the caller, each with its own
        ``claim_token``: first pages whose earlier lease expired (their worker died; counted in
        ``requeued``), then discovered pages, shallowest first, then oldest. An expired page
        whose ``max_attempts`` leases are spent becomes ``error`` instead (``gave_up``).

        One statement (:func:`claim_statement`): the session check, the expired leases, the
        pick with ``FOR UPDATE SKIP LOCKED`` and the update — so concurrent callers never
        receive the same page, never wait for each other, and a claim costs one round trip
        (in autocommit, as the tool runs it). The picks are served by the partial indexes
        ``ix_pages_leases`` and ``ix_pages_frontier``: the cost does not grow with the number
        of pages.

        ``remaining`` is exact up to ``REMAINING_COUNT_CAP`` (100) and says 100 beyond it
        ("at least that many"); 0 still means the frontier is empty."""
        if not 1 <= limit <= MAX_CLAIM:
            raise InvalidArgument("limit", f"must be between 1 and {MAX_CLAIM}, got {limit}")
        if max_attempts < 1:
            raise InvalidArgument("max_attempts", f"must be 1 or more, got {max_attempts}")
        _check_lease(lease_seconds)
        conn = await driver_connection(self.session)
        rows = await conn.fetch(claim_statement(limit), session_id, lease_seconds, max_attempts)
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
        if first["xid"] is not None:
            remember_transaction_id(self.session, first["xid"])
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

    async def mark_crawling(
        self, page_id: uuid.UUID, lease_seconds: int = DEFAULT_LEASE_SECONDS
    ) -> PageClaim:
        """Take one discovered page (compare-and-set discovered → crawling): only one caller
        can win a page. Returns it with a ``claim_token`` and a lease, like a claim."""
        row = await self._transition(
            Page,
            page_id,
            action="mark crawling",
            allowed_from=[PageStatus.DISCOVERED],
            values={
                "status": PageStatus.CRAWLING,
                "claim_token": func.gen_random_uuid(),
                "claimed_at": func.now(),
                "lease_expires_at": _lease(lease_seconds),
                "attempts": Page.attempts + 1,
            },
        )
        return PageClaim.model_validate(row)

    async def extend_claim(
        self,
        page_id: uuid.UUID,
        claim_token: uuid.UUID,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
    ) -> PageClaim:
        """Heartbeat: renew the lease to ``lease_seconds`` from now, if ``claim_token`` still
        holds the page. A slow but live worker is not overtaken."""
        lease_until = _lease(lease_seconds)
        row = await self._update_returning(
            Page,
            _fenced(page_id, claim_token).values(lease_expires_at=lease_until),
        )
        if row is None:
            await self._refuse_fenced_write(page_id, claim_token)
        return PageClaim.model_validate(row)

    async def _refuse_fenced_write(self, page_id: uuid.UUID, claim_token: uuid.UUID) -> NoReturn:
        """Why a fenced write (:func:`_fenced`, :data:`FINISH_PAGE`) matched nothing, from one
        read of the page's lease (only on this failure path): the write's own statement
        cannot say, as it sees the row as it was when it started, not as the refusal found it."""
        conn = await driver_connection(self.session)
        lease = await conn.fetchrow(LEASE_OF_PAGE, page_id)
        if lease is None:
            raise NotFound("page", page_id)
        raise fenced_refusal(page_id, claim_token, lease)

    async def _finish(
        self,
        page_id: uuid.UUID,
        claim_token: uuid.UUID | None,
        *,
        action: str,
        allowed_from: list[PageStatus],
        values: dict[str, Any],
    ) -> Page:
        """A fenced transition out of the frontier: with a token, only its holder may finish."""
        finished = {**values, "claim_token": None, "lease_expires_at": None}
        if claim_token is None:
            return await self._transition(
                Page, page_id, action=action, allowed_from=allowed_from, values=finished
            )
        row = await self._update_returning(
            Page,
            _fenced(page_id, claim_token).values(**finished),
        )
        if row is None:
            await self._refuse_fenced_write(page_id, claim_token)
        return row

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
        ``pages_crawled`` by one in the same transaction. With ``claim_token`` the write is
        fenced: refused unless the token still holds the page (:func:`fenced_refusal` says
        why: not the page's token, lease lost, or already finished).

        One statement (:data:`FINISH_PAGE`, on the driver path); a second only to say why,
        when the page was not changed."""
        conn = await driver_connection(self.session)
        row = await conn.fetchrow(
            FINISH_PAGE,
            page_id,
            claim_token,
            title,
            screenshot_url,
            None if analysis_result is None else json.dumps(analysis_result),
            response_time_ms,
            status_code,
            content_type,
            content_length,
        )
        if row is None:
            if claim_token is not None:
                await self._refuse_fenced_write(page_id, claim_token)
            await self._refuse_transition(
                Page, page_id, action="mark analyzed", allowed_from=[PageStatus.CRAWLING]
            )
        remember_transaction_id(self.session, row["xid"])
        return PagePublic.model_validate(dict(row))

    async def mark_error(
        self, page_id: uuid.UUID, error_message: str, claim_token: uuid.UUID | None = None
    ) -> PagePublic:
        """discovered | crawling → error, with the reason (e.g. a timeout or a 5xx); fenced
        like ``mark_analyzed`` when ``claim_token`` is given."""
        row = await self._finish(
            page_id,
            claim_token,
            action="mark error",
            allowed_from=[PageStatus.DISCOVERED, PageStatus.CRAWLING],
            values={
                "status": PageStatus.ERROR,
                "error_message": error_message,
                "crawled_at": func.now(),
            },
        )
        return PagePublic.model_validate(row)

    # --- analytics -----------------------------------------------------------------------

    async def get_page_analytics(self, page_id: uuid.UUID) -> PageAnalytics:
        """The page, its bugs by priority and category, its children and its timing.

        One statement (:data:`PAGE_ANALYTICS`, on the driver path), run by the tool in
        autocommit: one round trip, where the ORM's unit of work took five."""
        conn = await driver_connection(self.session)
        row = await conn.fetchrow(PAGE_ANALYTICS, page_id)
        if row is None:
            raise NotFound("page", page_id)
        page = PagePublic.model_validate(dict(row))  # the pages columns
        by_priority = counts_from_row(row, "priority", BugPriority)
        seconds = (
            (page.crawled_at - page.discovered_at).total_seconds()
            if page.crawled_at is not None and page.status == PageStatus.ANALYZED
            else None
        )
        return PageAnalytics(
            page=page,
            bugs_total=sum(by_priority.values()),
            bugs_by_priority=by_priority,
            bugs_by_category=counts_from_row(row, "category", BugCategory),
            children_count=int(row["children_count"]),
            response_time_ms=page.response_time_ms,
            seconds_to_crawl=seconds,
        )

    async def get_navigation_graph(
        self, session_id: uuid.UUID, max_nodes: int = 500
    ) -> NavigationGraph:
        """Pages as nodes and parent → child links as edges, shallowest ``max_nodes`` pages
        first; ``truncated`` says when the session has more."""
        if not 1 <= max_nodes <= MAX_GRAPH_NODES:
            raise InvalidArgument(
                "max_nodes", f"must be between 1 and {MAX_GRAPH_NODES}, got {max_nodes}"
            )
        statement = listing_statement(
            "pages", (), _SHALLOWEST, 0, max_nodes, of_session=True, columns=_GRAPH_COLUMNS
        )
        conn = await driver_connection(self.session)
        listed = await conn.fetch(statement, session_id)
        if not listed:
            raise NotFound("crawl session", session_id, field="session_id")
        rows = [r for r in listed if r["id"] is not None]
        total = listed[0]["total"]
        ids = {r["id"] for r in rows}
        nodes = [GraphNode.model_validate(dict(r)) for r in rows]
        edges = [
            GraphEdge(source=r["parent_page_id"], target=r["id"])
            for r in rows
            if r["parent_page_id"] in ids
        ]
        total_nodes = int(total or 0)
        return NavigationGraph(
            session_id=session_id,
            nodes=nodes,
            edges=edges,
            total_nodes=total_nodes,
            truncated=total_nodes > len(nodes),
        )


def _validate_new_page(data: Mapping[str, Any]) -> NewPage:
    fields = {k: v for k, v in data.items() if k != "session_id"}
    try:
        return NewPage.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "pages"
        raise InvalidArgument(field, str(err["msg"])) from None


def _single_session(
    pages: Sequence[NewPage | Mapping[str, Any]], session_id: uuid.UUID | None
) -> uuid.UUID:
    ids = {
        uuid.UUID(str(p["session_id"]))
        for p in pages
        # NewPage first: it has no session_id, and the Mapping check is an ABC's (slow)
        if not isinstance(p, NewPage) and isinstance(p, Mapping) and p.get("session_id")
    }
    if session_id is not None:
        ids.add(session_id)
    if len(ids) != 1:
        raise InvalidArgument(
            "session_id",
            "give exactly one session: pass session_id=… or the same 'session_id' in every page"
            if ids or not pages
            else "missing: pass session_id=… or a 'session_id' key in every page",
        )
    return ids.pop()
