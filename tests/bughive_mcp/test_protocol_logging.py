"""The logging capability on handshake-era connections (what stdio clients and the official
conformance suite's ``logging-set-level`` scenario speak): declared in ``initialize`` and
``logging/setLevel`` honoured, setting the level of BugHive's own loggers."""

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, EmptyResult, Request

pytestmark = pytest.mark.anyio

SERVER_LOGGERS = ("bughive_mcp", "db")


@pytest.fixture(autouse=True)
def server_logger_levels() -> Iterator[None]:
    """The levels a test's setLevel changed are put back (loggers are process-wide)."""
    saved = {name: logging.getLogger(name).level for name in SERVER_LOGGERS}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


async def set_level(client: Client, params: dict[str, Any]) -> EmptyResult:
    """``logging/setLevel`` as sent on the wire: the typed client API cannot send a bad level."""
    return await client.session.send_request(
        Request[dict[str, Any], str](method="logging/setLevel", params=params), EmptyResult
    )


async def test_initialize_declares_the_logging_capability(legacy_client: Client) -> None:
    assert legacy_client.server_capabilities.logging is not None


@pytest.mark.parametrize(
    ("level", "expected"),
    [("debug", logging.DEBUG), ("warning", logging.WARNING), ("emergency", logging.CRITICAL)],
)
async def test_set_level_answers_empty_and_sets_the_server_loggers(
    legacy_client: Client, level: str, expected: int
) -> None:
    result = await set_level(legacy_client, {"level": level})

    assert result.model_dump(exclude_none=True) == {}
    assert {name: logging.getLogger(name).level for name in SERVER_LOGGERS} == {
        "bughive_mcp": expected,
        "db": expected,
    }


async def test_an_unknown_level_is_invalid_params_listing_the_levels(
    legacy_client: Client,
) -> None:
    before = logging.getLogger("bughive_mcp").level

    with pytest.raises(MCPError) as raised:
        await set_level(legacy_client, {"level": "loud"})

    assert raised.value.code == INVALID_PARAMS
    assert raised.value.message == (
        "'level' must be one of debug, info, notice, warning, error, critical, alert, emergency"
    )
    assert logging.getLogger("bughive_mcp").level == before


async def test_a_missing_level_is_invalid_params(legacy_client: Client) -> None:
    with pytest.raises(MCPError) as raised:
        await set_level(legacy_client, {})

    assert raised.value.code == INVALID_PARAMS
    assert raised.value.message.startswith("'level' must be one of debug, info")
