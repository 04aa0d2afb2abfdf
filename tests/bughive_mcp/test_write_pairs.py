"""Every pair of write tools, run at once on the same rows, never deadlocks (issue 17).

The lock order of every write is written down once, in the docstring of ``db.repositories``:
the discovery turn, pages, bugs (then their occurrences), the ``crawl_sessions`` row last. Here
each unordered pair of write tools (a tool with itself included) runs concurrently through the
real server on one crawl session's shared rows: the same session, the same pages (a claimed
page finished, extended, given up and linked to at once; a discovered page taken, given up,
claimed and linked to), the same bug (filed again, validated, reported, dismissed), the same
idempotency key. A tool that locked the session row before a page, while another locks the
page before the session row (``complete_session``, ``mark_analyzed``, …), would deadlock
here: PostgreSQL breaks the cycle after ``deadlock_timeout`` (1 s) by rolling one back (40P01),
and the server answers "conflict: … retry the call" — a failure of this test, as are an
internal error, a timeout and a call that never ends (each round is bounded).

A call may be refused by the domain rules the race decides (the bug was dismissed first, the
page was finished by the other call, the session completed): those refusals are allowed one
by one, by their text. After each round the session's counters must still match its rows.

The write tools are those the server lists without ``readOnlyHint``; how to call each on the
shared rows is :data:`CALLS`, and a test fails when a listed write tool has no entry there.

Checked against a data layer broken on purpose (``mark_analyzed`` made to lock the session row
before its page): ``complete_session+mark_analyzed`` failed with "conflict" on every run. The
interleavings are left to the scheduler here, so a cycle that needs a narrow one (discovery
holding the session row while it inserts a link to a page being finished) is caught only in
some runs (``bulk_create_pages+mark_analyzed``: about one in four); ``tests/db/
test_lock_order.py`` forces that one.
"""

import asyncio
import itertools
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from mcp import Client
from sqlalchemy.engine import URL

from bughive_mcp.errors import INTERNAL_ERROR
from bughive_mcp.server import BugHiveServer, build_server
from bughive_mcp.settings import ServerSettings
from tests.bughive_mcp.toolcalls import (
    BASE_URL,
    BUG_FIELDS,
    HOME,
    assert_no_leak,
    call,
    call_ok,
    only_text,
)
from tests.conftest import make_config

ROUNDS = 3
CALLS_PER_SIDE = 2  # per tool of a pair; a tool paired with itself runs twice as many
CONCURRENT = 2 * CALLS_PER_SIDE
# A deadlock is reported after deadlock_timeout (1 s); a round of a few calls takes ~50 ms.
ROUND_SECONDS = 15.0
SHARED_BUG_KEY = "shared-header-defect"  # the dedup_key of the scene's bug
LINEAR_ID = "BUG-17"
LINEAR_URL = f"https://linear.app/shop/issue/{LINEAR_ID}"


def listed_write_tools() -> list[str]:
    """The write tools the server lists (annotations without ``readOnlyHint``), read from a
    server built as ``bughive-mcp serve`` builds it (listing needs no database)."""
    server = build_server(ServerSettings(_env_file=None, auto_migrate=False), make_config())
    tools = asyncio.run(server.list_tools())
    return sorted(
        tool.name
        for tool in tools
        if tool.annotations is None or not tool.annotations.read_only_hint
    )


WRITE_TOOLS = listed_write_tools()
PAIRS = list(itertools.combinations_with_replacement(WRITE_TOOLS, 2))


@dataclass(frozen=True)
class Scene:
    """One round's shared rows, arranged through the tools: a crawl session (pending when
    ``start_session`` is in the pair, else running), its home page, a discovered page
    (``known``), two claimed pages with their tokens, and one bug filed on the home page
    (detected when ``mark_validated`` is in the pair, else already validated)."""

    key: str  # unique per round: the idempotency key create_session races on
    session_id: str
    home_id: str
    known_id: str
    known_url: str
    claimed: tuple[tuple[str, str, str], ...]  # (page id, url, claim token)
    bug_id: str

    def claim(self, n: int) -> tuple[str, str, str]:
        return self.claimed[n % len(self.claimed)]


async def set_scene(client: Client, pair: tuple[str, str], key: str) -> Scene:
    session = await call_ok(client, "create_session", base_url=BASE_URL)
    sid = session["id"]
    if "start_session" not in pair:
        await call_ok(client, "start_session", session_id=sid)
    names = ("known", "claimed-1", "claimed-2", "spare-1", "spare-2")
    found = await call_ok(
        client,
        "bulk_create_pages",
        session_id=sid,
        pages=[
            {"url": HOME, "depth": 0},
            *({"url": f"{BASE_URL}/{name}", "depth": 1} for name in names),
        ],
        max_listed=100,
    )
    page_ids = {ref["url"]: ref["id"] for ref in found["created"]}
    assert len(page_ids) == 1 + len(names), found
    claimed = []
    for name in ("claimed-1", "claimed-2"):
        url = f"{BASE_URL}/{name}"
        taken = await call_ok(client, "mark_crawling", page_id=page_ids[url])
        claimed.append((taken["id"], url, taken["claim_token"]))
    bug = await call_ok(
        client,
        "create_bug",
        session_id=sid,
        page_id=page_ids[HOME],
        dedup_key=SHARED_BUG_KEY,
        **BUG_FIELDS,
    )
    if "mark_validated" not in pair:
        await call_ok(client, "mark_validated", bug_id=bug["id"])
    known_url = f"{BASE_URL}/known"
    return Scene(
        key=key,
        session_id=sid,
        home_id=page_ids[HOME],
        known_id=page_ids[known_url],
        known_url=known_url,
        claimed=tuple(claimed),
        bug_id=bug["id"],
    )


# --- how each write tool is called on the scene's rows (n: the call's number in the round) ---

Arguments = dict[str, Any]


def _create_session(scene: Scene, n: int) -> Arguments:
    # Every call of the round races for the same key: one creates, the others get its session.
    return {"base_url": BASE_URL, "idempotency_key": f"write-pairs-{scene.key}"}


def _start_session(scene: Scene, n: int) -> Arguments:
    return {"session_id": scene.session_id}


def _complete_session(scene: Scene, n: int) -> Arguments:
    # force: stop the claimed pages (pages first, the session row last), and fail or complete.
    if n % 2:
        return {
            "session_id": scene.session_id,
            "success": False,
            "error_message": "stopped by the write-pairs test",
            "force": True,
        }
    return {"session_id": scene.session_id, "force": True}


def _add_cost(scene: Scene, n: int) -> Arguments:
    return {"session_id": scene.session_id, "cost_usd": 0.01}


def _create_page(scene: Scene, n: int) -> Arguments:
    # A known page, or a new URL every such call of the round races to create.
    if n % 2:
        return {
            "session_id": scene.session_id,
            "url": f"{BASE_URL}/found-by-create-page",
            "depth": 1,
            "parent_page_id": scene.home_id,
        }
    return {"session_id": scene.session_id, "url": scene.known_url, "depth": 1}


def _bulk_create_pages(scene: Scene, n: int) -> Arguments:
    # A nav bar: known pages (one of them being finished or taken meanwhile) and new ones,
    # one new URL shared by every such call of the round.
    urls = [
        HOME,
        scene.known_url,
        scene.claim(n)[1],
        scene.claim(n + 1)[1],
        f"{BASE_URL}/found-by-everyone",
        f"{BASE_URL}/found-by-call-{n}",
    ]
    return {
        "session_id": scene.session_id,
        "pages": [{"url": url, "depth": 1, "parent_page_id": scene.home_id} for url in urls],
    }


def _claim_pages_to_crawl(scene: Scene, n: int) -> Arguments:
    return {"session_id": scene.session_id, "limit": 2}


def _extend_claim(scene: Scene, n: int) -> Arguments:
    page_id, _, token = scene.claim(n)
    return {"page_id": page_id, "claim_token": token}


def _mark_crawling(scene: Scene, n: int) -> Arguments:
    return {"page_id": scene.known_id}


def _mark_analyzed(scene: Scene, n: int) -> Arguments:
    page_id, _, token = scene.claim(n)
    return {"page_id": page_id, "claim_token": token, "title": "Shop", "status_code": 200}


def _finish_page(scene: Scene, n: int) -> Arguments:
    # A claimed page finished in one call: the nav bar's links (the other claimed page, the
    # discovered one, one new page every such call shares) and the scene's bug again.
    page_id, _, token = scene.claim(n)
    urls = [HOME, scene.known_url, scene.claim(n + 1)[1], f"{BASE_URL}/found-by-everyone"]
    return {
        "page_id": page_id,
        "claim_token": token,
        "title": "Shop",
        "links": [{"url": url} for url in urls],
        "bugs": [{**BUG_FIELDS, "dedup_key": SHARED_BUG_KEY}],
    }


def _mark_page_error(scene: Scene, n: int) -> Arguments:
    # A claimed page under its token, or the discovered page without one.
    if n % 2:
        return {"page_id": scene.known_id, "error_message": "the page did not load"}
    page_id, _, token = scene.claim(n // 2)
    return {"page_id": page_id, "claim_token": token, "error_message": "the page did not load"}


def _create_bug(scene: Scene, n: int) -> Arguments:
    # The scene's bug again, from a page being finished (a new occurrence); or a new bug that
    # every such call of the round files at once (one creates it and counts it).
    page_id, dedup_key = (
        (scene.home_id, f"new-{scene.key}") if n % 2 else (scene.claim(n // 2)[0], SHARED_BUG_KEY)
    )
    return {
        "session_id": scene.session_id,
        "page_id": page_id,
        "dedup_key": dedup_key,
        **BUG_FIELDS,
    }


def _mark_validated(scene: Scene, n: int) -> Arguments:
    return {"bug_id": scene.bug_id}


def _mark_reported(scene: Scene, n: int) -> Arguments:
    return {"bug_id": scene.bug_id, "linear_issue_id": LINEAR_ID, "linear_issue_url": LINEAR_URL}


def _dismiss_bug(scene: Scene, n: int) -> Arguments:
    return {"bug_id": scene.bug_id, "reason": "duplicate"}


CALLS: dict[str, Callable[[Scene, int], Arguments]] = {
    "create_session": _create_session,
    "start_session": _start_session,
    "complete_session": _complete_session,
    "add_cost": _add_cost,
    "create_page": _create_page,
    "bulk_create_pages": _bulk_create_pages,
    "claim_pages_to_crawl": _claim_pages_to_crawl,
    "extend_claim": _extend_claim,
    "mark_crawling": _mark_crawling,
    "mark_analyzed": _mark_analyzed,
    "finish_page": _finish_page,
    "mark_page_error": _mark_page_error,
    "create_bug": _create_bug,
    "mark_validated": _mark_validated,
    "mark_reported": _mark_reported,
    "dismiss_bug": _dismiss_bug,
}

# --- what a call may answer -------------------------------------------------------------------

_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# Refusals by the domain rules, which the race decides: each allowed by its text.
ALLOWED_REFUSALS = {
    # InvalidTransition: the other call moved the row on first (started, completed, took the
    # page, finished it, validated, dismissed or reported the bug).
    "invalid transition": re.compile(
        rf"cannot [a-z ]+ (crawl session|page|bug) {_ID}: its status is '[a-z]+', but "
    ),
    # Fenced writes of a page the other call finished or stopped meanwhile.
    "page already finished": re.compile(
        rf"page {_ID} is already (analyzed|finished with status 'error'), so the claim_token "
        r"holds nothing now; nothing was changed"
    ),
    "lease lost": re.compile(rf"lease lost on page {_ID}: "),
    # Giving up without a token on the discovered page that the other call claimed meanwhile.
    "claimed meanwhile": re.compile(rf"invalid 'claim_token': page {_ID} is claimed "),
}
# What must never come back, whatever the race: said in the failure for a clear diagnosis.
NEVER = {
    "deadlock or serialization failure (40P01/40001)": "conflict: the call collided",
    "internal error": INTERNAL_ERROR,
    "statement timeout": "timed out",
    "pool exhausted": "server busy",
    "database unavailable": "database unavailable",
}


def outcome(tool: str, text: str, is_error: bool) -> str:
    """``ok``, ``refused: <kind>`` for an allowed refusal, or ``FAILED …`` with the text."""
    if not is_error:
        return "ok"
    prefix = f"Error executing tool {tool}: "
    message = text.removeprefix(prefix)
    for name, marker in NEVER.items():
        if marker in message:
            return f"FAILED ({name}): {text}"
    if not text.startswith(prefix):
        return f"FAILED (not a tool error): {text}"
    for kind, pattern in ALLOWED_REFUSALS.items():
        if pattern.match(message):
            return f"refused: {kind}"
    return f"FAILED (refusal not allowed here): {text}"


@dataclass
class Answer:
    tool: str
    arguments: Arguments
    outcome: str
    structured: dict[str, Any] | None


async def run_round(client: Client, pair: tuple[str, str], scene: Scene) -> list[Answer]:
    """The pair's calls on the scene, all at once: the two tools alternate, so each side's
    calls start interleaved with the other's."""
    first, second = pair
    planned = [
        (tool, CALLS[tool](scene, n))
        for n in range(CALLS_PER_SIDE if first != second else CONCURRENT)
        for tool in ((first, second) if first != second else (first,))
    ]
    answers: list[Answer | None] = [None] * len(planned)

    async def one(index: int) -> None:
        tool, arguments = planned[index]
        result = await call(client, tool, arguments)
        text = only_text(result)
        if result.is_error:
            assert_no_leak(text)
        structured = None if result.is_error else result.structured_content
        answers[index] = Answer(tool, arguments, outcome(tool, text, result.is_error), structured)

    async with anyio.create_task_group() as tasks:
        for index in range(len(planned)):
            tasks.start_soon(one, index)
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


async def check_counters(client: Client, scene: Scene, answers: list[Answer]) -> None:
    """The session's counters still match its rows: no increment was lost or doubled."""
    stats = await call_ok(client, "get_session_statistics", session_id=scene.session_id)
    session = stats["session"]
    assert session["pages_discovered"] == stats["pages_total"], stats
    assert session["pages_crawled"] == stats["pages_by_status"]["analyzed"], stats
    assert session["bugs_found"] == stats["bugs_total"], stats
    costs = sum(1 for a in answers if a.tool == "add_cost" and a.outcome == "ok")
    assert round(float(session["total_cost"]), 4) == round(0.01 * costs, 4), stats
    created = {a.structured["id"] for a in answers if a.tool == "create_session" and a.structured}
    assert len(created) <= 1, f"one idempotency key created {len(created)} sessions"


@pytest.fixture(scope="module")
def pair_server(database_url: URL) -> BugHiveServer:
    """A connection for every concurrent call of a round (none waits for the pool), and a
    short pool timeout: a call left without one fails "server busy" instead of waiting."""
    config = make_config(
        database_url=database_url.render_as_string(hide_password=False),
        pool_size=CONCURRENT,
        max_overflow=0,
        pool_timeout=5.0,
    )
    return build_server(ServerSettings(_env_file=None, auto_migrate=False), config)


@pytest.fixture
async def pair_client(pair_server: BugHiveServer, empty_tables: None) -> AsyncIterator[Client]:
    async with Client(pair_server) as connected:
        yield connected


def test_every_listed_write_tool_has_a_call_on_the_shared_rows() -> None:
    missing = sorted(set(WRITE_TOOLS) - set(CALLS))
    assert not missing, (
        f"write tool(s) {missing} have no entry in CALLS: add how to call each on the scene's "
        "shared rows, so its pairs with every other write tool run"
    )
    stale = sorted(set(CALLS) - set(WRITE_TOOLS))
    assert not stale, f"CALLS names tools the server does not list as writes: {stale}"
    assert len(PAIRS) == len(WRITE_TOOLS) * (len(WRITE_TOOLS) + 1) // 2


async def test_the_client_sees_the_same_write_tools(pair_client: Client) -> None:
    """What a connected client lists is what the pairs were built from."""
    listed = (await pair_client.list_tools()).tools
    writes = sorted(
        t.name for t in listed if t.annotations is None or not t.annotations.read_only_hint
    )
    assert writes == WRITE_TOOLS
    assert {"mark_analyzed", "complete_session", "create_bug", "bulk_create_pages"} <= set(writes)


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
async def test_a_pair_of_write_tools_on_the_same_rows_never_deadlocks(
    pair_client: Client, pair: tuple[str, str]
) -> None:
    missing = [tool for tool in pair if tool not in CALLS]
    if missing:
        pytest.fail(f"no entry in CALLS for write tool(s) {missing}")
    failures: list[str] = []
    seen: Counter[str] = Counter()
    for number in range(ROUNDS):
        scene = await set_scene(pair_client, pair, key=f"{'-'.join(pair)}-{number}")
        try:
            with anyio.fail_after(ROUND_SECONDS):
                answers = await run_round(pair_client, pair, scene)
        except TimeoutError:
            pytest.fail(
                f"round {number} of {pair[0]} + {pair[1]} did not end within {ROUND_SECONDS} s "
                "(a lock wait that never ends)"
            )
        for answer in answers:
            seen[f"{answer.tool}: {answer.outcome.split(' (')[0]}"] += 1
            if answer.outcome.startswith("FAILED"):
                failures.append(
                    f"round {number}: {answer.tool}({answer.arguments}) → {answer.outcome}"
                )
        await check_counters(pair_client, scene, answers)
    assert not failures, "\n".join(failures)
    # The race was run, not refused up front: some call of the pair wrote in every test.
    assert any(key.endswith(": ok") for key in seen), dict(seen)
