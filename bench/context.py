"""Sizes of the two modes, and what a workload is handed: the server, the sizes, the seed."""

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from bench.datagen import GenerationLog
from bench.postgres import BenchPostgres, sqlalchemy_url_text
from bughive_mcp.server import BugHiveServer, build_server
from bughive_mcp.settings import ServerSettings
from db.connection.config import DatabaseConfig
from db.connection.database import Database


@dataclass(frozen=True)
class Sizes:
    """Every size the workloads use. ``FULL`` is issue 5's; ``QUICK`` only proves the harness
    runs (CI), its ratios mean little."""

    # 1. tool-call overhead
    tool_calls: int
    tool_warmup: int
    tool_frontier: int
    # 2. bulk discovery
    bulk_pages: int
    # 3. frontier throughput
    frontier_pending: int
    frontier_workers: tuple[int, ...]
    frontier_seconds: float
    # 4. statistics at scale
    stats_pages: int
    stats_sessions: int
    stats_bug_sessions: tuple[int, ...]
    stats_calls: int
    # 5. growth of the claim
    growth_pending: tuple[int, int]
    growth_claims: int
    # 6. end to end over HTTP
    e2e_agents: tuple[int, ...]
    e2e_seconds: float
    e2e_frontier: int
    # 7. agent economy: a generated documentation site crawled by rule-based agents
    economy_pages: int = 500
    economy_index_links: int = 20_000
    economy_workers: int = 8
    # shared
    claim_limit: int = 10
    checkpoint_after_load: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


FULL = Sizes(
    tool_calls=500,
    tool_warmup=50,
    tool_frontier=10_000,
    bulk_pages=10_000,
    frontier_pending=200_000,
    frontier_workers=(1, 2, 4, 8),
    frontier_seconds=8.0,
    stats_pages=1_000_000,
    stats_sessions=10,
    stats_bug_sessions=(1_000, 10_000, 100_000),
    stats_calls=20,
    growth_pending=(10_000, 1_000_000),
    growth_claims=50,
    e2e_agents=(1, 4, 8),
    e2e_seconds=10.0,
    e2e_frontier=20_000,
)

QUICK = Sizes(
    tool_calls=20,
    tool_warmup=3,
    tool_frontier=300,
    bulk_pages=300,
    frontier_pending=1_000,
    frontier_workers=(1, 2, 4, 8),
    frontier_seconds=0.2,
    stats_pages=3_000,
    stats_sessions=3,
    stats_bug_sessions=(10, 100, 1_000),
    stats_calls=3,
    growth_pending=(500, 5_000),
    growth_claims=5,
    e2e_agents=(1, 2),
    e2e_seconds=0.5,
    e2e_frontier=300,
    economy_pages=24,
    economy_index_links=2_000,
    checkpoint_after_load=False,
)


@dataclass
class BenchContext:
    postgres: BenchPostgres
    sizes: Sizes
    repeats: int
    seed: int
    generation: GenerationLog
    workdir: Path

    def database_config(self, url: URL) -> DatabaseConfig:
        """The product's defaults (pool, pre-ping, statement timeout) on the bench database;
        ``BUGHIVE_DB_*`` variables still apply, a ``.env`` file does not."""
        return DatabaseConfig(_env_file=None, database_url=sqlalchemy_url_text(url))

    def database(self, url: URL) -> Database:
        return Database(self.database_config(url))

    def server(self, url: URL) -> BugHiveServer:
        """BugHive as ``bughive-mcp serve`` builds it (the database is already migrated)."""
        settings = ServerSettings(_env_file=None, auto_migrate=False)
        return build_server(settings, self.database_config(url))
