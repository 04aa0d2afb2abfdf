"""BugRepository: filing bugs with evidence and steps, the detected → validated → reported life
cycle (any → dismissed), the triage queries and the statistics."""

import statistics
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from db.bug_schemas import BugPublic, Evidence
from db.connection.database import Database
from db.enums import BugCategory, BugPriority, BugStatus, EvidenceType
from db.errors import InvalidArgument, InvalidTransition, NotFound
from db.repositories import BugRepository
from tests.db.states import bug_in, bug_title
from tests.factories import make_bug, make_page, make_session

BugCall = Callable[[BugRepository, uuid.UUID], Awaitable[Any]]
LINEAR_URL = "https://linear.app/acme/issue/BUG-123"


async def bugs_found(raw: asyncpg.Connection, session_id: uuid.UUID) -> int:
    return int(
        await raw.fetchval("SELECT bugs_found FROM crawl_sessions WHERE id = $1", session_id)
    )


async def session_with_page(db: Database) -> tuple[uuid.UUID, uuid.UUID]:
    session = await make_session(db)
    page = await make_page(db, session.id)
    return session.id, page.id


async def file_bugs(
    db: Database, session_id: uuid.UUID, page_id: uuid.UUID, specs: list[dict[str, Any]]
) -> list[BugPublic]:
    """One bug per spec, each in its own transaction (so creation times are distinct)."""
    return [
        await make_bug(db, session_id, page_id, title=bug_title(i), **spec)
        for i, spec in enumerate(specs)
    ]


# --- create_bug ------------------------------------------------------------------------------


async def test_create_bug_files_a_detected_bug_with_all_its_fields(db: Database) -> None:
    session_id, page_id = await session_with_page(db)
    async with db.session() as s:
        bug = await BugRepository(s).create_bug(
            session_id=session_id,
            page_id=page_id,
            category="ui_ux",
            priority="high",
            title="Button overlaps text",
            description="On mobile viewports the buy button covers the price.",
            steps_to_reproduce=["Open /products", "Resize to 375px"],
            evidence=[
                Evidence(type=EvidenceType.SCREENSHOT, url="https://cdn.example/1.png"),
                {"type": "console_log", "content": "TypeError: x is undefined"},
            ],
            confidence=0.92,
            expected_behavior="The price is readable",
            actual_behavior="The button hides the price",
            affected_users="mobile shoppers",
            browser_info={"name": "chromium", "viewport": "375x812"},
        )
    assert bug.status == BugStatus.DETECTED
    assert (bug.session_id, bug.page_id) == (session_id, page_id)
    assert (bug.category, bug.priority) == (BugCategory.UI_UX, BugPriority.HIGH)
    assert bug.steps_to_reproduce == ["Open /products", "Resize to 375px"]
    assert bug.evidence == [
        {"type": "screenshot", "url": "https://cdn.example/1.png"},
        {"type": "console_log", "content": "TypeError: x is undefined"},
    ]
    assert bug.confidence == pytest.approx(0.92)
    assert (bug.expected_behavior, bug.actual_behavior) == (
        "The price is readable",
        "The button hides the price",
    )
    assert bug.affected_users == "mobile shoppers"
    assert bug.browser_info == {"name": "chromium", "viewport": "375x812"}
    assert (bug.linear_issue_id, bug.reported_at, bug.dismissed_at) == (None, None, None)


async def test_create_bug_stores_evidence_and_steps_as_json_arrays(
    db: Database, raw: asyncpg.Connection
) -> None:
    session_id, page_id = await session_with_page(db)
    bug = await make_bug(db, session_id, page_id, steps_to_reproduce=["a", "b", "c"])
    row = await raw.fetchrow(
        "SELECT jsonb_array_length(steps_to_reproduce) AS steps,"
        " evidence -> 0 ->> 'type' AS first_evidence FROM bugs WHERE id = $1",
        bug.id,
    )
    assert row is not None
    assert (row["steps"], row["first_evidence"]) == (3, "screenshot")


async def test_create_bug_raises_bugs_found_by_one(db: Database, raw: asyncpg.Connection) -> None:
    session_id, page_id = await session_with_page(db)
    await file_bugs(db, session_id, page_id, [{}, {}, {}])
    assert await bugs_found(raw, session_id) == 3


async def test_create_bug_in_a_missing_session_raises_not_found(db: Database) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFound) as excinfo:
        async with db.session() as s:
            await BugRepository(s).create_bug(missing, uuid.uuid4(), "data", "low", "t", "d")
    assert (excinfo.value.entity_id, excinfo.value.field) == (missing, "session_id")


async def test_create_bug_on_a_missing_page_raises_not_found(db: Database) -> None:
    session_id, _ = await session_with_page(db)
    missing = uuid.uuid4()
    with pytest.raises(NotFound) as excinfo:
        async with db.session() as s:
            await BugRepository(s).create_bug(session_id, missing, "data", "low", "t", "d")
    assert (excinfo.value.entity_id, excinfo.value.field) == (missing, "page_id")


async def test_create_bug_on_a_page_of_another_session_is_refused(
    db: Database, raw: asyncpg.Connection
) -> None:
    session_id, _ = await session_with_page(db)
    _, foreign_page = await session_with_page(db)
    with pytest.raises(InvalidArgument) as excinfo:
        async with db.session() as s:
            await BugRepository(s).create_bug(session_id, foreign_page, "data", "low", "t", "d")
    assert excinfo.value.field == "page_id"
    assert await raw.fetchval("SELECT count(*) FROM bugs") == 0
    assert await bugs_found(raw, session_id) == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"category": "typo"}, "category"),
        ({"priority": "urgent"}, "priority"),
        ({"confidence": 1.2}, "confidence"),
        ({"confidence": -0.1}, "confidence"),
        ({"steps_to_reproduce": "click everything"}, "steps_to_reproduce"),
        ({"steps_to_reproduce": ["ok", "  "]}, "steps_to_reproduce[1]"),
        ({"evidence": [{"type": "screenshot"}]}, "evidence[0]"),
        ({"evidence": [{"type": "smell", "content": "x"}]}, "evidence[0].type"),
    ],
    ids=[
        "category",
        "priority",
        "confidence-high",
        "confidence-low",
        "steps-string",
        "steps-blank",
        "evidence-empty",
        "evidence-type",
    ],
)
async def test_create_bug_refuses_invalid_input_and_stores_nothing(
    db: Database, raw: asyncpg.Connection, overrides: dict[str, Any], field: str
) -> None:
    session_id, page_id = await session_with_page(db)
    with pytest.raises(InvalidArgument) as excinfo:
        await make_bug(db, session_id, page_id, **overrides)
    assert excinfo.value.field == field
    assert await raw.fetchval("SELECT count(*) FROM bugs") == 0
    assert await bugs_found(raw, session_id) == 0


async def test_get_returns_the_stored_bug(db: Database) -> None:
    session_id, page_id = await session_with_page(db)
    created = await make_bug(db, session_id, page_id)
    async with db.session() as s:
        fetched = await BugRepository(s).get(created.id)
    stored_fields = {k: v for k, v in created.model_dump().items() if k in BugPublic.model_fields}
    assert fetched.model_dump() == stored_fields


# --- life cycle ------------------------------------------------------------------------------


async def test_bug_goes_detected_validated_reported(db: Database) -> None:
    session_id, page_id = await session_with_page(db)
    bug = await make_bug(db, session_id, page_id)
    async with db.session() as s:
        validated = await BugRepository(s).mark_validated(bug.id)
    async with db.session() as s:
        reported = await BugRepository(s).mark_reported(bug.id, "BUG-123", LINEAR_URL)
    assert validated.status == BugStatus.VALIDATED
    assert reported.status == BugStatus.REPORTED
    assert (reported.linear_issue_id, reported.linear_issue_url) == ("BUG-123", LINEAR_URL)
    assert reported.reported_at is not None
    assert reported.reported_at >= reported.created_at


@pytest.mark.parametrize("current", [BugStatus.DETECTED, BugStatus.VALIDATED, BugStatus.REPORTED])
async def test_bug_can_be_dismissed_from_every_live_state(db: Database, current: BugStatus) -> None:
    bug = await bug_in(db, current)
    async with db.session() as s:
        dismissed = await BugRepository(s).dismiss(bug.id, "false positive")
    assert dismissed.status == BugStatus.DISMISSED
    assert dismissed.dismissed_reason == "false positive"
    assert dismissed.dismissed_at is not None


async def test_dismissing_a_reported_bug_keeps_its_linear_issue(db: Database) -> None:
    bug = await bug_in(db, BugStatus.REPORTED)
    async with db.session() as s:
        dismissed = await BugRepository(s).dismiss(bug.id, "won't fix")
    assert dismissed.linear_issue_id == bug.linear_issue_id


async def validate(repo: BugRepository, bug_id: uuid.UUID) -> Any:
    return await repo.mark_validated(bug_id)


async def report(repo: BugRepository, bug_id: uuid.UUID) -> Any:
    return await repo.mark_reported(bug_id, "BUG-9", LINEAR_URL)


async def dismiss(repo: BugRepository, bug_id: uuid.UUID) -> Any:
    return await repo.dismiss(bug_id, "duplicate")


ILLEGAL_BUG_TRANSITIONS = [
    (validate, BugStatus.VALIDATED, ["detected"]),
    (validate, BugStatus.REPORTED, ["detected"]),
    (validate, BugStatus.DISMISSED, ["detected"]),
    (report, BugStatus.DETECTED, ["validated"]),
    (report, BugStatus.REPORTED, ["validated"]),
    (report, BugStatus.DISMISSED, ["validated"]),
    (dismiss, BugStatus.DISMISSED, ["detected", "validated", "reported"]),
]


@pytest.mark.parametrize(
    ("action", "current", "allowed"),
    ILLEGAL_BUG_TRANSITIONS,
    ids=[f"{a.__name__}-from-{c}" for a, c, _ in ILLEGAL_BUG_TRANSITIONS],
)
async def test_illegal_bug_transition_raises_and_names_the_states(
    db: Database,
    raw: asyncpg.Connection,
    action: BugCall,
    current: BugStatus,
    allowed: list[str],
) -> None:
    bug = await bug_in(db, current)
    with pytest.raises(InvalidTransition) as excinfo:
        async with db.session() as s:
            await action(BugRepository(s), bug.id)
    err = excinfo.value
    assert (err.entity_id, err.current, list(err.allowed_from)) == (bug.id, current, allowed)
    assert f"'{current}'" in str(err)
    assert all(f"'{state}'" in str(err) for state in allowed)
    row = await raw.fetchrow(
        "SELECT status, linear_issue_id, dismissed_reason FROM bugs WHERE id = $1", bug.id
    )
    assert row is not None
    assert tuple(row) == (current, bug.linear_issue_id, bug.dismissed_reason)


async def get(repo: BugRepository, bug_id: uuid.UUID) -> Any:
    return await repo.get(bug_id)


MISSING_BUG_CALLS: list[BugCall] = [get, validate, report, dismiss]


@pytest.mark.parametrize("call", MISSING_BUG_CALLS, ids=[c.__name__ for c in MISSING_BUG_CALLS])
async def test_missing_bug_id_raises_not_found(db: Database, call: BugCall) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFound) as excinfo:
        async with db.session() as s:
            await call(BugRepository(s), missing)
    assert excinfo.value.entity_id == missing


@pytest.mark.parametrize(
    "method",
    ["get_high_confidence_bugs", "get_critical_bugs", "get_bug_statistics", "get_session_bugs"],
)
async def test_session_queries_of_a_missing_session_raise_not_found(
    db: Database, method: str
) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFound) as excinfo:
        async with db.session() as s:
            await getattr(BugRepository(s), method)(missing)
    assert (excinfo.value.entity_id, excinfo.value.field) == (missing, "session_id")


# --- triage queries --------------------------------------------------------------------------


async def test_high_confidence_bugs_are_at_or_above_the_threshold_and_not_dismissed(
    db: Database,
) -> None:
    session_id, page_id = await session_with_page(db)
    confidences = [0.95, 0.5, 0.8, 0.79, 0.99, 0.85]
    bugs = await file_bugs(db, session_id, page_id, [{"confidence": c} for c in confidences])
    async with db.session() as s:
        await BugRepository(s).dismiss(bugs[5].id, "duplicate")
    other_session, other_page = await session_with_page(db)
    await make_bug(db, other_session, other_page, confidence=0.99)

    async with db.session() as s:
        found = await BugRepository(s).get_high_confidence_bugs(session_id, min_confidence=0.8)

    assert [b.confidence for b in found.items] == [0.99, 0.95, 0.8]
    assert found.total == 3


async def test_high_confidence_bugs_default_threshold_is_0_8(db: Database) -> None:
    session_id, page_id = await session_with_page(db)
    await file_bugs(db, session_id, page_id, [{"confidence": c} for c in (0.8, 0.7999)])
    async with db.session() as s:
        found = await BugRepository(s).get_high_confidence_bugs(session_id)
    assert [b.confidence for b in found.items] == [0.8]


@pytest.mark.parametrize("threshold", [-0.01, 1.01])
async def test_high_confidence_threshold_outside_0_1_is_refused(
    db: Database, threshold: float
) -> None:
    session_id, _ = await session_with_page(db)
    with pytest.raises(InvalidArgument) as excinfo:
        async with db.session() as s:
            await BugRepository(s).get_high_confidence_bugs(session_id, min_confidence=threshold)
    assert excinfo.value.field == "min_confidence"


async def test_critical_bugs_are_the_critical_ones_not_dismissed_most_confident_first(
    db: Database,
) -> None:
    session_id, page_id = await session_with_page(db)
    specs: list[dict[str, Any]] = [
        {"priority": "critical", "confidence": 0.6},
        {"priority": "high", "confidence": 0.99},
        {"priority": "critical", "confidence": 0.9},
        {"priority": "critical", "confidence": 0.95},
        {"priority": "low", "confidence": 0.9},
    ]
    bugs = await file_bugs(db, session_id, page_id, specs)
    async with db.session() as s:
        await BugRepository(s).dismiss(bugs[3].id, "not reproducible")
    other_session, other_page = await session_with_page(db)
    await make_bug(db, other_session, other_page, priority="critical")

    async with db.session() as s:
        critical = await BugRepository(s).get_critical_bugs(session_id)

    assert [b.id for b in critical.items] == [bugs[2].id, bugs[0].id]
    assert critical.total == 2


# --- statistics ------------------------------------------------------------------------------


async def test_bug_statistics_match_the_filed_bugs(db: Database, raw: asyncpg.Connection) -> None:
    session_id, page_id = await session_with_page(db)
    specs: list[dict[str, Any]] = [
        {"priority": "critical", "category": "security", "confidence": 0.97},
        {"priority": "high", "category": "ui_ux", "confidence": 0.81},
        {"priority": "high", "category": "ui_ux", "confidence": 0.66},
        {"priority": "medium", "category": "data", "confidence": 0.5},
        {"priority": "low", "category": "performance", "confidence": 0.33},
        {"priority": "low", "category": "edge_case", "confidence": 0.42},
        {"priority": "low", "category": "ui_ux", "confidence": 0.9},
    ]
    bugs = await file_bugs(db, session_id, page_id, specs)
    async with db.session() as s:
        repo = BugRepository(s)
        await repo.mark_validated(bugs[0].id)
        await repo.mark_validated(bugs[1].id)
        await repo.mark_reported(bugs[1].id, "BUG-1", LINEAR_URL)
        await repo.dismiss(bugs[4].id, "noise")
    statuses = [
        "validated",
        "reported",
        "detected",
        "detected",
        "dismissed",
        "detected",
        "detected",
    ]
    other_session, other_page = await session_with_page(db)
    await make_bug(db, other_session, other_page, priority="critical", confidence=0.1)

    async with db.session() as s:
        stats = await BugRepository(s).get_bug_statistics(session_id)

    priorities = Counter(spec["priority"] for spec in specs)
    categories = Counter(spec["category"] for spec in specs)
    by_status = Counter(statuses)
    assert stats.total == len(specs)
    assert stats.by_priority == {p: priorities[p.value] for p in BugPriority}
    assert stats.by_category == {c: categories[c.value] for c in BugCategory}
    assert stats.by_status == {st: by_status[st.value] for st in BugStatus}
    mean = statistics.fmean(spec["confidence"] for spec in specs)
    assert stats.average_confidence == pytest.approx(mean, abs=1e-4)
    stored = await raw.fetch("SELECT status FROM bugs WHERE session_id = $1", session_id)
    assert Counter(r["status"] for r in stored) == by_status


async def test_bug_statistics_of_a_session_without_bugs_are_zero(db: Database) -> None:
    session_id, _ = await session_with_page(db)
    async with db.session() as s:
        stats = await BugRepository(s).get_bug_statistics(session_id)
    assert stats.total == 0
    assert stats.average_confidence is None
    for counts in (stats.by_priority, stats.by_category, stats.by_status):
        assert set(counts.values()) == {0}


# --- get_session_bugs ------------------------------------------------------------------------


async def test_session_bugs_are_ordered_critical_to_low_then_oldest_first(db: Database) -> None:
    session_id, page_id = await session_with_page(db)
    priorities = ["low", "critical", "medium", "high", "critical", "low", "high"]
    bugs = await file_bugs(db, session_id, page_id, [{"priority": p} for p in priorities])
    rank = {p.value: p.rank for p in BugPriority}
    expected = sorted(range(len(bugs)), key=lambda i: (rank[priorities[i]], i))

    async with db.session() as s:
        listed = await BugRepository(s).get_session_bugs(session_id)

    assert [b.id for b in listed.items] == [bugs[i].id for i in expected]
    assert [b.priority for b in listed.items] == ["critical"] * 2 + ["high"] * 2 + ["medium"] + [
        "low"
    ] * 2


async def test_session_bugs_include_only_the_sessions_bugs(db: Database) -> None:
    session_id, page_id = await session_with_page(db)
    mine = await file_bugs(db, session_id, page_id, [{}, {}])
    other_session, other_page = await session_with_page(db)
    await make_bug(db, other_session, other_page)
    async with db.session() as s:
        listed = await BugRepository(s).get_session_bugs(session_id)
    assert {b.id for b in listed.items} == {b.id for b in mine}
    assert listed.total == 2


FILTER_SPECS = [
    {"priority": "critical", "category": "security"},
    {"priority": "high", "category": "ui_ux"},
    {"priority": "high", "category": "data"},
    {"priority": "low", "category": "ui_ux"},
    {"priority": "high", "category": "ui_ux"},
]


@pytest.mark.parametrize(
    "filters",
    [
        {"priority": "high"},
        {"category": "ui_ux"},
        {"status": "dismissed"},
        {"status": "detected", "priority": "high", "category": "ui_ux"},
        {"priority": BugPriority.CRITICAL},
    ],
    ids=["priority", "category", "status", "all-three", "enum-value"],
)
async def test_session_bugs_filters_select_the_matching_bugs(
    db: Database, filters: dict[str, str]
) -> None:
    session_id, page_id = await session_with_page(db)
    bugs = await file_bugs(db, session_id, page_id, FILTER_SPECS)
    async with db.session() as s:
        await BugRepository(s).dismiss(bugs[4].id, "duplicate")
    states = [{**spec, "status": "detected"} for spec in FILTER_SPECS]
    states[4]["status"] = "dismissed"
    expected = {
        bug.id
        for bug, state in zip(bugs, states, strict=True)
        if all(state[key] == value for key, value in filters.items())
    }

    async with db.session() as s:
        listed = await BugRepository(s).get_session_bugs(session_id, **filters)  # type: ignore[arg-type]

    assert {b.id for b in listed.items} == expected
    assert listed.total == len(expected)
    assert expected, "the filter should match something"


@pytest.mark.parametrize("field", ["status", "priority", "category"])
async def test_session_bugs_refuse_an_unknown_filter_value(db: Database, field: str) -> None:
    session_id, _ = await session_with_page(db)
    with pytest.raises(InvalidArgument) as excinfo:
        async with db.session() as s:
            await BugRepository(s).get_session_bugs(session_id, **{field: "nonsense"})  # type: ignore[arg-type]
    assert excinfo.value.field == field


async def test_session_bugs_page_through_without_gaps_or_repeats(db: Database) -> None:
    session_id, page_id = await session_with_page(db)
    bugs = await file_bugs(db, session_id, page_id, [{"priority": "medium"}] * 7)
    pages = []
    skip: int | None = 0
    async with db.session() as s:
        repo = BugRepository(s)
        while skip is not None:
            page = await repo.get_session_bugs(session_id, skip=skip, limit=3)
            pages.append(page)
            skip = page.next_skip
    assert [len(p.items) for p in pages] == [3, 3, 1]
    assert [(p.skip, p.limit, p.has_more, p.next_skip) for p in pages] == [
        (0, 3, True, 3),
        (3, 3, True, 6),
        (6, 3, False, None),
    ]
    assert {p.total for p in pages} == {7}
    assert [b.id for p in pages for b in p.items] == [b.id for b in bugs]


@pytest.mark.parametrize(
    ("skip", "limit", "field"), [(0, 0, "limit"), (0, 101, "limit"), (-1, 20, "skip")]
)
async def test_session_bugs_refuse_out_of_range_pagination(
    db: Database, skip: int, limit: int, field: str
) -> None:
    session_id, _ = await session_with_page(db)
    with pytest.raises(InvalidArgument) as excinfo:
        async with db.session() as s:
            await BugRepository(s).get_session_bugs(session_id, skip=skip, limit=limit)
    assert excinfo.value.field == field
    assert f"'{field}'" in str(excinfo.value)


@pytest.mark.parametrize("method", ["get_high_confidence_bugs", "get_critical_bugs"])
@pytest.mark.parametrize(("skip", "limit", "field"), [(0, 0, "limit"), (0, 101, "limit")])
async def test_triage_queries_refuse_out_of_range_pagination(
    db: Database, method: str, skip: int, limit: int, field: str
) -> None:
    session_id, _ = await session_with_page(db)
    with pytest.raises(InvalidArgument) as excinfo:
        async with db.session() as s:
            await getattr(BugRepository(s), method)(session_id, skip=skip, limit=limit)
    assert excinfo.value.field == field
