"""The lock order of every write (db.repositories) in the interleaving a real crawl hit: a worker
finishes page P while another worker's discovery, holding its turn, stores a nav bar that links
to P. Before the order, discovery held the session row while inserting, finishing P waited for
that row, and the insert waited for P's finishing transaction: a deadlock, every few hundred
pages with three workers. The interleaving is forced here (discovery pauses between its turn
and its insert), so the test does not depend on luck."""

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import asyncpg
import pytest

from db.connection.database import Database
from db.errors import ConcurrentUpdate
from db.page_schemas import NewPage
from db.repositories import CrawlSessionRepository, PageRepository
from tests.factories import make_page, make_session

SITE = "https://docs.example"


async def waiting_on_a_lock(raw: asyncpg.Connection) -> int:
    return int(
        await raw.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
    )


async def test_finishing_a_page_while_discovery_links_to_it_never_deadlocks(
    db: Database, raw: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await make_session(db, base_url=SITE)
    page = await make_page(db, session.id, f"{SITE}/library/os.html")
    async with db.session() as s:
        claim = await PageRepository(s).claim_pages_to_crawl(session.id, 1)
    token = claim.items[0].claim_token

    holds_its_turn, go_on = anyio.Event(), anyio.Event()
    real_insert = PageRepository._insert_in_chunks

    async def paused_insert(self: PageRepository, *args: Any, **kwargs: Any) -> Any:
        holds_its_turn.set()
        await go_on.wait()
        return await real_insert(self, *args, **kwargs)

    monkeypatch.setattr(PageRepository, "_insert_in_chunks", paused_insert)
    outcomes: dict[str, str] = {}

    async def run(name: str, work: Callable[[PageRepository], Awaitable[object]]) -> None:
        try:
            async with db.session() as s:
                await work(PageRepository(s))
            outcomes[name] = "done"
        except ConcurrentUpdate as conflict:
            outcomes[name] = f"conflict: {conflict}"

    nav_bar = [NewPage(url=page.url, depth=1), NewPage(url=f"{SITE}/library/sys.html", depth=1)]
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(
                run, "discovery", lambda r: r.bulk_create(nav_bar, session_id=session.id)
            )
            await holds_its_turn.wait()
            tasks.start_soon(
                run, "finish", lambda r: r.mark_analyzed(page.id, title="os", claim_token=token)
            )
            # Finishing runs as far as it can: to its end, or into a lock wait.
            for _ in range(150):  # at most 3 s
                if "finish" in outcomes or await waiting_on_a_lock(raw):
                    break
                await anyio.sleep(0.02)
            go_on.set()

    assert outcomes == {"discovery": "done", "finish": "done"}
    async with db.session() as s:
        stats = await CrawlSessionRepository(s).get_session_statistics(session.id)
    assert (stats.session.pages_discovered, stats.session.pages_crawled) == (2, 1)
    assert stats.pages_total == 2


async def test_discovery_turns_of_one_session_keep_max_pages_exact(db: Database) -> None:
    """The turn replaces the session row lock for what it was for: concurrent discoveries of
    one session take turns, so ``max_pages`` holds exactly."""
    session = await make_session(db, base_url=SITE, max_pages=25)

    async def discover(worker: int) -> None:
        urls = [NewPage(url=f"{SITE}/w{worker}/p{i}", depth=1) for i in range(10)]
        async with db.session() as s:
            await PageRepository(s).bulk_create(urls, session_id=session.id)

    async with anyio.create_task_group() as tasks:
        for worker in range(6):
            tasks.start_soon(discover, worker)
    async with db.session() as s:
        stats = await CrawlSessionRepository(s).get_session_statistics(session.id)
    assert stats.pages_total == stats.session.pages_discovered == 25
