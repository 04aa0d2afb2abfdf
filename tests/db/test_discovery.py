"""Idempotent discovery within the session's crawl limits."""

import asyncio

import asyncpg
import pytest

from db.connection.database import Database
from db.errors import OutOfScope
from db.repositories import PageRepository
from tests.factories import make_page, make_session


async def test_concurrent_create_page_of_one_url_makes_one_row_counted_once(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    spellings = [
        "https://shop.example/cart",
        "HTTPS://SHOP.example:443/cart#top",
        "https://shop.example/./cart?utm_source=mail",
    ]
    results = await asyncio.gather(
        *(make_page(db, session.id, spellings[i % 3], depth=1) for i in range(10))
    )
    assert sum(r.created for r in results) == 1
    assert len({r.id for r in results}) == 1
    assert await raw.fetchval("SELECT count(*) FROM pages") == 1
    assert await raw.fetchval("SELECT pages_discovered FROM crawl_sessions") == 1


async def test_bulk_create_reports_created_existing_and_refused(db: Database) -> None:
    session = await make_session(db, max_depth=2)
    await make_page(db, session.id, "https://shop.example/a", depth=1)
    async with db.session() as s:
        result = await PageRepository(s).bulk_create(
            [
                {"url": "https://shop.example/a#x", "depth": 1},
                {"url": "https://shop.example/b", "depth": 1},
                {"url": "https://shop.example/b?utm_campaign=z", "depth": 1},
                {"url": "https://elsewhere.example/", "depth": 1},
                {"url": "https://shop.example/deep", "depth": 3},
            ],
            session_id=session.id,
        )
    assert [r.url for r in result.created] == ["https://shop.example/b"]
    assert [r.url for r in result.existing] == ["https://shop.example/a"]
    reasons = {r.url: r.reason for r in result.refused}
    assert "outside the session's origin" in reasons["https://elsewhere.example/"]
    assert "beyond max_depth 2" in reasons["https://shop.example/deep"]
    assert (result.created_count, result.existing_count, result.refused_count) == (1, 1, 2)


async def test_an_unparsable_url_is_refused_alone_and_the_rest_stored(db: Database) -> None:
    session = await make_session(db)
    async with db.session() as s:
        result = await PageRepository(s).bulk_create(
            [
                {"url": "https://shop.example/a", "depth": 1},
                {"url": "http://a[", "depth": 1},
                {"url": "https://shop.example/b", "depth": 1},
            ],
            session_id=session.id,
        )
    assert [r.url for r in result.created] == ["https://shop.example/a", "https://shop.example/b"]
    assert [r.url for r in result.refused] == ["http://a["]
    assert "not a valid URL" in result.refused[0].reason


async def test_create_page_of_an_unparsable_url_is_refused_naming_it(db: Database) -> None:
    session = await make_session(db)
    with pytest.raises(OutOfScope, match=r"not stored: http://a\[ .*not a valid URL"):
        await make_page(db, session.id, "http://a[")


async def test_a_url_with_a_password_is_refused_alone_masked_and_the_rest_stored(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    async with db.session() as s:
        result = await PageRepository(s).bulk_create(
            [
                {"url": "https://shop.example/a", "depth": 1},
                {"url": "https://bob:hunter2@shop.example/b", "depth": 1},
            ],
            session_id=session.id,
        )
    assert [r.url for r in result.created] == ["https://shop.example/a"]
    [refused] = result.refused
    assert refused.url == "https://***@shop.example/b"
    assert "config.credentials" in refused.reason
    assert "hunter2" not in result.model_dump_json()
    assert await raw.fetchval("SELECT count(*) FROM pages WHERE url LIKE '%hunter2%'") == 0


async def test_create_page_of_a_url_with_a_password_is_refused_without_repeating_it(
    db: Database,
) -> None:
    session = await make_session(db)
    with pytest.raises(OutOfScope) as refused:
        await make_page(db, session.id, "https://bob:hunter2@shop.example/b")
    assert str(refused.value).startswith("not stored: https://***@shop.example/b ")
    assert "config.credentials" in str(refused.value)
    assert "hunter2" not in str(refused.value)


async def test_max_pages_is_enforced_exactly(db: Database, raw: asyncpg.Connection) -> None:
    session = await make_session(db, max_pages=5)

    async def discover(batch: int) -> None:
        async with db.session() as s:
            await PageRepository(s).bulk_create(
                [{"url": f"https://shop.example/{batch}/{i}", "depth": 1} for i in range(3)],
                session_id=session.id,
            )

    await asyncio.gather(*(discover(b) for b in range(4)))
    assert await raw.fetchval("SELECT count(*) FROM pages") == 5
    assert await raw.fetchval("SELECT pages_discovered FROM crawl_sessions") == 5


async def test_include_and_exclude_patterns(db: Database) -> None:
    session = await make_session(db, include_patterns=["/shop/*"], exclude_patterns=["*.pdf"])
    async with db.session() as s:
        result = await PageRepository(s).bulk_create(
            [
                {"url": "https://shop.example/shop/1"},
                {"url": "https://shop.example/blog/1"},
                {"url": "https://shop.example/shop/manual.pdf"},
            ],
            session_id=session.id,
        )
    assert [r.url for r in result.created] == ["https://shop.example/shop/1"]
    assert {r.reason for r in result.refused} == {
        "matches none of include_patterns",
        "matches exclude pattern '*.pdf'",
    }


async def test_create_page_outside_scope_is_refused_with_the_reason(db: Database) -> None:
    session = await make_session(db)
    with pytest.raises(OutOfScope, match="outside the session's origin"):
        await make_page(db, session.id, "https://evil.example/")


async def test_same_origin_can_be_turned_off(db: Database) -> None:
    session = await make_session(db, same_origin=False)
    page = await make_page(db, session.id, "https://cdn.example/x")
    assert page.created and page.url == "https://cdn.example/x"
