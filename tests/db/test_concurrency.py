"""Real concurrent units of work against one PostgreSQL: counters never lose an increment and a
status change is won by exactly one caller.

Every task first opens its transaction on its own connection, then waits at a barrier until
all of them are open; only then do they race. No sleeps: the barrier is an event."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import anyio
import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from db.connection.database import Database
from db.connection.unit_of_work import UnitOfWork
from db.enums import PageStatus
from db.errors import InvalidTransition
from db.page_schemas import NewPage
from db.repositories import BugRepository, CrawlSessionRepository, PageRepository
from tests.conftest import make_config
from tests.db.states import bug_title
from tests.factories import make_page, make_session

WORKERS = 20
RACE_TIMEOUT = 20


class Barrier:
    """Releases every waiter once ``parties`` tasks have arrived."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.released = anyio.Event()

    async def wait(self) -> None:
        self.arrived += 1
        if self.arrived == self.parties:
            self.released.set()
        await self.released.wait()


@pytest.fixture
async def wide_db(database_url: URL, empty_tables: None) -> AsyncIterator[Database]:
    """A Database whose pool holds one connection per worker, so all can be in flight."""
    database = Database(make_config(pool_size=WORKERS, max_overflow=0), url=database_url)
    try:
        yield database
    finally:
        await database.close()


async def race(db: Database, work: Callable[[UnitOfWork, int], Awaitable[None]]) -> None:
    """Run ``work(session, i)`` for i in 0..WORKERS-1, each in its own ``db.session()``, all
    transactions open at the same time before any of them does its work."""
    barrier = Barrier(WORKERS)

    async def worker(i: int) -> None:
        async with db.session() as s:
            await s.execute(text("SELECT 1"))  # the transaction now holds a connection
            await barrier.wait()
            await work(s, i)

    with anyio.fail_after(RACE_TIMEOUT):
        async with anyio.create_task_group() as tg:
            for i in range(WORKERS):
                tg.start_soon(worker, i)
    assert barrier.arrived == WORKERS


async def test_concurrent_counter_increments_add_up_exactly(
    wide_db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(wide_db)

    async def work(s: UnitOfWork, i: int) -> None:
        repo = CrawlSessionRepository(s)
        await repo.increment_pages_discovered(session.id, count=i + 1)
        await repo.increment_pages_crawled(session.id)
        await repo.increment_bugs_found(session.id, count=2)

    await race(wide_db, work)

    row = await raw.fetchrow(
        "SELECT pages_discovered, pages_crawled, bugs_found FROM crawl_sessions WHERE id = $1",
        session.id,
    )
    assert row is not None
    assert tuple(row) == (sum(range(1, WORKERS + 1)), WORKERS, 2 * WORKERS)


async def test_concurrent_add_cost_adds_up_to_the_cent(
    wide_db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(wide_db)

    async def work(s: UnitOfWork, i: int) -> None:
        await CrawlSessionRepository(s).add_cost(session.id, Decimal("0.0125"))

    await race(wide_db, work)

    total = await raw.fetchval("SELECT total_cost FROM crawl_sessions WHERE id = $1", session.id)
    assert total == Decimal("0.0125") * WORKERS


async def test_concurrent_bugs_on_one_session_are_all_counted(
    wide_db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(wide_db)
    page = await make_page(wide_db, session.id)

    async def work(s: UnitOfWork, i: int) -> None:
        await BugRepository(s).create_bug(
            session.id, page.id, "ui_ux", "low", bug_title(i), "found concurrently"
        )

    await race(wide_db, work)

    assert await raw.fetchval(
        "SELECT bugs_found FROM crawl_sessions WHERE id = $1", session.id
    ) == (WORKERS)
    assert await raw.fetchval("SELECT count(*) FROM bugs") == WORKERS


async def test_concurrent_discovery_of_overlapping_urls_stores_and_counts_each_once(
    wide_db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(wide_db)
    shared = [f"https://shop.example/shared-{i}" for i in range(10)]
    created_counts: list[int] = []

    async def work(s: UnitOfWork, i: int) -> None:
        own = f"https://shop.example/own-{uuid.uuid4().hex}"
        result = await PageRepository(s).bulk_create(
            [NewPage(url=u, depth=1) for u in [*shared, own]], session_id=session.id
        )
        created_counts.append(result.created_count)
        assert result.created_count + result.existing_count == len(shared) + 1

    await race(wide_db, work)

    rows = await raw.fetchval("SELECT count(*) FROM pages WHERE session_id = $1", session.id)
    counted = await raw.fetchval(
        "SELECT pages_discovered FROM crawl_sessions WHERE id = $1", session.id
    )
    assert rows == len(shared) + WORKERS
    assert sum(created_counts) == rows
    assert counted == rows


async def test_concurrent_mark_crawling_of_one_page_has_exactly_one_winner(
    wide_db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(wide_db)
    page = await make_page(wide_db, session.id)
    winners: list[int] = []
    losers: list[InvalidTransition] = []

    async def work(s: UnitOfWork, i: int) -> None:
        try:
            await PageRepository(s).mark_crawling(page.id)
        except InvalidTransition as err:
            losers.append(err)
        else:
            winners.append(i)

    await race(wide_db, work)

    assert len(winners) == 1
    assert len(losers) == WORKERS - 1
    assert {(err.current, err.allowed_from) for err in losers} == {
        (PageStatus.CRAWLING, (PageStatus.DISCOVERED,))
    }
    assert await raw.fetchval("SELECT status FROM pages WHERE id = $1", page.id) == "crawling"
