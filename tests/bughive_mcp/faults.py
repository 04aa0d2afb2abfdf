"""Fault injection through the MCP surface: a server on a database of its own with a chosen
pool, a caller that retries exactly what the server calls retryable (as an agent does), and the
figures a run reports (docs/reliability.md quotes them).

Soak size: ``BUGHIVE_SOAK_SCALE`` (default 1) multiplies the faults injected; the default run
is the size the issue asks for. ``BUGHIVE_SOAK_SEED`` replays one run's fault schedule."""

import os
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp import Client
from sqlalchemy.engine import URL

from bughive_mcp.server import BugHiveServer, build_server
from bughive_mcp.settings import ServerSettings
from db.connection.database import Database
from tests.bughive_mcp.toolcalls import assert_no_leak, call, compact_json, only_text
from tests.conftest import PostgresServer, make_config

SOAK_SCALE = max(1, int(os.environ.get("BUGHIVE_SOAK_SCALE", "1")))
SOAK_SEED = int(os.environ.get("BUGHIVE_SOAK_SEED") or random.randrange(2**32))

# What the server says when a call may simply be repeated.
RETRYABLE = re.compile(
    r"^Error executing tool \w+: (database unavailable|server busy)\b.*\bretry\b",
    re.IGNORECASE | re.DOTALL,
)
OUTCOME_UNKNOWN = "may or may not have been saved"
# A failed attempt must be reported quickly, never after a hang (research plan R2).
MAX_FAILURE_SECONDS = 5.0


@dataclass
class Figures:
    """What a fault run did and checked; printed at the end of each run."""

    name: str
    calls: int = 0
    succeeded: int = 0
    failed: int = 0
    failed_by_tool: Counter[str] = field(default_factory=Counter)
    slowest_failure_seconds: float = 0.0
    faults: int = 0
    faults_by_kind: Counter[str] = field(default_factory=Counter)
    outcomes_unknown: int = 0
    rows_checked: int = 0
    lost: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def report(self) -> str:
        parts = [
            f"calls={self.calls}",
            f"succeeded={self.succeeded}",
            f"failed_retryable={self.failed}",
            f"faults={self.faults}",
            f"rows_checked={self.rows_checked}",
            f"lost={self.lost}",
            f"outcomes_unknown={self.outcomes_unknown}",
            f"slowest_failure={self.slowest_failure_seconds:.3f}s",
        ]
        if self.faults_by_kind:
            parts.append(f"faults_by_kind={dict(sorted(self.faults_by_kind.items()))}")
        if self.failed_by_tool:
            parts.append(f"failed_by_tool={dict(sorted(self.failed_by_tool.items()))}")
        parts += [f"{key}={value}" for key, value in self.extra.items()]
        return f"[reliability] {self.name}: " + " ".join(parts)

    def print(self) -> None:
        # The figures are this test's report (docs/reliability.md); run with -s to see them.
        print(self.report())  # noqa: T201


class Progress:
    """Counts successful calls; a fault injector waits on it to pace faults by work done."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = anyio.Event()

    def advance(self) -> None:
        self.count += 1
        self._changed.set()
        self._changed = anyio.Event()

    async def reach(self, count: int) -> None:
        while self.count < count:
            await self._changed.wait()


class RetryingCaller:
    """Calls tools like a well-behaved agent: a result that says "retry" is retried at once,
    up to ``attempts`` times; any other error fails the test. Every failure is checked: quick,
    retryable, and free of driver text."""

    def __init__(self, client: Client, figures: Figures, attempts: int = 25) -> None:
        self.client = client
        self.figures = figures
        self.attempts = attempts
        self.progress = Progress()

    async def __call__(self, tool: str, /, **arguments: Any) -> dict[str, Any]:
        for _ in range(self.attempts):
            started = time.perf_counter()
            result = await call(self.client, tool, arguments)
            elapsed = time.perf_counter() - started
            self.figures.calls += 1
            text = only_text(result)
            if not result.is_error:
                self.figures.succeeded += 1
                self.progress.advance()
                structured = result.structured_content
                assert isinstance(structured, dict), structured
                assert text == compact_json(structured)
                return dict(structured)
            self.figures.failed += 1
            self.figures.failed_by_tool[tool] += 1
            self.figures.slowest_failure_seconds = max(
                self.figures.slowest_failure_seconds, elapsed
            )
            if OUTCOME_UNKNOWN in text:
                self.figures.outcomes_unknown += 1
            assert RETRYABLE.match(text), text
            assert_no_leak(text)
            assert elapsed < MAX_FAILURE_SECONDS, f"{tool} took {elapsed:.1f} s to fail"
        raise AssertionError(f"{tool} still failing after {self.attempts} attempts")


async def fresh_database(postgres_server: PostgresServer) -> URL:
    """A new database on the test server, migrated to head: a fault run owns all of it."""
    url = await postgres_server.create_database_async("bughive_faults")
    database = Database(make_config(), url=url)
    try:
        await database.init_db()
    finally:
        await database.close()
    return url


def fault_server(url: URL, **database_settings: Any) -> BugHiveServer:
    """The server as ``bughive-mcp serve`` builds it, on ``url``, with the given pool and
    timeout settings (``DatabaseConfig`` field names)."""
    settings = ServerSettings(_env_file=None, auto_migrate=False)
    config = make_config(
        database_url=url.render_as_string(hide_password=False), **database_settings
    )
    return build_server(settings, config)


async def pool_status(client: Client) -> dict[str, int]:
    """The server's pool figures, read through the health tool."""
    result = await call(client, "check_database_health", {})
    assert not result.is_error, only_text(result)
    structured = result.structured_content
    assert isinstance(structured, dict) and structured["healthy"] is True, structured
    return dict(structured["pool"])
