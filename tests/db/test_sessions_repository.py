"""CrawlSessionRepository: creation, the pending → running → completed | failed life cycle,
counters and cost, listing and the statistics an agent reads."""

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from db.connection.database import Database
from db.enums import BugPriority, PageStatus, SessionStatus
from db.errors import InvalidArgument, InvalidTransition, NotFound
from db.repositories import CrawlSessionRepository, PageRepository
from db.schemas import MASK, CrawlConfig, SiteCredentials
from tests.db.states import bug_title, session_in
from tests.db.test_liveness import queries_on
from tests.factories import make_bug, make_page, make_session

SessionCall = Callable[[CrawlSessionRepository, uuid.UUID], Awaitable[Any]]


async def counters(raw: asyncpg.Connection, session_id: uuid.UUID) -> tuple[int, int, int]:
    row = await raw.fetchrow(
        "SELECT pages_discovered, pages_crawled, bugs_found FROM crawl_sessions WHERE id = $1",
        session_id,
    )
    assert row is not None
    return row["pages_discovered"], row["pages_crawled"], row["bugs_found"]


# --- create / get ----------------------------------------------------------------------------


async def test_create_session_starts_pending_with_zero_counters(db: Database) -> None:
    async with db.session() as s:
        created = await CrawlSessionRepository(s).create_session(
            "https://example.com", CrawlConfig(max_depth=2)
        )
    assert created.status == SessionStatus.PENDING
    assert (created.pages_discovered, created.pages_crawled, created.bugs_found) == (0, 0, 0)
    assert created.total_cost == 0
    assert created.started_at is None
    assert created.completed_at is None
    assert created.config["max_depth"] == 2


async def test_create_session_stores_the_config_as_json(
    db: Database, raw: asyncpg.Connection
) -> None:
    async with db.session() as s:
        created = await CrawlSessionRepository(s).create_session(
            "https://example.com", {"max_pages": 7, "exclude_patterns": ["*/logout"]}
        )
    stored = await raw.fetchval(
        "SELECT config ->> 'max_pages' FROM crawl_sessions WHERE id = $1", created.id
    )
    patterns = await raw.fetchval(
        "SELECT config -> 'exclude_patterns' ->> 0 FROM crawl_sessions WHERE id = $1", created.id
    )
    assert (stored, patterns) == ("7", "*/logout")


async def test_create_session_without_config_uses_the_defaults(db: Database) -> None:
    async with db.session() as s:
        created = await CrawlSessionRepository(s).create_session("https://example.com")
    assert created.config == CrawlConfig().to_storage()


async def test_create_session_refuses_an_invalid_config(db: Database) -> None:
    with pytest.raises(InvalidArgument) as excinfo:
        async with db.session() as s:
            await CrawlSessionRepository(s).create_session("https://example.com", {"max_depth": -1})
    assert excinfo.value.field == "config"
    assert "max_depth" in str(excinfo.value)


@pytest.mark.parametrize(
    ("base_url", "config", "field"),
    [
        ("https://bob:hunter2@shop.example/", None, "base_url"),
        ("https://hunter2@shop.example/", None, "base_url"),
        (
            "https://shop.example/",
            {
                "credentials": {
                    "username": "qa",
                    "password": "x",
                    "login_url": "https://qa:hunter2@shop.example/login",
                }
            },
            "config",
        ),
    ],
)
async def test_create_session_refuses_a_user_or_password_in_a_url_and_stores_nothing(
    db: Database, raw: asyncpg.Connection, base_url: str, config: dict[str, Any] | None, field: str
) -> None:
    """Stored URLs are shown in clear: a password in one would bypass the encryption at rest
    of config.credentials, where the error says it belongs."""
    with pytest.raises(InvalidArgument) as refused:
        async with db.session() as s:
            await CrawlSessionRepository(s).create_session(base_url, config)
    assert refused.value.field == field
    assert "has a user name or password in it" in str(refused.value)
    assert "config.credentials" in str(refused.value)
    assert "hunter2" not in str(refused.value)
    assert await raw.fetchval("SELECT count(*) FROM crawl_sessions") == 0


async def test_session_output_masks_the_site_password_but_get_config_keeps_it(
    db: Database,
) -> None:
    config = CrawlConfig(credentials=SiteCredentials(username="qa", password="hunter2"))
    async with db.session() as s:
        repo = CrawlSessionRepository(s)
        created = await repo.create_session("https://example.com", config)
        crawler_config = await repo.get_config(created.id)
    assert "hunter2" not in created.model_dump_json()
    assert created.model_dump()["config"]["credentials"]["password"] == MASK
    assert crawler_config.credentials is not None
    assert crawler_config.credentials.password.get_secret_value() == "hunter2"


async def test_get_returns_the_stored_session(db: Database) -> None:
    created = await make_session(db, "https://get.example")
    async with db.session() as s:
        fetched = await CrawlSessionRepository(s).get(created.id)
    assert fetched == created


# --- life cycle ------------------------------------------------------------------------------


async def test_session_goes_pending_running_completed(db: Database) -> None:
    created = await make_session(db, start=False)
    async with db.session() as s:
        running = await CrawlSessionRepository(s).start_session(created.id)
    async with db.session() as s:
        completed = await CrawlSessionRepository(s).complete_session(running.id)
    assert running.status == SessionStatus.RUNNING
    assert running.started_at is not None
    assert running.completed_at is None
    assert completed.status == SessionStatus.COMPLETED
    assert completed.completed_at is not None
    assert completed.completed_at >= running.started_at
    assert completed.error_message is None


async def test_session_goes_pending_running_failed_with_its_error(db: Database) -> None:
    running = await make_session(db)
    async with db.session() as s:
        failed = await CrawlSessionRepository(s).complete_session(
            running.id, success=False, error_message="browser crashed"
        )
    assert failed.status == SessionStatus.FAILED
    assert failed.error_message == "browser crashed"
    assert failed.completed_at is not None


async def test_pending_session_can_fail_before_it_starts(db: Database) -> None:
    pending = await make_session(db, start=False)
    async with db.session() as s:
        failed = await CrawlSessionRepository(s).complete_session(
            pending.id, success=False, error_message="site unreachable"
        )
    assert failed.status == SessionStatus.FAILED
    assert failed.started_at is None


async def start(repo: CrawlSessionRepository, session_id: uuid.UUID) -> Any:
    return await repo.start_session(session_id)


async def complete(repo: CrawlSessionRepository, session_id: uuid.UUID) -> Any:
    return await repo.complete_session(session_id)


async def fail(repo: CrawlSessionRepository, session_id: uuid.UUID) -> Any:
    return await repo.complete_session(session_id, success=False, error_message="x")


ILLEGAL_SESSION_TRANSITIONS = [
    (start, SessionStatus.RUNNING, ["pending"]),
    (start, SessionStatus.COMPLETED, ["pending"]),
    (start, SessionStatus.FAILED, ["pending"]),
    (complete, SessionStatus.PENDING, ["running"]),
    (complete, SessionStatus.COMPLETED, ["running"]),
    (complete, SessionStatus.FAILED, ["running"]),
    (fail, SessionStatus.COMPLETED, ["pending", "running"]),
    (fail, SessionStatus.FAILED, ["pending", "running"]),
]


@pytest.mark.parametrize(
    ("action", "current", "allowed"),
    ILLEGAL_SESSION_TRANSITIONS,
    ids=[f"{a.__name__}-from-{c}" for a, c, _ in ILLEGAL_SESSION_TRANSITIONS],
)
async def test_illegal_session_transition_raises_and_names_the_states(
    db: Database,
    raw: asyncpg.Connection,
    action: SessionCall,
    current: SessionStatus,
    allowed: list[str],
) -> None:
    session = await session_in(db, current)
    with pytest.raises(InvalidTransition) as excinfo:
        async with db.session() as s:
            await action(CrawlSessionRepository(s), session.id)
    err = excinfo.value
    assert err.current == current
    assert list(err.allowed_from) == allowed
    assert f"'{current}'" in str(err)
    assert all(f"'{state}'" in str(err) for state in allowed)
    stored = await raw.fetchval("SELECT status FROM crawl_sessions WHERE id = $1", session.id)
    assert stored == current


async def get_config(repo: CrawlSessionRepository, session_id: uuid.UUID) -> Any:
    return await repo.get_config(session_id)


async def increment_discovered(repo: CrawlSessionRepository, session_id: uuid.UUID) -> Any:
    return await repo.increment_pages_discovered(session_id)


async def increment_crawled(repo: CrawlSessionRepository, session_id: uuid.UUID) -> Any:
    return await repo.increment_pages_crawled(session_id)


async def increment_bugs(repo: CrawlSessionRepository, session_id: uuid.UUID) -> Any:
    return await repo.increment_bugs_found(session_id)


async def add_cost(repo: CrawlSessionRepository, session_id: uuid.UUID) -> Any:
    return await repo.add_cost(session_id, 0.01)


async def statistics(repo: CrawlSessionRepository, session_id: uuid.UUID) -> Any:
    return await repo.get_session_statistics(session_id)


async def get(repo: CrawlSessionRepository, session_id: uuid.UUID) -> Any:
    return await repo.get(session_id)


MISSING_ID_CALLS: list[SessionCall] = [
    get,
    get_config,
    start,
    complete,
    fail,
    increment_discovered,
    increment_crawled,
    increment_bugs,
    add_cost,
    statistics,
]


@pytest.mark.parametrize("call", MISSING_ID_CALLS, ids=[c.__name__ for c in MISSING_ID_CALLS])
async def test_missing_session_id_raises_not_found(db: Database, call: SessionCall) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFound) as excinfo:
        async with db.session() as s:
            await call(CrawlSessionRepository(s), missing)
    assert excinfo.value.entity_id == missing
    assert str(missing) in str(excinfo.value)


# --- counters and cost -----------------------------------------------------------------------


async def test_increment_pages_discovered_adds_one_by_default_and_count_otherwise(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    async with db.session() as s:
        repo = CrawlSessionRepository(s)
        await repo.increment_pages_discovered(session.id)
        await repo.increment_pages_discovered(session.id, count=5)
    assert await counters(raw, session.id) == (6, 0, 0)


async def test_increment_pages_crawled_adds_to_its_own_counter(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    async with db.session() as s:
        repo = CrawlSessionRepository(s)
        await repo.increment_pages_crawled(session.id)
        await repo.increment_pages_crawled(session.id, count=2)
    assert await counters(raw, session.id) == (0, 3, 0)


async def test_increment_bugs_found_adds_one_by_default_and_count_otherwise(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    async with db.session() as s:
        repo = CrawlSessionRepository(s)
        await repo.increment_bugs_found(session.id)
        await repo.increment_bugs_found(session.id, count=4)
    assert await counters(raw, session.id) == (0, 0, 5)


async def test_increments_touch_only_their_session(db: Database, raw: asyncpg.Connection) -> None:
    target = await make_session(db)
    other = await make_session(db)
    async with db.session() as s:
        await CrawlSessionRepository(s).increment_bugs_found(target.id, count=2)
    assert await counters(raw, other.id) == (0, 0, 0)


@pytest.mark.parametrize(
    "method", ["increment_pages_discovered", "increment_pages_crawled", "increment_bugs_found"]
)
async def test_negative_increment_is_refused(
    db: Database, raw: asyncpg.Connection, method: str
) -> None:
    session = await make_session(db)
    with pytest.raises(InvalidArgument) as excinfo:
        async with db.session() as s:
            await getattr(CrawlSessionRepository(s), method)(session.id, count=-1)
    assert excinfo.value.field == "count"
    assert await counters(raw, session.id) == (0, 0, 0)


async def test_add_cost_accumulates_exactly_and_returns_the_session(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await make_session(db)
    async with db.session() as s:
        repo = CrawlSessionRepository(s)
        for _ in range(3):
            updated = await repo.add_cost(session.id, 0.05)
        updated = await repo.add_cost(session.id, Decimal("0.0001"))
    assert updated.total_cost == pytest.approx(0.1501)
    stored = await raw.fetchval("SELECT total_cost FROM crawl_sessions WHERE id = $1", session.id)
    assert stored == Decimal("0.1501")


@pytest.mark.parametrize("cost", [-0.01, float("nan"), float("inf"), 10_000.01])
async def test_add_cost_refuses_values_outside_its_range(
    db: Database, raw: asyncpg.Connection, cost: float
) -> None:
    session = await make_session(db)
    with pytest.raises(InvalidArgument) as excinfo:
        async with db.session() as s:
            await CrawlSessionRepository(s).add_cost(session.id, cost)
    assert excinfo.value.field == "cost"
    stored = await raw.fetchval("SELECT total_cost FROM crawl_sessions WHERE id = $1", session.id)
    assert stored == 0


# --- list ------------------------------------------------------------------------------------


async def test_list_returns_sessions_newest_first(db: Database) -> None:
    created = [await make_session(db, f"https://{i}.example") for i in range(4)]
    async with db.session() as s:
        listed = await CrawlSessionRepository(s).list()
    assert [item.id for item in listed.items] == [c.id for c in reversed(created)]
    assert listed.total == 4
    assert listed.has_more is False
    assert listed.next_skip is None


async def test_list_filters_by_status(db: Database) -> None:
    by_status = {status: await session_in(db, status) for status in SessionStatus}
    extra_running = await session_in(db, SessionStatus.RUNNING)
    async with db.session() as s:
        running = await CrawlSessionRepository(s).list(status=SessionStatus.RUNNING)
        failed = await CrawlSessionRepository(s).list(status="failed")  # type: ignore[arg-type]
    assert [i.id for i in running.items] == [extra_running.id, by_status[SessionStatus.RUNNING].id]
    assert running.total == 2
    assert [i.id for i in failed.items] == [by_status[SessionStatus.FAILED].id]


async def test_list_refuses_an_unknown_status(db: Database) -> None:
    with pytest.raises(InvalidArgument) as excinfo:
        async with db.session() as s:
            await CrawlSessionRepository(s).list(status="paused")  # type: ignore[arg-type]
    assert excinfo.value.field == "status"


async def test_list_pages_through_all_sessions_without_gaps_or_repeats(db: Database) -> None:
    created = [await make_session(db, f"https://{i}.example") for i in range(5)]
    pages = []
    skip: int | None = 0
    async with db.session() as s:
        repo = CrawlSessionRepository(s)
        while skip is not None:
            page = await repo.list(skip=skip, limit=2)
            pages.append(page)
            skip = page.next_skip
    assert [len(p.items) for p in pages] == [2, 2, 1]
    assert [(p.skip, p.has_more, p.next_skip) for p in pages] == [
        (0, True, 2),
        (2, True, 4),
        (4, False, None),
    ]
    assert {p.total for p in pages} == {5}
    assert [i.id for p in pages for i in p.items] == [c.id for c in reversed(created)]


async def test_list_beyond_the_end_is_empty(db: Database) -> None:
    await make_session(db)
    async with db.session() as s:
        listed = await CrawlSessionRepository(s).list(skip=5, limit=10)
    assert (listed.items, listed.total, listed.has_more, listed.next_skip) == ([], 1, False, None)


@pytest.mark.parametrize(
    ("skip", "limit", "field"), [(0, 0, "limit"), (0, 101, "limit"), (-1, 20, "skip")]
)
async def test_list_refuses_out_of_range_pagination(
    db: Database, skip: int, limit: int, field: str
) -> None:
    with pytest.raises(InvalidArgument) as excinfo:
        async with db.session() as s:
            await CrawlSessionRepository(s).list(skip=skip, limit=limit)
    assert excinfo.value.field == field
    assert f"'{field}'" in str(excinfo.value)


@pytest.mark.parametrize("limit", [1, 100])
async def test_list_accepts_the_limit_bounds(db: Database, limit: int) -> None:
    await make_session(db)
    async with db.session() as s:
        listed = await CrawlSessionRepository(s).list(limit=limit)
    assert (listed.limit, len(listed.items)) == (limit, 1)


# --- statistics ------------------------------------------------------------------------------


async def test_session_statistics_match_the_rows(db: Database, raw: asyncpg.Connection) -> None:
    session = await make_session(db)
    other = await make_session(db, "https://other.example")
    wanted_pages = (
        [PageStatus.DISCOVERED] * 4
        + [PageStatus.CRAWLING] * 2
        + [PageStatus.ANALYZED] * 3
        + [PageStatus.ERROR] * 1
    )
    page_ids = []
    async with db.session() as s:
        repo = PageRepository(s)
        for i, status in enumerate(wanted_pages):
            page = await repo.create_page(session.id, f"https://shop.example/{i}", depth=1)
            page_ids.append(page.id)
            if status in (PageStatus.CRAWLING, PageStatus.ANALYZED):
                await repo.mark_crawling(page.id)
            if status == PageStatus.ANALYZED:
                await repo.mark_analyzed(page.id, title=f"p{i}")
            if status == PageStatus.ERROR:
                await repo.mark_error(page.id, "timeout")
    wanted_bugs = ["critical", "high", "high", "low", "low", "low"]
    for i, priority in enumerate(wanted_bugs):
        await make_bug(db, session.id, page_ids[i], priority=priority, title=bug_title(i))
    other_page = await make_page(db, other.id, "https://other.example/")
    await make_bug(db, other.id, other_page.id, priority="critical")
    async with db.session() as s:
        await CrawlSessionRepository(s).add_cost(session.id, 1.25)

    async with db.session() as s:
        stats = await CrawlSessionRepository(s).get_session_statistics(session.id)

    page_counts = Counter(wanted_pages)
    bug_counts = Counter(wanted_bugs)
    assert stats.pages_total == len(wanted_pages)
    assert stats.pages_by_status == {status: page_counts[status] for status in PageStatus}
    assert stats.bugs_total == len(wanted_bugs)
    assert stats.bugs_by_priority == {p: bug_counts[p.value] for p in BugPriority}
    finished = page_counts[PageStatus.ANALYZED] + page_counts[PageStatus.ERROR]
    assert stats.crawl_progress == pytest.approx(finished / len(wanted_pages))
    assert stats.total_cost == pytest.approx(1.25)
    assert stats.session.pages_discovered == len(wanted_pages)
    assert stats.session.pages_crawled == page_counts[PageStatus.ANALYZED]
    assert stats.session.bugs_found == len(wanted_bugs)
    db_pages = await raw.fetchval("SELECT count(*) FROM pages WHERE session_id = $1", session.id)
    assert stats.pages_total == db_pages


async def test_session_statistics_are_one_statement_in_autocommit_with_the_same_figures(
    db: Database,
) -> None:
    """As the tool runs them (a ``@reads`` method alone in its unit of work): one round trip,
    no BEGIN or COMMIT, and the figures of a transaction's read."""
    session = await make_session(db)
    page = await make_page(db, session.id, "https://shop.example/a")
    await make_bug(db, session.id, page.id, priority="high")
    async with db.session() as s:
        s.begin()
        in_transaction = await CrawlSessionRepository(s).get_session_statistics(session.id)

    sent = await queries_on(db)
    async with db.session() as s:
        alone = await CrawlSessionRepository(s).get_session_statistics(session.id)
    await asyncio.sleep(0)  # asyncpg hands queries to its loggers with call_soon

    assert len(sent) == 1 and "FROM crawl_sessions AS crawl" in sent[0]
    assert alone.model_dump(exclude={"duration_seconds"}) == in_transaction.model_dump(
        exclude={"duration_seconds"}
    )
    assert (alone.pages_total, alone.bugs_by_priority[BugPriority.HIGH]) == (1, 1)
    with pytest.raises(NotFound, match="crawl session"):
        async with db.session() as s:
            await CrawlSessionRepository(s).get_session_statistics(uuid.uuid4())


async def test_session_statistics_of_an_empty_session_are_zero(db: Database) -> None:
    session = await make_session(db, start=False)
    async with db.session() as s:
        stats = await CrawlSessionRepository(s).get_session_statistics(session.id)
    assert (stats.pages_total, stats.bugs_total, stats.crawl_progress) == (0, 0, 0.0)
    assert set(stats.pages_by_status.values()) == {0}
    assert set(stats.bugs_by_priority.values()) == {0}
    assert stats.duration_seconds is None


async def test_session_statistics_duration_of_a_finished_session(
    db: Database, raw: asyncpg.Connection
) -> None:
    session = await session_in(db, SessionStatus.COMPLETED)
    async with db.session() as s:
        stats = await CrawlSessionRepository(s).get_session_statistics(session.id)
    row = await raw.fetchrow(
        "SELECT started_at, completed_at FROM crawl_sessions WHERE id = $1", session.id
    )
    assert row is not None
    expected = (row["completed_at"] - row["started_at"]).total_seconds()
    assert stats.duration_seconds == pytest.approx(expected)


async def test_session_statistics_duration_of_a_running_session_grows_from_its_start(
    db: Database,
) -> None:
    session = await make_session(db)
    async with db.session() as s:
        stats = await CrawlSessionRepository(s).get_session_statistics(session.id)
    assert stats.duration_seconds is not None
    assert stats.duration_seconds > 0
