"""Connections killed mid-transaction (research plan R2): while agents stream ``create_page`` /
``mark_crawling`` / ``mark_analyzed`` / ``create_bug`` calls through the MCP client, a chaos
task ends the server's backends with ``pg_terminate_backend`` 50 times (x BUGHIVE_SOAK_SCALE),
mostly while they are inside a transaction.

What must hold:

- every call either happened and reported success, or failed quickly with a retryable
  "database unavailable … retry" error and changed nothing. The agents retry failures at once,
  and the retry itself proves the failure changed nothing: a ``create_page`` or ``create_bug``
  retried after a failure still reports ``created=true``, and a ``mark_crawling`` or
  ``mark_analyzed`` retry is not refused as already done;
- afterwards every row count and every session counter equals what the successful calls
  reported — nothing lost, nothing extra, no page left half-crawled;
- the same server keeps serving, with no connection left checked out or idle in a transaction.
"""

import logging
import random
from collections import Counter
from dataclasses import dataclass, field

import anyio
import asyncpg
import pytest
from mcp import Client
from sqlalchemy.engine import URL

from db.connection.database import APPLICATION_NAME
from tests.bughive_mcp.faults import (
    SOAK_SCALE,
    SOAK_SEED,
    Figures,
    Progress,
    RetryingCaller,
    fault_server,
    fresh_database,
    pool_status,
)
from tests.bughive_mcp.toolcalls import BASE_URL, BUG_FIELDS
from tests.conftest import PostgresServer, asyncpg_dsn

pytestmark = pytest.mark.soak

KILLS = 50 * SOAK_SCALE
AGENTS = 4
RUN_TIMEOUT = 60 * SOAK_SCALE
SITE_WIDE_BUG = "site-header"

OUR_BACKENDS = """
    SELECT pid, state FROM pg_stat_activity
    WHERE application_name = $1 AND datname = current_database() AND pid <> pg_backend_pid()
"""
IN_TRANSACTION = " AND state IN ('active', 'idle in transaction')"


@dataclass
class Agent:
    """One crawler's view of what it did: only what the server reported as done."""

    index: int
    session_id: str = ""
    pages: int = 0
    analyzed: int = 0
    bugs: set[str] = field(default_factory=set)
    occurrences: int = 0


def spelled(n: int) -> str:
    """``n`` in letters (12 → "bc"): dedup keys compare without their digits."""
    return "".join(chr(ord("a") + int(digit)) for digit in str(n))


async def crawl(call: RetryingCaller, agent: Agent, stop: anyio.Event) -> None:
    """The crawl loop until the chaos is over; each step retried until it succeeds."""
    session = await call(
        "create_session",
        base_url=BASE_URL,
        config={"max_pages": 1_000_000},
        idempotency_key=f"chaos-agent-{agent.index}",
    )
    agent.session_id = session["id"]
    await call("start_session", session_id=agent.session_id)
    n = 0
    while not stop.is_set():
        n += 1
        url = f"{BASE_URL}/agent-{agent.index}/page-{n}"
        page = await call("create_page", session_id=agent.session_id, url=url, depth=1)
        assert page["created"] is True, f"a failed create_page had created {url}"
        agent.pages += 1
        claim = await call("mark_crawling", page_id=page["id"])
        await call(
            "mark_analyzed",
            page_id=page["id"],
            claim_token=claim["claim_token"],
            title=f"Page {n}",
            status_code=200,
        )
        agent.analyzed += 1
        bug_fields = {**BUG_FIELDS, "session_id": agent.session_id, "page_id": page["id"]}
        bug = await call("create_bug", **bug_fields, dedup_key=f"page {spelled(n)}")
        assert bug["created"] is True, f"a failed create_bug had filed the bug of {url}"
        agent.bugs.add(bug["id"])
        agent.occurrences += 1
        if n % 3 == 0:  # a defect seen on many pages: one bug, one occurrence per page
            shared = await call("create_bug", **bug_fields, dedup_key=SITE_WIDE_BUG)
            assert shared["created"] is (n == 3)
            agent.bugs.add(shared["id"])
            agent.occurrences += 1
        if n % 5 == 0:  # a retry after a lost answer: the same calls again change nothing
            again = await call("create_page", session_id=agent.session_id, url=url, depth=1)
            assert (again["id"], again["created"]) == (page["id"], False)
            replay = await call("create_bug", **bug_fields, dedup_key=f"page {spelled(n)}")
            assert (replay["id"], replay["created"], replay["occurrences"]) == (bug["id"], False, 1)


async def chaos(
    url: URL, progress: Progress, rng: random.Random, figures: Figures, stop: anyio.Event
) -> None:
    """End the server's backends ``KILLS`` times, paced by work done (every 2-8 successful
    calls) and then at a random moment: mostly one backend inside a transaction (running a
    statement, or between statements); every tenth time all of them, idle pooled
    connections included."""
    raw = await asyncpg.connect(asyncpg_dsn(url))
    try:
        while figures.faults < KILLS:
            await progress.reach(progress.count + rng.randint(2, 8))
            everything = figures.faults % 10 == 9
            query = OUR_BACKENDS if everything else OUR_BACKENDS + IN_TRANSACTION
            victims: list[asyncpg.Record] = []
            while not victims:
                await anyio.sleep(rng.uniform(0, 0.003))  # the fault schedule's jitter
                victims = await raw.fetch(query, APPLICATION_NAME)
            if not everything:
                victims = [rng.choice(victims)]
            ended = 0
            for backend in victims:
                if await raw.fetchval("SELECT pg_terminate_backend($1)", backend["pid"]):
                    ended += 1
                    figures.faults_by_kind[f"backend {backend['state']}"] += 1
            if ended:
                figures.faults += 1
    finally:
        stop.set()
        await raw.close()


async def check_ledger(url: URL, agents: list[Agent], figures: Figures) -> None:
    """Rows and counters against what the agents were told; counts what it compared."""
    raw = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for agent in agents:
            row = await raw.fetchrow(
                """
                SELECT s.pages_discovered, s.pages_crawled, s.bugs_found,
                       (SELECT count(*) FROM pages p WHERE p.session_id = s.id) AS pages,
                       (SELECT count(*) FROM pages p
                        WHERE p.session_id = s.id AND p.status = 'analyzed') AS analyzed,
                       (SELECT count(*) FROM bugs b WHERE b.session_id = s.id) AS bugs,
                       (SELECT coalesce(sum(b.occurrences), 0) FROM bugs b
                        WHERE b.session_id = s.id) AS occurrences,
                       (SELECT count(*) FROM bug_occurrences o
                        WHERE o.session_id = s.id) AS occurrence_rows
                FROM crawl_sessions s WHERE s.id = $1
                """,
                agent.session_id,
            )
            assert row is not None
            expected = {
                "pages_discovered": agent.pages,
                "pages": agent.pages,
                "pages_crawled": agent.analyzed,
                "analyzed": agent.analyzed,
                "bugs_found": len(agent.bugs),
                "bugs": len(agent.bugs),
                "occurrences": agent.occurrences,
                "occurrence_rows": agent.occurrences,
            }
            found = {key: int(row[key]) for key in expected}
            figures.lost += sum(max(expected[k] - found[k], 0) for k in expected)
            assert found == expected, f"agent {agent.index}: {found} != {expected}"
        totals = await raw.fetchrow(
            "SELECT (SELECT count(*) FROM crawl_sessions) AS sessions,"
            " (SELECT count(*) FROM pages) AS pages, (SELECT count(*) FROM bugs) AS bugs,"
            " (SELECT count(*) FROM bug_occurrences) AS occurrences"
        )
        assert totals is not None
        assert tuple(totals) == (
            len(agents),
            sum(a.pages for a in agents),
            sum(len(a.bugs) for a in agents),
            sum(a.occurrences for a in agents),
        )
        figures.rows_checked = sum(int(v) for v in totals.values())
        stuck = await raw.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
            " AND datname = current_database() AND state LIKE 'idle in transaction%'",
            APPLICATION_NAME,
        )
        assert stuck == 0
    finally:
        await raw.close()


async def test_killed_connections_lose_nothing_and_write_nothing_half(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = await fresh_database(postgres_server)
    server = fault_server(url, pool_size=AGENTS, max_overflow=2, pool_timeout=5)
    figures = Figures("killed connections", extra={"seed": SOAK_SEED, "agents": AGENTS})
    rng = random.Random(SOAK_SEED)
    agents = [Agent(i) for i in range(AGENTS)]
    stop = anyio.Event()
    with (
        caplog.at_level(logging.WARNING, logger="db.connection.database"),
        anyio.fail_after(RUN_TIMEOUT),
    ):
        async with Client(server) as client:
            call = RetryingCaller(client, figures)
            async with anyio.create_task_group() as tg:
                for agent in agents:
                    tg.start_soon(crawl, call, agent, stop)
                tg.start_soon(chaos, url, call.progress, rng, figures, stop)
            # The same server, never restarted, keeps serving.
            for agent in agents:
                stats = await call("get_session_statistics", session_id=agent.session_id)
                assert stats["pages_by_status"]["analyzed"] == agent.analyzed
            assert (await pool_status(client))["checked_out"] == 0
    await check_ledger(url, agents, figures)
    settled = Counter(
        r.getMessage().rsplit(" is ", 1)[-1]
        for r in caplog.records
        if r.getMessage().startswith("connection lost during commit")
    )
    figures.extra["lost_commits_settled"] = dict(settled)
    figures.print()
    assert figures.faults == KILLS
    assert figures.outcomes_unknown == 0
    assert figures.lost == 0
    assert figures.failed > 0, "no call was hit: the chaos did not reach a transaction"
