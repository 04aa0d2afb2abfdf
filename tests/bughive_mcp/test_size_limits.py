"""Size limits (issue 6): text longer than its column or cap, lists and JSON blobs beyond their
bounds are refused with the limit named — never truncated, never half stored."""

from typing import Any

import pytest
from mcp import Client
from sqlalchemy import String

from bughive_mcp.tools.pages import MAX_JSON_BYTES, MAX_JSON_DEPTH
from db.models import Bug, Page
from tests.bughive_mcp.toolcalls import (
    BASE_URL,
    BUG_FIELDS,
    analyzed_page,
    call_error,
    call_ok,
    new_page,
    new_session,
)

pytestmark = pytest.mark.anyio

LINEAR_URL = "https://linear.app/shop/issue/BUG-1"


async def arrange(client: Client) -> dict[str, Any]:
    """A running session, a page being crawled (with its claim), an analyzed page, a
    validated bug: the rows every limited argument can be tried on."""
    session = await new_session(client)
    sid = session["id"]
    claimed = await call_ok(
        client, "mark_crawling", page_id=(await new_page(client, sid, f"{BASE_URL}/c"))["id"]
    )
    page = await analyzed_page(client, sid)
    bug = await call_ok(client, "create_bug", session_id=sid, page_id=page["id"], **BUG_FIELDS)
    await call_ok(client, "mark_validated", bug_id=bug["id"])
    return {"session": session, "claim": claimed, "page": page, "bug": bug}


def arguments(tool: str, rows: dict[str, Any]) -> dict[str, Any]:
    """Valid arguments of ``tool`` on the arranged rows."""
    claim = rows["claim"]
    sid = rows["session"]["id"]
    return {
        "mark_analyzed": {"page_id": claim["id"], "claim_token": claim["claim_token"]},
        "mark_page_error": {
            "page_id": claim["id"],
            "claim_token": claim["claim_token"],
            "error_message": "timeout",
        },
        "create_bug": {
            "session_id": sid,
            "page_id": rows["page"]["id"],
            **{**BUG_FIELDS, "title": "Another bug"},  # not the arranged one (deduplicated)
        },
        "dismiss_bug": {"bug_id": rows["bug"]["id"], "reason": "duplicate"},
        "mark_reported": {
            "bug_id": rows["bug"]["id"],
            "linear_issue_id": "BUG-1",
            "linear_issue_url": LINEAR_URL,
        },
        "complete_session": {
            "session_id": sid,
            "success": False,
            "error_message": "x",
            "force": True,
        },
        "create_page": {"session_id": sid, "url": f"{BASE_URL}/new"},
        "create_session": {"base_url": BASE_URL},
    }[tool]


def column_length(model: Any, column: str) -> int:
    kind = model.__table__.c[column].type
    assert isinstance(kind, String) and kind.length is not None
    return int(kind.length)


# (tool, argument, its limit, how to make a value of a given length)
TEXT_LIMITS = [
    ("mark_analyzed", "title", column_length(Page, "title"), lambda n: "t" * n),
    ("mark_analyzed", "content_type", column_length(Page, "content_type"), lambda n: "c" * n),
    (
        "mark_analyzed",
        "screenshot_url",
        column_length(Page, "screenshot_url"),
        lambda n: f"{BASE_URL}/" + "s" * (n - len(BASE_URL) - 1),
    ),
    ("create_bug", "title", column_length(Bug, "title"), lambda n: "b" * n),
    ("create_bug", "affected_users", column_length(Bug, "affected_users"), lambda n: "u" * n),
    ("create_bug", "description", 20_000, lambda n: "d" * n),
    ("create_bug", "expected_behavior", 10_000, lambda n: "e" * n),
    ("create_bug", "dedup_key", 255, lambda n: "k" * n),
    ("mark_page_error", "error_message", 10_000, lambda n: "m" * n),
    ("dismiss_bug", "reason", 10_000, lambda n: "r" * n),
    ("mark_reported", "linear_issue_id", column_length(Bug, "linear_issue_id"), lambda n: "L" * n),
    ("complete_session", "error_message", 10_000, lambda n: "f" * n),
    (
        "create_page",
        "url",
        column_length(Page, "url"),
        lambda n: f"{BASE_URL}/" + "p" * (n - len(BASE_URL) - 1),
    ),
]
IDS = [f"{tool}.{name}" for tool, name, _, _ in TEXT_LIMITS]


@pytest.mark.parametrize(("tool", "name", "limit", "make"), TEXT_LIMITS, ids=IDS)
async def test_text_over_its_limit_is_refused_naming_the_limit(
    client: Client, tool: str, name: str, limit: int, make: Any
) -> None:
    rows = await arrange(client)

    message = await call_error(client, tool, **{**arguments(tool, rows), name: make(limit + 1)})

    assert f"'{name}'" in message and f"at most {limit} characters" in message


@pytest.mark.parametrize(("tool", "name", "limit", "make"), TEXT_LIMITS, ids=IDS)
async def test_text_at_its_limit_is_stored_whole(
    client: Client, tool: str, name: str, limit: int, make: Any
) -> None:
    rows = await arrange(client)
    value = make(limit)

    result = await call_ok(client, tool, **{**arguments(tool, rows), name: value})

    if name == "dedup_key":  # not a column: the bug's stored fingerprint is made of it, whole
        assert result["grouping"] == {**result["grouping"], "key": "dedup_key", "normalized": value}
        again = {**arguments(tool, rows), "title": "Some other title", name: value}
        regrouped = await call_ok(client, tool, **again)
        assert (regrouped["id"], regrouped["created"]) == (result["id"], False)
        return
    row = await stored_row(client, tool, rows, result)
    column = {"reason": "dismissed_reason"}.get(name, name)
    assert row[column] == value
    if name == "url":
        assert result["url"] == value  # create_page's answer names the URL as stored


async def stored_row(
    client: Client, tool: str, rows: dict[str, Any], result: dict[str, Any]
) -> dict[str, Any]:
    """The row ``tool`` wrote, read back: write answers are compact (issue 18), not rows."""
    if tool in ("mark_analyzed", "mark_page_error"):
        return await call_ok(client, "get_page", page_id=rows["claim"]["id"])
    if tool == "create_page":
        return await call_ok(client, "get_page", page_id=result["id"])
    if tool == "create_bug":
        return await call_ok(client, "get_bug", bug_id=result["id"])
    if tool in ("dismiss_bug", "mark_reported"):
        return await call_ok(client, "get_bug", bug_id=rows["bug"]["id"])
    assert tool == "complete_session", tool
    return await call_ok(client, "get_session", session_id=rows["session"]["id"])


async def test_no_text_column_is_longer_than_what_the_tools_accept(client: Client) -> None:
    """Every limited text argument fits its column: PostgreSQL never has to refuse it."""
    for tool, name, limit, _ in TEXT_LIMITS:
        listed = {t.name: t for t in (await client.list_tools()).tools}[tool]
        assert listed.input_schema["properties"][name]["maxLength"] == limit, (tool, name)


@pytest.mark.parametrize(
    ("name", "size", "limit"), [("evidence", 21, 20), ("steps_to_reproduce", 51, 50)]
)
async def test_bug_lists_over_their_limit_are_refused(
    client: Client, name: str, size: int, limit: int
) -> None:
    rows = await arrange(client)
    item: Any = {"type": "dom", "content": "x"} if name == "evidence" else "step"

    message = await call_error(
        client, "create_bug", **{**arguments("create_bug", rows), name: [item] * size}
    )

    assert f"'{name}'" in message and f"at most {limit} items" in message


async def test_evidence_content_over_its_limit_is_refused_naming_the_item(client: Client) -> None:
    rows = await arrange(client)
    evidence = [{"type": "dom", "content": "x" * 20_001}]

    message = await call_error(
        client, "create_bug", **{**arguments("create_bug", rows), "evidence": evidence}
    )

    assert "'evidence.0.content'" in message and "at most 20000 characters" in message


async def test_a_bulk_over_ten_thousand_pages_is_refused(client: Client) -> None:
    rows = await arrange(client)
    pages = [{"url": f"{BASE_URL}/p{i}"} for i in range(10_001)]

    message = await call_error(
        client, "bulk_create_pages", session_id=rows["session"]["id"], pages=pages
    )

    assert "'pages'" in message and "at most 10000 distinct URLs" in message
    session = await call_ok(client, "get_session", session_id=rows["session"]["id"])
    assert session["pages_discovered"] == 2


async def test_a_page_with_fifty_thousand_hrefs_that_repeat_is_accepted(client: Client) -> None:
    """A real page repeats its nav bar, self-links and fragments: the limit counts distinct
    URLs, not hrefs."""
    session = await new_session(client, max_pages=1000)
    hrefs = [{"url": f"{BASE_URL}/d/{i % 500}#s{i % 7}"} for i in range(50_000)]

    result = await call_ok(client, "bulk_create_pages", session_id=session["id"], pages=hrefs)

    assert result["created_count"] == 500
    assert result["duplicates_in_batch_count"] == 49_500
    assert result["truncated"] is True
    stored = await call_ok(client, "get_session", session_id=session["id"])
    assert stored["pages_discovered"] == 500


@pytest.mark.parametrize("tool", ["mark_analyzed", "create_bug"])
async def test_json_over_its_size_is_refused_naming_the_limit(client: Client, tool: str) -> None:
    rows = await arrange(client)
    name = "analysis_result" if tool == "mark_analyzed" else "browser_info"
    blob = {"text": "z" * MAX_JSON_BYTES}

    message = await call_error(client, tool, **{**arguments(tool, rows), name: blob})

    assert f"'{name}'" in message and f"at most {MAX_JSON_BYTES} bytes" in message


@pytest.mark.parametrize("tool", ["mark_analyzed", "create_bug"])
async def test_json_nested_too_deep_is_refused_naming_the_limit(client: Client, tool: str) -> None:
    rows = await arrange(client)
    name = "analysis_result" if tool == "mark_analyzed" else "browser_info"
    blob: dict[str, Any] = {}
    for _ in range(MAX_JSON_DEPTH):
        blob = {"a": blob}

    message = await call_error(client, tool, **{**arguments(tool, rows), name: blob})

    assert f"'{name}'" in message and f"at most {MAX_JSON_DEPTH} levels" in message


async def test_json_at_the_depth_limit_is_stored_whole(client: Client) -> None:
    rows = await arrange(client)
    blob: dict[str, Any] = {"leaf": 1}
    for _ in range(MAX_JSON_DEPTH - 1):
        blob = {"a": blob}

    answer = await call_ok(
        client, "mark_analyzed", **arguments("mark_analyzed", rows), analysis_result=blob
    )

    assert answer == {"id": rows["claim"]["id"], "status": "analyzed"}  # compact: no echo
    page = await call_ok(client, "get_page", page_id=rows["claim"]["id"])
    assert page["analysis_result"] == blob


async def test_a_refused_write_leaves_the_row_unchanged(client: Client) -> None:
    rows = await arrange(client)

    await call_error(client, "mark_analyzed", **arguments("mark_analyzed", rows), title="t" * 501)

    page = await call_ok(client, "get_page", page_id=rows["claim"]["id"])
    assert (page["status"], page["title"]) == ("crawling", None)
