"""Bug deduplication by fingerprint."""

import asyncio

import asyncpg

from db.connection.database import Database
from db.repositories import BugRepository
from tests.factories import make_bug, make_page, make_session


async def test_same_bug_from_twenty_pages_is_one_bug_with_twenty_occurrences(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    pages = [
        await make_page(db, session.id, f"https://shop.example/products/{i}") for i in range(20)
    ]
    filed = await asyncio.gather(
        *(
            make_bug(db, session.id, page.id, title=f"Price {i} overlaps  the BUY button")
            for i, page in enumerate(pages)
        )
    )
    assert len({b.id for b in filed}) == 1
    assert sum(b.created for b in filed) == 1
    assert await raw.fetchval("SELECT count(*) FROM bugs") == 1
    assert await raw.fetchval("SELECT occurrences FROM bugs") == 20
    assert await raw.fetchval("SELECT count(DISTINCT page_id) FROM bug_occurrences") == 20
    assert await raw.fetchval("SELECT bugs_found FROM crawl_sessions") == 1
    async with db.session() as s:
        stats = await BugRepository(s).get_bug_statistics(session.id)
    assert (stats.total, stats.total_occurrences) == (1, 20)


async def test_reporting_again_from_the_same_page_does_not_inflate_occurrences(
    db: Database,
) -> None:
    session = await make_session(db)
    page = await make_page(db, session.id)
    first = await make_bug(db, session.id, page.id)
    again = await make_bug(db, session.id, page.id)
    assert again.id == first.id and not again.created and again.occurrences == 1


async def test_dedup_key_merges_reports_from_unrelated_pages(db: Database) -> None:
    session = await make_session(db)
    about = await make_page(db, session.id, "https://shop.example/about")
    cart = await make_page(db, session.id, "https://shop.example/cart")
    a = await make_bug(
        db, session.id, about.id, title="Logo overlaps menu", dedup_key="header-logo"
    )
    b = await make_bug(
        db, session.id, cart.id, title="Menu covered by logo", dedup_key="header-logo"
    )
    assert a.id == b.id and b.occurrences == 2


async def test_different_pages_templates_or_categories_stay_distinct(db: Database) -> None:
    session = await make_session(db)
    about = await make_page(db, session.id, "https://shop.example/about")
    cart = await make_page(db, session.id, "https://shop.example/cart")
    a = await make_bug(db, session.id, about.id)
    b = await make_bug(db, session.id, cart.id)
    c = await make_bug(db, session.id, about.id, category="security")
    assert len({a.id, b.id, c.id}) == 3
