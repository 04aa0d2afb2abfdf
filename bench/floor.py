"""The floors: what the same work costs without BugHive's layers.

- ``trivial_server``: a separate ``MCPServer`` with one trivial tool (``ping``), reached over the
  same transport as BugHive — the SDK's own per-call cost.
- ``composed_server``: the same trivial tool, awaiting the floor's SQL before it answers — the
  two floors as one call (an informative figure: issue 5's floor is their sum, measured apart).
- ``RawSql``: SQL through raw ``asyncpg``. For a tool, the *same* statements the repository
  sends (imported from it), sent the same way — one transaction, or autocommit for a
  single-statement tool — so the ratio isolates SQLAlchemy's session, pydantic and the tool
  layer; for the frontier, the textbook single-statement ``SKIP LOCKED`` claim; for
  statistics, one hand-written pass.
"""

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel

from db.enums import BugCategory, BugPriority, BugStatus, PageStatus
from db.repositories.bugs import FILE_BUG, PAGE_OF_BUG, RECORD_OCCURRENCE
from db.repositories.pages import FINISH_PAGE, frontier_page_statement


class Pong(BaseModel):
    ok: bool
    n: int


def trivial_server() -> MCPServer:
    """A server whose only tool does nothing but return a small typed result."""
    server = MCPServer("bench-floor")

    @server.tool()
    async def ping(n: int) -> Pong:
        """Answer at once."""
        return Pong(ok=True, n=n)

    return server


def composed_server(work: Callable[[], Awaitable[object]]) -> MCPServer:
    """``trivial_server``'s ``ping``, awaiting ``work`` (the floor's SQL) before it answers.

    Issue 5's floor is the sum of ``ping`` and the SQL, each timed in a loop of its own. Neither
    loop ever waits: ``ping`` completes without yielding to the event loop, the SQL loop does
    nothing but wait. One call that does both — the least any tool running that SQL can cost —
    measured 1.14-1.22x that sum on this machine (workload 1, ``python -m bench.layers``): the
    call now yields to the event loop, and after the wait on the socket the same Python work
    runs slower (cProfile: ping's pydantic validation 1.5x slower per call; caches and 2 CPUs
    shared with the PostgreSQL backend).
    Workload 1 reports it next to the sum so a reader can tell that part from BugHive's."""
    server = MCPServer("bench-composed-floor")

    @server.tool()
    async def ping(n: int) -> Pong:
        """Run the floor's SQL, then answer."""
        await work()
        return Pong(ok=True, n=n)

    return server


# --- the frontier ------------------------------------------------------------------------

CLAIM = """
WITH token AS MATERIALIZED (SELECT gen_random_uuid() AS value)
UPDATE pages AS p
SET status = 'crawling', claim_token = (SELECT value FROM token), claimed_at = now(),
    lease_expires_at = now() + make_interval(secs => $3), attempts = p.attempts + 1,
    updated_at = now()
FROM (
    SELECT id FROM pages
    WHERE session_id = $1 AND status = 'discovered'
    ORDER BY priority DESC, depth, discovered_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
) AS picked
WHERE p.id = picked.id
RETURNING p.*
"""

RELEASE_CLAIMS = """
UPDATE pages
SET status = 'discovered', claim_token = NULL, claimed_at = NULL, lease_expires_at = NULL,
    attempts = 0
WHERE session_id = $1 AND status = 'crawling'
"""

# --- the tools of workloads 1 and 6: the repository's own statements ------------------------
# (db.repositories send these through asyncpg too — db.driver — so the floor differs from
# BugHive only by what wraps them: SQLAlchemy's session, pydantic, the tool layer.)


def _filters(column: str, values: list[str]) -> str:
    return ",\n    ".join(
        f"count(*) FILTER (WHERE {column} = '{v}') AS {column}__{v}" for v in values
    )


# --- statistics: one hand-written pass each ------------------------------------------------

BUG_STATISTICS = f"""
SELECT count(*) AS total, coalesce(sum(occurrences), 0) AS occurrences,
    avg(confidence) AS average_confidence,
    {_filters("priority", [p.value for p in BugPriority])},
    {_filters("category", [c.value for c in BugCategory])},
    {_filters("status", [s.value for s in BugStatus])}
FROM bugs WHERE session_id = $1
"""
SESSION_STATISTICS = f"""
SELECT s.*, pages.*, bugs.*,
    extract(epoch FROM coalesce(s.completed_at, now()) - s.started_at) AS duration
FROM crawl_sessions AS s,
    (SELECT {_filters("status", [p.value for p in PageStatus])},
        count(*) FILTER (WHERE status = 'crawling' AND lease_expires_at > now())
            AS pages_leased
     FROM pages WHERE session_id = $1) AS pages,
    (SELECT {_filters("priority", [p.value for p in BugPriority])}
     FROM bugs WHERE session_id = $1) AS bugs
WHERE s.id = $1
"""


class RawSql:
    """The floor's database work, on one asyncpg connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def claim(
        self, session_id: uuid.UUID, limit: int = 10, lease_seconds: int = 300
    ) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            CLAIM, session_id, limit, float(lease_seconds)
        )
        return rows

    async def get_pages_to_crawl(
        self, session_id: uuid.UUID, limit: int = 10
    ) -> list[asyncpg.Record]:
        # one statement, in autocommit, as the tool sends it (a @reads method)
        rows: list[asyncpg.Record] = await self.conn.fetch(
            frontier_page_statement(limit, 0).sql, session_id
        )
        return rows

    async def create_bug(
        self, session_id: uuid.UUID, page_id: uuid.UUID, fingerprint: str, **bug: Any
    ) -> asyncpg.Record:
        evidence_json = bug.get("evidence_json", "[]")
        async with self.conn.transaction():
            await self.conn.fetchrow(PAGE_OF_BUG.sql, page_id)
            filing = {
                "session_id": session_id,
                "page_id": page_id,
                "fingerprint": fingerprint,
                "category": bug["category"],
                "priority": bug["priority"],
                "title": bug["title"],
                "description": bug["description"],
                "steps_to_reproduce": bug.get("steps_json", "[]"),
                "evidence": evidence_json,
                "confidence": bug.get("confidence", 0.5),
                "expected_behavior": None,
                "actual_behavior": None,
                "affected_users": None,
                "browser_info": None,
            }
            row: asyncpg.Record = await self.conn.fetchrow(
                FILE_BUG.sql, *FILE_BUG.arguments(filing)
            )
            occurrence = {
                "bug_id": row["id"],
                "session_id": session_id,
                "page_id": page_id,
                "evidence": evidence_json,
                "created": row["created"],
            }
            await self.conn.fetchrow(
                RECORD_OCCURRENCE.sql, *RECORD_OCCURRENCE.arguments(occurrence)
            )
        return row

    async def mark_analyzed(
        self,
        page_id: uuid.UUID,
        claim_token: uuid.UUID,
        title: str | None,
        analysis_json: str | None,
        response_time_ms: int | None,
        status_code: int | None,
    ) -> asyncpg.Record | None:
        async with self.conn.transaction():
            finishing = {
                "id": page_id,
                "claim_token": claim_token,
                "title": title,
                "screenshot_url": None,
                "analysis_result": analysis_json,
                "response_time_ms": response_time_ms,
                "status_code": status_code,
                "content_type": None,
                "content_length": None,
            }
            row: asyncpg.Record | None = await self.conn.fetchrow(
                FINISH_PAGE.sql, *FINISH_PAGE.arguments(finishing)
            )
        return row

    # fetch, not fetchrow: a row limit on the portal rules out a parallel plan
    # (Statement.fetch_aggregate); the floor gets the fastest form too.
    async def bug_statistics(self, session_id: uuid.UUID) -> asyncpg.Record:
        rows: list[asyncpg.Record] = await self.conn.fetch(BUG_STATISTICS, session_id)
        return rows[0]

    async def session_statistics(self, session_id: uuid.UUID) -> asyncpg.Record:
        rows: list[asyncpg.Record] = await self.conn.fetch(SESSION_STATISTICS, session_id)
        return rows[0]
