"""The tools' public contract: small enough for an agent's context, and every change to it
visible in review (one JSON snapshot per tool under tests/bughive_mcp/tool_snapshots/).

Regenerate the snapshots after an intended change with ``UPDATE_TOOL_SNAPSHOTS=1 pytest``.
"""

import json
import os
from pathlib import Path

import pytest
from mcp.types import ListToolsResult, Tool

from bughive_mcp.server import build_server
from bughive_mcp.settings import ServerSettings

SNAPSHOTS = Path(__file__).parent / "tool_snapshots"
# Paid once per conversation. 24,000 until finish_page (issue 18) added ~3,700: the one call per
# page saves an agent two calls and ~1 KB of answers on every page it analyses. 28,000 until
# the compact answers (issue 18) gave nine write tools a ``verbose`` flag (~100 characters
# each): what they stopped echoing is ~500 bytes on every page.
MAX_LIST_CHARS = 29_000
MAX_DESCRIPTION_CHARS = 600


async def listed_tools(**settings: object) -> list[Tool]:
    server = build_server(ServerSettings(_env_file=None, **settings))  # type: ignore[arg-type]
    return await server.list_tools()


async def test_tools_list_fits_the_context_budget() -> None:
    tools = await listed_tools()
    wire = ListToolsResult(tools=tools).model_dump_json(by_alias=True, exclude_none=True)
    assert len(wire) < MAX_LIST_CHARS, f"tools/list is {len(wire)} characters"


async def test_every_description_is_short() -> None:
    for tool in await listed_tools():
        assert tool.description, tool.name
        assert len(tool.description) < MAX_DESCRIPTION_CHARS, tool.name


async def test_full_output_schemas_are_available_for_typed_clients() -> None:
    tools = {t.name: t for t in await listed_tools(output_schemas="full")}
    schema = tools["get_bug"].output_schema
    assert schema is not None and "occurrences" in schema["properties"]


def contract(tool: Tool) -> dict[str, object]:
    return tool.model_dump(mode="json", by_alias=True, exclude_none=True)


async def test_tool_contracts_match_their_snapshots() -> None:
    tools = await listed_tools()
    update = os.environ.get("UPDATE_TOOL_SNAPSHOTS") == "1"
    SNAPSHOTS.mkdir(exist_ok=True)
    for tool in tools:
        path = SNAPSHOTS / f"{tool.name}.json"
        current = json.dumps(contract(tool), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        if update:
            path.write_text(current)
            continue
        assert path.exists(), (
            f"no snapshot for new tool {tool.name}: run with UPDATE_TOOL_SNAPSHOTS=1"
        )
        assert path.read_text() == current, (
            f"the public contract of {tool.name} changed; review it, then run with "
            "UPDATE_TOOL_SNAPSHOTS=1"
        )
    stale = {p.stem for p in SNAPSHOTS.glob("*.json")} - {t.name for t in tools}
    if update:
        for name in stale:
            (SNAPSHOTS / f"{name}.json").unlink()
    else:
        assert not stale, f"snapshots of removed tools: {sorted(stale)}"


@pytest.mark.parametrize("tool_name", ["create_bug", "claim_pages_to_crawl"])
async def test_descriptions_say_what_to_call_next(tool_name: str) -> None:
    tools = {t.name: t for t in await listed_tools()}
    description = tools[tool_name].description or ""
    assert any(other in description for other in tools if other != tool_name)
