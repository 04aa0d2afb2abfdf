"""Property-based fuzzing of every tool through the in-memory client (issue 6, "Bad input").

Arguments are generated from each tool's own listed ``inputSchema`` (see ``fuzzing.py``), half
valid, half with one site broken. Every call must end in one of two ways: a success with
structured content, or a clean ``isError`` result that names the offending field and carries no
SQL, traceback, driver text or connection string. No call may reach the generic "internal
error" path, and the server must still answer afterwards.

Calls go in batches of five sent at once, as several workers send them. The run makes
``BUGHIVE_FUZZ_CALLS`` calls (default 10,000: about 80 s on an idle two-core machine); set it
lower for a quick look or higher for a soak. ``BUGHIVE_FUZZ_SEED`` fixes Hypothesis' seed, and
``BUGHIVE_FUZZ_REPORT=path`` writes the run's figures as JSON (calls by kind and by tool, and
why valid calls were refused).
"""

import json
import logging
import os
import re
import time
from collections import Counter

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from mcp import Client
from mcp.types import CallToolResult

from bughive_mcp.errors import INTERNAL_ERROR
from tests.bughive_mcp.fuzzing import Call, IdPool, SchemaStrategies
from tests.bughive_mcp.toolcalls import (
    BASE_URL,
    analyzed_page,
    assert_no_leak,
    call_ok,
    new_bug,
    new_page,
    new_session,
    only_text,
)

FUZZ_CALLS = int(os.environ.get("BUGHIVE_FUZZ_CALLS", "10000"))
FUZZ_SEED = os.environ.get("BUGHIVE_FUZZ_SEED")
REPORT_PATH = os.environ.get("BUGHIVE_FUZZ_REPORT")
BATCH = 5

# Refusals that are about the state of a row rather than one argument: they name the entity
# and its id (the id is the argument's value), and say what is allowed.
STATE_ERRORS = re.compile(
    r"cannot \w[\w ]* (crawl session|page|bug) [0-9a-f-]{36}: its status is"
    r"|lease lost on page [0-9a-f-]{36}"
    r"|cannot complete crawl session [0-9a-f-]{36}: \d+ page\(s\) are still leased"
    r"|conflict: the call collided with a concurrent change"
    r"|cannot add [\d.]+ to the \w+ of crawl session [0-9a-f-]{36}: it is [\d.]+, and"
)
CONNECTION_STRING = re.compile(r"\w+://[^/\s]*:[^/\s]*@")


async def seed_rows(client: Client, pool: IdPool) -> None:
    """Rows of every kind and status, so generated ids hit real rows as well as missing ones."""
    pending = await new_session(client, start=False)
    running = await new_session(client)
    done = await new_session(client, base_url="https://done.example")
    sid = running["id"]
    home = await new_page(client, sid)
    child = await new_page(client, sid, f"{BASE_URL}/a", depth=1, parent_page_id=home["id"])
    claimed = await call_ok(client, "mark_crawling", page_id=child["id"])
    analyzed = await analyzed_page(client, sid, f"{BASE_URL}/b", title="B")
    bugs = [await new_bug(client, sid, analyzed["id"]) for _ in range(3)]
    await call_ok(client, "mark_validated", bug_id=bugs[1]["id"])
    await call_ok(client, "dismiss_bug", bug_id=bugs[2]["id"], reason="duplicate")
    await call_ok(client, "complete_session", session_id=done["id"], success=False)
    for output in (pending, running, done, home, child, claimed, analyzed, *bugs):
        pool.harvest(output)


def names_the_field(message: str, call: Call, properties: set[str]) -> bool:
    """A refusal names what it refuses: the broken field for a mutation, else some argument
    (or it is a refusal about the state of the row the ids point at)."""
    if call.field_name is not None and call.must_fail:
        return call.field_name.replace("\x00", "\\u0000") in message
    if STATE_ERRORS.search(message):
        return True
    return any(
        re.search(rf"\b{re.escape(name)}\b", message) for name in properties | set(call.arguments)
    )


MIN_ECHO = 12


def without_echoes(text: str, value: object) -> str:
    """``text`` less the strings the caller sent: an error that quotes the URL it refused
    (``…/POSTGRESQL is outside the session's origin``) leaks nothing the caller did not write."""
    if isinstance(value, str):
        # short values are kept: removing "sql" or "a" could hide a real leak
        return text.replace(value, "") if len(value) >= MIN_ECHO else text
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list | tuple):
        for item in value:
            text = without_echoes(text, item)
    return text


def check(call: Call, result: CallToolResult, properties: set[str], pool: IdPool) -> str:
    text = only_text(result)
    if not result.is_error:  # stored data is echoed back: only errors are checked for leaks
        assert not call.must_fail, f"{call.kind} at {call.path} was accepted"
        assert isinstance(result.structured_content, dict)
        pool.harvest(result.structured_content)
        return "ok"
    assert INTERNAL_ERROR not in text, f"{call.kind} call reached the internal-error path"
    assert_no_leak(without_echoes(text, call.arguments))
    assert "Traceback" not in text and not CONNECTION_STRING.search(text), text[:500]
    assert text.startswith(f"Error executing tool {call.tool}: "), text[:300]
    assert len(text) < 5_000, f"error message of {len(text)} characters"
    assert names_the_field(text, call, properties), f"{call.kind} {call.path}: {text[:300]}"
    return "refused"


def _reason(message: str) -> str:
    """A refusal's message without ids and numbers, to count refusals by kind."""
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", message.split(": ", 1)[-1])
    return re.sub(r"\d+", "N", text)[:90]


async def test_every_tool_survives_generated_and_mutated_arguments(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    pool = IdPool()
    await seed_rows(client, pool)
    listed = {t.name: t.input_schema for t in (await client.list_tools()).tools}
    strategies = SchemaStrategies(listed, pool)
    validators = {name: Draft202012Validator(schema) for name, schema in listed.items()}
    tool_names = sorted(listed)
    calls: st.SearchStrategy[Call] = st.sampled_from(tool_names).flatmap(
        lambda name: st.one_of(strategies.valid_call(name), strategies.mutated_call(name))
    )
    outcomes: Counter[tuple[str, str]] = Counter()
    kinds: Counter[str] = Counter()
    reasons: Counter[str] = Counter()

    call_seconds = [0.0]
    body_seconds = [0.0]

    async def run_one(call: Call) -> CallToolResult:
        begun = time.perf_counter()
        result = await client.call_tool(call.tool, call.arguments)
        call_seconds[0] += time.perf_counter() - begun
        assert isinstance(result, CallToolResult)
        return result

    async def run_batch(batch: list[Call]) -> list[CallToolResult]:
        """The batch's calls at once, as several workers send them."""
        results: dict[int, CallToolResult] = {}

        async def one(index: int) -> None:
            results[index] = await run_one(batch[index])

        async with anyio.create_task_group() as group:
            for index in range(len(batch)):
                group.start_soon(one, index)
        return [results[index] for index in range(len(batch))]

    # A few calls per example: one hop to the event loop per batch, not per call.
    @settings(
        max_examples=-(-FUZZ_CALLS // BATCH),
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(calls, min_size=BATCH, max_size=BATCH))
    def fuzz(batch: list[Call]) -> None:
        begun = time.perf_counter()
        for call in batch:
            if call.kind == "valid":
                validators[call.tool].validate(call.arguments)
        for call, result in zip(batch, anyio.from_thread.run(run_batch, batch), strict=True):
            properties = set(listed[call.tool].get("properties", {}))
            outcome = check(call, result, properties, pool)
            outcomes[(call.tool, outcome)] += 1
            if outcome == "refused" and call.kind == "valid":
                reasons[_reason(only_text(result))] += 1
            kinds[call.kind] += 1
        body_seconds[0] += time.perf_counter() - begun

    if FUZZ_SEED is not None:
        fuzz = seed(int(FUZZ_SEED))(fuzz)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        await anyio.to_thread.run_sync(fuzz)

    made = sum(outcomes.values())
    if REPORT_PATH:
        figures = {
            "calls": made,
            "seconds": round(time.monotonic() - started, 1),
            "calls_per_seconds": round(made / (time.monotonic() - started), 1),
            "by_kind": dict(sorted(kinds.items())),
            "by_tool": {
                tool: {o: n for (t, o), n in sorted(outcomes.items()) if t == tool}
                for tool in tool_names
            },
            "call_seconds": round(call_seconds[0], 1),
            "body_seconds": round(body_seconds[0], 1),
            "valid_calls_refused_because": dict(reasons.most_common(25)),
        }
        await anyio.Path(REPORT_PATH).write_text(json.dumps(figures, indent=2))
    assert made >= FUZZ_CALLS * 0.95, f"only {made} calls were made"
    if made >= 50 * len(tool_names):  # a run of any useful size reaches every tool
        assert {tool for tool, _ in outcomes} == set(tool_names)
    assert kinds["valid"] > made * 0.3
    unexpected = [
        r for r in caplog.records if r.name.startswith("bughive_mcp") and r.levelno >= logging.ERROR
    ]
    assert not unexpected, [r.getMessage() for r in unexpected]
    health = await call_ok(client, "check_database_health")
    assert health["healthy"] is True
