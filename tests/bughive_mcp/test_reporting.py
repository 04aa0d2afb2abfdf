"""The session report (tool and resource), the graph and schema resources, the prompts, and
progress notifications."""

import re
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import TextResourceContents

from tests.bughive_mcp.toolcalls import (
    BASE_URL,
    analyzed_page,
    call_ok,
    missing_id,
    new_bug,
    new_session,
)


async def read_text(client: Client, uri: str) -> str:
    result = await client.read_resource(uri)
    content = result.contents[0]
    assert isinstance(content, TextResourceContents)
    return content.text


async def session_with_bugs(client: Client) -> dict[str, Any]:
    session = await new_session(client)
    sid = session["id"]
    home = await analyzed_page(client, sid)
    cart = await analyzed_page(client, sid, f"{BASE_URL}/cart")
    await new_bug(client, sid, home["id"], priority="critical", category="security")
    await new_bug(client, sid, cart["id"], priority="low")
    dismissed = await new_bug(client, sid, cart["id"], priority="high")
    await call_ok(client, "dismiss_bug", bug_id=dismissed["id"], reason="false positive")
    await call_ok(client, "add_cost", session_id=sid, cost_usd=0.25)
    return session


async def test_markdown_report_shows_coverage_bugs_and_cost(client: Client) -> None:
    session = await session_with_bugs(client)
    out = await call_ok(client, "export_session_report", session_id=session["id"])
    markdown = out["markdown"]
    assert set(out) == {"format", "markdown"}  # no "report": null beside it
    assert "2 pages known, 2 analyzed (100% finished)" in markdown
    assert "| critical | 1 |" in markdown and "| low | 1 |" in markdown
    assert "| security | 1 |" in markdown
    assert "$0.2500" in markdown
    open_rows = [line for line in markdown.splitlines() if "| detected |" in line]
    assert len(open_rows) == 2  # the dismissed bug is not an open bug
    assert open_rows[0].startswith("| critical |")  # most urgent first


async def test_json_report_carries_the_data(client: Client) -> None:
    session = await session_with_bugs(client)
    out = await call_ok(client, "export_session_report", session_id=session["id"], format="json")
    report = out["report"]
    assert set(out) == {"format", "report"}
    assert report["bugs_total"] == 2 and not report["bugs_truncated"]
    assert [b["priority"] for b in report["bugs"]] == ["critical", "low"]
    assert report["bugs"][0]["page_url"] == f"{BASE_URL}/"
    assert report["statistics"]["session"]["pages_crawled"] == 2


async def test_report_resource_equals_the_tool_apart_from_the_timestamp(client: Client) -> None:
    session = await session_with_bugs(client)
    text = await read_text(client, f"bughive://sessions/{session['id']}/report")
    tool = (await call_ok(client, "export_session_report", session_id=session["id"]))["markdown"]

    def stable(markdown: str) -> list[str]:
        return [line for line in markdown.splitlines() if not line.startswith("- Generated")]

    assert stable(text) == stable(tool)


async def test_hostile_titles_are_inert_in_the_report(client: Client) -> None:
    session = await new_session(client)
    page = await analyzed_page(client, session["id"])
    await new_bug(
        client, session["id"], page["id"], title="Evil | <img src=x> \u202e[click](http://x)"
    )
    markdown = (await call_ok(client, "export_session_report", session_id=session["id"]))[
        "markdown"
    ]
    row = next(line for line in markdown.splitlines() if "Evil" in line)
    assert "\u202e" not in row
    assert re.search(r"(?<!\\)[<\[]", row) is None  # every < and [ is escaped: no HTML, no link
    assert len(re.findall(r"(?<!\\)\|", row)) == 9  # the title did not add a column


async def test_report_of_unknown_session(client: Client) -> None:
    with pytest.raises(MCPError, match="does not exist"):
        await client.read_resource(f"bughive://sessions/{missing_id()}/report")


async def test_graph_resource_is_the_navigation_graph(client: Client) -> None:
    session = await new_session(client)
    home = await call_ok(client, "create_page", session_id=session["id"], url=f"{BASE_URL}/")
    await call_ok(
        client,
        "create_page",
        session_id=session["id"],
        url=f"{BASE_URL}/about",
        depth=1,
        parent_page_id=home["id"],
    )
    import json

    graph = json.loads(await read_text(client, f"bughive://sessions/{session['id']}/graph"))
    assert graph["total_nodes"] == 2 and not graph["truncated"]
    assert graph["edges"] == [{"source": home["id"], "target": graph["nodes"][1]["id"]}]


async def test_schema_resource_describes_tables_and_life_cycles(client: Client) -> None:
    text = await read_text(client, "bughive://schema")
    for word in ("## crawl_sessions", "## pages", "## bugs", "TIMESTAMP", "dismissed", "data"):
        assert word in text


async def test_resource_descriptions_are_plain_text_for_the_agent(client: Client) -> None:
    """The descriptions come from docstrings: without their source indentation and reST
    markup (````truncated````), as the tool descriptions are."""
    templates = (await client.list_resource_templates()).resource_templates
    resources = (await client.list_resources()).resources
    descriptions = {t.name: t.description or "" for t in templates}
    descriptions.update({r.name: r.description or "" for r in resources})

    assert set(descriptions) == {"session_report", "session_graph", "schema"}
    for name, description in descriptions.items():
        assert description, name
        assert "\n" not in description and "  " not in description, (name, description)
        assert "``" not in description, (name, description)
    graph = descriptions["session_graph"]
    assert "(shallowest 2000 pages; truncated says when there are more)" in graph


async def test_prompts_give_the_crawl_loop_and_triage(client: Client) -> None:
    prompts = {p.name for p in (await client.list_prompts()).prompts}
    assert prompts == {"crawl_site", "triage_bugs"}
    crawl = await client.get_prompt(
        "crawl_site", {"base_url": "https://a.example", "max_pages": "50"}
    )
    text = crawl.messages[0].content.text  # type: ignore[union-attr]
    for step in ("create_session", "claim_pages_to_crawl", "mark_analyzed", "complete_session"):
        assert step in text
    assert '"max_pages": 50' in text and "never as instructions" in text
    triage = await client.get_prompt("triage_bugs", {"session_id": "abc"})
    assert "mark_validated" in triage.messages[0].content.text  # type: ignore[union-attr]


async def test_server_instructions_give_the_loop_and_the_data_warning(client: Client) -> None:
    from bughive_mcp.server import INSTRUCTIONS

    assert "claim_pages_to_crawl" in INSTRUCTIONS and "never instructions" in INSTRUCTIONS


async def test_bulk_creation_and_reports_send_progress(client: Client) -> None:
    session = await new_session(client, max_pages=5000)
    events: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append((progress, total, message))

    pages = [{"url": f"{BASE_URL}/p/{i}", "depth": 1} for i in range(2500)]
    result = await client.call_tool(
        "bulk_create_pages",
        {"session_id": session["id"], "pages": pages},
        progress_callback=on_progress,
    )
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["created_count"] == 2500
    assert [e[0] for e in events] == [1000, 2000, 2500] and events[-1][1] == 2500
    events.clear()
    await client.call_tool(
        "export_session_report", {"session_id": session["id"]}, progress_callback=on_progress
    )
    assert [e[0] for e in events] == [1, 2, 3]
