"""5. Growth of the claim: ``claim_pages_to_crawl(limit=10)`` latency (repository, one
transaction per claim, one worker) on a session with 10k pending pages and on one with 1M,
vs the raw ``SKIP LOCKED`` claim on the same sessions. Target: ≤ 1.5x growth from 10k to 1M
(an index scan of the frontier, not a pass over the session's pages).

Both sessions live in one database. Claimed pages are not handed back: each run takes
``growth_claims x 10`` pages off the front, and later runs skip past them like a real crawl."""

import uuid

from bench.context import BenchContext
from bench.datagen import DataGenerator
from bench.floor import RawSql
from bench.harness import Metrics, Row, Target, WorkloadResult, compare, progress, side_by_side
from bench.workloads.common import BenchError, connect, timed_loop
from db.repositories import PageRepository

KEY = "claim_growth"
TITLE = "5. growth of the claim"


async def run(ctx: BenchContext) -> WorkloadResult:
    sizes = ctx.sizes
    small, large = sizes.growth_pending
    result = WorkloadResult(KEY, TITLE)
    url = await ctx.postgres.create_database("growth")
    conn = await connect(url)
    database = ctx.database(url)
    try:
        generator = DataGenerator(conn, ctx.seed, ctx.generation)
        sessions: dict[int, uuid.UUID] = {}
        for pending in (small, large):
            session_id = await generator.session()
            await generator.pages(session_id, pending, label=f"growth frontier ({pending:,})")
            sessions[pending] = session_id
        await generator.settle(ctx.sizes.checkpoint_after_load)
        raw = RawSql(conn)
        rows: dict[int, tuple[list[Metrics], list[Metrics]]] = {}
        bar = progress(2 * ctx.repeats * 2, "5. claim growth", unit="run")
        try:
            for pending, session_id in sessions.items():

                async def bughive(session_id: uuid.UUID = session_id) -> Metrics:
                    async def step(_: int) -> None:
                        async with database.session() as s:
                            got = await PageRepository(s).claim_pages_to_crawl(
                                session_id, limit=sizes.claim_limit
                            )
                        if len(got.items) != sizes.claim_limit:
                            raise BenchError(f"claim returned {len(got.items)} pages")

                    return await timed_loop(sizes.growth_claims, 1, step)

                async def floor(session_id: uuid.UUID = session_id) -> Metrics:
                    async def step(_: int) -> None:
                        got = await raw.claim(session_id, sizes.claim_limit)
                        if len(got) != sizes.claim_limit:
                            raise BenchError(f"raw claim returned {len(got)} pages")

                    return await timed_loop(sizes.growth_claims, 1, step)

                rows[pending] = await side_by_side(ctx.repeats, bughive, floor, bar=bar)
        finally:
            bar.close()
        small_row = compare(
            f"claim latency, {small:,} pending", "ms/claim", *rows[small], "mean_ms"
        )
        large_row = compare(
            f"claim latency, {large:,} pending", "ms/claim", *rows[large], "mean_ms"
        )
        growth_ours = [
            b["mean_ms"] / a["mean_ms"] for a, b in zip(rows[small][0], rows[large][0], strict=True)
        ]
        growth_raw = [
            b["mean_ms"] / a["mean_ms"] for a, b in zip(rows[small][1], rows[large][1], strict=True)
        ]
        growth = Row(
            name=f"growth {large:,} / {small:,} pending",
            unit="x",
            bughive=large_row.bughive / small_row.bughive,
            floor=large_row.floor / small_row.floor,
            target=Target("<=", 1.5, applies_to="bughive"),
            bughive_runs=growth_ours,
            floor_runs=growth_raw,
            note="ratio of the medians above; runs are per-repeat ratios",
        )
        result.rows = [small_row, large_row, growth]
        result.facts = {
            "pending": [small, large],
            "claims_per_repeat": sizes.growth_claims,
            "claim_limit": sizes.claim_limit,
        }
    finally:
        await database.close()
        await conn.close()
        await ctx.postgres.drop_database(url)
    return result
