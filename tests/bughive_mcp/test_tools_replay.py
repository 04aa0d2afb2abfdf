"""Replay through the tools: agents retry a call when its answer was lost (a reconnect, a
"retry" error). ``create_session`` with an ``idempotency_key``, ``create_bug`` and
``mark_reported`` may be repeated: the same call twice yields one row and the same result."""

import asyncpg
from mcp import Client

from tests.bughive_mcp.toolcalls import (
    BASE_URL,
    BUG_FIELDS,
    call_error,
    call_ok,
    new_page,
    new_session,
)

LINEAR_URL = "https://linear.app/acme/issue/BUG-7"


async def test_create_session_with_the_same_key_twice_returns_the_same_session(
    client: Client, raw: asyncpg.Connection
) -> None:
    first = await call_ok(client, "create_session", base_url=BASE_URL, idempotency_key="run-1")
    again = await call_ok(client, "create_session", base_url=BASE_URL, idempotency_key="run-1")
    assert again == first
    assert await raw.fetchval("SELECT count(*) FROM crawl_sessions") == 1


async def test_create_session_with_a_used_key_for_another_site_is_refused(
    client: Client, raw: asyncpg.Connection
) -> None:
    first = await call_ok(client, "create_session", base_url=BASE_URL, idempotency_key="run-1")
    text = await call_error(
        client, "create_session", base_url="https://other.example", idempotency_key="run-1"
    )
    assert "idempotency_key" in text and first["id"] in text
    assert await raw.fetchval("SELECT count(*) FROM crawl_sessions") == 1


async def test_create_session_refuses_an_empty_idempotency_key(client: Client) -> None:
    text = await call_error(client, "create_session", base_url=BASE_URL, idempotency_key="")
    assert "'idempotency_key'" in text


async def test_the_same_create_bug_twice_is_one_bug_with_one_occurrence(
    client: Client, raw: asyncpg.Connection
) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"])
    fields = {**BUG_FIELDS, "session_id": session["id"], "page_id": page["id"]}
    first = await call_ok(client, "create_bug", **fields)
    again = await call_ok(client, "create_bug", **fields)
    assert (first["created"], again["created"]) == (True, False)
    assert {k: v for k, v in again.items() if k != "created"} == {
        k: v for k, v in first.items() if k != "created"
    }
    counts = await raw.fetchrow(
        "SELECT (SELECT count(*) FROM bugs), (SELECT count(*) FROM bug_occurrences),"
        " (SELECT bugs_found FROM crawl_sessions)"
    )
    assert counts is not None and tuple(counts) == (1, 1, 1)


async def reported_bug(client: Client) -> dict[str, object]:
    session = await new_session(client)
    page = await new_page(client, session["id"])
    bug = await call_ok(
        client, "create_bug", session_id=session["id"], page_id=page["id"], **BUG_FIELDS
    )
    await call_ok(client, "mark_validated", bug_id=bug["id"])
    return await call_ok(
        client,
        "mark_reported",
        bug_id=bug["id"],
        linear_issue_id="BUG-7",
        linear_issue_url=LINEAR_URL,
    )


async def test_mark_reported_repeated_with_the_same_issue_returns_the_bug_unchanged(
    client: Client,
) -> None:
    reported = await reported_bug(client)
    again = await call_ok(
        client,
        "mark_reported",
        bug_id=reported["id"],
        linear_issue_id="BUG-7",
        linear_issue_url=LINEAR_URL,
    )
    assert again == reported


async def test_mark_reported_with_another_issue_is_refused(
    client: Client, raw: asyncpg.Connection
) -> None:
    reported = await reported_bug(client)
    text = await call_error(
        client,
        "mark_reported",
        bug_id=reported["id"],
        linear_issue_id="BUG-8",
        linear_issue_url="https://linear.app/acme/issue/BUG-8",
    )
    assert "'reported'" in text and "'validated'" in text
    assert await raw.fetchval("SELECT linear_issue_id FROM bugs") == "BUG-7"


async def test_replay_safe_tools_say_so_in_their_annotations(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name in ("create_bug", "mark_reported", "create_page"):
        annotations = tools[name].annotations
        assert annotations is not None and annotations.idempotent_hint is True, name
    description = tools["create_session"].description or ""
    assert "idempotency_key" in description
