"""Bug tools: create_bug, get_bug, mark_validated, mark_reported, dismiss_bug,
get_high_confidence_bugs, get_critical_bugs, get_bug_statistics, get_session_bugs."""

import itertools
from typing import Any

import pytest
from mcp import Client

from bughive_mcp.answers import LISTING_BYTE_BUDGET
from tests.bughive_mcp.toolcalls import (
    BASE_URL,
    BUG_FIELDS,
    analyzed_page,
    call_error,
    call_ok,
    compact_json,
    get_session,
    missing_id,
    new_bug,
    new_session,
    timestamp,
)

pytestmark = pytest.mark.anyio

LINEAR_URL = "https://linear.app/shop/issue/BUG-7"
# What a listing shows of a bug (issue 18, item 5): no description, steps or evidence.
SUMMARY_KEYS = (
    "id",
    "page_id",
    "category",
    "priority",
    "status",
    "title",
    "confidence",
    "occurrences",
    "linear_issue_id",
)
# What a triage step (mark_validated, mark_reported, dismiss_bug) answers without verbose.
CHANGED_KEYS = {"id", "status", "linear_issue_id", "next"}


async def crawled(client: Client) -> tuple[dict[str, Any], dict[str, Any]]:
    """A running session with one analyzed page."""
    session = await new_session(client)
    page = await analyzed_page(client, session["id"], f"{BASE_URL}/")
    return session, page


async def get_bug(client: Client, bug_id: str) -> dict[str, Any]:
    """The bug as stored."""
    return await call_ok(client, "get_bug", bug_id=bug_id)


async def summary(client: Client, bug_id: str) -> dict[str, Any]:
    """The stored bug as a listing shows it."""
    row = await get_bug(client, bug_id)
    return {key: row[key] for key in SUMMARY_KEYS}


# --- create_bug ---------------------------------------------------------------------------


async def test_create_bug_files_a_detected_bug_with_everything_given(client: Client) -> None:
    session, page = await crawled(client)
    given: dict[str, Any] = {
        **BUG_FIELDS,
        "steps_to_reproduce": ["Open / on a 375px viewport", "Scroll to the first product"],
        "evidence": [
            {"type": "screenshot", "url": "https://cdn.example/overlap.png"},
            {"type": "console_log", "content": "TypeError: x is undefined"},
        ],
        "confidence": 0.85,
        "expected_behavior": "The price is readable.",
        "actual_behavior": "The button hides the price.",
        "affected_users": "mobile shoppers",
        "browser_info": {"name": "chromium", "version": "140", "viewport": [375, 667]},
    }

    answer = await call_ok(
        client, "create_bug", session_id=session["id"], page_id=page["id"], **given
    )

    assert answer == {  # compact: nothing of what the caller just sent is echoed
        "id": answer["id"],
        "created": True,
        "occurrences": 1,
        "grouping": {
            "key": "title",
            "scope": "site",
            "normalized": "buy button covers the price",
            "fingerprint_version": 2,
        },
    }
    bug = await get_bug(client, answer["id"])
    assert bug == {
        **given,
        "id": answer["id"],
        "session_id": session["id"],
        "page_id": page["id"],
        "status": "detected",
        "linear_issue_id": None,
        "linear_issue_url": None,
        "dismissed_reason": None,
        "dismissed_at": None,
        "reported_at": None,
        "occurrences": 1,
        "created_at": bug["created_at"],
        "updated_at": bug["created_at"],
    }
    timestamp(bug["created_at"])


async def test_create_bug_with_verbose_answers_the_whole_row_too(client: Client) -> None:
    session, page = await crawled(client)

    answer = await new_bug(
        client, session["id"], page["id"], verbose=True, evidence=[{"type": "dom", "content": "x"}]
    )

    assert set(answer) == {"id", "created", "occurrences", "grouping", "bug"}
    assert answer["bug"] == await get_bug(client, answer["id"])
    assert answer["bug"]["evidence"] == [{"type": "dom", "content": "x"}]


async def test_create_bug_defaults_steps_evidence_and_confidence(client: Client) -> None:
    session, page = await crawled(client)

    filed = await new_bug(client, session["id"], page["id"])

    bug = await get_bug(client, filed["id"])
    assert (bug["steps_to_reproduce"], bug["evidence"], bug["confidence"]) == ([], [], 0.5)
    assert (bug["expected_behavior"], bug["browser_info"]) == (None, None)


async def test_create_bug_raises_bugs_found_in_the_same_call(client: Client) -> None:
    session, page = await crawled(client)

    await new_bug(client, session["id"], page["id"])
    await new_bug(client, session["id"], page["id"], title="Second problem")

    assert (await get_session(client, session["id"]))["bugs_found"] == 2


async def test_create_bug_of_a_known_bug_returns_it_uncounted_with_created_false(
    client: Client,
) -> None:
    session, page = await crawled(client)
    first = await call_ok(
        client, "create_bug", session_id=session["id"], page_id=page["id"], **BUG_FIELDS
    )

    again = await call_ok(
        client,
        "create_bug",
        session_id=session["id"],
        page_id=page["id"],
        **{**BUG_FIELDS, "title": BUG_FIELDS["title"].upper()},
    )

    assert again == {**first, "created": False}
    assert (await get_session(client, session["id"]))["bugs_found"] == 1


async def test_create_bug_of_a_known_bug_on_a_similar_page_adds_an_occurrence(
    client: Client,
) -> None:
    session = await new_session(client)
    first_page = await analyzed_page(client, session["id"], f"{BASE_URL}/products/1")
    other_page = await analyzed_page(client, session["id"], f"{BASE_URL}/products/2")
    first = await new_bug(client, session["id"], first_page["id"], title="Price overlaps")

    again = await new_bug(client, session["id"], other_page["id"], title="Price overlaps")

    assert (again["id"], again["created"], again["occurrences"]) == (first["id"], False, 2)
    assert (await get_session(client, session["id"]))["bugs_found"] == 1


async def test_create_bug_with_the_same_dedup_key_is_one_bug_across_pages_and_titles(
    client: Client,
) -> None:
    session = await new_session(client)
    home = await analyzed_page(client, session["id"], f"{BASE_URL}/")
    cart = await analyzed_page(client, session["id"], f"{BASE_URL}/cart")
    first = await new_bug(client, session["id"], home["id"], dedup_key="header-logo-overlap")

    again = await new_bug(client, session["id"], cart["id"], dedup_key="header-logo-overlap")

    assert (again["id"], again["created"], again["occurrences"]) == (first["id"], False, 2)


async def test_create_bug_refuses_a_page_of_another_session_naming_page_id(
    client: Client,
) -> None:
    session, _ = await crawled(client)
    _, other_page = await crawled(client)

    message = await call_error(
        client, "create_bug", session_id=session["id"], page_id=other_page["id"], **BUG_FIELDS
    )

    assert "invalid 'page_id'" in message
    assert "belongs to another session" in message
    assert (await get_session(client, session["id"]))["bugs_found"] == 0


async def test_create_bug_on_an_unknown_page_names_the_page(client: Client) -> None:
    session, _ = await crawled(client)
    unknown = missing_id()

    message = await call_error(
        client, "create_bug", session_id=session["id"], page_id=unknown, **BUG_FIELDS
    )

    assert f"page {unknown} does not exist (field 'page_id')" in message


async def test_create_bug_in_an_unknown_session_names_the_crawl_session(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(
        client, "create_bug", session_id=unknown, page_id=missing_id(), **BUG_FIELDS
    )

    assert f"crawl session {unknown} does not exist (field 'session_id')" in message


async def test_create_bug_refuses_an_unknown_category_listing_the_allowed_ones(
    client: Client,
) -> None:
    session, page = await crawled(client)

    message = await call_error(
        client,
        "create_bug",
        session_id=session["id"],
        page_id=page["id"],
        **{**BUG_FIELDS, "category": "cosmetic"},
    )

    assert (
        "'category' must be one of 'ui_ux', 'data', 'edge_case', 'performance' or 'security'"
        in message
    )


async def test_create_bug_refuses_an_unknown_priority_listing_the_allowed_ones(
    client: Client,
) -> None:
    session, page = await crawled(client)

    message = await call_error(
        client,
        "create_bug",
        session_id=session["id"],
        page_id=page["id"],
        **{**BUG_FIELDS, "priority": "urgent"},
    )

    assert "'priority' must be one of 'critical', 'high', 'medium' or 'low'" in message


@pytest.mark.parametrize("confidence", [1.5, -0.1])
async def test_create_bug_refuses_a_confidence_outside_0_to_1_naming_it(
    client: Client, confidence: float
) -> None:
    session, page = await crawled(client)

    message = await call_error(
        client,
        "create_bug",
        session_id=session["id"],
        page_id=page["id"],
        confidence=confidence,
        **BUG_FIELDS,
    )

    assert "'confidence'" in message
    assert (await get_session(client, session["id"]))["bugs_found"] == 0


async def test_create_bug_refuses_an_unknown_evidence_type_listing_the_allowed_ones(
    client: Client,
) -> None:
    session, page = await crawled(client)

    message = await call_error(
        client,
        "create_bug",
        session_id=session["id"],
        page_id=page["id"],
        evidence=[{"type": "photo", "url": "https://cdn.example/p.png"}],
        **BUG_FIELDS,
    )

    assert "'evidence.0.type' must be one of 'screenshot', 'console_log'" in message


async def test_create_bug_refuses_evidence_without_content_or_url_naming_it(
    client: Client,
) -> None:
    session, page = await crawled(client)

    message = await call_error(
        client,
        "create_bug",
        session_id=session["id"],
        page_id=page["id"],
        evidence=[{"type": "screenshot"}],
        **BUG_FIELDS,
    )

    assert "'evidence.0'" in message
    assert "'content' or 'url'" in message


async def test_create_bug_refuses_an_unknown_argument_naming_it(client: Client) -> None:
    session, page = await crawled(client)

    message = await call_error(
        client,
        "create_bug",
        session_id=session["id"],
        page_id=page["id"],
        severity="high",
        **BUG_FIELDS,
    )

    assert "unknown argument(s) 'severity'" in message


# --- get_bug ------------------------------------------------------------------------------


async def test_get_bug_returns_the_bug_as_filed(client: Client) -> None:
    session, page = await crawled(client)
    filed = await new_bug(client, session["id"], page["id"], verbose=True)

    assert await call_ok(client, "get_bug", bug_id=filed["id"]) == filed["bug"]


async def test_get_bug_of_an_unknown_id_names_the_bug(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "get_bug", bug_id=unknown)

    assert f"bug {unknown} does not exist" in message


async def test_get_bug_refuses_a_malformed_id_naming_bug_id(client: Client) -> None:
    message = await call_error(client, "get_bug", bug_id="BUG-7")

    assert "'bug_id'" in message


# --- mark_validated -----------------------------------------------------------------------


async def test_mark_validated_moves_a_detected_bug_to_validated(client: Client) -> None:
    session, page = await crawled(client)
    bug = await get_bug(client, (await new_bug(client, session["id"], page["id"]))["id"])

    validated = await call_ok(client, "mark_validated", bug_id=bug["id"])

    assert set(validated) == CHANGED_KEYS
    assert (validated["id"], validated["status"], validated["linear_issue_id"]) == (
        bug["id"],
        "validated",
        None,
    )
    assert "mark_reported" in validated["next"]
    stored = await get_bug(client, bug["id"])
    assert stored == {**bug, "status": "validated", "updated_at": stored["updated_at"]}
    assert timestamp(stored["updated_at"]) >= timestamp(bug["updated_at"])


async def test_mark_validated_with_verbose_answers_the_bug_as_stored(client: Client) -> None:
    session, page = await crawled(client)
    bug = await new_bug(client, session["id"], page["id"])

    validated = await call_ok(client, "mark_validated", bug_id=bug["id"], verbose=True)

    assert set(validated) == {*CHANGED_KEYS, "bug"}
    assert validated["bug"] == await get_bug(client, bug["id"])
    assert validated["bug"]["status"] == "validated"


async def test_mark_validated_refuses_a_validated_bug_naming_both_statuses(
    client: Client,
) -> None:
    session, page = await crawled(client)
    bug = await new_bug(client, session["id"], page["id"])
    await call_ok(client, "mark_validated", bug_id=bug["id"])

    message = await call_error(client, "mark_validated", bug_id=bug["id"])

    assert f"bug {bug['id']}" in message
    assert "its status is 'validated'" in message
    assert "only allowed from 'detected'" in message


async def test_mark_validated_of_an_unknown_id_names_the_bug(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "mark_validated", bug_id=unknown)

    assert f"bug {unknown} does not exist" in message


# --- mark_reported ------------------------------------------------------------------------


async def test_mark_reported_records_the_linear_issue_and_stamps_reported_at(
    client: Client,
) -> None:
    session, page = await crawled(client)
    bug = await new_bug(client, session["id"], page["id"])
    await call_ok(client, "mark_validated", bug_id=bug["id"])
    validated = await get_bug(client, bug["id"])

    reported = await call_ok(
        client,
        "mark_reported",
        bug_id=bug["id"],
        linear_issue_id="BUG-7",
        linear_issue_url=LINEAR_URL,
    )

    assert set(reported) == CHANGED_KEYS
    assert (reported["id"], reported["status"], reported["linear_issue_id"]) == (
        bug["id"],
        "reported",
        "BUG-7",
    )
    stored = await get_bug(client, bug["id"])
    assert stored == {
        **validated,
        "status": "reported",
        "linear_issue_id": "BUG-7",
        "linear_issue_url": LINEAR_URL,
        "reported_at": stored["reported_at"],
        "updated_at": stored["updated_at"],
    }
    timestamp(stored["reported_at"])


async def test_mark_reported_refuses_a_bug_not_validated_naming_both_statuses(
    client: Client,
) -> None:
    session, page = await crawled(client)
    bug = await new_bug(client, session["id"], page["id"])

    message = await call_error(
        client,
        "mark_reported",
        bug_id=bug["id"],
        linear_issue_id="BUG-7",
        linear_issue_url=LINEAR_URL,
    )

    assert "its status is 'detected'" in message
    assert "only allowed from 'validated'" in message


async def test_mark_reported_refuses_a_linear_url_that_is_not_http_naming_it(
    client: Client,
) -> None:
    session, page = await crawled(client)
    bug = await new_bug(client, session["id"], page["id"])
    await call_ok(client, "mark_validated", bug_id=bug["id"])

    message = await call_error(
        client,
        "mark_reported",
        bug_id=bug["id"],
        linear_issue_id="BUG-7",
        linear_issue_url="linear.app/shop/issue/BUG-7",
    )

    assert "'linear_issue_url'" in message


async def test_mark_reported_of_an_unknown_id_names_the_bug(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(
        client,
        "mark_reported",
        bug_id=unknown,
        linear_issue_id="BUG-7",
        linear_issue_url=LINEAR_URL,
    )

    assert f"bug {unknown} does not exist" in message


# --- dismiss_bug --------------------------------------------------------------------------


async def test_dismiss_bug_records_the_reason_and_stamps_dismissed_at(client: Client) -> None:
    session, page = await crawled(client)
    bug = await get_bug(client, (await new_bug(client, session["id"], page["id"]))["id"])

    dismissed = await call_ok(client, "dismiss_bug", bug_id=bug["id"], reason="duplicate of #3")

    assert set(dismissed) == CHANGED_KEYS
    assert (dismissed["id"], dismissed["status"]) == (bug["id"], "dismissed")
    stored = await get_bug(client, bug["id"])
    assert stored == {
        **bug,
        "status": "dismissed",
        "dismissed_reason": "duplicate of #3",
        "dismissed_at": stored["dismissed_at"],
        "updated_at": stored["updated_at"],
    }
    timestamp(stored["dismissed_at"])


async def test_dismiss_bug_with_verbose_answers_the_bug_with_the_reason(client: Client) -> None:
    session, page = await crawled(client)
    bug = await new_bug(client, session["id"], page["id"])

    dismissed = await call_ok(
        client, "dismiss_bug", bug_id=bug["id"], reason="false positive", verbose=True
    )

    assert dismissed["bug"] == await get_bug(client, bug["id"])
    assert dismissed["bug"]["dismissed_reason"] == "false positive"


async def test_dismiss_bug_accepts_a_reported_bug(client: Client) -> None:
    session, page = await crawled(client)
    bug = await new_bug(client, session["id"], page["id"])
    await call_ok(client, "mark_validated", bug_id=bug["id"])
    await call_ok(
        client,
        "mark_reported",
        bug_id=bug["id"],
        linear_issue_id="B-1",
        linear_issue_url=LINEAR_URL,
    )

    dismissed = await call_ok(client, "dismiss_bug", bug_id=bug["id"], reason="won't fix")

    assert dismissed["status"] == "dismissed"


async def test_dismiss_bug_refuses_a_dismissed_bug_naming_the_allowed_statuses(
    client: Client,
) -> None:
    session, page = await crawled(client)
    bug = await new_bug(client, session["id"], page["id"])
    await call_ok(client, "dismiss_bug", bug_id=bug["id"], reason="false positive")

    message = await call_error(client, "dismiss_bug", bug_id=bug["id"], reason="again")

    assert "its status is 'dismissed'" in message
    assert "only allowed from 'detected' or 'validated' or 'reported'" in message


async def test_dismiss_bug_refuses_an_empty_reason_naming_it(client: Client) -> None:
    session, page = await crawled(client)
    bug = await new_bug(client, session["id"], page["id"])

    message = await call_error(client, "dismiss_bug", bug_id=bug["id"], reason="")

    assert "'reason'" in message


async def test_dismiss_bug_of_an_unknown_id_names_the_bug(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "dismiss_bug", bug_id=unknown, reason="x")

    assert f"bug {unknown} does not exist" in message


# --- get_high_confidence_bugs -------------------------------------------------------------


async def test_get_high_confidence_bugs_lists_undismissed_bugs_above_the_bar_best_first(
    client: Client,
) -> None:
    session, page = await crawled(client)
    good = await new_bug(client, session["id"], page["id"], confidence=0.8, title="good")
    best = await new_bug(client, session["id"], page["id"], confidence=0.95, title="best")
    await new_bug(client, session["id"], page["id"], confidence=0.79, title="too unsure")
    dismissed = await new_bug(client, session["id"], page["id"], confidence=0.99, title="x")
    await call_ok(client, "dismiss_bug", bug_id=dismissed["id"], reason="false positive")

    listed = await call_ok(client, "get_high_confidence_bugs", session_id=session["id"])

    assert listed == {
        "items": [await summary(client, best["id"]), await summary(client, good["id"])],
        "total": 2,
        "skip": 0,
        "limit": 20,
        "has_more": False,
        "next_skip": None,
        "truncated": False,
    }


async def test_get_high_confidence_bugs_honours_min_confidence(client: Client) -> None:
    session, page = await crawled(client)
    await new_bug(client, session["id"], page["id"], confidence=0.5)

    listed = await call_ok(
        client, "get_high_confidence_bugs", session_id=session["id"], min_confidence=0.5
    )

    assert listed["total"] == 1


async def test_get_high_confidence_bugs_paginates_with_next_skip(client: Client) -> None:
    session, page = await crawled(client)
    for confidence in (0.9, 0.95, 0.85):
        await new_bug(client, session["id"], page["id"], confidence=confidence)

    first = await call_ok(client, "get_high_confidence_bugs", session_id=session["id"], limit=2)
    second = await call_ok(
        client,
        "get_high_confidence_bugs",
        session_id=session["id"],
        limit=2,
        skip=first["next_skip"],
    )

    assert [b["confidence"] for b in first["items"] + second["items"]] == [0.95, 0.9, 0.85]
    assert (first["has_more"], first["next_skip"], first["total"]) == (True, 2, 3)
    assert (second["has_more"], second["next_skip"]) == (False, None)


async def test_get_high_confidence_bugs_refuses_min_confidence_above_1_naming_it(
    client: Client,
) -> None:
    session, _ = await crawled(client)

    message = await call_error(
        client, "get_high_confidence_bugs", session_id=session["id"], min_confidence=1.5
    )

    assert "'min_confidence'" in message


async def test_get_high_confidence_bugs_refuses_limit_101_naming_it(client: Client) -> None:
    session, _ = await crawled(client)

    message = await call_error(
        client, "get_high_confidence_bugs", session_id=session["id"], limit=101
    )

    assert "'limit'" in message


async def test_get_high_confidence_bugs_of_an_unknown_session_names_it(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "get_high_confidence_bugs", session_id=unknown)

    assert f"crawl session {unknown} does not exist" in message


# --- get_critical_bugs --------------------------------------------------------------------


async def test_get_critical_bugs_lists_only_undismissed_critical_bugs(client: Client) -> None:
    session, page = await crawled(client)
    critical = await new_bug(client, session["id"], page["id"], priority="critical")
    await new_bug(client, session["id"], page["id"], priority="high")
    dismissed = await new_bug(client, session["id"], page["id"], priority="critical")
    await call_ok(client, "dismiss_bug", bug_id=dismissed["id"], reason="duplicate")

    listed = await call_ok(client, "get_critical_bugs", session_id=session["id"])

    assert listed == {
        "items": [await summary(client, critical["id"])],
        "total": 1,
        "skip": 0,
        "limit": 20,
        "has_more": False,
        "next_skip": None,
        "truncated": False,
    }


async def test_get_critical_bugs_refuses_limit_0_naming_it(client: Client) -> None:
    session, _ = await crawled(client)

    message = await call_error(client, "get_critical_bugs", session_id=session["id"], limit=0)

    assert "'limit'" in message


async def test_get_critical_bugs_of_an_unknown_session_names_it(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "get_critical_bugs", session_id=unknown)

    assert f"crawl session {unknown} does not exist" in message


# --- get_bug_statistics -------------------------------------------------------------------


async def test_get_bug_statistics_counts_by_priority_category_and_status(
    client: Client,
) -> None:
    session, page = await crawled(client)
    await new_bug(client, session["id"], page["id"], priority="critical", confidence=0.9)
    validated = await new_bug(
        client, session["id"], page["id"], category="security", confidence=0.6
    )
    await call_ok(client, "mark_validated", bug_id=validated["id"])
    dismissed = await new_bug(client, session["id"], page["id"], priority="low", confidence=0.3)
    await call_ok(client, "dismiss_bug", bug_id=dismissed["id"], reason="not a bug")

    stats = await call_ok(client, "get_bug_statistics", session_id=session["id"])

    assert stats == {
        "session_id": session["id"],
        "total": 3,
        "total_occurrences": 3,
        "by_priority": {"critical": 1, "high": 1, "medium": 0, "low": 1},
        "by_category": {"ui_ux": 2, "data": 0, "edge_case": 0, "performance": 0, "security": 1},
        "by_status": {"detected": 1, "validated": 1, "reported": 0, "dismissed": 1},
        "average_confidence": 0.6,
    }


async def test_get_bug_statistics_of_a_session_without_bugs_has_no_average(
    client: Client,
) -> None:
    session = await new_session(client)

    stats = await call_ok(client, "get_bug_statistics", session_id=session["id"])

    assert (stats["total"], stats["average_confidence"]) == (0, None)
    assert set(stats["by_status"].values()) == {0}


async def test_get_bug_statistics_of_an_unknown_session_names_it(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "get_bug_statistics", session_id=unknown)

    assert f"crawl session {unknown} does not exist" in message


# --- get_session_bugs ---------------------------------------------------------------------


async def test_get_session_bugs_lists_the_most_urgent_first(client: Client) -> None:
    session, page = await crawled(client)
    low = await new_bug(client, session["id"], page["id"], priority="low")
    critical = await new_bug(client, session["id"], page["id"], priority="critical")
    medium = await new_bug(client, session["id"], page["id"], priority="medium")

    listed = await call_ok(client, "get_session_bugs", session_id=session["id"])

    assert listed == {
        "items": [await summary(client, bug["id"]) for bug in (critical, medium, low)],
        "total": 3,
        "skip": 0,
        "limit": 20,
        "has_more": False,
        "next_skip": None,
        "truncated": False,
    }


async def test_get_session_bugs_filters_by_status_priority_and_category(client: Client) -> None:
    session, page = await crawled(client)
    wanted = await new_bug(client, session["id"], page["id"], priority="high", category="data")
    await call_ok(client, "mark_validated", bug_id=wanted["id"])
    await new_bug(client, session["id"], page["id"], priority="high", category="data")
    other = await new_bug(client, session["id"], page["id"], priority="low", category="data")
    await call_ok(client, "mark_validated", bug_id=other["id"])

    listed = await call_ok(
        client,
        "get_session_bugs",
        session_id=session["id"],
        status="validated",
        priority="high",
        category="data",
    )

    assert [b["id"] for b in listed["items"]] == [wanted["id"]]
    assert listed["total"] == 1


async def test_get_session_bugs_paginates_without_gaps_or_repeats(client: Client) -> None:
    session, page = await crawled(client)
    filed = [await new_bug(client, session["id"], page["id"]) for _ in range(5)]

    seen: list[str] = []
    skip: int | None = 0
    while skip is not None:
        page_of_bugs = await call_ok(
            client, "get_session_bugs", session_id=session["id"], limit=2, skip=skip
        )
        assert page_of_bugs["total"] == 5
        seen += [b["id"] for b in page_of_bugs["items"]]
        skip = page_of_bugs["next_skip"]
        assert page_of_bugs["has_more"] is (skip is not None)

    assert sorted(seen) == sorted(b["id"] for b in filed)
    assert len(seen) == 5


_words = itertools.count()


def long_title() -> str:
    """A 255-character title (the column's limit) no other bug has: titles are compared
    without numbers, so the distinct part is letters."""
    word = "".join(chr(ord("a") + int(d)) for d in str(next(_words)))
    title = f"Overlap {word} " + "in the footer of the checkout page " * 10
    return title[:255]


@pytest.mark.parametrize(
    "tool", ["get_session_bugs", "get_high_confidence_bugs", "get_critical_bugs"]
)
async def test_a_bug_listing_stops_under_the_byte_budget_and_pages_on(
    client: Client, tool: str
) -> None:
    """100 summaries with long titles would be ~45 KB of one answer: the listing stops before
    the byte budget, says so, and next_skip goes on where it stopped."""
    session, page = await crawled(client)
    filed = [
        await new_bug(
            client,
            session["id"],
            page["id"],
            title=long_title(),
            priority="critical",
            confidence=0.9,
        )
        for _ in range(80)
    ]
    assert all(bug["created"] for bug in filed)

    answers: list[dict[str, Any]] = []
    skip: int | None = 0
    while skip is not None:
        answer = await call_ok(client, tool, session_id=session["id"], limit=100, skip=skip)
        assert len(compact_json(answer).encode()) <= 16 * 1024
        assert (answer["total"], answer["skip"], answer["limit"]) == (80, skip, 100)
        assert answer["items"], answer  # a listing always moves on
        if answer["has_more"]:
            assert answer["truncated"] is True
            assert answer["next_skip"] == skip + len(answer["items"])
        else:
            assert answer["next_skip"] is None
        answers.append(answer)
        skip = answer["next_skip"]

    first, second = answers[0], answers[1]
    assert (first["truncated"], first["has_more"]) == (True, True)
    assert first["next_skip"] == len(first["items"]) < 80
    assert all(len(item["title"]) == 255 for item in first["items"])
    # it stopped because the next item would not have fitted, not before
    assert len(compact_json([*first["items"], second["items"][0]])) > LISTING_BYTE_BUDGET
    assert answers[-1]["truncated"] is False
    seen = [item["id"] for answer in answers for item in answer["items"]]
    assert len(seen) == len(set(seen)) == 80
    assert set(seen) == {bug["id"] for bug in filed}


async def test_get_session_bugs_refuses_an_unknown_status_listing_the_allowed_ones(
    client: Client,
) -> None:
    session, _ = await crawled(client)

    message = await call_error(client, "get_session_bugs", session_id=session["id"], status="open")

    assert "'status' must be one of 'detected', 'validated', 'reported' or 'dismissed'" in message


async def test_get_session_bugs_refuses_an_unknown_category_listing_the_allowed_ones(
    client: Client,
) -> None:
    session, _ = await crawled(client)

    message = await call_error(
        client, "get_session_bugs", session_id=session["id"], category="visual"
    )

    assert "'category' must be one of 'ui_ux'" in message


@pytest.mark.parametrize("limit", [0, 101])
async def test_get_session_bugs_refuses_a_limit_out_of_range_naming_it(
    client: Client, limit: int
) -> None:
    session, _ = await crawled(client)

    message = await call_error(client, "get_session_bugs", session_id=session["id"], limit=limit)

    assert "'limit'" in message


async def test_get_session_bugs_of_an_unknown_session_names_it(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "get_session_bugs", session_id=unknown)

    assert f"crawl session {unknown} does not exist" in message
