"""Runs the selected workloads on one PostgreSQL and gathers the report (a JSON-able dict)."""

import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy.engine import URL

from bench.context import FULL, QUICK, BenchContext, Sizes
from bench.datagen import GenerationLog
from bench.harness import Stopwatch, WorkloadResult
from bench.postgres import BenchPostgres
from bench.workloads import (
    agent_economy,
    bulk_discovery,
    claim_growth,
    end_to_end,
    frontier,
    statistics,
    tool_calls,
)

Workload = Callable[[BenchContext], Awaitable[WorkloadResult]]

# In issue 5's order; each can be selected by number or key.
WORKLOADS: tuple[tuple[str, Workload], ...] = (
    (tool_calls.KEY, tool_calls.run),
    (bulk_discovery.KEY, bulk_discovery.run),
    (frontier.KEY, frontier.run),
    (statistics.KEY, statistics.run),
    (claim_growth.KEY, claim_growth.run),
    (end_to_end.KEY, end_to_end.run),
    (agent_economy.KEY, agent_economy.run),
)
WORKLOAD_KEYS = tuple(key for key, _ in WORKLOADS)
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Options:
    quick: bool = False
    repeats: int = 3
    seed: int = 5
    only: Sequence[str] = ()
    server_url: URL | None = None
    stats_pages: int | None = None  # workload 4's database size, instead of the mode's
    workdir: Path | None = None
    command: list[str] = field(default_factory=list)


def sizes(options: Options) -> Sizes:
    """The mode's sizes, with the database of workload 4 resized when asked
    (``--stats-pages 10000000``: the statistics at 10 million pages)."""
    chosen = QUICK if options.quick else FULL
    if options.stats_pages is None:
        return chosen
    return replace(chosen, stats_pages=options.stats_pages)


def select(only: Sequence[str]) -> list[tuple[str, Workload]]:
    """Workloads named by key or by number (1-6); all when ``only`` is empty."""
    if not only:
        return list(WORKLOADS)
    chosen = []
    for number, (key, run) in enumerate(WORKLOADS, start=1):
        if key in only or str(number) in only:
            chosen.append((key, run))
    unknown = set(only) - set(WORKLOAD_KEYS) - {str(n) for n in range(1, len(WORKLOADS) + 1)}
    if unknown:
        raise ValueError(
            f"unknown workload(s) {sorted(unknown)}; known: {', '.join(WORKLOAD_KEYS)}"
        )
    return chosen


def _git_commit() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}{'+dirty' if dirty else ''}"


def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _load_facts() -> dict[str, Any]:
    """How busy the machine was during a workload (all processes: other engineers share it),
    since the last call."""
    return {
        "cpu_busy_percent": psutil.cpu_percent(interval=None),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }


@dataclass
class Report:
    meta: dict[str, Any]
    results: list[WorkloadResult]

    def to_json(self) -> dict[str, Any]:
        return {"meta": self.meta, "workloads": [r.to_json() for r in self.results]}


async def run_benchmarks(options: Options) -> Report:
    """Run the selected workloads and return the report. Starts a throwaway embedded
    PostgreSQL unless ``options.server_url`` names a server (whose user may CREATE DATABASE)."""
    selected = select(options.only)
    started = datetime.now(UTC)
    machine = _machine()
    total = Stopwatch()
    if options.server_url is not None:
        postgres = BenchPostgres(options.server_url)
    else:
        import anyio

        postgres = await anyio.to_thread.run_sync(BenchPostgres.start_embedded)
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="bughive-bench-work-"))
    generation = GenerationLog()
    ctx = BenchContext(
        postgres=postgres,
        sizes=sizes(options),
        repeats=options.repeats,
        seed=options.seed,
        generation=generation,
        workdir=workdir,
    )
    results: list[WorkloadResult] = []
    try:
        settings = await postgres.settings()
        for _key, run in selected:
            psutil.cpu_percent(interval=None)
            watch = Stopwatch()
            result = await run(ctx)
            result.seconds = watch.seconds
            result.facts.update(_load_facts())
            results.append(result)
    finally:
        await postgres.drop_all()
        if postgres.embedded:
            import anyio

            await anyio.to_thread.run_sync(postgres.stop)
    meta = {
        "started_at": started.isoformat(timespec="seconds"),
        "seconds": round(total.seconds, 1),
        "mode": "quick" if options.quick else "full",
        "command": options.command or sys.argv,
        "repeats": options.repeats,
        "seed": options.seed,
        "git_commit": _git_commit(),
        "machine": {**machine, "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "postgres": settings,
        "sizes": ctx.sizes.to_json(),
        "generation": generation.to_json(),
    }
    return Report(meta, results)
