"""Session tools: create_session, start_session, complete_session, get_session, list_sessions,
add_cost, get_session_statistics."""

import json
import uuid
from typing import Any

import asyncpg
import pytest
from mcp import Client

from tests.bughive_mcp.toolcalls import (
    BASE_URL,
    HOME,
    MASK,
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

DEFAULT_CONFIG: dict[str, Any] = {
    "max_depth": 3,
    "max_pages": 100,
    "same_origin": True,
    "include_patterns": [],
    "exclude_patterns": [],
    "drop_tracking_params": True,
    "trailing_slash": "keep",
    "viewport": {"width": 1280, "height": 800},
    "user_agent": None,
    "respect_robots_txt": True,
    "credentials": None,
}
PASSWORD = "correct-horse-battery-staple"
# What a session answer and a listing show of a session (issue 18, item 5): no config.
SUMMARY_KEYS = (
    "id",
    "base_url",
    "status",
    "pages_discovered",
    "pages_crawled",
    "bugs_found",
    "total_cost",
    "error_message",
    "created_at",
)


# --- create_session -----------------------------------------------------------------------


async def test_create_session_returns_a_pending_session_with_zero_counters(client: Client) -> None:
    answer = await call_ok(client, "create_session", base_url=BASE_URL)

    assert answer == {
        "id": answer["id"],
        "base_url": HOME,
        "status": "pending",
        "pages_discovered": 0,
        "pages_crawled": 0,
        "bugs_found": 0,
        "total_cost": 0.0,
        "error_message": None,
        "created_at": answer["created_at"],
        "next": "start_session, then create_page with the base URL",
    }
    session = await get_session(client, answer["id"])
    assert session == {
        "id": answer["id"],
        "base_url": HOME,
        "status": "pending",
        "config": DEFAULT_CONFIG,
        "started_at": None,
        "completed_at": None,
        "pages_discovered": 0,
        "pages_crawled": 0,
        "bugs_found": 0,
        "total_cost": 0.0,
        "error_message": None,
        "created_at": answer["created_at"],
        "updated_at": answer["created_at"],
    }
    timestamp(session["created_at"])


async def test_create_session_answers_the_whole_row_only_with_verbose(client: Client) -> None:
    config = {"credentials": {"username": "qa", "password": PASSWORD}}
    brief = await call_ok(client, "create_session", base_url=BASE_URL, config=config)
    verbose = await call_ok(
        client,
        "create_session",
        base_url=f"{BASE_URL}/other",
        config=config,
        verbose=True,
    )

    assert "config" not in brief and "session" not in brief
    assert verbose["session"] == await get_session(client, verbose["id"])
    shown = verbose["session"]["config"]["credentials"]
    assert (shown["username"], shown["password"]) == ("qa", MASK)
    assert PASSWORD not in json.dumps(verbose)


async def test_create_session_stores_the_base_url_normalized(client: Client) -> None:
    session = await call_ok(client, "create_session", base_url="https://Shop.Example:443")

    assert session["base_url"] == HOME


async def test_create_session_stores_the_given_config_over_the_defaults(client: Client) -> None:
    answer = await call_ok(
        client,
        "create_session",
        base_url=BASE_URL,
        config={"max_depth": 1, "viewport": {"width": 375, "height": 667}},
    )

    assert (await get_session(client, answer["id"]))["config"] == {
        **DEFAULT_CONFIG,
        "max_depth": 1,
        "viewport": {"width": 375, "height": 667},
    }


async def test_create_session_masks_the_credentials_password(client: Client) -> None:
    credentials = {"username": "qa", "password": PASSWORD, "login_url": f"{BASE_URL}/login"}
    session = await call_ok(
        client,
        "create_session",
        base_url=BASE_URL,
        config={"credentials": credentials},
        verbose=True,
    )

    assert session["session"]["config"]["credentials"] == {**credentials, "password": MASK}
    stored = await get_session(client, session["id"])
    assert stored["config"]["credentials"] == {**credentials, "password": MASK}


async def test_no_session_tool_output_ever_contains_the_credentials_password(
    client: Client,
) -> None:
    config = {"credentials": {"username": "qa", "password": PASSWORD}}
    session = await call_ok(client, "create_session", base_url=BASE_URL, config=config)
    sid = session["id"]
    outputs = [
        session,
        await call_ok(
            client, "create_session", base_url=f"{BASE_URL}/v", config=config, verbose=True
        ),
        await call_ok(client, "start_session", session_id=sid),
        await call_ok(client, "get_session", session_id=sid),
        await call_ok(client, "list_sessions"),
        await call_ok(client, "add_cost", session_id=sid, cost_usd=0.5),
        await call_ok(client, "get_session_statistics", session_id=sid),
        await call_ok(client, "complete_session", session_id=sid, verbose=True),
    ]
    refused = await call_error(client, "start_session", session_id=sid)
    assert outputs[1]["session"]["config"]["credentials"]["password"] == MASK
    assert outputs[-1]["session"]["config"]["credentials"]["password"] == MASK

    # call_ok checked that each text block is exactly this JSON.
    for output in outputs:
        assert PASSWORD not in json.dumps(output)
    assert PASSWORD not in refused


async def test_create_session_refuses_a_base_url_that_is_not_http(client: Client) -> None:
    message = await call_error(client, "create_session", base_url="ftp://shop.example")

    assert "'base_url'" in message


async def test_create_session_refuses_a_base_url_with_a_port_that_is_no_port(
    client: Client,
) -> None:
    message = await call_error(client, "create_session", base_url="https://shop.example:x/")

    assert "'base_url'" in message
    assert "the port must be a number from 0 to 65535" in message
    listed = await call_ok(client, "list_sessions")
    assert listed["total"] == 0


async def test_create_session_refuses_a_base_url_with_a_password_without_storing_it(
    client: Client,
) -> None:
    message = await call_error(
        client, "create_session", base_url="https://bob:hunter2@shop.example/"
    )

    assert "'base_url'" in message
    assert "'https://***@shop.example/' has a user name or password in it" in message
    assert "config.credentials" in message
    assert "hunter2" not in message
    assert (await call_ok(client, "list_sessions"))["total"] == 0


async def test_create_session_refuses_a_login_url_with_a_password_without_storing_it(
    client: Client,
) -> None:
    login = {
        "username": "qa",
        "password": PASSWORD,
        "login_url": "https://qa:hunter2@shop.example/",
    }

    message = await call_error(
        client, "create_session", base_url=BASE_URL, config={"credentials": login}
    )

    assert "login_url" in message
    assert "config.credentials" in message
    assert "hunter2" not in message
    assert (await call_ok(client, "list_sessions"))["total"] == 0


async def test_create_session_names_the_missing_base_url(client: Client) -> None:
    message = await call_error(client, "create_session")

    assert "'base_url' is required" in message


async def test_create_session_names_the_nested_config_field_out_of_range(client: Client) -> None:
    message = await call_error(
        client, "create_session", base_url=BASE_URL, config={"viewport": {"width": 10}}
    )

    assert "'config.viewport.width'" in message
    assert "240" in message


async def test_create_session_refuses_an_unknown_config_key_naming_it(client: Client) -> None:
    message = await call_error(client, "create_session", base_url=BASE_URL, config={"max_dept": 3})

    assert "'config.max_dept' is not a known argument" in message


async def test_create_session_refuses_an_unknown_argument_naming_it(client: Client) -> None:
    message = await call_error(client, "create_session", base_url=BASE_URL, baseurl=BASE_URL)

    assert "unknown argument(s) 'baseurl'" in message
    assert "base_url" in message  # the allowed ones are listed


# --- start_session ------------------------------------------------------------------------


async def test_start_session_moves_pending_to_running_and_stamps_started_at(
    client: Client,
) -> None:
    created = await new_session(client, start=False)

    answer = await call_ok(client, "start_session", session_id=created["id"])

    assert (answer["id"], answer["status"]) == (created["id"], "running")
    assert answer["next"].startswith("create_page with the base URL")
    started = await get_session(client, created["id"])
    assert started == {
        **created,
        "status": "running",
        "started_at": started["started_at"],
        "updated_at": started["updated_at"],
    }
    assert timestamp(started["started_at"]) >= timestamp(created["created_at"])


async def test_start_session_refuses_a_running_session_naming_both_statuses(
    client: Client,
) -> None:
    session = await new_session(client)

    message = await call_error(client, "start_session", session_id=session["id"])

    assert f"crawl session {session['id']}" in message
    assert "its status is 'running'" in message
    assert "only allowed from 'pending'" in message


async def test_start_session_of_an_unknown_id_names_the_crawl_session(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "start_session", session_id=unknown)

    assert f"crawl session {unknown} does not exist" in message


async def test_start_session_refuses_a_malformed_id_naming_session_id(client: Client) -> None:
    message = await call_error(client, "start_session", session_id="not-a-uuid")

    assert "'session_id'" in message
    assert "UUID" in message


# --- complete_session ---------------------------------------------------------------------


async def test_complete_session_moves_running_to_completed(client: Client) -> None:
    running = await new_session(client)

    answer = await call_ok(client, "complete_session", session_id=running["id"])

    assert answer == {
        "id": running["id"],
        "base_url": running["base_url"],
        "status": "completed",
        "pages_discovered": 0,
        "pages_crawled": 0,
        "bugs_found": 0,
        "total_cost": 0.0,
        "error_message": None,
        "created_at": running["created_at"],
        "next": answer["next"],
        "unfinished_pages": {"discovered": 0, "crawling": 0},
    }
    completed = await get_session(client, running["id"])
    assert completed == {
        **running,
        "status": "completed",
        "completed_at": completed["completed_at"],
        "updated_at": completed["updated_at"],
    }
    assert timestamp(completed["completed_at"]) >= timestamp(running["started_at"])


async def test_complete_session_without_success_fails_it_with_the_error_message(
    client: Client,
) -> None:
    running = await new_session(client)

    failed = await call_ok(
        client,
        "complete_session",
        session_id=running["id"],
        success=False,
        error_message="site returned 503 for ten minutes",
    )

    assert failed["status"] == "failed"
    assert failed["error_message"] == "site returned 503 for ten minutes"
    stored = await get_session(client, running["id"])
    assert (stored["status"], stored["error_message"]) == (
        "failed",
        "site returned 503 for ten minutes",
    )
    timestamp(stored["completed_at"])


async def test_complete_session_with_verbose_answers_the_session_as_stored(
    client: Client,
) -> None:
    running = await new_session(client, credentials={"username": "qa", "password": PASSWORD})

    completed = await call_ok(client, "complete_session", session_id=running["id"], verbose=True)

    assert completed["session"] == await get_session(client, running["id"])
    assert completed["session"]["status"] == "completed"
    assert completed["session"]["config"]["credentials"]["password"] == MASK
    assert completed["unfinished_pages"] == {"discovered": 0, "crawling": 0}
    assert "unfinished_pages" not in completed["session"]


async def test_complete_session_says_how_many_pages_were_left_unfinished(
    client: Client,
) -> None:
    """Pages never crawled stay discovered; pages in flight (lease expired, or force) end in
    error: the answer says how many of each, so an early completion does not go unnoticed."""
    session = await new_session(client)
    for name in ("a", "b", "c"):
        await new_page(client, session["id"], f"{BASE_URL}/{name}")
    await analyzed_page(client, session["id"])
    claimed = await call_ok(client, "claim_pages_to_crawl", session_id=session["id"], limit=1)

    completed = await call_ok(
        client, "complete_session", session_id=session["id"], success=False, force=True
    )

    assert completed["unfinished_pages"] == {"discovered": 2, "crawling": 1}
    stopped = await call_ok(client, "get_page", page_id=claimed["items"][0]["id"])
    assert stopped["status"] == "error"


async def test_complete_session_refuses_a_pending_session_naming_both_statuses(
    client: Client,
) -> None:
    pending = await new_session(client, start=False)

    message = await call_error(client, "complete_session", session_id=pending["id"])

    assert "its status is 'pending'" in message
    assert "only allowed from 'running'" in message


async def test_complete_session_refuses_a_completed_session(client: Client) -> None:
    session = await new_session(client)
    await call_ok(client, "complete_session", session_id=session["id"])

    message = await call_error(client, "complete_session", session_id=session["id"])

    assert "its status is 'completed'" in message
    assert "only allowed from 'running'" in message


async def test_failing_a_completed_session_names_both_allowed_statuses(client: Client) -> None:
    session = await new_session(client)
    await call_ok(client, "complete_session", session_id=session["id"])

    message = await call_error(client, "complete_session", session_id=session["id"], success=False)

    assert "its status is 'completed'" in message
    assert "only allowed from 'pending' or 'running'" in message


async def test_complete_session_refuses_while_a_page_is_leased_saying_how_to_proceed(
    client: Client,
) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    await call_ok(client, "mark_crawling", page_id=page["id"])

    message = await call_error(client, "complete_session", session_id=session["id"])

    assert "1 page(s) are still leased" in message
    assert "force=true" in message
    assert (await get_session(client, session["id"]))["status"] == "running"


async def test_complete_session_with_force_ends_the_leases_of_pages_in_flight(
    client: Client,
) -> None:
    session = await new_session(client)
    page = await new_page(client, session["id"], HOME)
    await call_ok(client, "mark_crawling", page_id=page["id"])

    completed = await call_ok(client, "complete_session", session_id=session["id"], force=True)

    assert completed["status"] == "completed"
    assert completed["unfinished_pages"] == {"discovered": 0, "crawling": 1}
    in_flight = await call_ok(client, "get_page", page_id=page["id"])
    assert (in_flight["status"], in_flight["lease_expires_at"]) == ("error", None)


async def test_complete_session_of_an_unknown_id_names_the_crawl_session(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "complete_session", session_id=unknown)

    assert f"crawl session {unknown} does not exist" in message


# --- get_session --------------------------------------------------------------------------


async def test_get_session_returns_the_session_as_stored(client: Client) -> None:
    created = await call_ok(
        client, "create_session", base_url=BASE_URL, config={"max_pages": 7}, verbose=True
    )
    assert await call_ok(client, "get_session", session_id=created["id"]) == created["session"]

    started = await call_ok(client, "start_session", session_id=created["id"])

    stored = await call_ok(client, "get_session", session_id=created["id"])
    assert set(started) == {*SUMMARY_KEYS, "next"}  # no config
    assert {key: stored[key] for key in SUMMARY_KEYS} == without(started, "next")
    assert (stored["status"], stored["config"]["max_pages"]) == ("running", 7)


async def test_get_session_of_an_unknown_id_names_the_crawl_session(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "get_session", session_id=unknown)

    assert f"crawl session {unknown} does not exist" in message


# --- list_sessions ------------------------------------------------------------------------


async def test_list_sessions_returns_sessions_newest_first_with_the_total(client: Client) -> None:
    first = await new_session(client, start=False, base_url="https://a.example")
    second = await new_session(client, start=False, base_url="https://b.example")

    listed = await call_ok(client, "list_sessions")

    assert listed == {  # summaries: no config
        "items": [{key: row[key] for key in SUMMARY_KEYS} for row in (second, first)],
        "truncated": False,
        "total": 2,
        "skip": 0,
        "limit": 20,
        "has_more": False,
        "next_skip": None,
    }


async def test_list_sessions_paginates_with_next_skip_until_has_more_is_false(
    client: Client,
) -> None:
    created = [await new_session(client, start=False) for _ in range(5)]

    pages, skip = [], 0
    while True:
        page = await call_ok(client, "list_sessions", limit=2, skip=skip)
        pages.append(page)
        if not page["has_more"]:
            assert page["next_skip"] is None
            break
        skip = page["next_skip"]

    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    assert [p["skip"] for p in pages] == [0, 2, 4]
    assert {p["total"] for p in pages} == {5}
    listed = [item["id"] for p in pages for item in p["items"]]
    assert listed == [s["id"] for s in reversed(created)]


async def test_list_sessions_filters_by_status(client: Client) -> None:
    await new_session(client, start=False)
    running = await new_session(client)

    listed = await call_ok(client, "list_sessions", status="running")

    assert [s["id"] for s in listed["items"]] == [running["id"]]
    assert listed["total"] == 1


async def test_list_sessions_refuses_an_unknown_status_listing_the_allowed_ones(
    client: Client,
) -> None:
    message = await call_error(client, "list_sessions", status="paused")

    assert "'status' must be one of 'pending', 'running', 'completed' or 'failed'" in message


@pytest.mark.parametrize("limit", [0, 101])
async def test_list_sessions_refuses_a_limit_out_of_range_naming_it(
    client: Client, limit: int
) -> None:
    message = await call_error(client, "list_sessions", limit=limit)

    assert "'limit'" in message


async def test_list_sessions_refuses_a_negative_skip_naming_it(client: Client) -> None:
    message = await call_error(client, "list_sessions", skip=-1)

    assert "'skip'" in message


# --- add_cost -----------------------------------------------------------------------------


async def test_add_cost_adds_to_the_total_without_float_drift(client: Client) -> None:
    session = await new_session(client)

    await call_ok(client, "add_cost", session_id=session["id"], cost_usd=0.1)
    updated = await call_ok(client, "add_cost", session_id=session["id"], cost_usd=0.2)

    assert (updated["id"], updated["total_cost"], updated["next"]) == (session["id"], 0.3, None)
    stored = await get_session(client, session["id"])
    assert stored == {**session, "total_cost": 0.3, "updated_at": stored["updated_at"]}


async def test_add_cost_refuses_a_negative_amount_naming_cost_usd(client: Client) -> None:
    session = await new_session(client)

    message = await call_error(client, "add_cost", session_id=session["id"], cost_usd=-0.01)

    assert "'cost_usd'" in message
    assert (await get_session(client, session["id"]))["total_cost"] == 0.0


async def test_add_cost_refuses_more_than_the_per_call_cap_naming_cost_usd(
    client: Client,
) -> None:
    session = await new_session(client)

    message = await call_error(client, "add_cost", session_id=session["id"], cost_usd=10_001)

    assert "'cost_usd'" in message
    assert "10000" in message


async def test_add_cost_past_what_total_cost_can_hold_is_refused_naming_the_limit(
    client: Client, raw: asyncpg.Connection
) -> None:
    """total_cost is NUMERIC(10, 4): a total of 10^6 USD or more cannot be stored."""
    session = await new_session(client)
    await raw.execute(
        "UPDATE crawl_sessions SET total_cost = 999995 WHERE id = $1", uuid.UUID(session["id"])
    )
    before = await get_session(client, session["id"])

    message = await call_error(client, "add_cost", session_id=session["id"], cost_usd=10)

    assert message == (
        f"Error executing tool add_cost: cannot add 10.0000 to the total_cost of crawl session "
        f"{session['id']}: it is 999995.0000, and total_cost can hold at most 999999.9999; "
        "nothing was changed"
    )
    assert await get_session(client, session["id"]) == before
    full = await call_ok(client, "add_cost", session_id=session["id"], cost_usd=4.9999)
    assert full["total_cost"] == 999999.9999


async def test_add_cost_of_an_unknown_session_names_the_crawl_session(client: Client) -> None:
    unknown = missing_id()

    message = await call_error(client, "add_cost", session_id=unknown, cost_usd=1)

    assert f"crawl session {unknown} does not exist" in message


# --- get_session_statistics ---------------------------------------------------------------


async def test_get_session_statistics_reports_pages_bugs_progress_and_cost(
    client: Client,
) -> None:
    session = await new_session(client)
    home = await analyzed_page(client, session["id"], HOME)
    await new_page(client, session["id"], f"{BASE_URL}/cart", depth=1)
    broken = await new_page(client, session["id"], f"{BASE_URL}/old", depth=1)
    await call_ok(client, "mark_page_error", page_id=broken["id"], error_message="timeout")
    leased = await new_page(client, session["id"], f"{BASE_URL}/checkout", depth=1)
    await call_ok(client, "mark_crawling", page_id=leased["id"])
    await new_bug(client, session["id"], home["id"], priority="critical")
    await new_bug(client, session["id"], home["id"], priority="low")
    await call_ok(client, "add_cost", session_id=session["id"], cost_usd=1.25)

    stats = await call_ok(client, "get_session_statistics", session_id=session["id"])

    current = await get_session(client, session["id"])
    assert stats == {
        "session": current,
        "pages_total": 4,
        "pages_by_status": {"discovered": 1, "crawling": 1, "analyzed": 1, "error": 1},
        "pages_leased": 1,
        "crawl_progress": 0.5,
        "bugs_total": 2,
        "bugs_by_priority": {"critical": 1, "high": 0, "medium": 0, "low": 1},
        "total_cost": 1.25,
        "duration_seconds": stats["duration_seconds"],
    }
    assert (current["pages_discovered"], current["pages_crawled"], current["bugs_found"]) == (
        4,
        1,
        2,
    )
    assert stats["duration_seconds"] >= 0


async def test_get_session_statistics_of_a_pending_session_has_no_duration(
    client: Client,
) -> None:
    session = await new_session(client, start=False)

    stats = await call_ok(client, "get_session_statistics", session_id=session["id"])

    assert stats["duration_seconds"] is None
    assert stats["pages_total"] == 0
    assert stats["crawl_progress"] == 0.0


async def test_get_session_statistics_of_an_unknown_id_names_the_crawl_session(
    client: Client,
) -> None:
    unknown = missing_id()

    message = await call_error(client, "get_session_statistics", session_id=unknown)

    assert f"crawl session {unknown} does not exist" in message
