"""Multi-tenant mode through the MCP surface: two servers on the runtime role, one bound to
tenant acme and one to globex (``BUGHIVE_TENANT``), as two stdio deployments would be. acme
passes globex's ids to every tool and resource: it reads, counts and changes nothing of
globex's, and hears exactly what an id that exists nowhere gets ("does not exist", never
"forbidden"), so it cannot even learn that the id exists."""

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, fields
from typing import Any

import asyncpg
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from sqlalchemy.engine import URL

from bughive_mcp.server import BugHiveServer
from bughive_mcp.tenancy import UnsafeTenancy
from bughive_mcp.tools import catalog
from db.connection.database import Database
from tests.bughive_mcp.conftest import make_server
from tests.bughive_mcp.toolcalls import (
    BUG_FIELDS,
    call_error,
    call_ok,
    new_bug,
    new_page,
)
from tests.conftest import PostgresServer
from tests.tenants import ACME, GLOBEX, runtime_role

GLOBEX_SITE = "https://globex.example"
ACME_SITE = "https://acme.example"
SNAPSHOT_TABLES = ("crawl_sessions", "pages", "bugs", "bug_occurrences")
# Words that would tell acme that the row exists but is someone else's.
OWNERSHIP_WORDS = ("forbidden", "permission", "denied", "tenant", "policy", "not allowed")


@dataclass(frozen=True)
class World:
    """A tenant's crawl: a running session, pages in each state, a detected and a validated
    bug. (The ids are strings, as tools take them.)"""

    session: str
    home: str  # analyzed
    crawling: str  # leased, with claim_token
    claim_token: str
    discovered: str
    bug: str  # detected, critical, confident
    validated_bug: str


@pytest.fixture(scope="module")
def runtime_url(postgres_server: PostgresServer, database_url: URL) -> Iterator[URL]:
    with runtime_role(postgres_server, database_url) as url:
        yield url


@pytest.fixture(scope="module")
def acme_server(runtime_url: URL) -> BugHiveServer:
    return make_server(runtime_url, tenant=ACME)


@pytest.fixture(scope="module")
def globex_server(runtime_url: URL) -> BugHiveServer:
    return make_server(runtime_url, tenant=GLOBEX)


@pytest.fixture
async def acme(acme_server: BugHiveServer, db: Database) -> AsyncIterator[Client]:
    async with Client(acme_server) as connected:
        yield connected


@pytest.fixture
async def globex(globex_server: BugHiveServer, db: Database) -> AsyncIterator[Client]:
    async with Client(globex_server) as connected:
        yield connected


async def build_world(client: Client, site: str) -> World:
    created = await call_ok(client, "create_session", base_url=site)
    sid = created["id"]
    await call_ok(client, "start_session", session_id=sid)
    home = await new_page(client, sid, f"{site}/")
    about = await new_page(client, sid, f"{site}/about", 1, home["id"])
    contact = await new_page(client, sid, f"{site}/contact", 1, home["id"])
    claim = await call_ok(client, "mark_crawling", page_id=home["id"])
    await call_ok(
        client, "mark_analyzed", page_id=home["id"], claim_token=claim["claim_token"], title="Home"
    )
    leased = await call_ok(client, "mark_crawling", page_id=about["id"])
    bug = await new_bug(client, sid, home["id"], priority="critical", confidence=0.95)
    validated = await new_bug(client, sid, home["id"], confidence=0.9)
    await call_ok(client, "mark_validated", bug_id=validated["id"])
    await call_ok(client, "add_cost", session_id=sid, cost_usd=0.25)
    return World(
        session=sid,
        home=home["id"],
        crawling=about["id"],
        claim_token=leased["claim_token"],
        discovered=contact["id"],
        bug=bug["id"],
        validated_bug=validated["id"],
    )


@pytest.fixture
async def worlds(acme: Client, globex: Client) -> tuple[World, World]:
    """(acme's world, globex's world)."""
    return (
        await build_world(acme, ACME_SITE),
        await build_world(globex, GLOBEX_SITE),
    )


def nowhere() -> World:
    """Ids that exist in no tenant: what acme would see if globex's ids did not exist."""
    return World(**{f.name: str(uuid.uuid4()) for f in fields(World)})


def attacks(theirs: World, mine: World) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every tool that takes an id, called by acme with globex's ids: (tool, arguments)."""
    new_url = f"{GLOBEX_SITE}/new"
    return {
        "get_session": ("get_session", {"session_id": theirs.session}),
        "start_session": ("start_session", {"session_id": theirs.session}),
        "complete_session": ("complete_session", {"session_id": theirs.session, "force": True}),
        "add_cost": ("add_cost", {"session_id": theirs.session, "cost_usd": 1.5}),
        "get_session_statistics": ("get_session_statistics", {"session_id": theirs.session}),
        "create_page": ("create_page", {"session_id": theirs.session, "url": new_url}),
        "create_page under their parent": (
            "create_page",
            {"session_id": mine.session, "url": f"{ACME_SITE}/x", "parent_page_id": theirs.home},
        ),
        "bulk_create_pages": (
            "bulk_create_pages",
            {"session_id": theirs.session, "pages": [{"url": new_url}]},
        ),
        "get_page": ("get_page", {"page_id": theirs.home}),
        "get_pages_to_crawl": ("get_pages_to_crawl", {"session_id": theirs.session}),
        "claim_pages_to_crawl": ("claim_pages_to_crawl", {"session_id": theirs.session}),
        "extend_claim": (
            "extend_claim",
            {"page_id": theirs.crawling, "claim_token": theirs.claim_token},
        ),
        "mark_crawling": ("mark_crawling", {"page_id": theirs.discovered}),
        "mark_analyzed": (
            "mark_analyzed",
            {"page_id": theirs.crawling, "claim_token": theirs.claim_token, "title": "Owned"},
        ),
        "finish_page": (
            "finish_page",
            {"page_id": theirs.crawling, "claim_token": theirs.claim_token, "title": "Owned"},
        ),
        "mark_page_error": (
            "mark_page_error",
            {"page_id": theirs.crawling, "error_message": "x", "claim_token": theirs.claim_token},
        ),
        "mark_page_error without token": (
            "mark_page_error",
            {"page_id": theirs.discovered, "error_message": "x"},
        ),
        "get_page_analytics": ("get_page_analytics", {"page_id": theirs.home}),
        "get_navigation_graph": ("get_navigation_graph", {"session_id": theirs.session}),
        "create_bug": (
            "create_bug",
            {"session_id": theirs.session, "page_id": theirs.home, **BUG_FIELDS},
        ),
        "create_bug on their page": (
            "create_bug",
            {"session_id": mine.session, "page_id": theirs.home, **BUG_FIELDS},
        ),
        "get_bug": ("get_bug", {"bug_id": theirs.bug}),
        "mark_validated": ("mark_validated", {"bug_id": theirs.bug}),
        "mark_reported": (
            "mark_reported",
            {
                "bug_id": theirs.validated_bug,
                "linear_issue_id": "ENG-1",
                "linear_issue_url": "https://linear.app/acme/issue/ENG-1",
            },
        ),
        "dismiss_bug": ("dismiss_bug", {"bug_id": theirs.bug, "reason": "not ours"}),
        "get_high_confidence_bugs": ("get_high_confidence_bugs", {"session_id": theirs.session}),
        "get_critical_bugs": ("get_critical_bugs", {"session_id": theirs.session}),
        "get_bug_statistics": ("get_bug_statistics", {"session_id": theirs.session}),
        "get_session_bugs": ("get_session_bugs", {"session_id": theirs.session}),
        "export_session_report": (
            "export_session_report",
            {"session_id": theirs.session, "format": "json"},
        ),
    }


# Tools that take no id of another tenant, each proven by its own test below (create_session:
# the idempotency-key test, and every row written carrying its writer's tenant).
NO_ID_TOOLS = {"create_session", "list_sessions", "check_database_health"}


async def snapshot(raw: asyncpg.Connection, tenant: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of ``tenant``, every column (as the owner sees them)."""
    return {
        table: [
            dict(r)
            for r in await raw.fetch(f"SELECT * FROM {table} WHERE tenant = $1 ORDER BY id", tenant)
        ]
        for table in SNAPSHOT_TABLES
    }


def anonymized(text: str, world: World) -> str:
    for f in fields(World):
        text = text.replace(getattr(world, f.name), f"<{f.name}>")
    return text


def test_every_tool_is_covered_by_the_tenant_tests() -> None:
    attacked = {tool for tool, _ in attacks(nowhere(), nowhere()).values()}

    assert attacked | NO_ID_TOOLS == {spec.name for spec in catalog.specs}


async def test_another_tenants_ids_do_not_exist_for_any_tool(
    acme: Client, worlds: tuple[World, World], raw: asyncpg.Connection
) -> None:
    """One world, every attack in turn (building the worlds is most of the cost): each must
    fail exactly as for ids that exist nowhere, and leave every row of globex as it was."""
    mine, theirs = worlds
    missing = nowhere()
    before = await snapshot(raw, GLOBEX)
    problems: list[str] = []
    for attack, (tool, arguments) in attacks(theirs, mine).items():
        message = await call_error(acme, tool, **arguments)
        _, missing_arguments = attacks(missing, mine)[attack]
        message_for_missing_ids = await call_error(acme, tool, **missing_arguments)
        if "does not exist" not in message:
            problems.append(f"{attack}: {message}")
        if anonymized(message, theirs) != anonymized(message_for_missing_ids, missing):
            problems.append(f"{attack}: {message!r} != {message_for_missing_ids!r}")
        if any(word in message.lower() for word in OWNERSHIP_WORDS):
            problems.append(f"{attack}: {message}")
        if await snapshot(raw, GLOBEX) != before:
            problems.append(f"{attack} changed globex's rows")
            before = await snapshot(raw, GLOBEX)

    assert problems == []


@pytest.mark.parametrize("resource", ["report", "graph"])
async def test_another_tenants_session_does_not_exist_for_a_resource(
    resource: str, acme: Client, worlds: tuple[World, World]
) -> None:
    _, theirs = worlds

    with pytest.raises(MCPError, match=f"crawl session {theirs.session} does not exist"):
        await acme.read_resource(f"bughive://sessions/{theirs.session}/{resource}")


async def test_list_sessions_lists_and_counts_only_the_tenants_own(
    acme: Client, worlds: tuple[World, World]
) -> None:
    mine, _ = worlds

    listed = await call_ok(acme, "list_sessions", limit=100)
    running = await call_ok(acme, "list_sessions", status="running", limit=100)

    assert [s["id"] for s in listed["items"]] == [mine.session]
    assert (listed["total"], running["total"]) == (1, 1)
    assert {s["base_url"] for s in listed["items"]} == {f"{ACME_SITE}/"}


async def test_each_tenant_sees_its_own_statistics_graph_and_report_in_full(
    acme: Client, globex: Client, worlds: tuple[World, World]
) -> None:
    for client, world in zip((acme, globex), worlds, strict=True):
        stats = await call_ok(client, "get_session_statistics", session_id=world.session)
        bugs = await call_ok(client, "get_bug_statistics", session_id=world.session)
        graph = await call_ok(client, "get_navigation_graph", session_id=world.session)
        report = await call_ok(
            client, "export_session_report", session_id=world.session, format="json"
        )

        assert (stats["pages_total"], stats["bugs_total"]) == (3, 2)
        assert (bugs["total"], bugs["by_priority"]["critical"]) == (2, 1)
        assert (graph["total_nodes"], len(graph["edges"])) == (3, 2)
        assert report["report"]["bugs_total"] == 2


async def test_another_tenants_idempotency_key_creates_a_new_session(
    acme: Client, globex: Client, raw: asyncpg.Connection
) -> None:
    """Keys are unique per tenant: acme reusing globex's key (for the same site) gets a session
    of its own, and learns nothing of globex's."""
    key = "nightly-crawl"
    theirs = await call_ok(globex, "create_session", base_url=GLOBEX_SITE, idempotency_key=key)
    before = await snapshot(raw, GLOBEX)

    created = await call_ok(acme, "create_session", base_url=GLOBEX_SITE, idempotency_key=key)
    again = await call_ok(acme, "create_session", base_url=GLOBEX_SITE, idempotency_key=key)

    assert created["id"] != theirs["id"]
    assert again["id"] == created["id"]
    assert await snapshot(raw, GLOBEX) == before
    owner = "SELECT tenant FROM crawl_sessions WHERE id = $1"
    assert await raw.fetchval(owner, uuid.UUID(created["id"])) == ACME


async def test_database_health_reveals_no_rows(acme: Client, worlds: tuple[World, World]) -> None:
    health = await call_ok(acme, "check_database_health")

    assert health["healthy"] is True
    assert set(health) == {"healthy", "schema_revision", "expected_revision", "pool"}


async def test_rows_written_through_a_tenants_server_carry_its_tenant(
    worlds: tuple[World, World], raw: asyncpg.Connection
) -> None:
    for tenant, world in zip((ACME, GLOBEX), worlds, strict=True):
        for table in SNAPSHOT_TABLES:
            tenants = await raw.fetch(
                f"SELECT DISTINCT tenant FROM {table} WHERE session_id = $1"
                if table != "crawl_sessions"
                else f"SELECT DISTINCT tenant FROM {table} WHERE id = $1",
                uuid.UUID(world.session),
            )
            assert [r["tenant"] for r in tenants] == [tenant], table


async def test_a_multi_tenant_server_refuses_to_start_on_a_role_that_bypasses_the_policies(
    database_url: URL, db: Database
) -> None:
    """Connected as the owner (here a superuser), the policies would not apply: every tenant
    would see every row. The server refuses to start instead."""
    server = make_server(database_url, tenant=ACME)

    with pytest.raises(
        UnsafeTenancy, match=r"owns table\(s\) bug_occurrences, bugs, crawl_sessions, pages"
    ):
        async with Client(server):
            pass


async def test_a_call_bound_to_no_tenant_is_refused_in_multi_tenant_mode(
    runtime_url: URL, db: Database
) -> None:
    """HTTP-only tenants (``BUGHIVE_TENANT_TOKENS``) and a call that came with no token: the
    server says so, rather than running an unscoped transaction."""
    server = make_server(runtime_url, tenant_tokens=f"{ACME}:{'t' * 32}")

    async with Client(server) as client:
        message = await call_error(client, "list_sessions")
        with pytest.raises(MCPError, match="bound to no tenant"):
            await client.read_resource(f"bughive://sessions/{uuid.uuid4()}/graph")

    assert "bound to no tenant" in message
