"""What the agent sees when something unexpected breaks inside a tool: a short generic error,
never the exception's text; the detail goes to the server log (stderr)."""

import json
import logging
import math
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mcp import Client
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field, ValidationError

from bughive_mcp.errors import INTERNAL_ERROR, describe_validation_error
from bughive_mcp.server import _holds_unstorable, _refuse_unstorable_values, _unstorable_paths
from db.repositories import CrawlSessionRepository
from tests.bughive_mcp.toolcalls import BASE_URL, call_error, call_ok, new_session

pytestmark = pytest.mark.anyio

SECRET_DETAIL = "SELECT password FROM users -- postgresql://admin:hunter2@db/prod"


@pytest.fixture
def broken_get_session(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fail(self: CrawlSessionRepository, session_id: uuid.UUID) -> None:
        raise RuntimeError(SECRET_DETAIL)

    monkeypatch.setattr(CrawlSessionRepository, "get", fail)


@pytest.mark.usefixtures("broken_get_session")
async def test_an_unexpected_failure_is_reported_generically(client: Client) -> None:
    session = await call_ok(client, "create_session", base_url=BASE_URL)  # get_session is broken

    message = await call_error(client, "get_session", session_id=session["id"])

    assert message == f"Error executing tool get_session: {INTERNAL_ERROR}"
    assert "hunter2" not in message


@pytest.mark.usefixtures("broken_get_session")
async def test_an_unexpected_failure_does_not_promise_that_a_retry_helps(client: Client) -> None:
    """An unexpected failure is a bug: nothing says the same call succeeds when repeated."""
    session = await call_ok(client, "create_session", base_url=BASE_URL)  # get_session is broken

    message = await call_error(client, "get_session", session_id=session["id"])

    assert "retry" not in message.lower()
    assert "report" in message


@pytest.mark.usefixtures("broken_get_session")
async def test_an_unexpected_failure_is_logged_with_its_traceback(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    session = await call_ok(client, "create_session", base_url=BASE_URL)  # get_session is broken

    with caplog.at_level(logging.ERROR, logger="bughive_mcp"):
        await call_error(client, "get_session", session_id=session["id"])

    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "tool get_session failed unexpectedly"
    assert record.exc_info is not None
    assert SECRET_DETAIL in str(record.exc_info[1])


async def test_a_nul_character_in_a_key_of_nested_json_is_refused_naming_where(
    client: Client,
) -> None:
    session = await new_session(client)

    message = await call_error(
        client,
        "create_session",
        base_url="https://shop.example",
        config={"viewport": {"width\x00": 400}},
    )

    assert "'config.viewport.width\\u0000' must not contain NUL" in message
    assert session["status"] == "running"


# Numbers as JSON from the wire brings them: Python's json (and the SDK's parser) read NaN and
# Infinity, and a number too large for a double (1e999) as infinity. PostgreSQL's json type
# has none of them: stored, they failed as an internal error. (The SDK's in-memory client
# sends them as null, so the tools are tried with them over stdio, in test_stdio.py.)
NON_FINITE_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e999"]


@pytest.mark.parametrize("number", NON_FINITE_NUMBERS)
def test_a_non_finite_number_anywhere_in_the_arguments_is_refused_naming_where(
    number: str,
) -> None:
    arguments = json.loads(
        f'{{"analysis_result": {{"scores": [0.5, {number}]}}, "title": "ok", '
        f'"evidence": [{{"type": "dom", "content": {number}}}], "limit": {number}}}'
    )

    with pytest.raises(ToolError) as refused:
        _refuse_unstorable_values("mark_analyzed", arguments)

    assert str(refused.value) == (
        "Error executing tool mark_analyzed: 3 invalid arguments: "
        "'analysis_result.scores.1' must be a finite number (JSON has no NaN or Infinity); "
        "'evidence.0.content' must be a finite number (JSON has no NaN or Infinity); "
        "'limit' must be a finite number (JSON has no NaN or Infinity); fix them and call again"
    )


def test_nul_characters_and_non_finite_numbers_are_named_together() -> None:
    arguments = {"title": "a\x00b", "browser_info": {"dpr": math.nan}}

    with pytest.raises(ToolError) as refused:
        _refuse_unstorable_values("create_bug", arguments)

    assert "2 invalid arguments: 'browser_info.dpr' must be a finite number" in str(refused.value)
    assert "'title' must not contain NUL (\\u0000) characters" in str(refused.value)


def test_finite_numbers_and_plain_text_pass() -> None:
    _refuse_unstorable_values("t", {"a": [1.5, -0.0, 1e308, 2**70, True, None, "NaN"]})


TEXT_WITH_NUL = st.text(st.sampled_from("a\x00."), max_size=3)
ARGUMENT_VALUES = st.recursive(
    st.none() | st.integers() | st.floats() | TEXT_WITH_NUL,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(TEXT_WITH_NUL, inner, max_size=3)
    ),
    max_leaves=12,
)


@given(ARGUMENT_VALUES)
def test_the_quick_check_agrees_with_the_paths_it_guards(value: Any) -> None:
    """``_holds_unstorable`` lets a call through without naming paths: only when there are
    none (NUL characters in text or keys, non-finite numbers)."""
    assert _holds_unstorable(value) == bool(list(_unstorable_paths(value, "")))


@pytest.mark.parametrize(
    ("tool", "argument", "value", "allowed"),
    [
        ("get_session_bugs", "limit", 0, "between 1 and 100"),
        ("get_session_bugs", "limit", 101, "between 1 and 100"),
        ("claim_pages_to_crawl", "lease_seconds", 1, "between 5 and 86400"),
        ("get_high_confidence_bugs", "min_confidence", 1.5, "between 0 and 1"),
    ],
)
async def test_a_number_out_of_bounds_is_told_the_whole_allowed_range(
    client: Client, tool: str, argument: str, value: float, allowed: str
) -> None:
    """pydantic names only the bound crossed ("greater than or equal to 1"); the agent is told
    both ends, so its next try is right, and the rejected value is not echoed."""
    session = await new_session(client)
    message = await call_error(client, tool, session_id=session["id"], **{argument: value})
    assert f"1 invalid argument: '{argument}' must be {allowed}" in message
    assert f"{value}" not in message.split(f"'{argument}'")[1].replace(allowed, "")


def test_a_range_with_an_exclusive_end_reads_as_such() -> None:
    class Arguments(BaseModel):
        ratio: float = Field(gt=0, le=2)
        count: int = Field(ge=1)

    schema = Arguments.model_json_schema()
    with pytest.raises(ValidationError) as refused:
        Arguments(ratio=0, count=0)
    message = describe_validation_error(refused.value, schema)
    assert "'ratio' must be greater than 0 and at most 2" in message
    assert "'count': Input should be greater than or equal to 1" in message  # one end: as is
