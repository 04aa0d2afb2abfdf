"""Page tools: create_page, bulk_create_pages, get_page, get_pages_to_crawl,
claim_pages_to_crawl, extend_claim, mark_crawling, mark_analyzed, mark_page_error,
get_page_analytics, get_navigation_graph."""

import uuid
from datetime import timedelta

import asyncpg
import pytest
from mcp import Client

from tests.bughive_mcp.toolcalls import (
    BASE_URL,
    HOME,
    analyzed_page,
    call_error,
    call_ok,
    get_session,
    missing_id,
    new_bug,
    new_page,
    new_session,
    timestamp,
    without,
)

pytestmark = pytest.mark.anyio


# --- create_page --------------------------------------------------------------------------


async def test_create_page_records_a_discovered_page(client: Client) -> None:
    session = await new_session(client)

    page = await call_ok(client, "create_page", session_id=session["id"], url=HOME)

    assert page == {
        "id": page["id"],
        "status": "discovered",
        "url": HOME,
        "depth": 0,
        "created": True,
    }
    stored = await call_ok(client, "get_page", page_id=page["id"])
    assert stored == {
        "id": page["id"],
        "session_id": session["id"],
        "parent_page_id": None,
        "url": HOME,
        "title": None,
        "status": "discovered",
        "depth": 0,
        "screenshot_url": None,
        "analysis_result": None,
        "response_time_ms": None,
        "status_code": None,
        "content_type": None,
        "content_length": None,
        "error_message": None,
        "discovered_at": stored["discovered_at"],
        "crawled_at": None,
        "attempts": 0,
        "priority": 0,
        "lease_expires_at": None,
        "created_at": stored["discovered_at"],
        "updated_at": stored["discovered_at"],
    }
    timestamp(stored["discovered_at"])


async def test_create_page_with_verbose_answers_the_stored_row_too(client: Client) -> None:
    session = await new_session(client)

    page = await call_ok(client, "create_page", session_id=session["id"], url=HOME, verbose=True)

    assert page["page"] == await call_ok(client, "get_page", page_id=page["id"])
    assert without(page, "page") == {
        "id": page["id"],
        "status": "discovered",
        "url": HOME,
        "depth": 0,
        "created": True,
    }


async def test_create_page_raises_pages_discovered_in_the_same_call(client: Client) -> None:
    session = await new_session(client)

    await new_page(client, session["id"], HOME)

    assert (await get_session(client, session["id"]))["pages_discovered"] == 1


async def test_create_page_of_a_known_url_returns_it_uncounted_with_created_false(
    client: Client,
) -> None:
    session = await new_session(client)
    first = await new_page(client, session["id"], HOME)

    again = await call_ok(client, "create_page", session_id=session["id"], url=HOME)

    assert again == {**first, "created": False}
    assert (await get_session(client, session["id"]))["pages_discovered"] == 1


async def test_create_page_stores_the_normalized_url_so_spellings_are_one_page(
    client: Client,
) -> None:
    session = await new_session(client)
    first = await new_page(client, session["id"], "https://Shop.Example/a?b=2&a=1#reviews")

    again = await new_page(client, session["id"], f"{BASE_URL}/a?a=1&b=2&utm_source=mail")

    assert first["url"] == f"{BASE_URL}/a?a=1&b=2"
    assert (again["id"], again["created"]) == (first["id"], False)
    assert (await get_session(client, session["id"]))["pages_discovered"] == 1


async def test_create_page_refuses_a_url_of_another_origin_saying_why(client: Client) -> None:
    session = await new_session(client)

    message = await call_error(
        client, "create_page", session_id=session["id"], url="https://elsewhere.example/"
    )

    assert "not stored: https://elsewhere.example/" in message
    assert "outside the session's origin https://shop.example" in message
    assert (await get_session(client, session["id"]))["pages_discovered"] == 0


async def test_create_page_refuses_an_unparsable_url_naming_it(client: Client) -> None:
    session = await new_session(client)

    message = await call_error(client, "create_page", session_id=session["id"], url="http://a[")

    assert "not stored: http://a[" in message
    assert "is not a valid URL" in message
    assert "internal error" not in message


async def test_create_page_refuses_a_url_with_a_password_without_repeating_it(
    client: Client,
) -> None:
    session = await new_session(client)

    message = await call_error(
        client, "create_page", session_id=session["id"], url="https://bob:hunter2@shop.example/"
    )

    assert "not stored: https://***@shop.example/" in message
    assert "config.credentials" in message
    assert "hunter2" not in message
    assert (await get_session(client, session["id"]))["pages_discovered"] == 0


async def test_create_page_refuses_a_depth_beyond_max_depth_saying_why(client: Client) -> None:
    session = await new_session(client)

    message = await call_error(
        client, "create_page", session_id=session["id"], url=f"{BASE_URL}/deep", depth=4
    )

    assert "beyond max_depth 3" in message


async def test_create_page_records_the_parent_and_depth(client: Client) -> None:
    session = await new_session(client)
    home = await new_page(client, session["id"], HOME)

    child = await new_page(client, session["id"], f"{BASE_URL}/cart", 1, home["id"])

    stored = await call_ok(client, "get_page", page_id=child["id"])
    assert (stored["parent_page_id"], stored["depth"], child["depth"]) == (home["id"], 1, 1)


async def test_create_page_in_an_unknown_session_names_the_crawl_session(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "create_page", session_id=unknown, url=HOME)

    assert f"crawl session {unknown} does not exist (field 'session_id')" in message


async def test_create_page_with_an_unknown_parent_names_parent_page_id(client: Client) -> None:
    session = await new_session(client)
    unknown = missing_id()

    message = await call_error(
        client, "create_page", session_id=session["id"], url=HOME, parent_page_id=unknown
    )

    assert f"page {unknown} does not exist (field 'parent_page_id')" in message


async def test_create_page_in_a_completed_session_names_current_and_allowed_status(
    client: Client,
) -> None:
    session = await new_session(client)
    await call_ok(client, "complete_session", session_id=session["id"])

    message = await call_error(client, "create_page", session_id=session["id"], url=HOME)

    assert "its status is 'completed'" in message
    assert "only allowed from 'pending' or 'running'" in message


async def test_create_page_refuses_a_url_that_is_not_http_naming_url(client: Client) -> None:
    session = await new_session(client)

    message = await call_error(
        client, "create_page", session_id=session["id"], url="javascript:alert(1)"
    )

    assert "'url'" in message


@pytest.mark.parametrize("depth", [-1, 1001])
async def test_create_page_refuses_a_depth_out_of_range_naming_depth(
    client: Client, depth: int
) -> None:
    session = await new_session(client)

    message = await call_error(
        client, "create_page", session_id=session["id"], url=HOME, depth=depth
    )

    assert "'depth'" in message


async def test_create_page_refuses_a_url_with_a_nul_character_naming_url(client: Client) -> None:
    session = await new_session(client)

    message = await call_error(
        client, "create_page", session_id=session["id"], url=f"{BASE_URL}/a\x00b"
    )

    assert "'url' must not contain NUL" in message
    assert "internal error" not in message


# --- bulk_create_pages --------------------------------------------------------------------


async def test_bulk_create_pages_lists_new_and_known_pages_and_counts_only_the_new(
    client: Client,
) -> None:
    session = await new_session(client)
    home = await new_page(client, session["id"], HOME)

    result = await call_ok(
        client,
        "bulk_create_pages",
        session_id=session["id"],
        pages=[
            {"url": f"{BASE_URL}/cart", "depth": 1, "parent_page_id": home["id"]},
            {"url": HOME},
            {"url": f"{BASE_URL}/help", "depth": 1, "parent_page_id": home["id"]},
            {"url": f"{BASE_URL}/cart", "depth": 1},  # repeated in the same batch
        ],
        max_listed=100,
    )

    created = {ref["url"]: ref["id"] for ref in result["created"]}
    assert set(created) == {f"{BASE_URL}/cart", f"{BASE_URL}/help"}
    assert result == {
        "created": result["created"],
        "existing": [{"id": home["id"], "url": HOME}],
        "refused": [],
        "duplicates_in_batch": [{"url": f"{BASE_URL}/cart", "same_as": f"{BASE_URL}/cart"}],
        "created_count": 2,
        "existing_count": 1,
        "refused_count": 0,
        "duplicates_in_batch_count": 1,
        "truncated": False,
    }
    assert (await get_session(client, session["id"]))["pages_discovered"] == 3
    cart = await call_ok(client, "get_page", page_id=created[f"{BASE_URL}/cart"])
    assert (cart["parent_page_id"], cart["depth"], cart["status"]) == (home["id"], 1, "discovered")


async def test_bulk_create_pages_accounts_for_every_url_given_duplicates_included(
    client: Client,
) -> None:
    """10 URLs in: 3 new, 1 known, 3 refused and 3 repeating an earlier one of the batch (once
    normalized) — each reported, so the counts add up to what was sent."""
    session = await new_session(client)
    await new_page(client, session["id"], HOME)
    urls = [
        f"{BASE_URL}/a",
        f"{BASE_URL}/a?utm_source=mail",
        f"{BASE_URL}/b",
        HOME,
        "https://other.example/1",
        f"{BASE_URL}/b#reviews",
        "https://other.example/2",
        f"{BASE_URL}/c",
        "https://other.example/3",
        "HTTPS://SHOP.EXAMPLE/c",
    ]

    result = await call_ok(
        client,
        "bulk_create_pages",
        session_id=session["id"],
        pages=[{"url": u} for u in urls],
        max_listed=100,
    )

    assert (
        result["created_count"],
        result["existing_count"],
        result["refused_count"],
        result["duplicates_in_batch_count"],
    ) == (3, 1, 3, 3)
    assert result["duplicates_in_batch"] == [
        {"url": f"{BASE_URL}/a?utm_source=mail", "same_as": f"{BASE_URL}/a"},
        {"url": f"{BASE_URL}/b#reviews", "same_as": f"{BASE_URL}/b"},
        {"url": "HTTPS://SHOP.EXAMPLE/c", "same_as": f"{BASE_URL}/c"},
    ]
    assert (await get_session(client, session["id"]))["pages_discovered"] == 4


async def test_bulk_create_pages_lists_out_of_limit_urls_as_refused_with_the_reason(
    client: Client,
) -> None:
    session = await new_session(client, exclude_patterns=["/admin*"])

    result = await call_ok(
        client,
        "bulk_create_pages",
        session_id=session["id"],
        pages=[
            {"url": f"{BASE_URL}/shop"},
            {"url": "https://cdn.other.example/app.js"},
            {"url": f"{BASE_URL}/admin/users"},
        ],
        max_listed=100,
    )

    assert [ref["url"] for ref in result["created"]] == [f"{BASE_URL}/shop"]
    assert result["refused"] == [
        {
            "url": "https://cdn.other.example/app.js",
            "reason": "is outside the session's origin https://shop.example (same_origin=true)",
        },
        {"url": f"{BASE_URL}/admin/users", "reason": "matches exclude pattern '/admin*'"},
    ]
    assert (result["created_count"], result["refused_count"]) == (1, 2)
    assert (await get_session(client, session["id"]))["pages_discovered"] == 1


async def test_bulk_create_pages_refuses_an_unparsable_url_and_stores_the_rest(
    client: Client,
) -> None:
    session = await new_session(client)

    result = await call_ok(
        client,
        "bulk_create_pages",
        session_id=session["id"],
        pages=[
            {"url": f"{BASE_URL}/a"},
            {"url": "http://a["},
            {"url": "https://shop.example:99999/c"},
            {"url": f"{BASE_URL}/b"},
        ],
        max_listed=100,
    )

    assert [ref["url"] for ref in result["created"]] == [f"{BASE_URL}/a", f"{BASE_URL}/b"]
    refused = result["refused"]
    assert [item["url"] for item in refused] == ["http://a[", "https://shop.example:99999/c"]
    assert "is not a valid URL" in refused[0]["reason"]
    assert "the port must be a number from 0 to 65535" in refused[1]["reason"]
    assert (await get_session(client, session["id"]))["pages_discovered"] == 2


async def test_bulk_create_pages_refuses_a_url_with_a_password_alone_and_masked(
    client: Client,
) -> None:
    session = await new_session(client)

    result = await call_ok(
        client,
        "bulk_create_pages",
        session_id=session["id"],
        pages=[{"url": f"{BASE_URL}/a"}, {"url": "https://bob:hunter2@shop.example/b"}],
        max_listed=100,
    )

    assert [ref["url"] for ref in result["created"]] == [f"{BASE_URL}/a"]
    [refused] = result["refused"]
    assert refused["url"] == "https://***@shop.example/b"
    assert "config.credentials" in refused["reason"]
    assert "hunter2" not in str(result)


async def test_bulk_create_pages_refuses_pages_past_max_pages_and_counts_the_rest(
    client: Client,
) -> None:
    session = await new_session(client, max_pages=2)

    result = await call_ok(
        client,
        "bulk_create_pages",
        session_id=session["id"],
        pages=[{"url": f"{BASE_URL}/{name}"} for name in ("a", "b", "c")],
        max_listed=100,
    )

    assert result["created_count"] == 2
    assert result["refused"] == [
        {"url": f"{BASE_URL}/c", "reason": "the session reached its max_pages"}
    ]
    assert (await get_session(client, session["id"]))["pages_discovered"] == 2


async def test_bulk_create_pages_of_only_known_urls_changes_no_counter(client: Client) -> None:
    session = await new_session(client)
    await new_page(client, session["id"], HOME)

    result = await call_ok(
        client, "bulk_create_pages", session_id=session["id"], pages=[{"url": HOME}]
    )

    assert (result["created_count"], result["existing_count"]) == (0, 1)
    assert (await get_session(client, session["id"]))["pages_discovered"] == 1


async def test_bulk_create_pages_lists_at_most_max_listed_entries_and_exact_counts(
    client: Client,
) -> None:
    session = await new_session(client, max_pages=1000)
    pages = [{"url": f"{BASE_URL}/p/{i}", "depth": 1} for i in range(150)]
    pages += [{"url": f"https://elsewhere.example/{i}"} for i in range(120)]
    pages += [{"url": f"{BASE_URL}/p/{i}#top", "depth": 1} for i in range(110)]

    first = await call_ok(
        client, "bulk_create_pages", session_id=session["id"], pages=pages, max_listed=100
    )
    again = await call_ok(client, "bulk_create_pages", session_id=session["id"], pages=pages)
    everything = await call_ok(
        client, "bulk_create_pages", session_id=session["id"], pages=pages, max_listed=10_000
    )

    counts = ("created_count", "refused_count", "duplicates_in_batch_count")
    assert tuple(first[c] for c in counts) == (150, 120, 110)
    listed = ("created", "refused", "duplicates_in_batch")
    assert (*(len(first[name]) for name in listed), first["truncated"]) == (100, 100, 100, True)
    assert [ref["url"] for ref in first["created"]] == [p["url"] for p in pages[:100]]
    assert (again["existing_count"], again["refused_count"]) == (150, 120)
    assert again["duplicates_in_batch_count"] == 110
    assert (again["existing"], again["refused"], again["truncated"]) == ([], [], True)
    assert again["duplicates_in_batch"] == []
    assert (len(everything["existing"]), len(everything["refused"])) == (150, 120)
    assert len(everything["duplicates_in_batch"]) == 110
    assert everything["truncated"] is False
    assert (await get_session(client, session["id"]))["pages_discovered"] == 150


async def test_a_10000_page_bulk_answer_fits_an_agents_tool_result_budget(
    client: Client,
) -> None:
    """Claude Code refuses a tool answer over 25,000 tokens and moves one over 50,000
    characters to a file; listing 10,000 new pages took ~1 MB."""
    session = await new_session(client, max_pages=10_000)
    pages = [{"url": f"{BASE_URL}/products/{i}", "depth": 1} for i in range(10_000)]

    result = await client.call_tool(
        "bulk_create_pages", {"session_id": session["id"], "pages": pages}
    )

    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["created_count"] == 10_000
    [block] = result.content
    assert block.type == "text" and len(block.text) < 50_000


async def test_bulk_create_pages_refuses_an_empty_list_naming_pages(client: Client) -> None:
    session = await new_session(client)

    message = await call_error(client, "bulk_create_pages", session_id=session["id"], pages=[])

    assert "'pages'" in message


async def test_bulk_create_pages_refuses_an_unknown_page_key_naming_it(client: Client) -> None:
    session = await new_session(client)

    message = await call_error(
        client, "bulk_create_pages", session_id=session["id"], pages=[{"url": HOME, "dept": 1}]
    )

    assert "'pages.0.dept' is not a known argument" in message


async def test_bulk_create_pages_in_an_unknown_session_names_the_crawl_session(
    client: Client,
) -> None:
    unknown = missing_id()

    message = await call_error(
        client, "bulk_create_pages", session_id=unknown, pages=[{"url": HOME}]
    )

    assert f"crawl session {unknown} does not exist" in message


async def test_bulk_create_pages_with_an_unknown_parent_creates_nothing(client: Client) -> None:
    session = await new_session(client)
    unknown = missing_id()

    message = await call_error(
        client,
        "bulk_create_pages",
        session_id=session["id"],
        pages=[{"url": HOME}, {"url": f"{BASE_URL}/a", "parent_page_id": unknown}],
    )

    assert f"page {unknown} does not exist (field 'parent_page_id')" in message
    assert (await get_session(client, session["id"]))["pages_discovered"] == 0


# --- get_page -----------------------------------------------------------------------------


async def test_get_page_returns_the_page_as_stored(client: Client) -> None:
    session = await new_session(client)
    created = await new_page(client, session["id"], HOME)

    page = await call_ok(client, "get_page", page_id=created["id"])

    assert {key: page[key] for key in created if key != "created"} == without(created, "created")
    assert page["session_id"] == session["id"]


async def test_get_page_of_an_unknown_id_names_the_page(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "get_page", page_id=unknown)

    assert f"page {unknown} does not exist" in message


# --- get_pages_to_crawl -------------------------------------------------------------------


async def test_get_pages_to_crawl_lists_discovered_pages_shallowest_first(client: Client) -> None:
    session = await new_session(client)
    deep = await new_page(client, session["id"], f"{BASE_URL}/a/b", depth=2)
    home = await new_page(client, session["id"], HOME, depth=0)
    taken = await new_page(client, session["id"], f"{BASE_URL}/taken", depth=0)
    await call_ok(client, "mark_crawling", page_id=taken["id"])
    middle = await new_page(client, session["id"], f"{BASE_URL}/a", depth=1)

    frontier = await call_ok(client, "get_pages_to_crawl", session_id=session["id"])

    assert [p["id"] for p in frontier["items"]] == [home["id"], middle["id"], deep["id"]]
    assert {p["status"] for p in frontier["items"]} == {"discovered"}
    assert (frontier["total"], frontier["has_more"], frontier["limit"]) == (3, False, 10)


async def test_get_pages_to_crawl_caps_the_items_at_limit_and_reports_the_total(
    client: Client,
) -> None:
    session = await new_session(client)
    for i in range(3):
        await new_page(client, session["id"], f"{BASE_URL}/{i}")

    frontier = await call_ok(client, "get_pages_to_crawl", session_id=session["id"], limit=2)

    assert len(frontier["items"]) == 2
    assert (frontier["total"], frontier["has_more"]) == (3, True)


async def test_get_pages_to_crawl_does_not_reserve_pages(client: Client) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)

    await call_ok(client, "get_pages_to_crawl", session_id=session["id"])

    assert (await call_ok(client, "get_page", page_id=page["id"]))["status"] == "discovered"


@pytest.mark.parametrize("limit", [0, 101])
async def test_get_pages_to_crawl_refuses_a_limit_out_of_range_naming_it(
    client: Client, limit: int
) -> None:
    session = await new_session(client)

    message = await call_error(client, "get_pages_to_crawl", session_id=session["id"], limit=limit)

    assert "'limit'" in message


async def test_get_pages_to_crawl_of_an_unknown_session_names_the_crawl_session(
    client: Client,
) -> None:
    unknown = missing_id()

    message = await call_error(client, "get_pages_to_crawl", session_id=unknown)

    assert f"crawl session {unknown} does not exist" in message


# --- claim_pages_to_crawl -----------------------------------------------------------------


async def test_claim_pages_to_crawl_leases_the_shallowest_pages_under_one_token(
    client: Client,
) -> None:
    session = await new_session(client)
    deep = await new_page(client, session["id"], f"{BASE_URL}/a/b", depth=2)
    home = await new_page(client, session["id"], HOME)
    middle = await new_page(client, session["id"], f"{BASE_URL}/a", depth=1)

    claimed = await call_ok(client, "claim_pages_to_crawl", session_id=session["id"], limit=2)

    assert claimed == {
        "items": [
            {"id": home["id"], "url": HOME, "depth": 0},
            {"id": middle["id"], "url": f"{BASE_URL}/a", "depth": 1},
        ],
        "claim_token": claimed["claim_token"],
        "lease_seconds": 300,
        "remaining": 1,
    }
    uuid.UUID(claimed["claim_token"])
    for page in (home, middle):
        leased = await call_ok(client, "get_page", page_id=page["id"])
        assert (leased["status"], leased["attempts"]) == ("crawling", 1)
        lease = timestamp(leased["lease_expires_at"]) - timestamp(leased["updated_at"])
        assert lease == timedelta(seconds=300)
    left = await call_ok(client, "get_pages_to_crawl", session_id=session["id"])
    assert [p["id"] for p in left["items"]] == [deep["id"]]


async def test_one_claim_token_finishes_every_page_of_its_claim_and_no_other(
    client: Client,
) -> None:
    session = await new_session(client)
    for name in ("a", "b", "c"):
        await new_page(client, session["id"], f"{BASE_URL}/{name}", depth=1)
    mine = await call_ok(client, "claim_pages_to_crawl", session_id=session["id"], limit=2)
    theirs = await call_ok(client, "claim_pages_to_crawl", session_id=session["id"], limit=2)
    [their_page] = theirs["items"]

    assert mine["claim_token"] != theirs["claim_token"]
    message = await call_error(
        client,
        "mark_analyzed",
        page_id=their_page["id"],
        claim_token=mine["claim_token"],
    )
    assert "it is not the claim token of page" in message
    for page in mine["items"]:
        done = await call_ok(
            client, "mark_analyzed", page_id=page["id"], claim_token=mine["claim_token"]
        )
        assert done == {"id": page["id"], "status": "analyzed"}


async def test_claim_pages_to_crawl_never_hands_out_a_leased_page_again(client: Client) -> None:
    session = await new_session(client)
    await new_page(client, session["id"], HOME)
    await new_page(client, session["id"], f"{BASE_URL}/a", depth=1)

    first = await call_ok(client, "claim_pages_to_crawl", session_id=session["id"], limit=1)
    second = await call_ok(client, "claim_pages_to_crawl", session_id=session["id"], limit=1)
    third = await call_ok(client, "claim_pages_to_crawl", session_id=session["id"], limit=1)

    assert first["items"][0]["id"] != second["items"][0]["id"]
    assert (first["remaining"], second["remaining"]) == (1, 0)
    assert (third["items"], third["remaining"]) == ([], 0)


async def test_claim_pages_to_crawl_hands_out_again_a_page_whose_lease_expired(
    client: Client, raw: asyncpg.Connection
) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    lost = await call_ok(client, "mark_crawling", page_id=page["id"])
    await raw.execute(
        "UPDATE pages SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(page["id"]),
    )

    claimed = await call_ok(client, "claim_pages_to_crawl", session_id=session["id"])

    [again] = claimed["items"]
    assert (claimed["requeued"], "gave_up" in claimed) == (1, False)
    assert again["id"] == page["id"]
    assert (await call_ok(client, "get_page", page_id=page["id"]))["attempts"] == 2
    assert claimed["claim_token"] != lost["claim_token"]


async def test_claim_pages_to_crawl_gives_up_on_a_page_after_max_attempts(
    client: Client, raw: asyncpg.Connection
) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    await call_ok(client, "mark_crawling", page_id=page["id"])
    await raw.execute(
        "UPDATE pages SET attempts = 3, lease_expires_at = now() - interval '1 second' "
        "WHERE id = $1",
        uuid.UUID(page["id"]),
    )

    claimed = await call_ok(client, "claim_pages_to_crawl", session_id=session["id"])

    assert (claimed["items"], claimed["gave_up"], claimed["remaining"]) == ([], 1, 0)
    assert "requeued" not in claimed
    given_up = await call_ok(client, "get_page", page_id=page["id"])
    assert given_up["status"] == "error"
    assert given_up["error_message"].startswith("gave up after 3 attempts")


@pytest.mark.parametrize(("field", "value"), [("limit", 0), ("limit", 101), ("lease_seconds", 4)])
async def test_claim_pages_to_crawl_refuses_a_number_out_of_range_naming_it(
    client: Client, field: str, value: int
) -> None:
    session = await new_session(client)

    message = await call_error(
        client, "claim_pages_to_crawl", session_id=session["id"], **{field: value}
    )

    assert f"'{field}'" in message


async def test_claim_pages_to_crawl_of_a_completed_session_names_both_statuses(
    client: Client,
) -> None:
    session = await new_session(client)
    await call_ok(client, "complete_session", session_id=session["id"])

    message = await call_error(client, "claim_pages_to_crawl", session_id=session["id"])

    assert "its status is 'completed'" in message
    assert "only allowed from 'pending' or 'running'" in message


async def test_claim_pages_to_crawl_of_an_unknown_session_names_it(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "claim_pages_to_crawl", session_id=unknown)

    assert f"crawl session {unknown} does not exist" in message


# --- extend_claim -------------------------------------------------------------------------


async def test_extend_claim_renews_the_lease_from_now(client: Client) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    claim = await call_ok(client, "mark_crawling", page_id=page["id"], lease_seconds=30)

    extended = await call_ok(
        client,
        "extend_claim",
        page_id=page["id"],
        claim_token=claim["claim_token"],
        lease_seconds=3600,
    )

    assert extended == {**claim, "lease_expires_at": extended["lease_expires_at"]}
    assert timestamp(extended["lease_expires_at"]) - timestamp(claim["lease_expires_at"]) > (
        timedelta(seconds=3500)
    )


async def test_extend_claim_with_a_token_not_of_the_page_says_so(client: Client) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    claim = await call_ok(client, "mark_crawling", page_id=page["id"])

    message = await call_error(client, "extend_claim", page_id=page["id"], claim_token=missing_id())

    assert f"invalid 'claim_token': it is not the claim token of page {page['id']}" in message
    assert "nothing was changed" in message
    unchanged = await call_ok(client, "get_page", page_id=page["id"])
    assert unchanged["lease_expires_at"] == claim["lease_expires_at"]


async def test_extend_claim_of_a_finished_page_says_it_is_finished(client: Client) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    claim = await call_ok(client, "mark_crawling", page_id=page["id"])
    await call_ok(client, "mark_analyzed", page_id=page["id"], claim_token=claim["claim_token"])

    message = await call_error(
        client, "extend_claim", page_id=page["id"], claim_token=claim["claim_token"]
    )

    assert f"page {page['id']} is already analyzed" in message


@pytest.mark.parametrize("lease_seconds", [4, 86_401])
async def test_extend_claim_refuses_a_lease_out_of_range_naming_it(
    client: Client, lease_seconds: int
) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    claim = await call_ok(client, "mark_crawling", page_id=page["id"])

    message = await call_error(
        client,
        "extend_claim",
        page_id=page["id"],
        claim_token=claim["claim_token"],
        lease_seconds=lease_seconds,
    )

    assert "'lease_seconds'" in message


async def test_extend_claim_of_an_unknown_page_names_the_page(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "extend_claim", page_id=unknown, claim_token=missing_id())

    assert f"page {unknown} does not exist" in message


# --- mark_crawling ------------------------------------------------------------------------


async def test_mark_crawling_leases_a_discovered_page_with_a_claim_token(
    client: Client,
) -> None:
    session = await new_session(client)
    created = await new_page(client, session["id"], HOME)

    claim = await call_ok(client, "mark_crawling", page_id=created["id"], lease_seconds=60)

    assert claim == {
        "id": created["id"],
        "url": HOME,
        "depth": 0,
        "attempts": 1,
        "claim_token": claim["claim_token"],
        "lease_expires_at": claim["lease_expires_at"],
    }
    uuid.UUID(claim["claim_token"])
    stored = await call_ok(client, "get_page", page_id=created["id"])
    assert (stored["status"], stored["lease_expires_at"]) == ("crawling", claim["lease_expires_at"])
    lease = timestamp(claim["lease_expires_at"]) - timestamp(stored["updated_at"])
    assert lease == timedelta(seconds=60)


async def test_mark_crawling_refuses_a_page_already_taken_naming_both_statuses(
    client: Client,
) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    await call_ok(client, "mark_crawling", page_id=page["id"])

    message = await call_error(client, "mark_crawling", page_id=page["id"])

    assert f"page {page['id']}" in message
    assert "its status is 'crawling'" in message
    assert "only allowed from 'discovered'" in message


async def test_mark_crawling_of_an_unknown_id_names_the_page(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "mark_crawling", page_id=unknown)

    assert f"page {unknown} does not exist" in message


# --- mark_analyzed ------------------------------------------------------------------------

ANALYSIS = {
    "title": "Shop — Home",
    "screenshot_url": "https://cdn.example/home.png",
    "analysis_result": {"summary": "renders", "issues": ["price overlap"], "score": 0.7},
    "response_time_ms": 420,
    "status_code": 200,
    "content_type": "text/html; charset=utf-8",
    "content_length": 51234,
}


async def test_mark_analyzed_stores_the_analysis_and_ends_the_lease(client: Client) -> None:
    session = await new_session(client)
    created = await new_page(client, session["id"], HOME)
    claim = await call_ok(client, "mark_crawling", page_id=created["id"])
    leased = await call_ok(client, "get_page", page_id=created["id"])

    answer = await call_ok(
        client,
        "mark_analyzed",
        page_id=created["id"],
        claim_token=claim["claim_token"],
        **ANALYSIS,
    )

    assert answer == {"id": created["id"], "status": "analyzed"}
    page = await call_ok(client, "get_page", page_id=created["id"])
    assert page == {
        **leased,
        **ANALYSIS,
        "status": "analyzed",
        "lease_expires_at": None,
        "crawled_at": page["crawled_at"],
        "updated_at": page["updated_at"],
    }
    assert timestamp(page["crawled_at"]) >= timestamp(page["discovered_at"])


async def test_mark_analyzed_with_verbose_answers_the_stored_row(client: Client) -> None:
    session = await new_session(client)
    created = await new_page(client, session["id"], HOME)
    claim = await call_ok(client, "mark_crawling", page_id=created["id"])

    answer = await call_ok(
        client,
        "mark_analyzed",
        page_id=created["id"],
        claim_token=claim["claim_token"],
        verbose=True,
        **ANALYSIS,
    )

    assert answer["page"] == await call_ok(client, "get_page", page_id=created["id"])
    assert answer["page"]["analysis_result"] == ANALYSIS["analysis_result"]


async def test_mark_analyzed_without_a_claim_token_is_refused_and_changes_nothing(
    client: Client,
) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    await call_ok(client, "mark_crawling", page_id=page["id"])

    message = await call_error(client, "mark_analyzed", page_id=page["id"], status_code=200)

    assert "'claim_token' is required" in message
    assert (await call_ok(client, "get_page", page_id=page["id"]))["status"] == "crawling"


async def test_mark_analyzed_with_a_made_up_token_during_a_live_lease_says_it_is_not_the_token(
    client: Client,
) -> None:
    """The page was claimed once and its lease is live: the token is simply not the page's —
    no lease was lost, no other worker took over."""
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    await call_ok(client, "mark_crawling", page_id=page["id"])

    message = await call_error(
        client, "mark_analyzed", page_id=page["id"], claim_token=missing_id(), title="stale"
    )

    assert message == (
        f"Error executing tool mark_analyzed: invalid 'claim_token': it is not the claim token "
        f"of page {page['id']}, which has been claimed once, under another token; nothing was "
        "changed. Pass the claim_token your claim returned for this page"
    )
    unchanged = await call_ok(client, "get_page", page_id=page["id"])
    assert (unchanged["status"], unchanged["title"]) == ("crawling", None)
    assert (await get_session(client, session["id"]))["pages_crawled"] == 0


async def test_mark_analyzed_after_the_page_was_claimed_again_says_the_lease_expired(
    client: Client, raw: asyncpg.Connection
) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    lost = await call_ok(client, "mark_crawling", page_id=page["id"])
    await raw.execute(
        "UPDATE pages SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(page["id"]),
    )
    await call_ok(client, "claim_pages_to_crawl", session_id=session["id"])

    message = await call_error(
        client, "mark_analyzed", page_id=page["id"], claim_token=lost["claim_token"], title="late"
    )

    assert message == (
        f"Error executing tool mark_analyzed: lease lost on page {page['id']}: the claim_token "
        "is not its current one: after an earlier lease expired, the page was claimed again "
        "(claim 2 holds it now), so a token from an earlier claim no longer counts; nothing was "
        "changed. Drop this page and claim new work (claim_pages_to_crawl)"
    )
    unchanged = await call_ok(client, "get_page", page_id=page["id"])
    assert (unchanged["status"], unchanged["title"]) == ("crawling", None)


async def test_mark_analyzed_of_an_analyzed_page_says_it_is_already_analyzed(
    client: Client,
) -> None:
    """A repeated call (its first answer lost) or a late worker: nothing is left to do."""
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    claim = await call_ok(client, "mark_crawling", page_id=page["id"])
    await call_ok(client, "mark_analyzed", page_id=page["id"], claim_token=claim["claim_token"])

    message = await call_error(
        client, "mark_analyzed", page_id=page["id"], claim_token=claim["claim_token"]
    )

    assert message == (
        f"Error executing tool mark_analyzed: page {page['id']} is already analyzed, so the "
        "claim_token holds nothing now; nothing was changed, and nothing more is needed for "
        "this page"
    )
    assert (await get_session(client, session["id"]))["pages_crawled"] == 1


async def test_mark_analyzed_with_a_token_of_a_page_never_claimed_says_so(client: Client) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)

    message = await call_error(
        client, "mark_analyzed", page_id=page["id"], claim_token=missing_id()
    )

    assert f"invalid 'claim_token': page {page['id']} is not claimed (status 'discovered')" in (
        message
    )


async def test_mark_analyzed_raises_pages_crawled_in_the_same_call(client: Client) -> None:
    session = await new_session(client)

    await analyzed_page(client, session["id"], HOME)

    assert (await get_session(client, session["id"]))["pages_crawled"] == 1


async def test_mark_analyzed_refuses_a_page_not_crawling_naming_both_statuses(
    client: Client,
) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)

    message = await call_error(
        client, "mark_analyzed", page_id=page["id"], claim_token=missing_id(), status_code=200
    )

    assert "is not claimed (status 'discovered')" in message
    assert "claim_pages_to_crawl" in message
    assert (await get_session(client, session["id"]))["pages_crawled"] == 0


async def test_mark_analyzed_twice_counts_the_page_once(client: Client) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    claim = await call_ok(client, "mark_crawling", page_id=page["id"])
    finish = {"page_id": page["id"], "claim_token": claim["claim_token"]}
    await call_ok(client, "mark_analyzed", **finish)

    message = await call_error(client, "mark_analyzed", **finish)

    assert "is already analyzed" in message and "nothing was changed" in message
    assert (await get_session(client, session["id"]))["pages_crawled"] == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status_code", 99),
        ("status_code", 600),
        ("response_time_ms", -1),
        ("content_length", -1),
        ("title", "x" * 501),
    ],
)
async def test_mark_analyzed_refuses_a_value_out_of_range_naming_the_field(
    client: Client, field: str, value: object
) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    await call_ok(client, "mark_crawling", page_id=page["id"])

    message = await call_error(client, "mark_analyzed", page_id=page["id"], **{field: value})

    assert f"'{field}'" in message
    assert (await call_ok(client, "get_page", page_id=page["id"]))["status"] == "crawling"


async def test_mark_analyzed_refuses_an_analysis_over_256_kib_naming_it(client: Client) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    await call_ok(client, "mark_crawling", page_id=page["id"])

    message = await call_error(
        client, "mark_analyzed", page_id=page["id"], analysis_result={"dom": "x" * 300_000}
    )

    assert "'analysis_result'" in message
    assert "262144 bytes" in message


async def test_mark_analyzed_refuses_a_nul_character_in_the_analysis_naming_where(
    client: Client,
) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    await call_ok(client, "mark_crawling", page_id=page["id"])

    message = await call_error(
        client,
        "mark_analyzed",
        page_id=page["id"],
        analysis_result={"findings": ["ok", "bad\x00byte"]},
    )

    assert "'analysis_result.findings.1' must not contain NUL" in message


async def test_mark_analyzed_of_an_unknown_id_names_the_page(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "mark_analyzed", page_id=unknown, claim_token=missing_id())

    assert f"page {unknown} does not exist" in message


# --- mark_page_error ----------------------------------------------------------------------


async def test_mark_page_error_records_the_reason_and_does_not_count_a_crawl(
    client: Client,
) -> None:
    session = await new_session(client)
    created = await new_page(client, session["id"], HOME)
    claim = await call_ok(client, "mark_crawling", page_id=created["id"])
    leased = await call_ok(client, "get_page", page_id=created["id"])

    answer = await call_ok(
        client,
        "mark_page_error",
        page_id=created["id"],
        error_message="navigation timeout",
        claim_token=claim["claim_token"],
    )

    assert answer == {"id": created["id"], "status": "error"}
    page = await call_ok(client, "get_page", page_id=created["id"])
    assert page == {
        **leased,
        "status": "error",
        "error_message": "navigation timeout",
        "lease_expires_at": None,
        "crawled_at": page["crawled_at"],
        "updated_at": page["updated_at"],
    }
    timestamp(page["crawled_at"])
    assert (await get_session(client, session["id"]))["pages_crawled"] == 0


async def test_mark_page_error_with_a_token_not_of_the_page_says_so(client: Client) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    await call_ok(client, "mark_crawling", page_id=page["id"])

    message = await call_error(
        client, "mark_page_error", page_id=page["id"], error_message="x", claim_token=missing_id()
    )

    assert f"invalid 'claim_token': it is not the claim token of page {page['id']}" in message
    assert (await call_ok(client, "get_page", page_id=page["id"]))["status"] == "crawling"


async def test_mark_page_error_of_a_page_in_error_says_it_is_finished(client: Client) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    claim = await call_ok(client, "mark_crawling", page_id=page["id"])
    token = claim["claim_token"]
    await call_ok(
        client, "mark_page_error", page_id=page["id"], error_message="x", claim_token=token
    )

    message = await call_error(
        client, "mark_page_error", page_id=page["id"], error_message="y", claim_token=token
    )

    assert f"page {page['id']} is already finished with status 'error'" in message


async def test_mark_page_error_accepts_a_discovered_page(client: Client) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)

    marked = await call_ok(client, "mark_page_error", page_id=page["id"], error_message="404")

    assert marked["status"] == "error"


async def test_mark_page_error_refuses_an_analyzed_page_naming_both_statuses(
    client: Client,
) -> None:
    session = await new_session(client)
    page = await analyzed_page(client, session["id"], HOME)

    message = await call_error(client, "mark_page_error", page_id=page["id"], error_message="x")

    assert "its status is 'analyzed'" in message
    assert "only allowed from 'discovered'" in message


async def test_mark_page_error_refuses_an_empty_message_naming_it(client: Client) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)

    message = await call_error(client, "mark_page_error", page_id=page["id"], error_message="")

    assert "'error_message'" in message


async def test_mark_page_error_of_an_unknown_id_names_the_page(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "mark_page_error", page_id=unknown, error_message="x")

    assert f"page {unknown} does not exist" in message


# --- get_page_analytics -------------------------------------------------------------------


async def test_get_page_analytics_counts_the_page_bugs_children_and_timing(
    client: Client,
) -> None:
    session = await new_session(client)
    home = await analyzed_page(client, session["id"], HOME, response_time_ms=250)
    await new_page(client, session["id"], f"{BASE_URL}/a", 1, home["id"])
    await new_page(client, session["id"], f"{BASE_URL}/b", 1, home["id"])
    await new_bug(client, session["id"], home["id"], priority="critical", category="security")
    await new_bug(client, session["id"], home["id"], priority="critical", category="data")
    await new_bug(client, session["id"], home["id"], priority="low", category="data")

    analytics = await call_ok(client, "get_page_analytics", page_id=home["id"])

    assert analytics == {
        "page": home,
        "bugs_total": 3,
        "bugs_by_priority": {"critical": 2, "high": 0, "medium": 0, "low": 1},
        "bugs_by_category": {
            "ui_ux": 0,
            "data": 2,
            "edge_case": 0,
            "performance": 0,
            "security": 1,
        },
        "children_count": 2,
        "response_time_ms": 250,
        "seconds_to_crawl": analytics["seconds_to_crawl"],
    }
    expected = timestamp(home["crawled_at"]) - timestamp(home["discovered_at"])
    assert analytics["seconds_to_crawl"] == pytest.approx(expected.total_seconds())


async def test_get_page_analytics_of_a_page_not_yet_analyzed_has_no_crawl_time(
    client: Client,
) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)

    analytics = await call_ok(client, "get_page_analytics", page_id=page["id"])

    assert analytics["seconds_to_crawl"] is None
    assert (analytics["bugs_total"], analytics["children_count"]) == (0, 0)


async def test_get_page_analytics_of_an_unknown_id_names_the_page(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "get_page_analytics", page_id=unknown)

    assert f"page {unknown} does not exist" in message


# --- get_navigation_graph -----------------------------------------------------------------


async def test_get_navigation_graph_returns_pages_as_nodes_and_links_as_edges(
    client: Client,
) -> None:
    session = await new_session(client)
    home = await analyzed_page(client, session["id"], HOME, title="Home")
    cart = await new_page(client, session["id"], f"{BASE_URL}/cart", 1, home["id"])

    graph = await call_ok(client, "get_navigation_graph", session_id=session["id"])

    assert graph == {
        "session_id": session["id"],
        "nodes": [
            {"id": home["id"], "url": HOME, "title": "Home", "depth": 0, "status": "analyzed"},
            {
                "id": cart["id"],
                "url": f"{BASE_URL}/cart",
                "title": None,
                "depth": 1,
                "status": "discovered",
            },
        ],
        "edges": [{"source": home["id"], "target": cart["id"]}],
        "total_nodes": 2,
        "truncated": False,
    }


async def test_get_navigation_graph_caps_nodes_at_max_nodes_and_says_so(client: Client) -> None:
    session = await new_session(client)
    home = await new_page(client, session["id"], HOME)
    await new_page(client, session["id"], f"{BASE_URL}/a", 1, home["id"])
    await new_page(client, session["id"], f"{BASE_URL}/b", 1, home["id"])

    graph = await call_ok(client, "get_navigation_graph", session_id=session["id"], max_nodes=1)

    assert [node["id"] for node in graph["nodes"]] == [home["id"]]
    assert graph["edges"] == []  # no edge may point at a node that was left out
    assert (graph["total_nodes"], graph["truncated"]) == (3, True)


@pytest.mark.parametrize("max_nodes", [0, 2001])
async def test_get_navigation_graph_refuses_max_nodes_out_of_range_naming_it(
    client: Client, max_nodes: int
) -> None:
    session = await new_session(client)

    message = await call_error(
        client, "get_navigation_graph", session_id=session["id"], max_nodes=max_nodes
    )

    assert "'max_nodes'" in message


async def test_get_navigation_graph_of_an_unknown_session_names_the_crawl_session(
    client: Client,
) -> None:
    unknown = missing_id()

    message = await call_error(client, "get_navigation_graph", session_id=unknown)

    assert f"crawl session {unknown} does not exist" in message


# --- priority (issue 18: links carry one; issue 19: login and checkout first) --------------


async def test_claims_hand_out_the_highest_priority_first_then_the_shallowest(
    client: Client,
) -> None:
    session = await new_session(client)
    await call_ok(
        client,
        "bulk_create_pages",
        session_id=session["id"],
        pages=[
            {"url": f"{BASE_URL}/footer/imprint", "depth": 1},
            {"url": f"{BASE_URL}/checkout", "depth": 3, "priority": 5},
            {"url": f"{BASE_URL}/about", "depth": 2},
            {"url": f"{BASE_URL}/login", "depth": 2, "priority": 5},
            {"url": f"{BASE_URL}/ads", "depth": 0, "priority": -3},
        ],
    )

    frontier = await call_ok(client, "get_pages_to_crawl", session_id=session["id"])
    claimed = []
    for _ in range(5):
        claim = await call_ok(client, "claim_pages_to_crawl", session_id=session["id"], limit=1)
        claimed += [item["url"] for item in claim["items"]]

    expected = ["login", "checkout", "footer/imprint", "about", "ads"]
    assert claimed == [f"{BASE_URL}/{path}" for path in expected]
    assert [p["url"] for p in frontier["items"]] == claimed
    assert [p["priority"] for p in frontier["items"]] == [5, 5, 0, 0, -3]


async def test_finish_page_stores_the_priority_of_each_link(client: Client) -> None:
    session = await new_session(client)
    await new_page(client, session["id"], HOME)
    claim = await call_ok(client, "claim_pages_to_crawl", session_id=session["id"])
    [home] = claim["items"]

    await call_ok(
        client,
        "finish_page",
        page_id=home["id"],
        claim_token=claim["claim_token"],
        links=[{"url": f"{BASE_URL}/blog"}, {"url": f"{BASE_URL}/cart", "priority": 7}],
    )

    frontier = await call_ok(client, "get_pages_to_crawl", session_id=session["id"])
    assert [(p["url"], p["priority"], p["depth"]) for p in frontier["items"]] == [
        (f"{BASE_URL}/cart", 7, 1),
        (f"{BASE_URL}/blog", 0, 1),
    ]


@pytest.mark.parametrize("priority", [-11, 11])
async def test_a_priority_out_of_range_is_refused_naming_it(client: Client, priority: int) -> None:
    session = await new_session(client)

    message = await call_error(
        client,
        "bulk_create_pages",
        session_id=session["id"],
        pages=[{"url": HOME, "priority": priority}],
    )

    assert "'pages.0.priority'" in message
    assert (await get_session(client, session["id"]))["pages_discovered"] == 0
