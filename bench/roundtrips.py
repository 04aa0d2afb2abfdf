"""``python -m bench.roundtrips``: the statements one call of each hot tool, and of the read tools
an agent triages with, sends to PostgreSQL.

Round trips are what BugHive's tool calls cost on a busy machine (docs/benchmarks.md). This
diagnostic runs the real server in process on a throwaway embedded PostgreSQL, calls each tool
once after a warm-up, and lists what reached the server: simple queries (``BEGIN``, the pool's
ping, ``COMMIT``) through asyncpg's query logger, prepared statements by wrapping
``PreparedStatement.fetch`` (how SQLAlchemy's asyncpg dialect runs every statement).
"""

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import asyncpg.prepared_stmt
from mcp import Client
from sqlalchemy import event

import db.connection.database
from bench.context import QUICK, BenchContext
from bench.datagen import DataGenerator, GenerationLog
from bench.postgres import BenchPostgres, asyncpg_dsn
from bench.workloads.common import call_tool

SENT: list[str] = []


def _short(sql: str) -> str:
    return " ".join(sql.split())[:100]


def _record_simple(record: Any) -> None:
    SENT.append("simple    " + _short(record.query))


def _install() -> None:
    """Record every statement of every engine the server creates from now on."""
    original_fetch = asyncpg.prepared_stmt.PreparedStatement.fetch

    async def fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
        rows = await original_fetch(self, *args, **kwargs)
        # recorded on completion, like the query logger's simple queries: the order is right
        SENT.append("prepared  " + _short(self.get_query()))
        return rows

    asyncpg.prepared_stmt.PreparedStatement.fetch = fetch
    original_init = db.connection.database.Database.__init__

    def init(self: db.connection.database.Database, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)

        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.driver_connection.add_query_logger(_record_simple)

        event.listen(self.engine.sync_engine, "connect", on_connect)

    db.connection.database.Database.__init__ = init  # type: ignore[method-assign]


async def trace() -> None:
    _install()
    postgres = await anyio.to_thread.run_sync(BenchPostgres.start_embedded)
    try:
        url = await postgres.create_database("roundtrips")
        conn = await asyncpg.connect(asyncpg_dsn(url))
        generator = DataGenerator(conn, 5, GenerationLog())
        session_id = await generator.session()
        pages = await generator.pages(session_id, 200)
        await conn.close()
        ctx = BenchContext(postgres, QUICK, 1, 5, GenerationLog(), Path("."))
        sid = str(session_id)
        async with Client(ctx.server(url)) as client:
            claimed = await call_tool(client, "claim_pages_to_crawl", {"session_id": sid})
            page = claimed["items"][0]
            bug = {
                "session_id": sid,
                "category": "ui_ux",
                "priority": "high",
                "title": "Broken image",
                "description": "The hero image does not load.",
            }
            calls: list[tuple[str, Callable[[int], dict[str, Any]]]] = [
                ("get_pages_to_crawl", lambda _: {"session_id": sid, "limit": 10}),
                ("claim_pages_to_crawl", lambda _: {"session_id": sid, "limit": 10}),
                ("create_bug", lambda i: {**bug, "page_id": str(pages.ids[100 + i])}),
                (
                    "mark_analyzed",
                    lambda _: {"page_id": page["id"], "claim_token": claimed["claim_token"]},
                ),
                ("get_bug_statistics", lambda _: {"session_id": sid}),
                ("get_session_statistics", lambda _: {"session_id": sid}),
                ("get_session_bugs", lambda _: {"session_id": sid}),
                ("get_high_confidence_bugs", lambda _: {"session_id": sid}),
                ("list_sessions", lambda _: {}),
                ("get_page_analytics", lambda _: {"page_id": page["id"]}),
                ("get_navigation_graph", lambda _: {"session_id": sid}),
                ("export_session_report", lambda _: {"session_id": sid}),
            ]
            for name, arguments in calls:
                if name != "mark_analyzed":  # warm-up: prepared statements, pool
                    await call_tool(client, name, arguments(0))
                SENT.clear()
                await call_tool(client, name, arguments(1))
                lines = [f"{name}: {len(SENT)} round trips", *(f"    {s}" for s in SENT)]
                sys.stdout.write("\n".join(lines) + "\n")
    finally:
        await postgres.drop_all()
        await anyio.to_thread.run_sync(postgres.stop)


def main() -> int:
    run: Callable[[], Awaitable[None]] = trace
    anyio.run(run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
