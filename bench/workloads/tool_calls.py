"""1. Tool-call overhead: ``get_pages_to_crawl(limit=10)`` and ``create_bug`` through the
in-memory MCP client, vs the floor = a trivial tool over the same client + the same SQL through
raw asyncpg (same statements, one transaction). Target: ≤ 1.3x the sum.

Each is also compared, without a target, with the two floors composed: the trivial tool
awaiting the same SQL in one call (``bench.floor.composed_server``) — what any tool running
that SQL costs at least, so the ratio to it is BugHive's own share."""

import itertools
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from mcp import Client

from bench.context import BenchContext
from bench.datagen import DataGenerator
from bench.floor import RawSql, composed_server, trivial_server
from bench.harness import Metrics, Row, Target, WorkloadResult, median, progress, side_by_side
from bench.workloads.common import call_tool, connect, timed_loop

KEY = "tool_call_overhead"
TITLE = "1. tool-call overhead"
TARGET = Target("<=", 1.3)

STEPS = ["Open the page at 375 px wide", "Scroll to the price block"]
EVIDENCE = [{"type": "screenshot", "url": "https://cdn.shop.example/shots/price.png"}]


def _row(name: str, ours: list[Metrics], theirs: list[Metrics]) -> Row:
    """BugHive's mean per call vs the sum of the two floors, each a median over repeats."""
    mine = [m["mean_ms"] for m in ours]
    base = [m["tool_ms"] + m["sql_ms"] for m in theirs]
    tool = median([m["tool_ms"] for m in theirs])
    sql = median([m["sql_ms"] for m in theirs])
    p99 = median([m["p99_ms"] for m in ours])
    return Row(
        name=name,
        unit="ms/call",
        bughive=median(mine),
        floor=median(base),
        target=TARGET,
        bughive_runs=mine,
        floor_runs=base,
        note=f"floor = trivial tool {tool:.3f} ms + raw SQL {sql:.3f} ms; BugHive p99 {p99:.2f} ms",
    )


def _composed_row(name: str, ours: list[Metrics], theirs: list[Metrics]) -> Row:
    """BugHive's mean per call vs the trivial tool running the same SQL in one call."""
    mine = [m["mean_ms"] for m in ours]
    base = [m["composed_ms"] for m in theirs]
    apart = median([m["tool_ms"] + m["sql_ms"] for m in theirs])
    composed = median(base)
    return Row(
        name=f"{name} vs trivial tool running the same SQL",
        unit="ms/call",
        bughive=median(mine),
        floor=composed,
        bughive_runs=mine,
        floor_runs=base,
        note=f"the floors in one call cost {composed / apart:.2f}x their sum measured apart",
    )


async def run(ctx: BenchContext) -> WorkloadResult:
    sizes = ctx.sizes
    result = WorkloadResult(KEY, TITLE)
    url = await ctx.postgres.create_database("tools")
    conn = await connect(url)
    try:
        generator = DataGenerator(conn, ctx.seed, ctx.generation)
        session_id = await generator.session()
        pages = await generator.pages(session_id, sizes.tool_frontier, label="tool-call frontier")
        await generator.settle(ctx.sizes.checkpoint_after_load)
        raw = RawSql(conn)
        page_ids = itertools.cycle(pages.ids)
        sid = str(session_id)

        # --- create_bug: a new bug each call (page, upsert + counter, occurrence) ---
        def bug_arguments(page_id: uuid.UUID) -> dict[str, Any]:
            return {
                "session_id": sid,
                "page_id": str(page_id),
                "category": "ui_ux",
                "priority": "high",
                "title": "Price overlaps the add-to-cart button",
                "description": "On narrow screens the price label covers the button.",
                "steps_to_reproduce": STEPS,
                "evidence": EVIDENCE,
                "confidence": 0.9,
                "group_by": "page",  # one bug per page: every call files a new one
            }

        async def floor_pages() -> None:
            assert len(await raw.get_pages_to_crawl(session_id, 10)) == 10

        steps_json, evidence_json = json.dumps(STEPS), json.dumps(EVIDENCE)

        async def floor_bug_sql() -> None:
            arguments = bug_arguments(next(page_ids))
            await raw.create_bug(
                session_id,
                uuid.UUID(arguments["page_id"]),
                uuid.uuid4().hex * 2,
                category=arguments["category"],
                priority=arguments["priority"],
                title=arguments["title"],
                description=arguments["description"],
                steps_json=steps_json,
                evidence_json=evidence_json,
                confidence=arguments["confidence"],
            )

        async with (
            Client(ctx.server(url)) as client,
            Client(trivial_server()) as floor_client,
            Client(composed_server(floor_pages)) as pages_floor_client,
            Client(composed_server(floor_bug_sql)) as bug_floor_client,
        ):

            async def ping(index: int) -> None:
                await call_tool(floor_client, "ping", {"n": index})

            # --- get_pages_to_crawl(limit=10) ---
            async def bughive_get() -> Metrics:
                async def step(index: int) -> None:
                    found = await call_tool(
                        client, "get_pages_to_crawl", {"session_id": sid, "limit": 10}
                    )
                    assert len(found["items"]) == 10

                return await timed_loop(sizes.tool_calls, sizes.tool_warmup, step)

            async def floors(sql: Callable[[], Awaitable[None]], composed: Client) -> Metrics:
                """The two floors apart, then together in one call."""

                async def in_one_call(index: int) -> None:
                    await call_tool(composed, "ping", {"n": index})

                tool = await timed_loop(sizes.tool_calls, sizes.tool_warmup, ping)
                alone = await timed_loop(sizes.tool_calls, sizes.tool_warmup, lambda _: sql())
                both = await timed_loop(sizes.tool_calls, sizes.tool_warmup, in_one_call)
                return {
                    "tool_ms": tool["mean_ms"],
                    "sql_ms": alone["mean_ms"],
                    "composed_ms": both["mean_ms"],
                }

            async def floor_get() -> Metrics:
                return await floors(floor_pages, pages_floor_client)

            async def bughive_bug() -> Metrics:
                async def step(index: int) -> None:
                    filed = await call_tool(client, "create_bug", bug_arguments(next(page_ids)))
                    assert filed["created"], filed

                return await timed_loop(sizes.tool_calls, sizes.tool_warmup, step)

            async def floor_bug() -> Metrics:
                return await floors(floor_bug_sql, bug_floor_client)

            bar = progress(4 * ctx.repeats, "1. tool calls", unit="run")
            try:
                ours, theirs = await side_by_side(ctx.repeats, bughive_get, floor_get, bar=bar)
                result.rows.append(_row("get_pages_to_crawl(limit=10)", ours, theirs))
                result.rows.append(_composed_row("get_pages_to_crawl", ours, theirs))
                ours, theirs = await side_by_side(ctx.repeats, bughive_bug, floor_bug, bar=bar)
                result.rows.append(_row("create_bug (new bug)", ours, theirs))
                result.rows.append(_composed_row("create_bug", ours, theirs))
            finally:
                bar.close()
        result.facts = {
            "calls_per_repeat": sizes.tool_calls,
            "frontier_pages": sizes.tool_frontier,
            "client": "mcp.Client(server) in-memory, direct dispatch (protocol 2026-07-28)",
        }
    finally:
        await conn.close()
        await ctx.postgres.drop_database(url)
    return result
