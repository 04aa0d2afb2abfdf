"""The read tools answer in one round trip: one statement, in autocommit, no BEGIN or COMMIT.

An agent triaging bugs calls the list tools in a loop; each used to cost three to five round
trips (BEGIN, the session check, the count, the page, COMMIT), which on a database across a
network is most of the call. Counted here as PostgreSQL receives them: every connection the
server's pool opens logs its queries (asyncpg's query logger sees every statement of the driver
path, ``BEGIN`` and ``COMMIT``; a statement through the ORM in such a unit of work is refused by
``Database.session``, so it would fail the call, not hide from the count).
"""

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from mcp import Client
from sqlalchemy import event
from sqlalchemy.pool import Pool

from bughive_mcp.server import BugHiveServer
from db.connection.database import Database
from tests.bughive_mcp.toolcalls import call_error, call_ok
from tests.factories import make_bug, make_page, make_session


@pytest.fixture
def sent() -> Iterator[list[str]]:
    """Every query that connections opened from now on send (pools' ``connect`` event)."""
    queries: list[str] = []

    def log_queries(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(lambda r: queries.append(r.query))

    event.listen(Pool, "connect", log_queries)
    try:
        yield queries
    finally:
        event.remove(Pool, "connect", log_queries)


# (tool, its argument, what it answers with: the entity or the first item of a list)
READS: list[tuple[str, str, str]] = [
    ("get_session", "session_id", "session_id"),
    ("list_sessions", "", "session_id"),
    ("get_page", "page_id", "page_id"),
    ("get_bug", "bug_id", "bug_id"),
    ("get_session_bugs", "session_id", "bug_id"),
    ("get_high_confidence_bugs", "session_id", "bug_id"),
    ("get_critical_bugs", "session_id", "bug_id"),
    ("get_page_analytics", "page_id", "page_id"),
    ("get_navigation_graph", "session_id", "page_id"),
]


@pytest.mark.parametrize(("tool", "argument", "answer_is"), READS, ids=[r[0] for r in READS])
async def test_a_read_tool_sends_one_statement_and_no_transaction(
    server: BugHiveServer,
    db: Database,
    sent: list[str],
    tool: str,
    argument: str,
    answer_is: str,
) -> None:
    session = await make_session(db)
    page = await make_page(db, session.id)
    bug = await make_bug(db, session.id, page.id, priority="critical")
    ids = {"session_id": session.id, "page_id": page.id, "bug_id": bug.id}
    arguments = {argument: str(ids[argument])} if argument else {}

    async with Client(server) as client:
        await call_ok(client, tool, **arguments)  # the pool's first connection and its set-up
        await asyncio.sleep(0)  # asyncpg hands queries to its loggers with call_soon
        sent.clear()
        answer = await call_ok(client, tool, **arguments)
        await asyncio.sleep(0)

    assert len(sent) == 1, sent
    assert not any(q.split()[0].upper() in {"BEGIN", "COMMIT"} for q in sent), sent
    assert first_id(answer) == str(ids[answer_is])


def first_id(answer: dict[str, Any]) -> Any:
    """The id an answer is about: a list's first item's, a graph's first node's, analytics'
    page's, or the entity's own."""
    for key in ("items", "nodes"):
        if key in answer:
            return answer[key][0]["id"]
    return answer.get("page", answer)["id"]


async def test_the_session_report_is_three_statements_and_no_transaction(
    server: BugHiveServer, db: Database, sent: list[str]
) -> None:
    """export_session_report reads statistics, bug statistics and the bug table: three
    statements, each in autocommit (seven round trips through the ORM; five in a transaction,
    which under READ COMMITTED gave them no common snapshot anyway)."""
    session = await make_session(db)
    page = await make_page(db, session.id)
    await make_bug(db, session.id, page.id, priority="critical")

    async with Client(server) as client:
        await call_ok(client, "export_session_report", session_id=str(session.id))
        await asyncio.sleep(0)
        sent.clear()
        report = await call_ok(
            client, "export_session_report", session_id=str(session.id), format="json"
        )
        await asyncio.sleep(0)

    assert [q.split()[0].upper() for q in sent] == ["SELECT", "SELECT", "SELECT"]
    assert [bug["page_url"] for bug in report["report"]["bugs"]] == [page.url]


@pytest.mark.parametrize(
    "tool", ["get_session_bugs", "get_high_confidence_bugs", "get_critical_bugs"]
)
async def test_a_bug_list_of_an_unknown_session_is_not_found_naming_session_id(
    client: Client, tool: str
) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    message = await call_error(client, tool, session_id=unknown)
    assert f"crawl session {unknown} does not exist (field 'session_id')" in message


async def test_a_page_past_the_end_is_empty_with_the_exact_total(
    client: Client, db: Database
) -> None:
    session = await make_session(db)
    page = await make_page(db, session.id)
    for title in ("First", "Second", "Third"):
        await make_bug(db, session.id, page.id, title=f"{title} bug of the page")

    beyond = await call_ok(client, "get_session_bugs", session_id=str(session.id), skip=10)
    last = await call_ok(client, "get_session_bugs", session_id=str(session.id), skip=2)

    assert (beyond["items"], beyond["total"], beyond["has_more"]) == ([], 3, False)
    assert (len(last["items"]), last["total"], last["next_skip"]) == (1, 3, None)
