"""4. Statistics at scale: ``get_bug_statistics`` and ``get_session_statistics`` (the
repository methods the tools call, in the unit of work each tool runs them in) on sessions with 1k, 10k and 100k
bugs inside a database of 1,000,000 pages, vs one hand-written SQL pass each through raw
asyncpg. Target: ≤ 1.2x on the 100k-bug session; the smaller ones show the growth."""

import uuid

from bench.context import BenchContext
from bench.datagen import MIXED_STATUSES, DataGenerator, PageSet
from bench.floor import RawSql
from bench.harness import Metrics, Target, WorkloadResult, compare, progress, side_by_side
from bench.workloads.common import BenchError, connect, timed_loop
from db.repositories import BugRepository, CrawlSessionRepository

KEY = "statistics"
TITLE = "4. statistics at scale"
TARGET = Target("<=", 1.2)


async def run(ctx: BenchContext) -> WorkloadResult:
    sizes = ctx.sizes
    result = WorkloadResult(KEY, TITLE)
    url = await ctx.postgres.create_database("stats")
    conn = await connect(url)
    database = ctx.database(url)
    try:
        generator = DataGenerator(conn, ctx.seed, ctx.generation)
        per_session = sizes.stats_pages // sizes.stats_sessions
        sessions: list[PageSet] = []
        for index in range(sizes.stats_sessions):
            session_id = await generator.session()
            sessions.append(
                await generator.pages(
                    session_id,
                    per_session,
                    statuses=MIXED_STATUSES,
                    label=f"stats pages, session {index + 1}/{sizes.stats_sessions}",
                )
            )
        by_bugs: dict[int, uuid.UUID] = {}
        for pages, bugs in zip(sessions, sizes.stats_bug_sessions, strict=False):
            await generator.bugs(pages, bugs, label=f"stats bugs ({bugs:,})")
            by_bugs[bugs] = pages.session_id
        await generator.settle(ctx.sizes.checkpoint_after_load)
        raw = RawSql(conn)
        calls, warmup = sizes.stats_calls, 2
        largest = max(by_bugs)
        bar = progress(4 * ctx.repeats * len(by_bugs), "4. statistics", unit="run")
        try:
            for bugs, session_id in sorted(by_bugs.items()):

                async def bughive_bugs(
                    session_id: uuid.UUID = session_id, bugs: int = bugs
                ) -> Metrics:
                    async def step(_: int) -> None:
                        async with database.session() as s:  # as the tool
                            stats = await BugRepository(s).get_bug_statistics(session_id)
                        if stats.total != bugs:
                            raise BenchError(f"bug statistics counted {stats.total} bugs")

                    return await timed_loop(calls, warmup, step)

                async def floor_bugs(
                    session_id: uuid.UUID = session_id, bugs: int = bugs
                ) -> Metrics:
                    async def step(_: int) -> None:
                        row = await raw.bug_statistics(session_id)
                        if row["total"] != bugs:
                            raise BenchError(f"hand SQL counted {row['total']} bugs")

                    return await timed_loop(calls, warmup, step)

                async def bughive_session(session_id: uuid.UUID = session_id) -> Metrics:
                    async def step(_: int) -> None:
                        async with database.session() as s:  # as the tool
                            stats = await CrawlSessionRepository(s).get_session_statistics(
                                session_id
                            )
                        if stats.pages_total != per_session:
                            raise BenchError(f"session statistics counted {stats.pages_total}")

                    return await timed_loop(calls, warmup, step)

                async def floor_session(session_id: uuid.UUID = session_id) -> Metrics:
                    async def step(_: int) -> None:
                        await raw.session_statistics(session_id)

                    return await timed_loop(calls, warmup, step)

                target = TARGET if bugs == largest else None
                ours, theirs = await side_by_side(ctx.repeats, bughive_bugs, floor_bugs, bar=bar)
                result.rows.append(
                    compare(
                        f"get_bug_statistics, {bugs:,} bugs",
                        "ms/call",
                        ours,
                        theirs,
                        "mean_ms",
                        target=target,
                    )
                )
                ours, theirs = await side_by_side(
                    ctx.repeats, bughive_session, floor_session, bar=bar
                )
                result.rows.append(
                    compare(
                        f"get_session_statistics, {bugs:,} bugs / {per_session:,} pages",
                        "ms/call",
                        ours,
                        theirs,
                        "mean_ms",
                        target=target,
                    )
                )
        finally:
            bar.close()
        result.facts = {
            "database_pages": per_session * sizes.stats_sessions,
            "pages_per_session": per_session,
            "bugs_per_measured_session": sorted(by_bugs),
            "calls_per_repeat": calls,
            "growth": _growth(result),
        }
    finally:
        await database.close()
        await conn.close()
        await ctx.postgres.drop_database(url)
    return result


def _growth(result: WorkloadResult) -> dict[str, dict[str, float]]:
    """Largest over smallest session, per call and side."""
    growth: dict[str, dict[str, float]] = {}
    for call in ("get_bug_statistics", "get_session_statistics"):
        rows = [row for row in result.rows if row.name.startswith(call)]
        if len(rows) >= 2:
            growth[call] = {
                "bughive": rows[-1].bughive / rows[0].bughive,
                "floor": rows[-1].floor / rows[0].floor,
            }
    return growth
