"""2. Bulk discovery: ``bulk_create_pages`` of 10,000 new pages through the in-memory MCP
client, vs asyncpg ``copy_records_to_table`` of the same rows. Target: ≥ 0.5x COPY's rows/s.

Two more rows say where the time goes: the repository alone (``PageRepository.bulk_create``,
no MCP), and the product's own ``INSERT … SELECT unnest … ON CONFLICT`` sent raw."""

import uuid

from mcp import Client

from bench.context import BenchContext
from bench.datagen import DataGenerator, new_page_rows
from bench.harness import (
    Metrics,
    Stopwatch,
    Target,
    WorkloadResult,
    compare,
    progress,
    side_by_side,
)
from bench.workloads.common import BenchError, call_tool, connect
from db.page_schemas import NewPage
from db.repositories import PageRepository

KEY = "bulk_discovery"
TITLE = "2. bulk discovery"

UNNEST_INSERT = """
INSERT INTO pages (session_id, url, depth, parent_page_id)
SELECT $1, u.url, u.depth, u.parent_page_id
FROM unnest($2::varchar[], $3::int[], $4::uuid[]) AS u(url, depth, parent_page_id)
ON CONFLICT (url, session_id) DO NOTHING
RETURNING id, url
"""


async def run(ctx: BenchContext) -> WorkloadResult:
    count = ctx.sizes.bulk_pages
    result = WorkloadResult(KEY, TITLE)
    url = await ctx.postgres.create_database("bulk")
    conn = await connect(url)
    database = ctx.database(url)
    try:
        generator = DataGenerator(conn, ctx.seed, ctx.generation)
        # Other sessions' pages, so the indexes are not empty when the batches land.
        background = await generator.session()
        await generator.pages(background, 10 * count, label="bulk background pages")
        await generator.settle(ctx.sizes.checkpoint_after_load)
        rows = new_page_rows(count, ctx.seed)
        arguments = [{"url": u, "depth": d} for u, d in rows]
        new_pages = [NewPage(url=u, depth=d) for u, d in rows]

        async with Client(ctx.server(url)) as client:

            async def quiet() -> None:
                """The same start for every timed call: the last call's rows vacuumed and
                analyzed (else autovacuum analyzes them while the next call runs, whichever
                side's it is) and written out."""
                await conn.execute("VACUUM (ANALYZE) pages")
                if ctx.sizes.checkpoint_after_load:
                    await conn.execute("CHECKPOINT")

            async def bughive() -> Metrics:
                tool_session = str(await generator.session())
                await quiet()
                watch = Stopwatch()
                created = await call_tool(
                    client, "bulk_create_pages", {"session_id": tool_session, "pages": arguments}
                )
                tool_seconds = watch.seconds
                if created["created_count"] != count:
                    raise BenchError(f"bulk_create_pages created {created['created_count']}")
                repo_session = await generator.session()
                await quiet()
                watch = Stopwatch()
                async with database.session() as s:
                    stored = await PageRepository(s).bulk_create(new_pages, session_id=repo_session)
                repo_seconds = watch.seconds
                if stored.created_count != count:
                    raise BenchError(f"bulk_create created {stored.created_count}")
                return {"tool": count / tool_seconds, "repository": count / repo_seconds}

            async def floor() -> Metrics:
                copy_session = await generator.session()
                records = [(copy_session, u, d) for u, d in rows]
                await quiet()
                watch = Stopwatch()
                await conn.copy_records_to_table(
                    "pages", records=records, columns=("session_id", "url", "depth")
                )
                copy_seconds = watch.seconds
                unnest_session = await generator.session()
                urls = [u for u, _ in rows]
                depths = [d for _, d in rows]
                parents: list[uuid.UUID | None] = [None] * count
                await quiet()
                watch = Stopwatch()
                inserted = await conn.fetch(UNNEST_INSERT, unnest_session, urls, depths, parents)
                unnest_seconds = watch.seconds
                if len(inserted) != count:
                    raise BenchError(f"unnest insert stored {len(inserted)}")
                return {"copy": count / copy_seconds, "unnest": count / unnest_seconds}

            bar = progress(2 * ctx.repeats, "2. bulk discovery", unit="run")
            try:
                ours, theirs = await side_by_side(ctx.repeats, bughive, floor, bar=bar)
            finally:
                bar.close()
        result.rows = [
            compare(
                f"bulk_create_pages tool, {count:,} pages vs COPY",
                "rows/s",
                ours,
                theirs,
                "tool",
                "copy",
                higher_is_better=True,
                target=Target(">=", 0.5),
            ),
            compare(
                "PageRepository.bulk_create (no MCP) vs COPY",
                "rows/s",
                ours,
                theirs,
                "repository",
                "copy",
                higher_is_better=True,
            ),
            compare(
                "PageRepository.bulk_create vs its INSERT…unnest sent raw",
                "rows/s",
                ours,
                theirs,
                "repository",
                "unnest",
                higher_is_better=True,
            ),
        ]
        result.facts = {"pages_per_call": count, "background_pages": 10 * count}
    finally:
        await database.close()
        await conn.close()
        await ctx.postgres.drop_database(url)
    return result
