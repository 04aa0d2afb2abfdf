"""Discovery: pages enter a session's frontier, idempotent per normalized URL and session, within
the session's crawl limits, counted in the same transaction.

Locks, in the order of every write (db.repositories): the session's discovery lock (an
advisory transaction lock: concurrent discoveries of one session take turns, so ``max_pages``
holds exactly), the new pages (the unique ``(url, session_id)`` index decides what is new),
and the session row last, for its ``pages_discovered``. Discovery holds no row lock of the
session while it inserts: a link to a page being finished waits for that page's transaction,
which itself may be waiting for the session row — held, before, by this one (the deadlock of
a nav bar crawled by several workers).
"""

import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from db.connection.unit_of_work import writes
from db.errors import InvalidArgument, InvalidTransition, NotFound, OutOfScope
from db.page_schemas import (
    BulkCreateResult,
    DuplicateUrl,
    NewPage,
    PageCreated,
    PagePublic,
    PageRef,
    RefusedPage,
)
from db.repositories.base import Repository
from db.repositories.session_reads import OPEN_SESSION_STATUSES
from db.repositories.sessions import CrawlSessionRepository
from db.repositories.statements import Statement
from db.rules.scope import CrawlScope
from db.rules.secrets import without_credentials
from db.schemas import CrawlConfig

# A call's distinct URLs (after normalization), and the links it may send: a real page repeats
# its nav bar, self-links and fragments, so 50,000 hrefs can be a few hundred pages.
MAX_BULK_PAGES = 10_000
MAX_BULK_LINKS = 100_000
# New pages per INSERT of bulk_create: each chunk written is one progress report.
INSERT_CHUNK = 1000

# Told (done, total) new pages written, as a large bulk_create goes.
Progress = Callable[[int, int], Awaitable[None]]

# The session's discovery turn: held until the transaction ends. Taken in a statement of its
# own, so the session read that follows sees what the previous turn committed.
TAKE_DISCOVERY_TURN = Statement(
    "crawl_sessions discovery turn",
    "SELECT pg_advisory_xact_lock(hashtextextended(CAST(CAST(:session_id AS uuid) AS text), 0))",
    writes=True,
)
SCOPE_OF_SESSION = Statement(
    "crawl_sessions scope",
    "SELECT status, base_url, config, pages_discovered FROM crawl_sessions WHERE id = :id",
    writes=False,
)
PARENTS_IN_SESSION = Statement(
    "pages parents",
    "SELECT id FROM pages WHERE id = ANY(CAST(:ids AS uuid[])) AND session_id = :session_id",
    writes=False,
)
KNOWN_URLS = Statement(
    "pages known urls",
    "SELECT url, id FROM pages WHERE session_id = :session_id AND url = ANY(CAST(:urls AS text[]))",
    writes=False,
)
# New pages from three parallel arrays; a URL already stored in the session is skipped.
INSERT_PAGES = Statement(
    "pages insert",
    """
INSERT INTO pages (session_id, url, depth, parent_page_id, priority)
SELECT :session_id, new.url, new.depth, new.parent_page_id, new.priority
FROM unnest(
    CAST(:urls AS text[]), CAST(:depths AS integer[]), CAST(:parents AS uuid[]),
    CAST(:priorities AS smallint[])
) AS new (url, depth, parent_page_id, priority)
ON CONFLICT (url, session_id) DO NOTHING
RETURNING id, url
""",
    writes=True,
)


class PageDiscovery(Repository):
    async def _take_turn(self, session_id: uuid.UUID) -> tuple[CrawlScope, int]:
        """Take the session's discovery turn; returns its scope and how many more pages it may
        take. Refused when there is no such session or it is no longer open."""
        await TAKE_DISCOVERY_TURN.fetchval(self.session, session_id=session_id)
        row = await SCOPE_OF_SESSION.fetchrow(self.session, id=session_id)
        if row is None:
            raise NotFound("crawl session", session_id, field="session_id")
        if row["status"] not in OPEN_SESSION_STATUSES:
            raise InvalidTransition(
                "crawl session", session_id, "add pages to", row["status"], OPEN_SESSION_STATUSES
            )
        config = CrawlConfig.model_validate(without_credentials(row["config"]))
        capacity = max(config.max_pages - int(row["pages_discovered"]), 0)
        return CrawlScope(row["base_url"], config), capacity

    async def _require_parent(
        self, session_id: uuid.UUID, parent_ids: Iterable[uuid.UUID | None]
    ) -> None:
        wanted = {p for p in parent_ids if p is not None}
        if not wanted:
            return
        rows = await PARENTS_IN_SESSION.fetch(self.session, ids=list(wanted), session_id=session_id)
        missing = wanted - {r["id"] for r in rows}
        if missing:
            raise NotFound("page", sorted(missing, key=str)[0], field="parent_page_id")

    @writes
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
        page = await self._fetch_one(PagePublic, "pages", ref.id)
        return PageCreated(**page.model_dump(), created=bool(result.created))

    @writes
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
        ``existing``); URLs outside the crawl limits (origin, depth, patterns, ``max_pages``)
        are refused with the reason. Nothing refused is stored.

        The session is judged against and counted once per batch, however many chunks it
        takes; ``progress`` hears after each chunk when there is more than one.

        All pages belong to one session: ``session_id`` here, or the ``session_id`` key of each
        mapping (as in the architecture notes)."""
        if len(pages) > MAX_BULK_LINKS:
            raise InvalidArgument(
                "pages", f"at most {MAX_BULK_LINKS} links per call, got {len(pages)}"
            )
        session_id = _single_session(pages, session_id)
        given = [p if isinstance(p, NewPage) else _validate_new_page(p) for p in pages]
        if not given:
            return BulkCreateResult.of([], [], [])
        scope, capacity = await self._take_turn(session_id)
        result = await self._discover(session_id, given, scope, capacity, progress)
        if result.created:  # the session row, last (see the module docstring)
            await CrawlSessionRepository(self.session).raise_counter(
                session_id, "pages_discovered", len(result.created)
            )
        return result

    async def _discover(
        self,
        session_id: uuid.UUID,
        given: Sequence[NewPage],
        scope: CrawlScope,
        capacity: int,
        progress: Progress | None = None,
        known_parents: frozenset[uuid.UUID] = frozenset(),
    ) -> BulkCreateResult:
        """Store the new pages of ``given`` (within ``scope`` and ``capacity``) while the caller
        holds the session's discovery turn; the caller raises ``pages_discovered`` afterwards,
        last, by the number created. ``known_parents``: parent ids the caller has read as the
        session's already (finish_page's own page), not read again."""
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
        distinct = len(candidates) + len({r.url for r in refused})
        if distinct > MAX_BULK_PAGES:
            raise InvalidArgument(
                "pages",
                f"at most {MAX_BULK_PAGES} distinct URLs per call (after normalization), got "
                f"{distinct}; nothing was stored: split the links over several calls",
            )
        parents = (p.parent_page_id for p in candidates.values())
        await self._require_parent(session_id, (p for p in parents if p not in known_parents))

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
        existing = [PageRef(id=known[url], url=url) for url in candidates if url in known]
        return BulkCreateResult.of(created, existing, refused, duplicates)

    async def _existing(self, session_id: uuid.UUID, urls: list[str]) -> dict[str, uuid.UUID]:
        if not urls:
            return {}
        rows = await KNOWN_URLS.fetch(self.session, session_id=session_id, urls=urls)
        return {r["url"]: r["id"] for r in rows}

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
        rows = await INSERT_PAGES.fetch(
            self.session,
            session_id=session_id,
            urls=list(batch),
            depths=[p.depth for p in pages],
            parents=[p.parent_page_id for p in pages],
            priorities=[p.priority for p in pages],
        )
        # Unpacking a row is cheaper than its key access (10,000 rows: ~7 ms).
        return [PageRef(id=id_, url=url) for id_, url in rows]


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
