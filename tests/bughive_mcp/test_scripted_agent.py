"""A scripted agent (plain Python, no LLM) crawls a generated 200-page site over stdio, following
the crawl_site prompt's loop, and checks the report resource against what it put in."""

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.types import TextResourceContents
from sqlalchemy.engine import URL

from db.connection.database import Database
from tests.bughive_mcp.processes import SERVER_COMMAND, child_env

SITE = "https://generated.example"
PAGES = 200
PRIORITIES = ["critical", "high", "medium", "low"]
CATEGORIES = ["ui_ux", "data", "edge_case", "performance", "security"]


@dataclass
class GeneratedSite:
    """A site as a tree of 200 pages (home → sections → items), with cross-links, some
    off-site links, and a few bugs planted on known pages."""

    links: dict[str, list[str]] = field(default_factory=dict)
    bugs: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)

    @classmethod
    def build(cls, seed: int = 7) -> "GeneratedSite":
        rng = random.Random(seed)
        site = cls()
        urls = [f"{SITE}/"] + [f"{SITE}/page/{i}" for i in range(1, PAGES)]
        for i, url in enumerate(urls):
            children = [urls[c] for c in range(4 * i + 1, min(4 * i + 5, PAGES))]
            extra = [rng.choice(urls) for _ in range(2)]  # already-known pages
            site.links[url] = [*children, *extra, "https://elsewhere.example/ad"]
            if i % 9 == 0:
                # titles differ in letters, not digits: bugs whose titles differ only in
                # numbers on pages of one template are deduplicated by design
                name = "".join(chr(ord("a") + int(d)) for d in str(i))
                site.bugs[url] = [
                    (
                        f"Planted defect {name} {word}",
                        rng.choice(PRIORITIES),
                        rng.choice(CATEGORIES),
                    )
                    for word in ("alpha", "beta")[: 1 + i % 2]
                ]
        return site


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, (tool, result.content)
    assert result.structured_content is not None
    content: dict[str, Any] = result.structured_content
    return content


async def run_agent(client: Client, site: GeneratedSite) -> str:
    prompt = await client.get_prompt(
        "crawl_site", {"base_url": SITE, "max_pages": "500", "max_depth": "10"}
    )
    plan = prompt.messages[0].content.text  # type: ignore[union-attr]
    assert "claim_pages_to_crawl" in plan
    session = await call(
        client, "create_session", base_url=SITE, config={"max_pages": 500, "max_depth": 10}
    )
    sid = session["id"]
    await call(client, "start_session", session_id=sid)
    await call(client, "create_page", session_id=sid, url=f"{SITE}/")
    while True:
        claim = await call(client, "claim_pages_to_crawl", session_id=sid, limit=10)
        if not claim["items"]:
            assert claim["remaining"] == 0
            break
        for page in claim["items"]:
            links = [
                {"url": link, "depth": page["depth"] + 1, "parent_page_id": page["id"]}
                for link in site.links[page["url"]]
            ]
            found = await call(
                client, "bulk_create_pages", session_id=sid, pages=links, max_listed=100
            )
            assert all("outside" in r["reason"] for r in found["refused"])
            for title, priority, category in site.bugs.get(page["url"], []):
                await call(
                    client,
                    "create_bug",
                    session_id=sid,
                    page_id=page["id"],
                    title=title,
                    priority=priority,
                    category=category,
                    description="found by the scripted agent",
                    confidence=0.9,
                )
            await call(client, "add_cost", session_id=sid, cost_usd=0.01)
            await call(
                client,
                "mark_analyzed",
                page_id=page["id"],
                claim_token=claim["claim_token"],
                title=f"Page {page['url']}",
                status_code=200,
            )
    done = await call(client, "complete_session", session_id=sid)
    assert done["status"] == "completed"
    report = await client.read_resource(f"bughive://sessions/{sid}/report")
    content = report.contents[0]
    assert isinstance(content, TextResourceContents)
    return content.text


def table(markdown: str, heading: str) -> dict[str, int]:
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return {m[0]: int(m[1]) for m in re.findall(r"^\| (\w+) \| (\d+) \|$", section, flags=re.M)}


async def test_scripted_agent_crawls_200_pages_and_the_report_matches(
    db: Database, database_url: URL, tmp_path: Path
) -> None:
    site = GeneratedSite.build()
    planted = [bug for bugs in site.bugs.values() for bug in bugs]
    params = StdioServerParameters(
        command=SERVER_COMMAND[0],
        args=[*SERVER_COMMAND[1:], "serve"],
        env=child_env(database_url),
        cwd=tmp_path,
    )
    with anyio.fail_after(240):
        async with Client(params) as client:
            markdown = await run_agent(client, site)

    assert f"{PAGES} pages known, {PAGES} analyzed (100% finished)" in markdown
    assert table(markdown, "Pages by status") == {
        "discovered": 0,
        "crawling": 0,
        "analyzed": PAGES,
        "error": 0,
    }
    assert table(markdown, "Bugs by priority") == {
        p: Counter(b[1] for b in planted)[p] for p in PRIORITIES
    }
    assert table(markdown, "Bugs by category") == {
        c: Counter(b[2] for b in planted)[c] for c in CATEGORIES
    }
    assert f"{len(planted)} distinct ({len(planted)} occurrences)" in markdown
    assert f"${PAGES * 0.01:.4f}" in markdown
    rows = [line for line in markdown.splitlines() if "Planted defect" in line]
    assert len(rows) == len(planted)
    ranks = [PRIORITIES.index(row.split(" | ")[0].strip("| ")) for row in rows]
    assert ranks == sorted(ranks)
    assert json.dumps(markdown)  # the report is plain text
