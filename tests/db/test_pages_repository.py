"""PageRepository: idempotent discovery (single and bulk), the discovered → crawling →
analyzed | error life cycle, the frontier look-up and the read models (analytics, graph)."""

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any

import asyncpg
import pytest

from db.connection.database import Database
from db.enums import BugCategory, BugPriority, PageStatus, SessionStatus
from db.errors import InvalidArgument, InvalidTransition, NotFound
from db.page_schemas import NewPage, PagePublic
from db.repositories import PageRepository
from tests.conftest import record_queries
from tests.db.states import bug_title, page_in, session_in
from tests.factories import make_bug, make_page, make_session

BASE = "https://shop.example"
PageCall = Callable[[PageRepository, uuid.UUID], Awaitable[Any]]


def url(path: str) -> str:
    return f"{BASE}/{path}"


async def pages_discovered(raw: asyncpg.Connection, session_id: uuid.UUID) -> int:
    return int(
        await raw.fetchval("SELECT pages_discovered FROM crawl_sessions WHERE id = $1", session_id)
    )


async def pages_crawled(raw: asyncpg.Connection, session_id: uuid.UUID) -> int:
    return int(
        await raw.fetchval("SELECT pages_crawled FROM crawl_sessions WHERE id = $1", session_id)
    )


def statements_of(db: Database) -> AbstractContextManager[list[str]]:
    """Every SQL statement the Database sends while the block runs."""
    return record_queries(db)


# --- create_page -----------------------------------------------------------------------------


async def test_create_page_records_a_discovered_page(db: Database) -> None:
    session = await make_session(db)
    parent = await make_page(db, session.id, url(""))
    async with db.session() as s:
        page = await PageRepository(s).create_page(session.id, url("about"), 1, parent.id)
    assert page.created is True
    assert page.status == PageStatus.DISCOVERED
    assert (page.session_id, page.url, page.depth) == (session.id, url("about"), 1)
    assert page.parent_page_id == parent.id
    assert page.discovered_at is not None
    assert page.crawled_at is None


async def test_create_page_raises_pages_discovered_by_one(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    await make_page(db, session.id, url("a"))
    await make_page(db, session.id, url("b"))
    assert await pages_discovered(raw, session.id) == 2


async def test_create_page_on_a_known_url_returns_it_uncounted(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    first = await make_page(db, session.id, url("about"))
    again = await make_page(db, session.id, url("about"), depth=2)
    assert again.created is False
    assert again.id == first.id
    assert again.depth == first.depth
    assert await pages_discovered(raw, session.id) == 1
    assert await raw.fetchval("SELECT count(*) FROM pages") == 1


async def test_same_url_in_two_sessions_is_two_pages(db: Database) -> None:
    one = await make_session(db)
    two = await make_session(db)
    first = await make_page(db, one.id, url("about"))
    second = await make_page(db, two.id, url("about"))
    assert second.created is True
    assert second.id != first.id


async def test_create_page_in_a_missing_session_raises_not_found(db: Database) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFound) as excinfo:
        async with db.session() as s:
            await PageRepository(s).create_page(missing, url("a"))
    assert (excinfo.value.entity_id, excinfo.value.field) == (missing, "session_id")


@pytest.mark.parametrize("status", [SessionStatus.COMPLETED, SessionStatus.FAILED])
async def test_create_page_in_a_finished_session_is_refused(
    db: Database, raw: asyncpg.Connection, status: SessionStatus
) -> None:
    session = await session_in(db, status)
    with pytest.raises(InvalidTransition) as excinfo:
        async with db.session() as s:
            await PageRepository(s).create_page(session.id, url("late"))
    assert excinfo.value.current == status
    assert set(excinfo.value.allowed_from) == {"pending", "running"}
    assert await raw.fetchval("SELECT count(*) FROM pages") == 0


async def test_parent_page_of_another_session_is_refused(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    other = await make_session(db)
    foreign_parent = await make_page(db, other.id, url(""))
    with pytest.raises(NotFound) as excinfo:
        async with db.session() as s:
            await PageRepository(s).create_page(session.id, url("child"), 1, foreign_parent.id)
    assert (excinfo.value.entity_id, excinfo.value.field) == (foreign_parent.id, "parent_page_id")
    assert await raw.fetchval("SELECT count(*) FROM pages WHERE session_id = $1", session.id) == 0


@pytest.mark.parametrize(
    ("page_url", "depth", "field"), [("", 0, "url"), (url("a"), -1, "depth")], ids=["url", "depth"]
)
async def test_create_page_refuses_invalid_input(
    db: Database, page_url: str, depth: int, field: str
) -> None:
    session = await make_session(db)
    with pytest.raises(InvalidArgument) as excinfo:
        async with db.session() as s:
            await PageRepository(s).create_page(session.id, page_url, depth)
    assert excinfo.value.field == field


# --- bulk_create -----------------------------------------------------------------------------


async def test_bulk_create_skips_duplicates_in_the_batch_and_in_the_table(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    stored = await make_page(db, session.id, url("known"))
    batch = [url("new-1"), url("known"), url("new-2"), url("new-1"), url("known")]
    async with db.session() as s:
        result = await PageRepository(s).bulk_create(
            [NewPage(url=u, depth=1) for u in batch], session_id=session.id
        )
    assert sorted(ref.url for ref in result.created) == [url("new-1"), url("new-2")]
    assert [(ref.id, ref.url) for ref in result.existing] == [(stored.id, url("known"))]
    assert (result.created_count, result.existing_count) == (2, 1)
    rows = await raw.fetch("SELECT id, url FROM pages WHERE session_id = $1", session.id)
    assert {r["url"]: r["id"] for r in rows} == {
        url("known"): stored.id,
        **{ref.url: ref.id for ref in result.created},
    }


async def test_bulk_create_raises_pages_discovered_by_the_new_pages_only(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    await make_page(db, session.id, url("known"))
    batch = [url("known"), url("a"), url("a"), url("b"), url("c")]
    async with db.session() as s:
        await PageRepository(s).bulk_create([NewPage(url=u) for u in batch], session_id=session.id)
    assert await pages_discovered(raw, session.id) == 1 + 3


async def test_bulk_create_of_only_known_pages_changes_nothing(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    await make_page(db, session.id, url("a"))
    async with db.session() as s:
        result = await PageRepository(s).bulk_create([NewPage(url=url("a"))], session_id=session.id)
    assert (result.created_count, result.existing_count) == (0, 1)
    assert await pages_discovered(raw, session.id) == 1


async def test_bulk_create_accepts_the_session_id_inside_each_mapping(
    db: Database, raw: asyncpg.Connection
) -> None:
    """The architecture notes' form: ``[{"url": …, "session_id": …}, …]``."""
    session = await make_session(db)
    async with db.session() as s:
        result = await PageRepository(s).bulk_create(
            [
                {"url": url("1"), "session_id": session.id},
                {"url": url("2"), "session_id": session.id},
            ]
        )
    assert result.created_count == 2
    assert await raw.fetchval("SELECT count(*) FROM pages WHERE session_id = $1", session.id) == 2


async def test_bulk_create_stores_depth_and_parent_of_each_page(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    root = await make_page(db, session.id, url(""))
    async with db.session() as s:
        await PageRepository(s).bulk_create(
            [
                NewPage(url=url("a"), depth=1, parent_page_id=root.id),
                NewPage(url=url("b"), depth=2),
            ],
            session_id=session.id,
        )
    rows = await raw.fetch("SELECT url, depth, parent_page_id FROM pages WHERE depth > 0")
    assert {(r["url"], r["depth"], r["parent_page_id"]) for r in rows} == {
        (url("a"), 1, root.id),
        (url("b"), 2, None),
    }


async def test_bulk_create_inserts_in_one_statement(db: Database) -> None:
    session = await make_session(db)
    with statements_of(db) as seen:
        async with db.session() as s:
            result = await PageRepository(s).bulk_create(
                [NewPage(url=url(f"p{i}"), depth=1) for i in range(40)], session_id=session.id
            )
    assert result.created_count == 40
    inserts = [sql for sql in seen if sql.lstrip().upper().startswith("INSERT INTO PAGES")]
    assert len(inserts) == 1


async def test_a_large_bulk_create_locks_and_counts_the_session_once_and_reports_progress(
    db: Database, raw: asyncpg.Connection
) -> None:
    """2,500 new pages (and a repeat of one across the old chunk border): three INSERTs of at
    most 1,000, one session lock and one counter update for the whole batch, progress after
    each INSERT, the repeated URL created once."""
    session = await make_session(db, max_pages=5000)
    batch = [NewPage(url=url(f"p{i}"), depth=1) for i in range(2500)]
    batch.insert(1500, NewPage(url=url("p10"), depth=1))
    reports: list[tuple[int, int]] = []

    async def progress(done: int, total: int) -> None:
        reports.append((done, total))

    with statements_of(db) as seen:
        async with db.session() as s:
            result = await PageRepository(s).bulk_create(
                batch, session_id=session.id, progress=progress
            )

    assert (result.created_count, result.existing_count) == (2500, 0)
    assert reports == [(1000, 2500), (2000, 2500), (2500, 2500)]
    starts = Counter(" ".join(sql.split()[:3]).upper() for sql in seen)
    assert starts["INSERT INTO PAGES"] == 3
    assert sum(n for start, n in starts.items() if start.startswith("UPDATE CRAWL_SESSIONS")) == 1
    # The session's discovery turn (db.repositories.discovery), taken once for the batch.
    locks = [sql for sql in seen if "pg_advisory_xact_lock" in sql]
    assert len(locks) == 1
    assert await pages_discovered(raw, session.id) == 2500


async def test_bulk_create_of_nothing_creates_nothing(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    async with db.session() as s:
        result = await PageRepository(s).bulk_create([], session_id=session.id)
    assert (result.created, result.existing, result.created_count) == ([], [], 0)
    assert await pages_discovered(raw, session.id) == 0


async def test_bulk_create_refuses_pages_of_two_sessions(db: Database) -> None:
    one = await make_session(db)
    two = await make_session(db)
    with pytest.raises(InvalidArgument) as excinfo:
        async with db.session() as s:
            await PageRepository(s).bulk_create(
                [{"url": url("1"), "session_id": one.id}, {"url": url("2"), "session_id": two.id}]
            )
    assert excinfo.value.field == "session_id"


async def test_bulk_create_without_a_session_is_refused(db: Database) -> None:
    with pytest.raises(InvalidArgument) as excinfo:
        async with db.session() as s:
            await PageRepository(s).bulk_create([{"url": url("1")}])
    assert excinfo.value.field == "session_id"


async def test_bulk_create_with_an_invalid_page_stores_nothing(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    with pytest.raises(InvalidArgument):
        async with db.session() as s:
            await PageRepository(s).bulk_create(
                [{"url": url("ok")}, {"url": url("bad"), "depth": -3}], session_id=session.id
            )
    assert await raw.fetchval("SELECT count(*) FROM pages") == 0


# --- get and the life cycle ------------------------------------------------------------------


async def test_get_returns_the_stored_page(db: Database) -> None:
    session = await make_session(db)
    created = await make_page(db, session.id, url("x"))
    async with db.session() as s:
        fetched = await PageRepository(s).get(created.id)
    stored_fields = {k: v for k, v in created.model_dump().items() if k in PagePublic.model_fields}
    assert fetched.model_dump() == stored_fields


async def test_page_goes_discovered_crawling_analyzed_with_its_results(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    page = await make_page(db, session.id, url("about"))
    async with db.session() as s:
        crawling = await PageRepository(s).mark_crawling(page.id)
    async with db.session() as s:
        analyzed = await PageRepository(s).mark_analyzed(
            page.id,
            title="About Us",
            screenshot_url="https://cdn.example/about.png",
            analysis_result={"findings": [{"kind": "contrast"}]},
            response_time_ms=234,
            status_code=200,
            content_type="text/html",
            content_length=5120,
        )
    assert crawling.status == PageStatus.CRAWLING
    assert analyzed.status == PageStatus.ANALYZED
    assert (analyzed.title, analyzed.screenshot_url) == (
        "About Us",
        "https://cdn.example/about.png",
    )
    assert analyzed.analysis_result == {"findings": [{"kind": "contrast"}]}
    assert (analyzed.response_time_ms, analyzed.status_code) == (234, 200)
    assert (analyzed.content_type, analyzed.content_length) == ("text/html", 5120)
    assert analyzed.crawled_at is not None
    assert analyzed.crawled_at >= analyzed.discovered_at
    stored = await raw.fetchrow("SELECT status, title FROM pages WHERE id = $1", page.id)
    assert stored is not None
    assert tuple(stored) == ("analyzed", "About Us")


async def test_mark_analyzed_raises_pages_crawled_by_one(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    await page_in(db, PageStatus.ANALYZED, session.id)
    await page_in(db, PageStatus.ANALYZED, session.id)
    await page_in(db, PageStatus.CRAWLING, session.id)
    assert await pages_crawled(raw, session.id) == 2


async def test_page_goes_discovered_crawling_error_with_its_reason(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    page = await make_page(db, session.id, url("slow"))
    async with db.session() as s:
        await PageRepository(s).mark_crawling(page.id)
    async with db.session() as s:
        failed = await PageRepository(s).mark_error(page.id, "navigation timeout after 30s")
    assert failed.status == PageStatus.ERROR
    assert failed.error_message == "navigation timeout after 30s"
    assert failed.crawled_at is not None
    assert await pages_crawled(raw, session.id) == 0


async def test_discovered_page_can_be_marked_error_without_crawling(db: Database) -> None:
    session = await make_session(db)
    page = await make_page(db, session.id, url("broken"))
    async with db.session() as s:
        failed = await PageRepository(s).mark_error(page.id, "robots.txt disallows it")
    assert failed.status == PageStatus.ERROR


async def mark_crawling(repo: PageRepository, page_id: uuid.UUID) -> Any:
    return await repo.mark_crawling(page_id)


async def mark_analyzed(repo: PageRepository, page_id: uuid.UUID) -> Any:
    return await repo.mark_analyzed(page_id, title="t")


async def mark_error(repo: PageRepository, page_id: uuid.UUID) -> Any:
    return await repo.mark_error(page_id, "boom")


ILLEGAL_PAGE_TRANSITIONS = [
    (mark_crawling, PageStatus.CRAWLING, ["discovered"]),
    (mark_crawling, PageStatus.ANALYZED, ["discovered"]),
    (mark_crawling, PageStatus.ERROR, ["discovered"]),
    (mark_analyzed, PageStatus.DISCOVERED, ["crawling"]),
    (mark_analyzed, PageStatus.ANALYZED, ["crawling"]),
    (mark_analyzed, PageStatus.ERROR, ["crawling"]),
    (mark_error, PageStatus.ANALYZED, ["discovered", "crawling"]),
    (mark_error, PageStatus.ERROR, ["discovered", "crawling"]),
]


@pytest.mark.parametrize(
    ("action", "current", "allowed"),
    ILLEGAL_PAGE_TRANSITIONS,
    ids=[f"{a.__name__}-from-{c}" for a, c, _ in ILLEGAL_PAGE_TRANSITIONS],
)
async def test_illegal_page_transition_raises_and_names_the_states(
    db: Database,
    raw: asyncpg.Connection,
    action: PageCall,
    current: PageStatus,
    allowed: list[str],
) -> None:
    page = await page_in(db, current)
    crawled_before = await pages_crawled(raw, page.session_id)
    with pytest.raises(InvalidTransition) as excinfo:
        async with db.session() as s:
            await action(PageRepository(s), page.id)
    err = excinfo.value
    assert (err.entity_id, err.current, list(err.allowed_from)) == (page.id, current, allowed)
    assert f"'{current}'" in str(err)
    assert all(f"'{state}'" in str(err) for state in allowed)
    assert await raw.fetchval("SELECT status FROM pages WHERE id = $1", page.id) == current
    assert await pages_crawled(raw, page.session_id) == crawled_before


async def get(repo: PageRepository, page_id: uuid.UUID) -> Any:
    return await repo.get(page_id)


async def analytics(repo: PageRepository, page_id: uuid.UUID) -> Any:
    return await repo.get_page_analytics(page_id)


MISSING_PAGE_CALLS: list[PageCall] = [get, mark_crawling, mark_analyzed, mark_error, analytics]


@pytest.mark.parametrize("call", MISSING_PAGE_CALLS, ids=[c.__name__ for c in MISSING_PAGE_CALLS])
async def test_missing_page_id_raises_not_found(db: Database, call: PageCall) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFound) as excinfo:
        async with db.session() as s:
            await call(PageRepository(s), missing)
    assert excinfo.value.entity_id == missing


@pytest.mark.parametrize("method", ["get_pages_to_crawl", "get_navigation_graph"])
async def test_session_queries_of_a_missing_session_raise_not_found(
    db: Database, method: str
) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFound) as excinfo:
        async with db.session() as s:
            await getattr(PageRepository(s), method)(missing)
    assert (excinfo.value.entity_id, excinfo.value.field) == (missing, "session_id")


# --- the frontier ----------------------------------------------------------------------------


async def test_get_pages_to_crawl_returns_discovered_pages_shallowest_first(db: Database) -> None:
    session = await make_session(db)
    other = await make_session(db)
    await make_page(db, other.id, url("other"))
    by_depth = {}
    for path, depth in [("d2", 2), ("d0", 0), ("d3", 3), ("d1", 1)]:
        by_depth[depth] = await make_page(db, session.id, url(path), depth)
    await page_in(db, PageStatus.CRAWLING, session.id)
    await page_in(db, PageStatus.ANALYZED, session.id)
    await page_in(db, PageStatus.ERROR, session.id)

    async with db.session() as s:
        frontier = await PageRepository(s).get_pages_to_crawl(session.id)

    assert [p.id for p in frontier.items] == [by_depth[d].id for d in range(4)]
    assert {p.status for p in frontier.items} == {PageStatus.DISCOVERED}
    assert (frontier.total, frontier.has_more) == (4, False)


async def test_get_pages_to_crawl_same_depth_oldest_first(db: Database) -> None:
    session = await make_session(db)
    first = await make_page(db, session.id, url("z"), 1)
    second = await make_page(db, session.id, url("a"), 1)
    async with db.session() as s:
        frontier = await PageRepository(s).get_pages_to_crawl(session.id)
    assert [p.id for p in frontier.items] == [first.id, second.id]


async def test_get_pages_to_crawl_stops_at_limit_and_reports_the_rest(db: Database) -> None:
    session = await make_session(db)
    for i in range(5):
        await make_page(db, session.id, url(f"p{i}"), 1)
    async with db.session() as s:
        frontier = await PageRepository(s).get_pages_to_crawl(session.id, limit=2)
    assert len(frontier.items) == 2
    assert (frontier.total, frontier.has_more, frontier.next_skip) == (5, True, 2)


async def test_get_pages_to_crawl_reserves_nothing(db: Database, raw: asyncpg.Connection) -> None:
    session = await make_session(db)
    page = await make_page(db, session.id, url("p"))
    async with db.session() as s:
        await PageRepository(s).get_pages_to_crawl(session.id)
    assert await raw.fetchval("SELECT status FROM pages WHERE id = $1", page.id) == "discovered"


@pytest.mark.parametrize("limit", [0, 101])
async def test_get_pages_to_crawl_refuses_an_out_of_range_limit(db: Database, limit: int) -> None:
    session = await make_session(db)
    with pytest.raises(InvalidArgument) as excinfo:
        async with db.session() as s:
            await PageRepository(s).get_pages_to_crawl(session.id, limit=limit)
    assert excinfo.value.field == "limit"
    assert "'limit'" in str(excinfo.value)


# --- analytics -------------------------------------------------------------------------------


async def test_page_analytics_count_its_bugs_and_children(db: Database) -> None:
    session = await make_session(db)
    page = await make_page(db, session.id, url(""))
    sibling = await make_page(db, session.id, url("sibling"), 1)
    children = [await make_page(db, session.id, url(f"c{i}"), 1, page.id) for i in range(3)]
    await make_page(db, session.id, url("grandchild"), 2, children[0].id)
    filed = [
        ("critical", "security"),
        ("high", "ui_ux"),
        ("high", "ui_ux"),
        ("low", "performance"),
        ("low", "data"),
    ]
    for i, (priority, category) in enumerate(filed):
        await make_bug(
            db, session.id, page.id, priority=priority, category=category, title=bug_title(i)
        )
    await make_bug(db, session.id, sibling.id, priority="critical", title="elsewhere")

    async with db.session() as s:
        result = await PageRepository(s).get_page_analytics(page.id)

    priorities = Counter(p for p, _ in filed)
    categories = Counter(c for _, c in filed)
    assert result.page.id == page.id
    assert result.bugs_total == len(filed)
    assert result.bugs_by_priority == {p: priorities[p.value] for p in BugPriority}
    assert result.bugs_by_category == {c: categories[c.value] for c in BugCategory}
    assert result.children_count == len(children)


async def test_page_analytics_timing_appears_once_analyzed(db: Database) -> None:
    session = await make_session(db)
    page = await make_page(db, session.id, url("t"))
    async with db.session() as s:
        before = await PageRepository(s).get_page_analytics(page.id)
    async with db.session() as s:
        repo = PageRepository(s)
        await repo.mark_crawling(page.id)
        analyzed = await repo.mark_analyzed(page.id, response_time_ms=321)
    async with db.session() as s:
        after = await PageRepository(s).get_page_analytics(page.id)
    assert (before.seconds_to_crawl, before.response_time_ms) == (None, None)
    assert after.response_time_ms == 321
    assert analyzed.crawled_at is not None
    expected = (analyzed.crawled_at - analyzed.discovered_at).total_seconds()
    assert after.seconds_to_crawl == pytest.approx(expected)
    assert after.seconds_to_crawl is not None
    assert after.seconds_to_crawl > 0


async def test_page_analytics_of_a_page_without_bugs_or_children_are_zero(db: Database) -> None:
    session = await make_session(db)
    page = await make_page(db, session.id, url("lonely"))
    async with db.session() as s:
        result = await PageRepository(s).get_page_analytics(page.id)
    assert (result.bugs_total, result.children_count) == (0, 0)
    assert set(result.bugs_by_priority.values()) == {0}
    assert set(result.bugs_by_category.values()) == {0}


# --- navigation graph ------------------------------------------------------------------------


async def build_tree(db: Database, session_id: uuid.UUID) -> dict[str, Any]:
    """root → a, b; a → a1, a2; b → b1 (depths 0, 1, 2). Returns pages by name."""
    pages: dict[str, Any] = {}
    pages["root"] = await make_page(db, session_id, url(""), 0)
    for name in ("a", "b"):
        pages[name] = await make_page(db, session_id, url(name), 1, pages["root"].id)
    for name, parent in (("a1", "a"), ("a2", "a"), ("b1", "b")):
        pages[name] = await make_page(db, session_id, url(name), 2, pages[parent].id)
    return pages


TREE_EDGES = {("root", "a"), ("root", "b"), ("a", "a1"), ("a", "a2"), ("b", "b1")}


async def test_navigation_graph_has_every_page_and_parent_child_link(db: Database) -> None:
    session = await make_session(db)
    pages = await build_tree(db, session.id)
    other = await make_session(db)
    await make_page(db, other.id, url("other"))
    async with db.session() as s:
        graph = await PageRepository(s).get_navigation_graph(session.id)
    names = {page.id: name for name, page in pages.items()}
    assert {names[n.id] for n in graph.nodes} == set(pages)
    assert {(names[e.source], names[e.target]) for e in graph.edges} == TREE_EDGES
    assert (graph.total_nodes, graph.truncated) == (len(pages), False)
    assert {(n.url, n.depth) for n in graph.nodes} == {(p.url, p.depth) for p in pages.values()}


async def test_navigation_graph_truncates_to_the_shallowest_pages(db: Database) -> None:
    session = await make_session(db)
    pages = await build_tree(db, session.id)
    async with db.session() as s:
        graph = await PageRepository(s).get_navigation_graph(session.id, max_nodes=3)
    names = {page.id: name for name, page in pages.items()}
    assert {names[n.id] for n in graph.nodes} == {"root", "a", "b"}
    assert {(names[e.source], names[e.target]) for e in graph.edges} == {
        ("root", "a"),
        ("root", "b"),
    }
    assert (graph.total_nodes, graph.truncated) == (len(pages), True)


async def test_navigation_graph_of_exactly_max_nodes_is_not_truncated(db: Database) -> None:
    session = await make_session(db)
    pages = await build_tree(db, session.id)
    async with db.session() as s:
        graph = await PageRepository(s).get_navigation_graph(session.id, max_nodes=len(pages))
    assert (len(graph.nodes), graph.truncated) == (len(pages), False)


@pytest.mark.parametrize("max_nodes", [0, -1])
async def test_navigation_graph_refuses_a_non_positive_max_nodes(
    db: Database, max_nodes: int
) -> None:
    session = await make_session(db)
    with pytest.raises(InvalidArgument) as excinfo:
        async with db.session() as s:
            await PageRepository(s).get_navigation_graph(session.id, max_nodes=max_nodes)
    assert excinfo.value.field == "max_nodes"
