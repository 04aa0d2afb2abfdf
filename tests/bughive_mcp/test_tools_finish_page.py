"""finish_page over MCP: one call per page, a small answer, fenced by a required token."""

from mcp import Client

from tests.bughive_mcp.toolcalls import (
    BASE_URL,
    BUG_FIELDS,
    call,
    call_error,
    call_ok,
    new_page,
    new_session,
    only_text,
)


async def test_one_call_finishes_a_page_with_its_links_and_bugs_in_a_few_hundred_bytes(
    client: Client,
) -> None:
    session = await new_session(client)
    await new_page(client, session["id"])
    claim = await call_ok(client, "claim_pages_to_crawl", session_id=session["id"], limit=1)
    [page] = claim["items"]
    nav = [{"url": f"{BASE_URL}/docs/page-{n}.html"} for n in range(50)]
    hrefs = nav + nav + [{"url": f"{BASE_URL}/docs/page-{n}.html#top"} for n in range(50)]
    bugs = [BUG_FIELDS, {**BUG_FIELDS, "title": "Checkout button is disabled"}]

    result = await call(
        client,
        "finish_page",
        {
            "page_id": page["id"],
            "claim_token": claim["claim_token"],
            "title": "Docs",
            "status_code": 200,
            "links": hrefs,
            "bugs": bugs,
        },
    )

    assert not result.is_error, only_text(result)
    answer = result.structured_content
    assert answer is not None
    assert answer["status"] == "analyzed"
    assert answer["links"] == {"created": 50, "known": 100, "refused": 0}
    assert [(b["created"], b["occurrences"]) for b in answer["bugs"]] == [(True, 1), (True, 1)]
    assert len(only_text(result).encode()) <= 300
    stored = await call_ok(client, "get_session", session_id=session["id"])
    assert (stored["pages_discovered"], stored["pages_crawled"], stored["bugs_found"]) == (
        51,
        1,
        2,
    )


async def test_finish_page_requires_the_claim_token(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert {"page_id", "claim_token"} <= set(tools["finish_page"].input_schema["required"])
    session = await new_session(client)
    page = await new_page(client, session["id"])

    message = await call_error(client, "finish_page", page_id=page["id"])

    assert "claim_token" in message
