"""Several stateless server replicas over one database, as a load balancer spreads a crawl fleet
over them: ``python -m bughive_mcp serve --transport http --stateless`` three times, each on its
own loopback port, with auto-migration off (a fleet migrates once, before it starts).

Each agent reaches the replicas through a round-robin balancer without stickiness — every HTTP
request goes to the next replica — so consecutive calls of one MCP client land on different
processes. That only works because no replica keeps state between calls."""

import subprocess
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Literal

import anyio
import asyncpg
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy.engine import URL

from db.connection.database import Database
from tests.bughive_mcp.processes import SERVER_COMMAND, child_env
from tests.bughive_mcp.test_http import free_port, wait_until_healthy
from tests.bughive_mcp.toolcalls import BASE_URL, call_ok

REPLICAS = 3
AGENTS = 8
PAGES = 160
CLAIM_BATCH = 5
BUG_EVERY = 10  # an agent files a bug on every tenth page
CRAWL_TIMEOUT = 90


class RoundRobin(httpx2.AsyncBaseTransport):
    """A load balancer without session affinity: each request goes to the next replica."""

    def __init__(self, ports: list[int], first: int) -> None:
        self.ports = ports
        self.turn = first
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.url = request.url.copy_with(port=self.ports[self.turn % len(self.ports)])
        self.turn += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@contextmanager
def replicas(
    database_url: URL, workdir: Path, count: int, *extra_args: str
) -> Iterator[list[tuple[int, Path]]]:
    """``count`` server processes started side by side; yields (port, log file) of each once
    every /healthz answers, and stops them all afterwards."""
    started: list[tuple[subprocess.Popen[bytes], int, Path]] = []
    try:
        for i in range(count):
            port = free_port()
            log_path = workdir / f"replica-{i}.log"
            with log_path.open("wb") as log:
                command = [*SERVER_COMMAND, "serve", "--transport", "http", "--port", str(port)]
                process = subprocess.Popen(
                    [*command, *extra_args],
                    env=child_env(database_url, BUGHIVE_AUTO_MIGRATE="false"),
                    cwd=workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            started.append((process, port, log_path))
        for process, port, log_path in started:
            wait_until_healthy(f"http://127.0.0.1:{port}", process, log_path)
        yield [(port, log_path) for _, port, log_path in started]
    finally:
        for process, _, _ in started:
            process.terminate()
        for process, _, _ in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@asynccontextmanager
async def balanced_client(
    ports: list[int], first: int, mode: Literal["auto", "legacy"] = "auto"
) -> AsyncIterator[Client]:
    """An MCP client whose requests a round-robin balancer spreads over ``ports``.

    ``mode="legacy"`` speaks the 2025-11-25 protocol (``initialize`` handshake, then an
    ``Mcp-Session-Id`` on every request), what most clients use today; ``"auto"`` negotiates
    the newest protocol, which has no session at all."""
    url = f"http://127.0.0.1:{ports[first % len(ports)]}/mcp"
    async with (
        httpx2.AsyncClient(transport=RoundRobin(ports, first), timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


@pytest.fixture
async def fleet(
    database_url: URL, tmp_path: Path, db: Database
) -> AsyncIterator[list[tuple[int, Path]]]:
    """Three stateless replicas on the test database (emptied after the test by ``db``)."""
    with replicas(database_url, tmp_path, REPLICAS, "--stateless") as running:
        yield running


async def crawl_agent(
    ports: list[int], first: int, session_id: str, claimed: list[str], bugs_filed: list[str]
) -> None:
    """The crawl loop of one worker: claim, finish each page with its claim token, file a bug
    on some, until a claim comes back empty with nothing remaining (the tool's contract)."""
    async with balanced_client(ports, first, "legacy" if first % 2 else "auto") as client:
        await crawl(client, session_id, claimed, bugs_filed)


def letters(number: int) -> str:
    """A number spelled in letters: bug titles that differ only in digits are one bug."""
    return "".join(chr(ord("a") + int(digit)) for digit in str(number))


async def crawl(client: Client, session_id: str, claimed: list[str], bugs_filed: list[str]) -> None:
    while True:
        claim = await call_ok(
            client, "claim_pages_to_crawl", session_id=session_id, limit=CLAIM_BATCH
        )
        if not claim["items"]:
            if claim["remaining"] == 0:
                return
            # The rest is locked by other agents' claims still in flight (SKIP LOCKED): their
            # commits make it 'crawling' and remaining falls; ask again.
            continue
        for page in claim["items"]:
            claimed.append(page["id"])
            await call_ok(
                client,
                "mark_analyzed",
                page_id=page["id"],
                claim_token=claim["claim_token"],
                status_code=200,
            )
            number = int(page["url"].rsplit("/", 1)[1])
            if number % BUG_EVERY == 0:
                bug = await call_ok(
                    client,
                    "create_bug",
                    session_id=session_id,
                    page_id=page["id"],
                    category="data",
                    priority="medium",
                    title=f"Broken form on page {letters(number)}",
                    description="The form does not submit.",
                )
                assert bug["created"]
                bugs_filed.append(bug["id"])


async def test_eight_agents_over_three_stateless_replicas_claim_every_page_exactly_once(
    fleet: list[tuple[int, Path]], raw: asyncpg.Connection
) -> None:
    ports = [port for port, _ in fleet]
    claimed: list[str] = []
    bugs_filed: list[str] = []
    async with balanced_client(ports, 0) as setup:
        session = await call_ok(
            setup, "create_session", base_url=BASE_URL, config={"max_pages": PAGES}
        )
        session_id = session["id"]
        await call_ok(setup, "start_session", session_id=session_id)
        links = [{"url": f"{BASE_URL}/p/{i}", "depth": 1 + i % 3} for i in range(PAGES)]
        created = await call_ok(setup, "bulk_create_pages", session_id=session_id, pages=links)
        assert created["created_count"] == PAGES
        with anyio.fail_after(CRAWL_TIMEOUT):
            async with anyio.create_task_group() as tg:
                for i in range(AGENTS):
                    tg.start_soon(crawl_agent, ports, i, session_id, claimed, bugs_filed)
        done = await call_ok(setup, "complete_session", session_id=session_id)

    assert len(claimed) == PAGES
    assert Counter(claimed).most_common(1)[0][1] == 1
    assert (done["pages_discovered"], done["pages_crawled"], done["bugs_found"]) == (
        PAGES,
        PAGES,
        PAGES // BUG_EVERY,
    )
    assert len(set(bugs_filed)) == PAGES // BUG_EVERY
    rows = await raw.fetch(
        "SELECT status, attempts, count(*) FROM pages WHERE session_id = $1"
        " GROUP BY status, attempts",
        uuid.UUID(session_id),
    )
    assert [tuple(r) for r in rows] == [("analyzed", 1, PAGES)]
    # every replica answered a share of the calls: the balancer really spread them
    for _, log_path in fleet:
        assert "tool=claim_pages_to_crawl outcome=ok" in log_path.read_text()


async def test_without_stateless_a_handshake_client_loses_its_session_on_the_next_replica(
    database_url: URL, tmp_path: Path, db: Database
) -> None:
    """The control experiment: the same balancer in front of replicas *with* per-client
    sessions. The ``initialize`` of a 2025-11-25 client creates its session on one replica; its
    next request reaches another, which does not know the session id."""
    with replicas(database_url, tmp_path, 2) as running:
        ports = [port for port, _ in running]
        with pytest.raises(BaseExceptionGroup) as failure:
            async with balanced_client(ports, 0, "legacy") as client:
                await client.call_tool("list_sessions", {})

    assert failure.group_contains(MCPError, match="Session not found")
