"""3. Frontier throughput: claims/s with 1, 2, 4, 8 concurrent workers on 200,000 pending
pages — ``PageRepository.claim_pages_to_crawl(limit=10)`` in a single-statement unit of work
(autocommit, as the tool runs it), vs a raw single-statement ``UPDATE … FOR UPDATE SKIP LOCKED`` claim loop on
asyncpg. Target: ≥ 0.7x raw. Every run checks that no page was handed out twice.

The frontier is generated once; before each (repeat, worker count, side) run the pages the
previous run claimed go back to ``discovered`` and the table is vacuumed, so every run starts
from the same 200,000 pending pages without dead rows. A run ends when the frontier is empty
or after ``frontier_seconds``; claims/s counts claims that returned pages.
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from bench.context import BenchContext
from bench.datagen import DataGenerator
from bench.floor import RELEASE_CLAIMS, RawSql
from bench.harness import Metrics, Stopwatch, Target, WorkloadResult, compare, progress
from bench.postgres import asyncpg_dsn
from bench.workloads.common import BenchError, connect
from db.connection.database import Database
from db.repositories import PageRepository

KEY = "frontier"
TITLE = "3. frontier claims"

Claim = Callable[[], Awaitable[list[uuid.UUID]]]


async def _workers(
    count: int, seconds: float, claim_for: Callable[[int], Claim]
) -> tuple[float, list[uuid.UUID], int]:
    """``count`` workers claiming until the frontier is empty or time is up: elapsed seconds,
    every page id handed out, and the number of non-empty claims."""
    claimed: list[uuid.UUID] = []
    claims = 0
    watch = Stopwatch()

    async def worker(index: int) -> None:
        nonlocal claims
        claim = claim_for(index)
        while watch.seconds < seconds:
            ids = await claim()
            if not ids:
                return
            claims += 1
            claimed.extend(ids)

    await asyncio.gather(*(worker(i) for i in range(count)))
    return watch.seconds, claimed, claims


async def run(ctx: BenchContext) -> WorkloadResult:
    sizes = ctx.sizes
    result = WorkloadResult(KEY, TITLE)
    url = await ctx.postgres.create_database("frontier")
    conn = await connect(url)
    # Both sides hold as many connections as the most workers: the floor's asyncpg pool is
    # fixed at that size, and a SQLAlchemy pool smaller than the concurrency closes and reopens
    # its overflow connections all the time (docs/scaling.md) — a sizing mistake, not a cost
    # of the product.
    database = Database(
        ctx.database_config(url).model_copy(update={"pool_size": max(sizes.frontier_workers)})
    )
    pool = await asyncpg.create_pool(
        asyncpg_dsn(url), min_size=max(sizes.frontier_workers), max_size=max(sizes.frontier_workers)
    )
    generator = DataGenerator(conn, ctx.seed, ctx.generation)
    double_claims = 0
    lost_or_extra = 0
    per_workers: dict[int, tuple[list[Metrics], list[Metrics]]] = {
        k: ([], []) for k in sizes.frontier_workers
    }
    runs = ctx.repeats * len(sizes.frontier_workers) * 2
    bar = progress(runs, "3. frontier", unit="run")
    try:
        session_id = await generator.session()
        await generator.pages(session_id, sizes.frontier_pending, label="frontier")

        async def reset_frontier() -> None:
            await conn.execute(RELEASE_CLAIMS, session_id)
            await generator.settle(ctx.sizes.checkpoint_after_load)

        def bughive_claim(session_id: uuid.UUID) -> Callable[[int], Claim]:
            def make(_: int) -> Claim:
                async def claim() -> list[uuid.UUID]:
                    async with database.session() as s:  # as the tool
                        got = await PageRepository(s).claim_pages_to_crawl(
                            session_id, limit=sizes.claim_limit
                        )
                    return [item.id for item in got.items]

                return claim

            return make

        def raw_claim(session_id: uuid.UUID) -> Callable[[int], Claim]:
            def make(_: int) -> Claim:
                async def claim() -> list[uuid.UUID]:
                    async with pool.acquire() as connection:
                        rows = await RawSql(connection).claim(session_id, sizes.claim_limit)
                    return [row["id"] for row in rows]

                return claim

            return make

        for repeat in range(ctx.repeats):
            for workers in sizes.frontier_workers:
                sides = [("bughive", bughive_claim), ("raw", raw_claim)]
                if repeat % 2:
                    sides.reverse()
                for side, claim_for in sides:
                    await reset_frontier()
                    elapsed, claimed, claims = await _workers(
                        workers, sizes.frontier_seconds, claim_for(session_id)
                    )
                    duplicates = len(claimed) - len(set(claimed))
                    in_db = await conn.fetchval(
                        "SELECT count(*) FROM pages WHERE session_id = $1 AND status = 'crawling'",
                        session_id,
                    )
                    double_claims += duplicates
                    lost_or_extra += abs(in_db - len(set(claimed)))
                    metrics = {
                        "claims_per_second": claims / elapsed,
                        "pages_per_second": len(claimed) / elapsed,
                        "drained": float(len(set(claimed)) == sizes.frontier_pending),
                    }
                    per_workers[workers][0 if side == "bughive" else 1].append(metrics)
                    bar.update(1)
    finally:
        bar.close()
        await pool.close()
        await database.close()
        await conn.close()
        await ctx.postgres.drop_database(url)
    if double_claims or lost_or_extra:
        # Recorded, and fatal: a frontier that hands a page out twice has no throughput to speak of.
        result.facts["double_claims"] = double_claims
        raise BenchError(
            f"frontier: {double_claims} double claims, {lost_or_extra} pages lost or extra"
        )
    for workers, (ours, theirs) in per_workers.items():
        result.rows.append(
            compare(
                f"claims/s, {workers} worker{'s' if workers > 1 else ''}",
                "claims/s",
                ours,
                theirs,
                "claims_per_second",
                higher_is_better=True,
                target=Target(">=", 0.7),
                note=f"drained the frontier in {sum(m['drained'] for m in ours):.0f}/"
                f"{len(ours)} BugHive and {sum(m['drained'] for m in theirs):.0f}/"
                f"{len(theirs)} raw runs",
            )
        )
    result.facts.update(
        {
            "double_claims": double_claims,
            "pages_lost_or_extra": lost_or_extra,
            "pending_pages": sizes.frontier_pending,
            "claim_limit": sizes.claim_limit,
            "seconds_cap_per_run": sizes.frontier_seconds,
        }
    )
    return result
