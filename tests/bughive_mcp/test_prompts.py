"""``prompts/get`` refuses what it cannot render with a JSON-RPC invalid-params error that names
the argument (or the prompt) and what is allowed, in both framings, and logs no traceback for it;
``prompts/list`` describes every argument."""

import logging

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

pytestmark = pytest.mark.anyio


async def get_prompt_error(client: Client, name: str, arguments: dict[str, str]) -> MCPError:
    with pytest.raises(MCPError) as raised:
        await client.get_prompt(name, arguments)
    return raised.value


async def test_an_unknown_prompt_is_invalid_params_naming_the_prompts(any_client: Client) -> None:
    error = await get_prompt_error(any_client, "crawl", {})

    assert error.code == INVALID_PARAMS
    assert error.message == "unknown prompt 'crawl'; the prompts are: crawl_site, triage_bugs"


async def test_a_missing_argument_is_invalid_params_naming_it(any_client: Client) -> None:
    error = await get_prompt_error(any_client, "crawl_site", {"max_pages": "10"})

    assert error.code == INVALID_PARAMS
    assert error.message == "prompt crawl_site: 1 invalid argument: 'base_url' is required"


async def test_a_value_out_of_range_is_told_the_allowed_range(any_client: Client) -> None:
    error = await get_prompt_error(
        any_client, "crawl_site", {"base_url": "https://a.example", "max_pages": "0"}
    )

    assert error.code == INVALID_PARAMS
    assert error.message == (
        "prompt crawl_site: 1 invalid argument: 'max_pages' must be an integer between 1 and 100000"
    )


async def test_a_value_that_is_not_a_number_names_the_argument_and_range(
    any_client: Client,
) -> None:
    error = await get_prompt_error(
        any_client, "crawl_site", {"base_url": "https://a.example", "max_depth": "deep"}
    )

    assert error.code == INVALID_PARAMS
    assert error.message == (
        "prompt crawl_site: 1 invalid argument: 'max_depth' must be an integer between 0 and 50"
    )


async def test_an_unknown_argument_is_invalid_params_listing_the_allowed_ones(
    any_client: Client,
) -> None:
    error = await get_prompt_error(any_client, "triage_bugs", {"session_id": "a", "status": "x"})

    assert error.code == INVALID_PARAMS
    assert error.message == (
        "prompt triage_bugs: unknown argument(s) 'status'; allowed arguments: session_id"
    )


async def test_refused_prompt_requests_log_no_traceback(
    any_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await get_prompt_error(any_client, "nope", {})
        await get_prompt_error(any_client, "crawl_site", {})
        await get_prompt_error(any_client, "crawl_site", {"base_url": "x", "max_pages": "-1"})

    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []


async def test_every_prompt_argument_has_a_description(client: Client) -> None:
    prompts = (await client.list_prompts()).prompts

    described = {
        (prompt.name, argument.name): bool(argument.description)
        for prompt in prompts
        for argument in prompt.arguments or []
    }
    assert described == {
        ("crawl_site", "base_url"): True,
        ("crawl_site", "max_pages"): True,
        ("crawl_site", "max_depth"): True,
        ("triage_bugs", "session_id"): True,
    }
