"""The crawl frontier under real concurrency: leases, retries, fencing, completion."""

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from db.connection.database import Database
from db.enums import PageStatus
from db.errors import Conflict, InvalidTransition, LeaseLost
from db.page_schemas import ClaimResult
from db.repositories import CrawlSessionRepository, PageRepository
from db.repositories.pages import claim_statement
from tests.factories import make_session


async def seed_pages(db: Database, count: int, **config: Any) -> uuid.UUID:
    session = await make_session(db, max_pages=count + 10, max_depth=5, **config)
    pages = [{"url": f"https://shop.example/p/{i}", "depth": i % 3} for i in range(count)]
    async with db.session() as s:
        await PageRepository(s).bulk_create(pages, session_id=session.id)
    return session.id


async def claim(db: Database, session_id: uuid.UUID, limit: int = 10, **kw: int) -> ClaimResult:
    async with db.session() as s:
        return await PageRepository(s).claim_pages_to_crawl(session_id, limit, **kw)


async def expire_leases(raw: asyncpg.Connection, session_id: uuid.UUID) -> None:
    """Simulate the clock passing the leases' end (instead of sleeping)."""
    await raw.execute(
        "UPDATE pages SET lease_expires_at = now() - interval '1 second'"
        " WHERE session_id = $1 AND status = 'crawling'",
        session_id,
    )


async def test_claim_hands_out_shallowest_pages_first_under_one_token(db: Database) -> None:
    session_id = await seed_pages(db, 9)
    result = await claim(db, session_id, limit=4)
    again = await claim(db, session_id, limit=4)
    assert [p.depth for p in result.items] == [0, 0, 0, 1]
    assert len({p.claim_token for p in result.items}) == 1
    assert {p.claim_token for p in result.items}.isdisjoint(p.claim_token for p in again.items)
    assert all(p.status == PageStatus.CRAWLING and p.attempts == 1 for p in result.items)
    assert result.remaining == 5


async def test_eight_concurrent_workers_claim_every_page_exactly_once(
    db: Database, raw: asyncpg.Connection
) -> None:
    session_id = await seed_pages(db, 5000)
    claimed: list[uuid.UUID] = []

    async def worker() -> None:
        # each worker has its own engine, hence its own connection
        own = Database(db.config, url=db.url)
        try:
            while True:
                result = await claim(own, session_id, limit=25)
                if not result.items:
                    return
                claimed.extend(p.id for p in result.items)
        finally:
            await own.close()

    await asyncio.gather(*(worker() for _ in range(8)))
    assert len(claimed) == 5000
    assert len(set(claimed)) == 5000
    crawling = await raw.fetchval(
        "SELECT count(*) FROM pages WHERE session_id = $1 AND status = 'crawling'", session_id
    )
    assert crawling == 5000


async def test_expired_lease_is_offered_again_and_counts_attempts(
    db: Database, raw: asyncpg.Connection
) -> None:
    session_id = await seed_pages(db, 1)
    first = await claim(db, session_id)
    await expire_leases(raw, session_id)
    second = await claim(db, session_id)
    assert second.requeued == 1
    assert [p.id for p in second.items] == [first.items[0].id]
    assert second.items[0].attempts == 2
    assert second.items[0].claim_token != first.items[0].claim_token


async def test_page_ends_in_error_after_the_retry_budget(
    db: Database, raw: asyncpg.Connection
) -> None:
    session_id = await seed_pages(db, 1)
    for _ in range(3):
        assert len((await claim(db, session_id, max_attempts=3)).items) == 1
        await expire_leases(raw, session_id)
    final = await claim(db, session_id, max_attempts=3)
    assert final.items == [] and final.gave_up == 1 and final.remaining == 0
    row = await raw.fetchrow("SELECT status, error_message, attempts FROM pages")
    assert row["status"] == "error" and row["attempts"] == 3
    assert "gave up after 3 attempts" in row["error_message"]


async def test_stale_worker_write_is_fenced_after_takeover(
    db: Database, raw: asyncpg.Connection
) -> None:
    session_id = await seed_pages(db, 1)
    stale = (await claim(db, session_id)).items[0]
    await expire_leases(raw, session_id)
    fresh = (await claim(db, session_id)).items[0]
    async with db.session() as s:
        with pytest.raises(LeaseLost, match="the page was claimed again"):
            await PageRepository(s).mark_analyzed(
                stale.id, title="late", claim_token=stale.claim_token
            )
    async with db.session() as s:
        with pytest.raises(LeaseLost):
            await PageRepository(s).extend_claim(stale.id, stale.claim_token)
    row = await raw.fetchrow("SELECT status, title, claim_token FROM pages")
    assert row["status"] == "crawling" and row["title"] is None
    assert row["claim_token"] == fresh.claim_token
    async with db.session() as s:
        done = await PageRepository(s).mark_analyzed(
            fresh.id, title="ok", claim_token=fresh.claim_token
        )
    assert done.status == PageStatus.ANALYZED and done.lease_expires_at is None


async def test_requeued_page_refuses_the_old_token(db: Database, raw: asyncpg.Connection) -> None:
    session_id = await seed_pages(db, 2)
    stale = (await claim(db, session_id, limit=1)).items[0]
    await expire_leases(raw, session_id)
    # another claim requeues the page (and may hand it out again); the old token is dead
    await claim(db, session_id, limit=1)
    async with db.session() as s:
        with pytest.raises(LeaseLost):
            await PageRepository(s).mark_error(stale.id, "boom", claim_token=stale.claim_token)


async def test_extend_claim_keeps_a_slow_worker_from_being_overtaken(
    db: Database, raw: asyncpg.Connection
) -> None:
    session_id = await seed_pages(db, 1)
    page = (await claim(db, session_id, lease_seconds=60)).items[0]
    async with db.session() as s:
        extended = await PageRepository(s).extend_claim(page.id, page.claim_token, 3600)
    assert extended.lease_expires_at is not None and page.lease_expires_at is not None
    assert extended.lease_expires_at > page.lease_expires_at
    again = await claim(db, session_id)
    assert again.items == [] and again.requeued == 0


async def test_mark_crawling_is_compare_and_set_from_discovered(db: Database) -> None:
    session_id = await seed_pages(db, 1)
    async with db.session() as s:
        page = (await PageRepository(s).get_pages_to_crawl(session_id)).items[0]

    async def take() -> bool:
        try:
            async with db.session() as s:
                await PageRepository(s).mark_crawling(page.id)
            return True
        except InvalidTransition:
            return False

    wins = await asyncio.gather(*(take() for _ in range(10)))
    assert wins.count(True) == 1


async def test_complete_session_refuses_while_pages_are_leased(
    db: Database, raw: asyncpg.Connection
) -> None:
    session_id = await seed_pages(db, 3)
    await claim(db, session_id, limit=2)
    async with db.session() as s:
        with pytest.raises(Conflict, match="2 page\\(s\\) are still leased"):
            await CrawlSessionRepository(s).complete_session(session_id)
    async with db.session() as s:
        done = await CrawlSessionRepository(s).complete_session(session_id, force=True)
    assert done.status == "completed"
    statuses = await raw.fetch("SELECT status, count(*) FROM pages GROUP BY status")
    assert dict((r["status"], r["count"]) for r in statuses) == {"error": 2, "discovered": 1}


async def test_session_statistics_report_leases_and_progress(db: Database) -> None:
    session_id = await seed_pages(db, 4)
    pages = (await claim(db, session_id, limit=2)).items
    async with db.session() as s:
        await PageRepository(s).mark_analyzed(pages[0].id, claim_token=pages[0].claim_token)
        stats = await CrawlSessionRepository(s).get_session_statistics(session_id)
    assert stats.pages_leased == 1
    assert stats.pages_by_status[PageStatus.ANALYZED] == 1
    assert stats.crawl_progress == 0.25
    assert stats.session.pages_crawled == 1


def plan_sections(plan: str) -> dict[str, str]:
    """The text of each ``CTE name`` part of an EXPLAIN (TEXT) plan."""
    sections: dict[str, str] = {}
    name = ""
    for line in plan.splitlines():
        stripped = line.strip()
        if line.startswith("  ") and not line.startswith("   "):  # a top-level part ends one
            name = stripped.removeprefix("CTE ") if stripped.startswith("CTE ") else ""
        sections[name] = sections.get(name, "") + line + "\n"
    return sections


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_claim_statement_is_served_by_the_indexes_even_with_stale_statistics(
    db: Database, raw: asyncpg.Connection, plan_cache_mode: str
) -> None:
    """The planner's statistics are taken with no page in flight (a fresh crawl), then 1,500
    pages go in flight. The claim still reads expired leases from ``ix_pages_leases`` (not
    every in-flight page through the status index, the plan the old reap fell into), picks
    from ``ix_pages_frontier`` in index order, and updates by primary key — no scan or sort
    of the session's pages, so its cost does not grow with their number. The same holds for
    the generic plan PostgreSQL caches and reuses for the prepared statement."""
    session_id = await seed_pages(db, 3000)
    await raw.execute("ANALYZE pages")
    for _ in range(15):
        await claim(db, session_id, limit=100)
    await raw.execute(f"SET plan_cache_mode = {plan_cache_mode}")
    statement = claim_statement(10)
    await raw.execute("PREPARE claim_10 AS " + statement.sql)
    given = {"session_id": f"'{session_id}'", "lease_seconds": "300", "max_attempts": "3"}
    arguments = ", ".join(given[name] for name in statement.parameter_names)
    rows = await raw.fetch(f"EXPLAIN (ANALYZE, FORMAT TEXT) EXECUTE claim_10({arguments})")
    plan = "\n".join(r[0] for r in rows)
    sections = plan_sections(plan)
    assert "Index Scan using ix_pages_leases" in sections["expired"], plan
    fresh = sections["fresh"]
    assert "Index Scan using ix_pages_frontier" in fresh, plan
    assert "Sort" not in fresh.split("ix_pages_frontier")[0], plan
    assert "Seq Scan" not in sections["claimed"] and "Hash" not in sections["claimed"], plan
    assert "pk_pages" in sections["claimed"], plan


async def test_claims_on_a_completed_session_are_refused(db: Database) -> None:
    session_id = await seed_pages(db, 1)
    async with db.session() as s:
        await CrawlSessionRepository(s).complete_session(session_id)
    with pytest.raises(InvalidTransition, match="claim pages of"):
        await claim(db, session_id)


async def test_no_page_is_ever_crawling_without_a_lease(db: Database) -> None:
    session_id = await seed_pages(db, 1)
    async with db.session() as s:
        with pytest.raises(Exception, match="lease_iff_crawling"):
            await s.execute(
                text("UPDATE pages SET status = 'crawling' WHERE session_id = :s"),
                {"s": session_id},
            )


async def test_expired_leases_are_handed_out_before_fresh_pages(
    db: Database, raw: asyncpg.Connection
) -> None:
    session_id = await seed_pages(db, 6)
    # the three deepest pages are leased, then their workers die
    deep = await raw.fetch(
        "SELECT id FROM pages WHERE session_id = $1 ORDER BY depth DESC, discovered_at DESC"
        " LIMIT 3",
        session_id,
    )
    for row in deep:
        async with db.session() as s:
            await PageRepository(s).mark_crawling(row["id"])
    await expire_leases(raw, session_id)
    # one of them has used up its retry budget
    await raw.execute("UPDATE pages SET attempts = 3 WHERE id = $1", deep[0]["id"])

    result = await claim(db, session_id, limit=3, max_attempts=3)

    assert (result.requeued, result.gave_up) == (2, 1)
    claimed = {p.id for p in result.items}
    assert len(claimed) == 3 and {deep[1]["id"], deep[2]["id"]} <= claimed
    fresh = [p for p in result.items if p.id not in {r["id"] for r in deep}]
    assert len(fresh) == 1 and fresh[0].attempts == 1
    assert result.remaining == 2  # 3 never-claimed pages, one of them in this claim
    rows = await raw.fetch("SELECT id, status FROM pages WHERE session_id = $1", session_id)
    statuses = {r["id"]: r["status"] for r in rows}
    assert statuses[deep[0]["id"]] == "error"
    assert sum(1 for s in statuses.values() if s == "crawling") == 3


async def test_a_claim_hands_its_transaction_id_to_the_unit_of_work(db: Database) -> None:
    """The claim reads its own transaction id, so the commit needs no extra round trip to ask
    for it (the id settles a commit whose answer is lost)."""
    session_id = await seed_pages(db, 2)
    async with db.session() as s:
        s.begin()  # a claim inside a larger transaction (alone, it runs in autocommit)
        await PageRepository(s).claim_pages_to_crawl(session_id, 1)
        known = s.known_transaction_id
        actual = await s.scalar(text("SELECT pg_current_xact_id_if_assigned()::text"))
    assert known is not None and known == actual


async def test_an_empty_claim_writes_nothing_and_has_no_transaction_id(db: Database) -> None:
    session = await make_session(db)
    async with db.session() as s:
        s.begin()  # a claim inside a larger transaction (alone, it runs in autocommit)
        result = await PageRepository(s).claim_pages_to_crawl(session.id, 5)
        assert s.known_transaction_id is None
        assert await s.scalar(text("SELECT pg_current_xact_id_if_assigned()")) is None
    assert (result.items, result.remaining, result.requeued, result.gave_up) == ([], 0, 0, 0)
