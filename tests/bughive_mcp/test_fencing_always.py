"""Over MCP, finishing a claimed page always needs its claim_token: a worker whose lease
expired cannot overwrite the page another worker now holds by leaving the token out."""

from typing import Any

from mcp import Client

from db.connection.database import Database
from tests.bughive_mcp.toolcalls import call_error, call_ok, new_page, new_session


async def expire_lease(db: Database, page_id: str) -> None:
    async with db.session() as s:
        await s.execute(
            "UPDATE pages SET lease_expires_at = now() - interval '1 second' WHERE id = :id",
            {"id": page_id},
        )


async def page_row(client: Client, page_id: str) -> dict[str, Any]:
    return await call_ok(client, "get_page", page_id=page_id)


async def test_mark_analyzed_without_a_claim_token_is_refused_by_the_schema(
    client: Client,
) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert "claim_token" in tools["mark_analyzed"].input_schema["required"]

    session = await new_session(client)
    page = await new_page(client, session["id"])
    await call_ok(client, "mark_crawling", page_id=page["id"])

    message = await call_error(client, "mark_analyzed", page_id=page["id"], title="x")

    assert "claim_token" in message
    assert (await page_row(client, page["id"]))["status"] == "crawling"


async def test_a_stale_worker_without_its_token_cannot_take_over_the_page(
    client: Client, db: Database
) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"])
    await call_ok(client, "mark_crawling", page_id=page["id"], lease_seconds=5)
    await expire_lease(db, page["id"])  # the first worker stalled past its lease
    claim = await call_ok(client, "claim_pages_to_crawl", session_id=session["id"], limit=1)
    [held] = claim["items"]
    assert held["id"] == page["id"]

    # The stale worker wakes up and, token or not, cannot finish or give up the page.
    analyzed = await call_error(client, "mark_analyzed", page_id=page["id"], title="stale")
    gave_up = await call_error(
        client, "mark_page_error", page_id=page["id"], error_message="timed out"
    )
    assert "claim_token" in analyzed and "claim_token" in gave_up
    assert "is claimed" in gave_up
    still = await page_row(client, page["id"])
    assert (still["status"], still["title"]) == ("crawling", None)

    # The rightful worker finishes it with its own token.
    done = await call_ok(
        client, "mark_analyzed", page_id=page["id"], claim_token=claim["claim_token"], title="ok"
    )
    assert done["status"] == "analyzed"
    assert (await page_row(client, page["id"]))["title"] == "ok"


async def test_a_page_nobody_claimed_can_be_given_up_without_a_token(client: Client) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"])

    given_up = await call_ok(
        client, "mark_page_error", page_id=page["id"], error_message="robots says no"
    )

    assert given_up["status"] == "error"
    again = await call_error(client, "mark_page_error", page_id=page["id"], error_message="again")
    assert "'error'" in again and "discovered" in again
