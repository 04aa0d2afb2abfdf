"""Builds the large datasets with ``COPY`` (asyncpg ``copy_records_to_table``), reproducibly.

Every value comes from one ``random.Random(seed)``, ids included, so the same seed gives the
same rows. Rows are written straight into the tables (no ORM, no per-row round trip) in chunks,
with a progress bar; the session counters are then set to match the rows, so the data looks
like what the server itself would have stored. Each call is timed, and ``GenerationLog`` keeps
the times for the report.
"""

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.harness import Stopwatch, progress
from db.enums import BugCategory, BugPriority, BugStatus, PageStatus, SessionStatus
from db.schemas import CrawlConfig

BASE_URL = "https://shop.example/"
CHUNK_ROWS = 50_000
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
SECTIONS = ("products", "category", "blog", "help", "account", "cart", "search", "about")

PAGE_COLUMNS = (
    "id",
    "session_id",
    "url",
    "status",
    "depth",
    "discovered_at",
    "crawled_at",
    "status_code",
    "response_time_ms",
    "title",
    "claim_token",
    "claimed_at",
    "lease_expires_at",
    "attempts",
)
BUG_COLUMNS = (
    "id",
    "session_id",
    "page_id",
    "category",
    "priority",
    "title",
    "description",
    "confidence",
    "status",
    "fingerprint",
    "occurrences",
)

# A crawl in progress: most pages done, a frontier, a few in flight and a few failures.
MIXED_STATUSES: dict[PageStatus, float] = {
    PageStatus.ANALYZED: 0.60,
    PageStatus.DISCOVERED: 0.30,
    PageStatus.CRAWLING: 0.05,
    PageStatus.ERROR: 0.05,
}


@dataclass
class Generated:
    label: str
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


@dataclass
class GenerationLog:
    """How long building each dataset took (rows written by COPY, and the time it took)."""

    entries: list[Generated] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(e.seconds for e in self.entries)

    @property
    def rows(self) -> int:
        return sum(e.rows for e in self.entries)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "seconds": round(self.seconds, 2),
            "datasets": [
                {
                    "label": e.label,
                    "rows": e.rows,
                    "seconds": round(e.seconds, 3),
                    "rows_per_second": round(e.rows_per_second),
                }
                for e in self.entries
            ],
        }


def crawl_config(max_pages: int = 1_000_000, max_depth: int = 50) -> dict[str, Any]:
    """The stored config of a bench session: limits high enough never to refuse a page."""
    return CrawlConfig(max_pages=max_pages, max_depth=max_depth).to_storage()


def page_url(index: int, rng: random.Random) -> str:
    """A normalized URL on the bench origin, unique per ``index``."""
    section = SECTIONS[index % len(SECTIONS)]
    return f"{BASE_URL}{section}/{index}-{rng.randrange(36**4):04x}"


@dataclass
class PageSet:
    """Pages written for one session: their ids in insertion order (for bugs to point at)."""

    session_id: uuid.UUID
    ids: list[uuid.UUID]


class DataGenerator:
    """Writes sessions, pages and bugs with COPY on one asyncpg connection."""

    def __init__(self, conn: asyncpg.Connection, seed: int, log: GenerationLog) -> None:
        self.conn = conn
        self.rng = random.Random(seed)
        self.log = log
        self._page_counter = 0

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    async def session(
        self, status: SessionStatus = SessionStatus.RUNNING, max_pages: int = 1_000_000
    ) -> uuid.UUID:
        session_id = self._uuid()
        started = EPOCH if status != SessionStatus.PENDING else None
        await self.conn.execute(
            "INSERT INTO crawl_sessions (id, base_url, status, config, started_at)"
            " VALUES ($1, $2, $3, $4::jsonb, $5)",
            session_id,
            BASE_URL,
            status.value,
            _json(crawl_config(max_pages)),
            started,
        )
        return session_id

    async def pages(
        self,
        session_id: uuid.UUID,
        count: int,
        *,
        statuses: dict[PageStatus, float] | None = None,
        max_depth: int = 5,
        label: str = "pages",
    ) -> PageSet:
        """``count`` pages of the session; all ``discovered`` unless ``statuses`` gives the
        mix. Crawling pages hold a lease (half of them expired), as the server would leave them."""
        watch = Stopwatch()
        mix = statuses or {PageStatus.DISCOVERED: 1.0}
        kinds, weights = list(mix), list(mix.values())
        ids: list[uuid.UUID] = []
        now = datetime.now(UTC)
        bar = progress(count, f"generate {label}", unit="row")
        try:
            for chunk in _chunks(count):
                records = []
                for _ in range(chunk):
                    index = self._page_counter
                    self._page_counter += 1
                    page_id = self._uuid()
                    ids.append(page_id)
                    status = self.rng.choices(kinds, weights)[0] if len(kinds) > 1 else kinds[0]
                    depth = min(max_depth, int(self.rng.expovariate(0.8)))
                    records.append(
                        self._page_record(page_id, session_id, index, status, depth, now)
                    )
                await self.conn.copy_records_to_table(
                    "pages", records=records, columns=PAGE_COLUMNS
                )
                bar.update(chunk)
        finally:
            bar.close()
        await self.conn.execute(
            "UPDATE crawl_sessions SET pages_discovered = pages_discovered + $2,"
            " pages_crawled = pages_crawled + $3 WHERE id = $1",
            session_id,
            count,
            round(count * mix.get(PageStatus.ANALYZED, 0.0)),
        )
        self.log.entries.append(Generated(label, count, watch.seconds))
        return PageSet(session_id, ids)

    def _page_record(
        self,
        page_id: uuid.UUID,
        session_id: uuid.UUID,
        index: int,
        status: PageStatus,
        depth: int,
        now: datetime,
    ) -> tuple[Any, ...]:
        """One ``PAGE_COLUMNS`` record; discovery times follow insertion order."""
        rng = self.rng
        discovered = EPOCH + timedelta(milliseconds=index)
        url = page_url(index, rng)
        finished = status in (PageStatus.ANALYZED, PageStatus.ERROR)
        leased = status == PageStatus.CRAWLING
        lease = now + timedelta(seconds=300 if rng.random() < 0.5 else -300)
        return (
            page_id,
            session_id,
            url,
            status.value,
            depth,
            discovered,
            discovered + timedelta(seconds=30) if finished else None,
            200 if status == PageStatus.ANALYZED else (503 if finished else None),
            rng.randrange(50, 3000) if finished else None,
            f"Page {index}" if status == PageStatus.ANALYZED else None,
            self._uuid() if leased else None,
            now - timedelta(seconds=60) if leased else None,
            lease if leased else None,
            1 if leased or finished else 0,
        )

    async def bugs(self, pages: PageSet, count: int, *, label: str = "bugs") -> None:
        """``count`` distinct bugs of the session, spread over its pages."""
        watch = Stopwatch()
        categories = list(BugCategory)
        priorities = list(BugPriority)
        statuses = list(BugStatus)
        rng = self.rng
        bar = progress(count, f"generate {label}", unit="row")
        written = 0
        try:
            for chunk in _chunks(count):
                records = []
                for _ in range(chunk):
                    records.append(
                        (
                            self._uuid(),
                            pages.session_id,
                            pages.ids[rng.randrange(len(pages.ids))],
                            rng.choice(categories).value,
                            rng.choices(priorities, (1, 3, 4, 2))[0].value,
                            f"Bug {written}: {rng.choice(SECTIONS)} misbehaves",
                            "Generated by the benchmark data generator.",
                            round(rng.random(), 3),
                            rng.choices(statuses, (6, 2, 1, 1))[0].value,
                            f"{rng.getrandbits(256):064x}",
                            rng.choice((1, 1, 1, 2, 3)),
                        )
                    )
                    written += 1
                await self.conn.copy_records_to_table("bugs", records=records, columns=BUG_COLUMNS)
                bar.update(chunk)
        finally:
            bar.close()
        await self.conn.execute(
            "UPDATE crawl_sessions SET bugs_found = bugs_found + $2 WHERE id = $1",
            pages.session_id,
            count,
        )
        self.log.entries.append(Generated(label, count, watch.seconds))

    async def settle(self, checkpoint: bool = True) -> None:
        """Statistics and a checkpoint after a bulk load, so measurements do not pay for them:
        ``VACUUM ANALYZE`` (planner statistics, visibility map) and ``CHECKPOINT`` (the load's
        dirty buffers written now, not during the next measurement)."""
        watch = Stopwatch()
        await self.conn.execute("VACUUM (ANALYZE) crawl_sessions, pages, bugs, bug_occurrences")
        if checkpoint:
            await self.conn.execute("CHECKPOINT")
        self.log.entries.append(Generated("vacuum analyze + checkpoint", 0, watch.seconds))


def new_page_rows(count: int, seed: int) -> list[tuple[str, int]]:
    """``(url, depth)`` of ``count`` new links, the same for a given seed (bulk discovery)."""
    rng = random.Random(seed)
    return [(page_url(1_000_000_000 + i, rng), 1 + i % 5) for i in range(count)]


def _chunks(total: int, size: int = CHUNK_ROWS) -> Iterator[int]:
    done = 0
    while done < total:
        step = min(size, total - done)
        yield step
        done += step


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
