"""Bug deduplication by fingerprint."""

import asyncio

import asyncpg
import pytest

from db.connection.database import Database
from db.errors import InvalidArgument
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


async def test_a_site_wide_defect_on_unrelated_pages_is_one_bug_by_default(db: Database) -> None:
    session = await make_session(db)
    paths = ["/library/os.html", "/library/sys.html", "/tutorial/", "/about"]
    pages = [await make_page(db, session.id, f"https://shop.example{p}") for p in paths]

    filed = [await make_bug(db, session.id, page.id) for page in pages]

    assert len({b.id for b in filed}) == 1
    assert [b.created for b in filed] == [True, False, False, False]
    assert filed[-1].occurrences == 4
    grouping = filed[-1].grouping
    assert (grouping.key, grouping.scope, grouping.fingerprint_version) == ("title", "site", 2)
    assert grouping.normalized == "button overlaps text"


async def test_status_codes_in_titles_are_different_bugs(db: Database) -> None:
    session = await make_session(db)
    page = await make_page(db, session.id, "https://shop.example/links")
    other = await make_page(db, session.id, "https://shop.example/more")

    not_found = await make_bug(db, session.id, page.id, title="Link answers HTTP 404")
    server_error = await make_bug(db, session.id, page.id, title="Link answers HTTP 500")
    again = await make_bug(db, session.id, other.id, title="link answers http  404")

    assert not_found.id != server_error.id
    assert again.id == not_found.id and again.occurrences == 2


async def test_narrower_scopes_and_categories_stay_distinct(db: Database) -> None:
    session = await make_session(db)
    about = await make_page(db, session.id, "https://shop.example/about")
    cart = await make_page(db, session.id, "https://shop.example/cart")
    product = await make_page(db, session.id, "https://shop.example/products/1")
    another = await make_page(db, session.id, "https://shop.example/products/2")
    a = await make_bug(db, session.id, about.id, group_by="template")
    b = await make_bug(db, session.id, cart.id, group_by="template")
    c = await make_bug(db, session.id, about.id, category="security")
    p1 = await make_bug(db, session.id, product.id, group_by="template")
    p2 = await make_bug(db, session.id, another.id, group_by="template")
    q1 = await make_bug(db, session.id, product.id, group_by="page")
    q2 = await make_bug(db, session.id, another.id, group_by="page")
    assert len({a.id, b.id, c.id, p1.id, q1.id, q2.id}) == 6
    assert p2.id == p1.id and p2.occurrences == 2  # one path template: /products/{n}
    assert (q2.grouping.scope, q2.created) == ("page", True)


async def test_an_unknown_scope_is_refused_naming_the_choices(db: Database) -> None:
    session = await make_session(db)
    page = await make_page(db, session.id)
    with pytest.raises(InvalidArgument, match=r"group_by.*site, template, page"):
        await make_bug(db, session.id, page.id, group_by="domain")
