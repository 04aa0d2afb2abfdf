"""7. Agent economy (issue 18): what the crawl loop costs an LLM agent per analysed page —
tool calls (each one a model turn), argument bytes and answer bytes (context) — and pages/s.

A generated documentation site (``tests.crawl.site``: a nav bar on every page, fragments,
``../`` links, tracking variants, a 20,000-link index, 404s, redirects, a PDF, a site-wide
defect) is served on loopback and crawled to the end by 8 rule-based agents
(``tests.crawl.crawler``) through the in-process MCP client, claiming 10 pages at a time:
once with ``finish_page`` (claim → fetch → finish_page) and once with the separate tools
(claim → fetch → bulk_create_pages → create_bug per finding → mark_analyzed). Each repeat
crawls a fresh session; the two loops alternate which goes first.

Each row puts the two loops side by side: the "BugHive" column is the loop the row names, the
"floor" column the other loop, so the ratio is what choosing one loop over the other changes.
Targets (issue 18): finish_page ≤ 1.3 calls and ≤ 300 answer bytes per analysed page; the
separate tools ≤ 1,000 answer bytes per page.
"""

from typing import Any

from mcp import Client

from bench.context import BenchContext
from bench.harness import Metrics, Target, WorkloadResult, compare, progress, side_by_side
from bench.workloads.common import BenchError
from tests.crawl.crawler import CrawlResult, Mode, crawl, open_session
from tests.crawl.site import DocSite, serve

KEY = "agent_economy"
TITLE = "7. agent economy (calls and bytes per analysed page)"
CLAIM_LIMIT = 10
CONFIG = {"max_pages": 100_000, "max_depth": 20}


def _metrics(result: CrawlResult) -> Metrics:
    if result.surfaced_errors or result.tokenless_accepted:
        raise BenchError(
            f"the {result.mode} crawl surfaced {len(result.surfaced_errors)} error(s) and "
            f"accepted {result.tokenless_accepted} tokenless finish(es): "
            f"{result.surfaced_errors[:3]}"
        )
    return {
        "calls": result.per_analyzed_page(result.calls),
        "argument_bytes": result.per_analyzed_page(result.argument_bytes),
        "answer_bytes": result.per_analyzed_page(result.answer_bytes),
        "pages_per_second": result.pages_per_second,
        "pages_analyzed": float(result.pages_analyzed),
    }


async def run(ctx: BenchContext) -> WorkloadResult:
    sizes = ctx.sizes
    result = WorkloadResult(KEY, TITLE)
    url = await ctx.postgres.create_database("economy")
    site = DocSite.build(pages=sizes.economy_pages, index_links=sizes.economy_index_links)
    server = ctx.server(url)
    bar = progress(2 * ctx.repeats, "7. agent economy", unit="crawl")

    def loop(mode: Mode) -> Any:
        async def one_crawl() -> Metrics:
            with serve(site) as web:
                async with Client(server) as setup:
                    session_id = await open_session(setup, web.base_url, CONFIG)
                crawled = await crawl(
                    lambda: Client(server),
                    session_id,
                    web.base_url,
                    mode=mode,
                    workers=sizes.economy_workers,
                    claim_limit=CLAIM_LIMIT,
                )
            if crawled.pages_analyzed != len(web.reachable_urls):
                raise BenchError(
                    f"the {mode} crawl analysed {crawled.pages_analyzed} of "
                    f"{len(web.reachable_urls)} reachable pages"
                )
            return _metrics(crawled)

        return one_crawl

    try:
        ours, theirs = await side_by_side(
            ctx.repeats, loop(Mode.FINISH_PAGE), loop(Mode.SEPARATE), bar=bar
        )
    finally:
        bar.close()
    other = "floor column: the other loop"
    result.rows = [
        compare(
            "calls / page, finish_page",
            "calls",
            ours,
            theirs,
            "calls",
            target=Target("<=", 1.3, applies_to="bughive", unit=""),
            note=f"{other} (separate tools)",
        ),
        compare(
            "answer bytes / page, finish_page",
            "B",
            ours,
            theirs,
            "answer_bytes",
            target=Target("<=", 300, applies_to="bughive", unit=" B"),
            note=f"{other} (separate tools)",
        ),
        compare(
            "answer bytes / page, separate tools",
            "B",
            theirs,
            ours,
            "answer_bytes",
            target=Target("<=", 1000, applies_to="bughive", unit=" B"),
            note=f"{other} (finish_page)",
        ),
        compare(
            "argument bytes / page, finish_page",
            "B",
            ours,
            theirs,
            "argument_bytes",
            note=f"{other} (separate tools)",
        ),
        compare(
            "pages/s, finish_page",
            "pages/s",
            ours,
            theirs,
            "pages_per_second",
            higher_is_better=True,
            note=f"{other} (separate tools); 8 agents, in process",
        ),
    ]
    result.facts = {
        "site_pages": len(site.reachable),
        "index_links": sizes.economy_index_links,
        "workers": sizes.economy_workers,
        "claim_limit": CLAIM_LIMIT,
        "pages_analyzed": ours[0]["pages_analyzed"],
    }
    return result
