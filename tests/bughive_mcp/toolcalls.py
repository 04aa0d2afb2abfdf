"""Calling tools the way an agent does, and the checks every result must pass.

``call_ok`` and ``call_error`` hold the rules that apply to every tool: a success carries
structured content whose text block is the same JSON, compact; an error is an ``isError`` result
naming the tool, with no stack trace, SQL or driver text in it. The builders below arrange data
through the tools themselves, as a crawler would.
"""

import itertools
import uuid
from datetime import datetime
from typing import Any

import pydantic_core
from mcp import Client
from mcp.types import CallToolResult, TextContent

BASE_URL = "https://shop.example"
HOME = f"{BASE_URL}/"  # the base URL as the server stores it (normalized)
MASK = "**********"

# Text that must never reach a client: stack traces, SQL, driver and library names.
LEAKS_CASE_SENSITIVE = ("Traceback", "SELECT", "INSERT", "UPDATE pages", "UPDATE bugs")
LEAKS_ANY_CASE = ("sqlalchemy", "asyncpg", "postgresql", "psycopg")


def only_text(result: CallToolResult) -> str:
    """The single text block every BugHive result has."""
    assert len(result.content) == 1, result.content
    block = result.content[0]
    assert isinstance(block, TextContent), block
    return block.text


def compact_json(value: Any) -> str:
    """``value`` as compact JSON, written as the server writes it (pydantic-core): Python's
    ``json`` spells a float such as a 50 µs duration ``5e-05`` where pydantic writes
    ``0.00005``, the same number."""
    return pydantic_core.to_json(value).decode()


def assert_no_leak(text: str) -> None:
    for word in LEAKS_CASE_SENSITIVE:
        assert word not in text, f"{word!r} leaked into: {text}"
    for word in LEAKS_ANY_CASE:
        assert word not in text.lower(), f"{word!r} leaked into: {text}"


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    result = await client.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult), result
    return result


async def call_ok(client: Client, tool: str, /, **arguments: Any) -> dict[str, Any]:
    """Call ``tool``; it must succeed. Returns the structured content, after checking that the
    text block is exactly that content as compact JSON."""
    result = await call(client, tool, arguments)
    text = only_text(result)
    assert not result.is_error, text
    structured = result.structured_content
    assert isinstance(structured, dict), structured
    assert text == compact_json(structured)
    return dict(structured)


async def call_error(client: Client, tool: str, /, **arguments: Any) -> str:
    """Call ``tool``; it must fail with a clean ``isError`` result. Returns the message."""
    result = await call(client, tool, arguments)
    text = only_text(result)
    assert result.is_error, text
    assert result.structured_content is None
    assert text.startswith(f"Error executing tool {tool}: "), text
    assert_no_leak(text)
    return text


def missing_id() -> str:
    """An id no row has."""
    return str(uuid.uuid4())


def without(output: dict[str, Any], *keys: str) -> dict[str, Any]:
    """``output`` less some keys: e.g. a ``create_bug`` result (which adds ``created``) as
    ``get_bug`` shows the same bug."""
    return {key: value for key, value in output.items() if key not in keys}


def timestamp(value: Any) -> datetime:
    """Parse an output timestamp; it must be ISO 8601 and timezone-aware."""
    assert isinstance(value, str), value
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed


# --- builders: arrange data through the tools -------------------------------------------


async def new_session(
    client: Client, *, start: bool = True, base_url: str = BASE_URL, **config: Any
) -> dict[str, Any]:
    """A session (started unless ``start=False``), as stored (get_session)."""
    arguments: dict[str, Any] = {"base_url": base_url}
    if config:
        arguments["config"] = config
    session = await call_ok(client, "create_session", **arguments)
    if start:
        await call_ok(client, "start_session", session_id=session["id"])
    return await get_session(client, session["id"])


async def new_page(
    client: Client,
    session_id: str,
    url: str = HOME,
    depth: int = 0,
    parent_page_id: str | None = None,
) -> dict[str, Any]:
    arguments: dict[str, Any] = {"session_id": session_id, "url": url, "depth": depth}
    if parent_page_id is not None:
        arguments["parent_page_id"] = parent_page_id
    return await call_ok(client, "create_page", **arguments)


async def analyzed_page(
    client: Client, session_id: str, url: str = HOME, **analysis: Any
) -> dict[str, Any]:
    """A page crawled and analysed, as stored (get_page)."""
    page = await new_page(client, session_id, url)
    claim = await call_ok(client, "mark_crawling", page_id=page["id"])
    await call_ok(
        client, "mark_analyzed", page_id=page["id"], claim_token=claim["claim_token"], **analysis
    )
    return await call_ok(client, "get_page", page_id=page["id"])


BUG_FIELDS: dict[str, Any] = {
    "category": "ui_ux",
    "priority": "high",
    "title": "Buy button covers the price",
    "description": "On a 375px viewport the buy button overlaps the price.",
}


_distinct = itertools.count()


async def new_bug(
    client: Client, session_id: str, page_id: str, **overrides: Any
) -> dict[str, Any]:
    """File a bug; unless a title is given, one no other bug has (bugs are deduplicated by
    category, title and page, and titles compare without digits)."""
    letters = "".join(chr(ord("a") + int(d)) for d in str(next(_distinct)))
    fields = {**BUG_FIELDS, "title": f"{BUG_FIELDS['title']} {letters}", **overrides}
    return await call_ok(client, "create_bug", session_id=session_id, page_id=page_id, **fields)


async def get_session(client: Client, session_id: str) -> dict[str, Any]:
    return await call_ok(client, "get_session", session_id=session_id)


async def small_crawl(client: Client) -> dict[str, dict[str, Any]]:
    """The crawl loop in miniature, asserting each step: create_session → start_session →
    create_page → mark_crawling → mark_analyzed → create_bug → get_bug_statistics →
    get_session_statistics → complete_session. Returns every step's output by tool name."""
    out: dict[str, dict[str, Any]] = {}
    out["create_session"] = await call_ok(client, "create_session", base_url=BASE_URL)
    sid = out["create_session"]["id"]
    assert out["create_session"]["status"] == "pending"
    out["start_session"] = await call_ok(client, "start_session", session_id=sid)
    assert out["start_session"]["status"] == "running"
    out["create_page"] = await call_ok(client, "create_page", session_id=sid, url=HOME)
    page_id = out["create_page"]["id"]
    assert (out["create_page"]["status"], out["create_page"]["created"]) == ("discovered", True)
    out["mark_crawling"] = await call_ok(client, "mark_crawling", page_id=page_id)
    assert (out["mark_crawling"]["id"], out["mark_crawling"]["attempts"]) == (page_id, 1)
    out["mark_analyzed"] = await call_ok(
        client,
        "mark_analyzed",
        page_id=page_id,
        claim_token=out["mark_crawling"]["claim_token"],
        title="Shop",
        status_code=200,
        response_time_ms=120,
    )
    assert out["mark_analyzed"] == {"id": page_id, "status": "analyzed"}
    out["create_bug"] = await call_ok(
        client, "create_bug", session_id=sid, page_id=page_id, confidence=0.9, **BUG_FIELDS
    )
    assert (out["create_bug"]["created"], out["create_bug"]["occurrences"]) == (True, 1)
    out["get_bug"] = await call_ok(client, "get_bug", bug_id=out["create_bug"]["id"])
    assert (out["get_bug"]["status"], out["get_bug"]["title"]) == ("detected", BUG_FIELDS["title"])
    out["get_bug_statistics"] = await call_ok(client, "get_bug_statistics", session_id=sid)
    assert out["get_bug_statistics"]["total"] == 1
    assert out["get_bug_statistics"]["by_priority"]["high"] == 1
    assert out["get_bug_statistics"]["average_confidence"] == 0.9
    out["get_session_statistics"] = await call_ok(client, "get_session_statistics", session_id=sid)
    stats = out["get_session_statistics"]
    assert (stats["pages_total"], stats["crawl_progress"], stats["bugs_total"]) == (1, 1.0, 1)
    assert stats["pages_by_status"]["analyzed"] == 1
    out["complete_session"] = await call_ok(client, "complete_session", session_id=sid)
    done = out["complete_session"]
    assert done["status"] == "completed"
    assert (done["pages_discovered"], done["pages_crawled"], done["bugs_found"]) == (1, 1, 1)
    return out
