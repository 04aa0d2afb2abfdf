"""A crawl that calls every tool of the catalog, checking each answer: the tool suite in one
pass, for running the whole surface over a different database path (through PgBouncer, with a
read replica) without repeating the per-tool tests."""

from typing import Any

from mcp import Client

from bughive_mcp.tools import catalog
from tests.bughive_mcp.toolcalls import BASE_URL, BUG_FIELDS, HOME, call_ok


class Recorder:
    """Calls tools through ``call_ok`` and remembers which ones were called."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.called: set[str] = set()

    async def __call__(self, tool: str, /, **arguments: Any) -> dict[str, Any]:
        self.called.add(tool)
        return await call_ok(self.client, tool, **arguments)


async def crawl_with_every_tool(client: Client) -> set[str]:
    """Sessions, frontier, bugs and reporting in the order an agent uses them, asserting the
    data each step must show. Returns the names of the tools called."""
    call = Recorder(client)
    health = await call("check_database_health")
    assert health["healthy"] and health["schema_revision"] == health["expected_revision"]
    session = await call("create_session", base_url=BASE_URL, config={"max_pages": 50})
    sid = session["id"]
    await call("start_session", session_id=sid)
    home = await call("create_page", session_id=sid, url=HOME)
    links = [
        {"url": f"{BASE_URL}/p/{i}", "depth": 1, "parent_page_id": home["id"]} for i in range(6)
    ]
    found = await call("bulk_create_pages", session_id=sid, pages=links)
    assert found["created_count"] == 6
    waiting = await call("get_pages_to_crawl", session_id=sid, limit=3)
    assert (waiting["total"], len(waiting["items"])) == (7, 3)

    taken = await call("mark_crawling", page_id=home["id"])
    await call("extend_claim", page_id=home["id"], claim_token=taken["claim_token"])
    await call(
        "mark_analyzed",
        page_id=home["id"],
        claim_token=taken["claim_token"],
        title="Shop",
        status_code=200,
        response_time_ms=80,
    )
    claim = await call("claim_pages_to_crawl", session_id=sid, limit=10)
    assert (len(claim["items"]), claim["remaining"]) == (6, 0)
    *good, broken = claim["items"]
    finished = await call(
        "finish_page",
        page_id=good[0]["id"],
        claim_token=claim["claim_token"],
        links=[{"url": f"{BASE_URL}/p/0"}, {"url": f"{BASE_URL}/p/0#top"}],
    )
    assert finished["links"] == {"created": 0, "known": 2, "refused": 0}
    for page in good[1:]:
        await call("mark_analyzed", page_id=page["id"], claim_token=claim["claim_token"])
    await call(
        "mark_page_error",
        page_id=broken["id"],
        claim_token=claim["claim_token"],
        error_message="timed out",
    )
    assert (await call("get_page", page_id=broken["id"]))["status"] == "error"

    critical = await call(
        "create_bug",
        session_id=sid,
        page_id=home["id"],
        confidence=0.95,
        **{**BUG_FIELDS, "priority": "critical"},
    )
    minor = await call(
        "create_bug",
        session_id=sid,
        page_id=good[0]["id"],
        confidence=0.4,
        **{**BUG_FIELDS, "title": "Footer link is grey on grey", "priority": "low"},
    )
    assert (await call("get_bug", bug_id=critical["id"]))["title"] == BUG_FIELDS["title"]
    assert (await call("mark_validated", bug_id=critical["id"]))["status"] == "validated"
    reported = await call(
        "mark_reported",
        bug_id=critical["id"],
        linear_issue_id="BUG-1",
        linear_issue_url="https://linear.app/shop/issue/BUG-1",
    )
    assert reported["status"] == "reported"
    assert (await call("dismiss_bug", bug_id=minor["id"], reason="by design"))[
        "status"
    ] == "dismissed"
    assert (await call("get_high_confidence_bugs", session_id=sid))["total"] == 1
    assert (await call("get_critical_bugs", session_id=sid))["total"] == 1
    assert (await call("get_session_bugs", session_id=sid))["total"] == 2
    assert (await call("get_bug_statistics", session_id=sid))["total"] == 2

    analytics = await call("get_page_analytics", page_id=home["id"])
    assert (analytics["bugs_total"], analytics["children_count"]) == (1, 6)
    graph = await call("get_navigation_graph", session_id=sid)
    assert (len(graph["nodes"]), len(graph["edges"])) == (7, 6)
    await call("add_cost", session_id=sid, cost_usd=0.25)
    stats = await call("get_session_statistics", session_id=sid)
    assert (stats["pages_total"], stats["bugs_total"]) == (7, 2)
    report = await call("export_session_report", session_id=sid, format="json")
    assert report["report"] is not None
    done = await call("complete_session", session_id=sid)
    assert (done["pages_discovered"], done["pages_crawled"], done["bugs_found"]) == (7, 6, 2)
    assert float(done["total_cost"]) == 0.25
    assert (await call("get_session", session_id=sid))["status"] == "completed"
    assert (await call("list_sessions", status="completed"))["total"] >= 1
    return call.called


def every_tool() -> set[str]:
    return {spec.name for spec in catalog.specs}
