"""Multi-tenant mode over streamable HTTP, end to end: ``bughive-mcp serve --transport http``
in a subprocess, connected as the runtime role, with ``BUGHIVE_TENANT_TOKENS`` giving acme and
globex a bearer token each. The tenant travels from the token to the transaction; acme's token
cannot read, count or change globex's session, page or bug."""

import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import asyncpg
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy.engine import URL

from db.connection.database import Database
from tests.bughive_mcp.processes import SERVER_COMMAND, child_env
from tests.bughive_mcp.test_http import (
    MCP_HEADERS,
    free_port,
    post_initialize,
    wait_until_healthy,
)
from tests.bughive_mcp.toolcalls import BUG_FIELDS, call_error, call_ok
from tests.conftest import PostgresServer
from tests.tenants import ACME, GLOBEX, runtime_role

TOKENS = {ACME: "acme-token-" + "a" * 32, GLOBEX: "globex-token-" + "g" * 32}
CONCURRENT_CALLS = 10
SITE = {ACME: "https://acme.example", GLOBEX: "https://globex.example"}


@pytest.fixture(scope="module")
def runtime_url(postgres_server: PostgresServer, database_url: URL) -> Iterator[URL]:
    with runtime_role(postgres_server, database_url) as url:
        yield url


@pytest.fixture(scope="module", params=["stateful", "stateless"])
def base_url(
    request: pytest.FixtureRequest, runtime_url: URL, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The server, in both HTTP modes: the tenant must reach the tool call either way."""
    workdir = tmp_path_factory.mktemp("http-tenants")
    log_path = workdir / "server.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tenant_tokens = ",".join(f"{tenant}:{token}" for tenant, token in TOKENS.items())
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*SERVER_COMMAND, "serve", "--transport", "http", "--port", str(port)],
            env=child_env(
                runtime_url,
                BUGHIVE_TENANT_TOKENS=tenant_tokens,
                BUGHIVE_STATELESS_HTTP=str(request.param == "stateless").lower(),
            ),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_healthy(url, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert not any(token in log_path.read_text() for token in TOKENS.values())


@asynccontextmanager
async def connect(base_url: str, tenant: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {TOKENS[tenant]}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{base_url}/mcp", http_client=http)) as client,
    ):
        yield client


async def crawl_with_a_bug(client: Client, site: str) -> dict[str, Any]:
    session = await call_ok(client, "create_session", base_url=site)
    await call_ok(client, "start_session", session_id=session["id"])
    page = await call_ok(client, "create_page", session_id=session["id"], url=f"{site}/")
    bug = await call_ok(
        client, "create_bug", session_id=session["id"], page_id=page["id"], **BUG_FIELDS
    )
    return {"session": session["id"], "page": page["id"], "bug": bug["id"]}


@pytest.fixture
async def crawls(base_url: str, db: Database) -> dict[str, dict[str, Any]]:
    """Each tenant's crawl, made through its own token."""
    made = {}
    for tenant in (ACME, GLOBEX):
        async with connect(base_url, tenant) as client:
            made[tenant] = await crawl_with_a_bug(client, SITE[tenant])
    return made


async def test_a_tenants_token_reads_and_counts_only_its_own_rows(
    base_url: str, crawls: dict[str, dict[str, Any]]
) -> None:
    theirs = crawls[GLOBEX]
    async with connect(base_url, ACME) as acme:
        listed = await call_ok(acme, "list_sessions")
        session = await call_error(acme, "get_session", session_id=theirs["session"])
        page = await call_error(acme, "get_page", page_id=theirs["page"])
        bug = await call_error(acme, "get_bug", bug_id=theirs["bug"])
        stats = await call_error(acme, "get_bug_statistics", session_id=theirs["session"])

    assert [s["id"] for s in listed["items"]] == [crawls[ACME]["session"]]
    assert listed["total"] == 1
    assert f"crawl session {theirs['session']} does not exist" in session
    assert f"page {theirs['page']} does not exist" in page
    assert f"bug {theirs['bug']} does not exist" in bug
    assert f"crawl session {theirs['session']} does not exist" in stats


async def test_a_tenants_token_changes_none_of_another_tenants_rows(
    base_url: str, crawls: dict[str, dict[str, Any]], raw: asyncpg.Connection
) -> None:
    theirs = crawls[GLOBEX]
    rows = "SELECT status, total_cost, bugs_found FROM crawl_sessions WHERE tenant = $1"
    before = [dict(r) for r in await raw.fetch(rows, GLOBEX)]
    bug_status = "SELECT status FROM bugs WHERE tenant = $1"
    async with connect(base_url, ACME) as acme:
        errors = [
            await call_error(acme, "add_cost", session_id=theirs["session"], cost_usd=5),
            await call_error(acme, "complete_session", session_id=theirs["session"]),
            await call_error(acme, "mark_validated", bug_id=theirs["bug"]),
            await call_error(acme, "mark_crawling", page_id=theirs["page"]),
            await call_error(
                acme,
                "create_bug",
                session_id=theirs["session"],
                page_id=theirs["page"],
                **BUG_FIELDS,
            ),
        ]

    assert all("does not exist" in error for error in errors), errors
    assert [dict(r) for r in await raw.fetch(rows, GLOBEX)] == before
    assert [r["status"] for r in await raw.fetch(bug_status, GLOBEX)] == ["detected"]


async def test_each_token_writes_rows_of_its_own_tenant(
    crawls: dict[str, dict[str, Any]], raw: asyncpg.Connection
) -> None:
    for tenant, crawl in crawls.items():
        for table, column in (("crawl_sessions", "id"), ("pages", "session_id")):
            found = await raw.fetch(
                f"SELECT DISTINCT tenant FROM {table} WHERE {column} = $1::uuid", crawl["session"]
            )
            assert [r["tenant"] for r in found] == [tenant]


async def test_concurrent_calls_with_both_tokens_each_see_their_own_tenant(
    base_url: str, crawls: dict[str, dict[str, Any]]
) -> None:
    """Requests of both tenants interleaved on one server: the tenant is per request."""
    seen: dict[str, list[list[str]]] = {ACME: [], GLOBEX: []}

    async def worker(tenant: str) -> None:
        async with connect(base_url, tenant) as client:
            for _ in range(CONCURRENT_CALLS):
                listed = await call_ok(client, "list_sessions")
                seen[tenant].append([s["id"] for s in listed["items"]])

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for tenant in (ACME, GLOBEX, ACME, GLOBEX):
                tg.start_soon(worker, tenant)

    for tenant in (ACME, GLOBEX):
        assert seen[tenant] == [[crawls[tenant]["session"]]] * (2 * CONCURRENT_CALLS)


def test_a_token_of_no_tenant_is_refused_with_401(base_url: str) -> None:
    response = post_initialize(base_url, Authorization=f"Bearer {TOKENS[ACME]}x")

    assert response.status_code == 401


def session_call(
    base_url: str, tenant: str, session_id: str, method: str = "POST"
) -> httpx2.Response:
    """One request on an MCP session (``tools/list``, or the ``DELETE`` that ends it) with
    ``tenant``'s token."""
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {TOKENS[tenant]}",
               "Mcp-Session-Id": session_id, "Mcp-Protocol-Version": "2025-11-25"}  # fmt: skip
    if method == "DELETE":
        return httpx2.delete(f"{base_url}/mcp", headers=headers, timeout=10)
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    return httpx2.post(f"{base_url}/mcp", json=listing, headers=headers, timeout=10)


@pytest.mark.parametrize("base_url", ["stateful"], indirect=True)
def test_an_http_session_answers_another_token_as_if_it_did_not_exist(base_url: str) -> None:
    """The spec's session binding: acme's session id with globex's valid token is refused
    exactly as an unknown id is (so globex learns nothing), and acme's session goes on."""
    opened = post_initialize(base_url, Authorization=f"Bearer {TOKENS[ACME]}")
    assert opened.status_code == 200
    session_id = opened.headers["mcp-session-id"]
    unknown = session_call(base_url, GLOBEX, "0" * 32)

    for method in ("POST", "DELETE"):
        taken = session_call(base_url, GLOBEX, session_id, method)
        assert (taken.status_code, taken.text) == (unknown.status_code, unknown.text)
        assert taken.status_code == 404
        assert "Session not found" in taken.text

    still_open = session_call(base_url, ACME, session_id)
    assert still_open.status_code == 200
    assert "create_session" in still_open.text
    assert session_call(base_url, ACME, session_id, "DELETE").status_code == 200
