"""6. End to end: N simulated agents (1, 4, 8) over streamable HTTP run the crawl loop —
claim 5 pages → "analyse" (no think time) → file 0-2 bugs per page → mark it analysed with
its claim token — against ``python -m bughive_mcp serve --transport http`` (bearer token, the
product's default settings), vs the same loop against the floor server (``bench.floor_server``:
the same SDK and transport, tools as raw asyncpg SQL). Reported: pages/s, p50/p99 per tool, and
the server's peak RSS. No target: this is the figure a user sees.

Agents are asyncio tasks in the bench process, each with its own HTTP client and MCP session,
connected before the clock starts. A run lasts ``e2e_seconds`` (agents finish the batch in
hand), on a fresh session of its own.
"""

import asyncio
import contextlib
import os
import random
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2
import psutil
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy.engine import URL

from bench.context import BenchContext
from bench.datagen import DataGenerator
from bench.harness import Metrics, Stopwatch, WorkloadResult, compare, percentile, progress
from bench.postgres import sqlalchemy_url_text
from bench.workloads.common import BenchError, call_tool, connect

KEY = "end_to_end"
TITLE = "6. end to end (HTTP)"
TOOLS = ("claim_pages_to_crawl", "create_bug", "mark_analyzed")
BATCH = 5
START_SECONDS = 60
REPO_ROOT = Path(__file__).resolve().parents[2]
BUG_TITLES = ("Image fails to load", "Price overlaps the add-to-cart button")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServerProcess:
    """A server in a child process, its output in a log file, ready once ``/healthz`` answers."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.command = command
        self.env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": os.environ.get("HOME", str(REPO_ROOT)),
            "PYTHONPATH": str(REPO_ROOT),
            **env,
        }
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self, port: int) -> str:
        """Start the child; returns its base URL (not yet ready: see ``wait_ready``)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*self.command, "--port", str(port)],
                env=self.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return f"http://127.0.0.1:{port}"

    async def wait_ready(self, base: str) -> str:
        """Poll ``/healthz`` until it answers; returns the MCP endpoint."""
        assert self.process is not None
        deadline = time.monotonic() + START_SECONDS
        async with httpx2.AsyncClient(timeout=1) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise BenchError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
                try:
                    if (await http.get(f"{base}/healthz")).status_code == 200:
                        return f"{base}/mcp"
                except httpx2.TransportError:
                    pass
                await asyncio.sleep(0.1)  # start-up polling only, never synchronisation
        raise BenchError(f"{self.name} not ready after {START_SECONDS}s")

    def rss_mb(self) -> float:
        if self.process is None:
            return 0.0
        return float(psutil.Process(self.process.pid).memory_info().rss) / 2**20

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def _crawl(
    endpoint: str, token: str | None, session_id: uuid.UUID, agents: int, seconds: float, seed: int
) -> tuple[float, int, dict[str, list[float]]]:
    """``agents`` agents crawl the session for ``seconds``: elapsed, pages done, latencies."""
    latencies: dict[str, list[float]] = {tool: [] for tool in TOOLS}
    pages_done = 0
    ready = 0
    all_ready = asyncio.Event()
    go = asyncio.Event()
    sid = str(session_id)
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def timed(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        result = await call_tool(client, tool, arguments)
        latencies[tool].append((time.perf_counter() - started) * 1000)
        return result

    async def agent(index: int) -> None:
        nonlocal pages_done, ready
        rng = random.Random(seed * 1000 + index)
        async with (
            httpx2.AsyncClient(headers=headers, timeout=120) as http,
            Client(streamable_http_client(endpoint, http_client=http)) as client,
        ):
            ready += 1
            if ready == agents:
                all_ready.set()
            await go.wait()
            while watch.seconds < seconds:
                claimed = await timed(
                    client, "claim_pages_to_crawl", {"session_id": sid, "limit": BATCH}
                )
                if not claimed["items"]:
                    return
                for page in claimed["items"]:
                    for title in BUG_TITLES[: rng.choice((0, 1, 1, 2))]:
                        await timed(
                            client,
                            "create_bug",
                            {
                                "session_id": sid,
                                "page_id": page["id"],
                                "category": "ui_ux",
                                "priority": "medium",
                                "title": title,
                                "description": "Seen by the simulated agent.",
                                "steps_to_reproduce": ["Open the page"],
                                "confidence": 0.7,
                            },
                        )
                    await timed(
                        client,
                        "mark_analyzed",
                        {
                            "page_id": page["id"],
                            "claim_token": claimed["claim_token"],
                            "title": "A page",
                            "status_code": 200,
                            "response_time_ms": rng.randrange(80, 900),
                            "analysis_result": {"links": rng.randrange(40), "ok": True},
                        },
                    )
                    pages_done += 1

    watch = Stopwatch()
    tasks = [asyncio.create_task(agent(i)) for i in range(agents)]
    ready_wait = asyncio.create_task(all_ready.wait())
    await asyncio.wait([ready_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if not all_ready.is_set():
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise BenchError("an agent failed to connect")
    watch.started = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    return watch.seconds, pages_done, latencies


async def _sample_rss(server: ServerProcess, peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], server.rss_mb())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.2)


async def run(ctx: BenchContext) -> WorkloadResult:
    sizes = ctx.sizes
    result = WorkloadResult(KEY, TITLE)
    url: URL = await ctx.postgres.create_database("e2e")
    conn = await connect(url)
    token = secrets.token_urlsafe(32)
    workdir = ctx.workdir / "e2e"
    bughive = ServerProcess(
        "bughive-server",
        [sys.executable, "-m", "bughive_mcp", "serve", "--transport", "http"],
        {"DATABASE_URL": sqlalchemy_url_text(url), "BUGHIVE_AUTH_TOKEN": token},
        workdir,
    )
    floor = ServerProcess(
        "floor-server",
        [sys.executable, "-m", "bench.floor_server", "--database-url", sqlalchemy_url_text(url)],
        {},
        workdir,
    )
    per_agents: dict[int, tuple[list[Metrics], list[Metrics]]] = {
        n: ([], []) for n in sizes.e2e_agents
    }
    try:
        generator = DataGenerator(conn, ctx.seed, ctx.generation)
        sessions: list[uuid.UUID] = []
        for _ in range(2 * ctx.repeats * len(sizes.e2e_agents)):
            session_id = await generator.session()
            await generator.pages(session_id, sizes.e2e_frontier, label="e2e frontier")
            sessions.append(session_id)
        await generator.settle(ctx.sizes.checkpoint_after_load)
        bases = {"bughive": bughive.launch(_free_port()), "floor": floor.launch(_free_port())}
        endpoints = {
            "bughive": await bughive.wait_ready(bases["bughive"]),
            "floor": await floor.wait_ready(bases["floor"]),
        }
        servers = {"bughive": bughive, "floor": floor}
        tokens = {"bughive": token, "floor": None}
        fresh = iter(sessions)
        bar = progress(len(sessions), "6. end to end", unit="run")
        try:
            for repeat in range(ctx.repeats):
                for agents in sizes.e2e_agents:
                    sides = ["bughive", "floor"] if repeat % 2 == 0 else ["floor", "bughive"]
                    for side in sides:
                        peak = [servers[side].rss_mb()]
                        stop = asyncio.Event()
                        sampler = asyncio.create_task(_sample_rss(servers[side], peak, stop))
                        try:
                            elapsed, pages, latencies = await _crawl(
                                endpoints[side],
                                tokens[side],
                                next(fresh),
                                agents,
                                sizes.e2e_seconds,
                                ctx.seed,
                            )
                        finally:
                            stop.set()
                            await sampler
                        if pages == 0:
                            raise BenchError(f"{side}: no page was crawled")
                        metrics: Metrics = {"pages_per_second": pages / elapsed, "rss_mb": peak[0]}
                        for tool, values in latencies.items():
                            metrics[f"{tool}_p50"] = percentile(values, 50)
                            metrics[f"{tool}_p99"] = percentile(values, 99)
                        per_agents[agents][0 if side == "bughive" else 1].append(metrics)
                        bar.update(1)
        finally:
            bar.close()
    finally:
        bughive.stop()
        floor.stop()
        await conn.close()
        await ctx.postgres.drop_database(url)
    for agents, (ours, theirs) in per_agents.items():
        label = f"{agents} agent{'s' if agents > 1 else ''}"
        result.rows.append(
            compare(
                f"pages/s, {label}",
                "pages/s",
                ours,
                theirs,
                "pages_per_second",
                higher_is_better=True,
            )
        )
        for tool in TOOLS:
            for q in ("p50", "p99"):
                result.rows.append(
                    compare(f"{tool} {q}, {label}", "ms", ours, theirs, f"{tool}_{q}")
                )
        result.rows.append(compare(f"server peak RSS, {label}", "MiB", ours, theirs, "rss_mb"))
    result.facts = {
        "seconds_per_run": sizes.e2e_seconds,
        "claim_batch": BATCH,
        "bugs_per_page": "0, 1, 1 or 2 (seeded)",
        "think_time": 0,
        "server_logs": str(workdir),
    }
    return result
