"""The same server through both in-memory framings: direct dispatch (newest protocol) and
JSON-RPC after an ``initialize`` handshake (what stdio and older HTTP clients speak). What the
agent sees must not depend on the framing."""

import pytest
from mcp import Client

from tests.bughive_mcp.toolcalls import (
    BASE_URL,
    call_error,
    call_ok,
    missing_id,
    new_session,
    small_crawl,
)

pytestmark = pytest.mark.anyio


async def test_both_framings_list_the_same_tools_and_schemas(
    client: Client, legacy_client: Client
) -> None:
    direct = (await client.list_tools()).tools
    framed = (await legacy_client.list_tools()).tools

    assert [t.model_dump(exclude={"meta"}) for t in framed] == [
        t.model_dump(exclude={"meta"}) for t in direct
    ]


async def test_the_json_rpc_handshake_negotiates_a_handshake_era_protocol(
    legacy_client: Client,
) -> None:
    assert legacy_client.protocol_version == "2025-11-25"
    assert legacy_client.server_info is not None
    assert legacy_client.server_info.name == "bughive"


async def test_a_small_crawl_gives_compact_json_results(any_client: Client) -> None:
    await small_crawl(any_client)


async def test_a_domain_error_reads_the_same(any_client: Client) -> None:
    unknown = missing_id()

    message = await call_error(any_client, "get_session", session_id=unknown)

    assert (
        message
        == f"Error executing tool get_session: crawl session {unknown} does not exist (field 'session_id')"
    )


async def test_a_validation_error_reads_the_same(any_client: Client) -> None:
    message = await call_error(any_client, "list_sessions", status="paused")

    assert message == (
        "Error executing tool list_sessions: 1 invalid argument: "
        "'status' must be one of 'pending', 'running', 'completed' or 'failed'"
    )


async def test_an_unknown_argument_reads_the_same(any_client: Client) -> None:
    message = await call_error(any_client, "create_session", base_url=BASE_URL, depth=2)

    assert message.startswith("Error executing tool create_session: unknown argument(s) 'depth'")


async def test_a_nul_character_reads_the_same(any_client: Client) -> None:
    session = await new_session(any_client)

    message = await call_error(
        any_client, "create_page", session_id=session["id"], url=f"{BASE_URL}/\x00"
    )

    assert "'url' must not contain NUL" in message
    assert (await call_ok(any_client, "get_session", session_id=session["id"]))[
        "pages_discovered"
    ] == 0
