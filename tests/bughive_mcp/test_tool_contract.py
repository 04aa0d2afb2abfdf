"""The public contract of tools/list: names, schemas, titles, annotations, descriptions; and
that the advertised schemas describe what the tools really accept and return."""

from collections.abc import Awaitable, Callable
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from mcp import Client
from mcp.types import Tool

from tests.bughive_mcp.toolcalls import BASE_URL, BUG_FIELDS, HOME, call_error, call_ok

pytestmark = pytest.mark.anyio

DOCUMENTED_TOOLS = {
    # sessions
    "create_session",
    "start_session",
    "complete_session",
    "get_session",
    "list_sessions",
    "add_cost",
    "get_session_statistics",
    # pages and the frontier
    "create_page",
    "bulk_create_pages",
    "get_page",
    "get_pages_to_crawl",
    "claim_pages_to_crawl",
    "extend_claim",
    "mark_crawling",
    "mark_analyzed",
    "finish_page",
    "mark_page_error",
    "get_page_analytics",
    "get_navigation_graph",
    # bugs
    "create_bug",
    "get_bug",
    "mark_validated",
    "mark_reported",
    "dismiss_bug",
    "get_high_confidence_bugs",
    "get_critical_bugs",
    "get_bug_statistics",
    "get_session_bugs",
    # reporting and operations
    "export_session_report",
    "check_database_health",
}
# Read verbs: a tool named with one changes nothing, and every tool that changes nothing is
# named with one (export_session_report renders a report of the stored crawl).
READ_PREFIXES = ("get_", "list_", "check_", "export_")


async def listed(client: Client) -> list[Tool]:
    return (await client.list_tools()).tools


async def test_the_server_lists_exactly_the_documented_tools(client: Client) -> None:
    assert {tool.name for tool in await listed(client)} == DOCUMENTED_TOOLS


async def test_every_tool_has_a_title(client: Client) -> None:
    assert {tool.name for tool in await listed(client) if not tool.title} == set()


async def test_every_tool_has_a_description_written_for_the_agent(client: Client) -> None:
    too_short = {t.name for t in await listed(client) if len((t.description or "").strip()) < 30}
    assert too_short == set()


async def test_every_tool_has_an_object_input_schema_refusing_unknown_properties(
    client: Client,
) -> None:
    wrong = {
        tool.name
        for tool in await listed(client)
        if tool.input_schema.get("type") != "object"
        or tool.input_schema.get("additionalProperties") is not False
    }
    assert wrong == set()


async def test_every_tool_has_an_object_output_schema(client: Client) -> None:
    missing = {
        tool.name
        for tool in await listed(client)
        if tool.output_schema is None or tool.output_schema.get("type") != "object"
    }
    assert missing == set()


@pytest.mark.parametrize("schemas", ["compact", "full"])
async def test_every_schema_is_valid_json_schema(
    client: Client, full_schema_client: Client, schemas: str
) -> None:
    tools = await listed(full_schema_client if schemas == "full" else client)
    for tool in tools:
        for schema in (tool.input_schema, tool.output_schema):
            jsonschema.Draft202012Validator.check_schema(schema)


async def test_every_tool_sets_all_four_annotation_hints_explicitly(client: Client) -> None:
    unset = {}
    for tool in await listed(client):
        hints = tool.annotations
        values = (
            None
            if hints is None
            else (
                hints.read_only_hint,
                hints.destructive_hint,
                hints.idempotent_hint,
                hints.open_world_hint,
            )
        )
        if values is None or None in values:
            unset[tool.name] = values
    assert unset == {}


async def test_no_tool_claims_an_open_world(client: Client) -> None:
    open_world = {
        tool.name
        for tool in await listed(client)
        if tool.annotations is None or tool.annotations.open_world_hint is not False
    }
    assert open_world == set()


async def test_read_only_tools_are_exactly_the_get_list_check_and_export_tools(
    client: Client,
) -> None:
    tools = await listed(client)
    read_only = {t.name for t in tools if t.annotations and t.annotations.read_only_hint}

    assert read_only == {t.name for t in tools if t.name.startswith(READ_PREFIXES)}


async def test_read_only_tools_are_neither_destructive_nor_unrepeatable(client: Client) -> None:
    dishonest = {
        tool.name
        for tool in await listed(client)
        if tool.annotations
        and tool.annotations.read_only_hint
        and (tool.annotations.destructive_hint or not tool.annotations.idempotent_hint)
    }
    assert dishonest == set()


async def test_every_list_limit_is_bounded_at_100(client: Client) -> None:
    limits = {
        tool.name: tool.input_schema["properties"]["limit"]
        for tool in await listed(client)
        if "limit" in tool.input_schema.get("properties", {})
    }

    assert set(limits) >= {
        "list_sessions",
        "get_pages_to_crawl",
        "get_high_confidence_bugs",
        "get_critical_bugs",
        "get_session_bugs",
    }
    unbounded = {
        name
        for name, limit in limits.items()
        if limit.get("maximum", 10**9) > 100 or limit.get("minimum") != 1
    }
    assert unbounded == set()


async def test_every_tool_refuses_an_unknown_argument_naming_it(client: Client) -> None:
    for name in sorted(DOCUMENTED_TOOLS):
        message = await call_error(client, name, not_an_argument=1)

        assert "unknown argument(s) 'not_an_argument'" in message, name


async def test_an_unknown_tool_is_an_error_result_naming_it(client: Client) -> None:
    result = await client.call_tool("drop_database", {})

    assert result.is_error
    assert "drop_database" in str(result.content)


# --- the schemas describe the real traffic ----------------------------------------------

Call = Callable[..., Awaitable[dict[str, Any]]]


async def tour_every_tool(call: Call) -> None:
    """Each tool once, successfully, on realistic data."""
    session = await call("create_session", base_url=BASE_URL, config={"max_depth": 2})
    sid = session["id"]
    await call("start_session", session_id=sid)
    await call("get_session", session_id=sid)
    await call("list_sessions", status="running", limit=5)
    await call("add_cost", session_id=sid, cost_usd=0.02)
    home = await call("create_page", session_id=sid, url=HOME)
    await call(
        "bulk_create_pages",
        session_id=sid,
        pages=[
            {"url": f"{BASE_URL}/cart", "depth": 1, "parent_page_id": home["id"]},
            {"url": f"{BASE_URL}/help", "depth": 1, "parent_page_id": home["id"]},
        ],
    )
    await call("get_page", page_id=home["id"])
    await call("get_pages_to_crawl", session_id=sid, limit=5)
    claim = await call("claim_pages_to_crawl", session_id=sid, limit=2)
    first, second = claim["items"]
    await call("extend_claim", page_id=first["id"], claim_token=claim["claim_token"])
    await call(
        "mark_analyzed",
        page_id=first["id"],
        claim_token=claim["claim_token"],
        title="Home",
        screenshot_url="https://cdn.example/home.png",
        analysis_result={"summary": "ok"},
        response_time_ms=300,
        status_code=200,
        content_type="text/html",
        content_length=1000,
    )
    await call(
        "mark_page_error",
        page_id=second["id"],
        error_message="timeout",
        claim_token=claim["claim_token"],
    )
    [rest] = (await call("get_pages_to_crawl", session_id=sid))["items"]
    leased = await call("mark_crawling", page_id=rest["id"])
    await call(
        "finish_page",
        page_id=rest["id"],
        claim_token=leased["claim_token"],
        title="Rest",
        links=[{"url": f"{BASE_URL}/deeper", "depth": 2}],
        bugs=[{**BUG_FIELDS, "title": "Footer overlaps", "group_by": "page"}],
    )
    await call("get_page_analytics", page_id=first["id"])
    await call("get_navigation_graph", session_id=sid, max_nodes=10)
    bug = await call(
        "create_bug",
        session_id=sid,
        page_id=first["id"],
        steps_to_reproduce=["Open /"],
        evidence=[{"type": "screenshot", "url": "https://cdn.example/bug.png"}],
        confidence=0.9,
        expected_behavior="readable",
        actual_behavior="hidden",
        affected_users="mobile",
        browser_info={"name": "chromium"},
        **BUG_FIELDS,
    )
    other = await call(
        "create_bug",
        session_id=sid,
        page_id=first["id"],
        **{**BUG_FIELDS, "title": "Checkout spinner never stops", "priority": "critical"},
        dedup_key="checkout-spinner",
    )
    await call("get_bug", bug_id=bug["id"])
    await call("mark_validated", bug_id=bug["id"])
    await call(
        "mark_reported",
        bug_id=bug["id"],
        linear_issue_id="BUG-1",
        linear_issue_url="https://linear.app/x/issue/BUG-1",
    )
    await call("dismiss_bug", bug_id=other["id"], reason="duplicate")
    await call("get_high_confidence_bugs", session_id=sid, min_confidence=0.5)
    await call("get_critical_bugs", session_id=sid)
    await call("get_bug_statistics", session_id=sid)
    await call("get_session_bugs", session_id=sid, status="reported", priority="high")
    await call("get_session_statistics", session_id=sid)
    await call("export_session_report", session_id=sid, format="json")
    await call("check_database_health")
    await call("complete_session", session_id=sid)


async def test_every_result_matches_the_full_output_schema(full_schema_client: Client) -> None:
    called: set[str] = set()

    async def call(tool: str, /, **arguments: Any) -> dict[str, Any]:
        called.add(tool)
        # The SDK client validates each structured result against the listed output schema.
        return await call_ok(full_schema_client, tool, **arguments)

    await tour_every_tool(call)

    assert called == DOCUMENTED_TOOLS


async def test_the_input_schemas_accept_every_valid_call(client: Client) -> None:
    schemas = {tool.name: tool.input_schema for tool in await listed(client)}
    called: set[str] = set()

    async def call(tool: str, /, **arguments: Any) -> dict[str, Any]:
        called.add(tool)
        jsonschema.validate(arguments, schemas[tool], cls=jsonschema.Draft202012Validator)
        return await call_ok(client, tool, **arguments)

    await tour_every_tool(call)

    assert called == DOCUMENTED_TOOLS
