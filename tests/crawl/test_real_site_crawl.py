"""Eight rule-based workers crawl a generated documentation site through the MCP tools, once
with the separate tools and once with finish_page (issue 18): every reachable page is analysed
exactly once, broken links end in error, nothing off-site or duplicated is stored, no conflict
surfaces, fencing refuses every tokenless finish, each defect is one bug, and the session's
counters equal its rows.

The crawl runs once per loop (a module fixture) and each test checks one of those facts on
what it left: the crawler's own figures, the site's request log and the rows in the database.
"""

from collections import Counter
from dataclasses import dataclass
from typing import Any

import anyio
import asyncpg
import pytest
from mcp import Client
from sqlalchemy.engine import URL

from bughive_mcp.server import BugHiveServer
from tests.bughive_mcp.conftest import make_server
from tests.conftest import TABLES, asyncpg_dsn
from tests.crawl.crawler import (
    MISSING_ALT_TITLE,
    PLACEHOLDER_TITLE,
    CrawlResult,
    Mode,
    crawl,
    open_session,
)
from tests.crawl.site import OFFSITE, SECTIONS, DocSite, SiteServer, serve

SITE_PAGES = 80  # documentation pages; with the home page, index and section indexes: 88
INDEX_LINKS = 20_000
WORKERS = 8
CLAIM_LIMIT = 4  # ~100 pages spread over all 8 workers: more interleavings
CONFIG = {"max_pages": 10_000, "max_depth": 10}
CRAWL_SECONDS = 60


@dataclass(frozen=True, slots=True)
class StoredPage:
    status: str
    attempts: int
    status_code: int | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class StoredBug:
    title: str
    category: str
    occurrences: int  # the bug's counter
    pages: frozenset[str]  # URLs of its bug_occurrences rows


@dataclass(frozen=True, slots=True)
class Crawled:
    site: SiteServer
    result: CrawlResult
    pages: dict[str, StoredPage]
    bugs: list[StoredBug]
    session: dict[str, Any]

    def urls_with_status(self, status: str) -> set[str]:
        return {url for url, page in self.pages.items() if page.status == status}


async def read_rows(
    url: URL, session_id: str
) -> tuple[dict[str, StoredPage], list[StoredBug], dict[str, Any]]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        pages = await conn.fetch(
            "SELECT url, status, attempts, status_code, error_message FROM pages"
            " WHERE session_id = $1",
            session_id,
        )
        bugs = await conn.fetch(
            "SELECT b.title, b.category, b.occurrences,"
            " array_remove(array_agg(p.url), NULL) AS pages"
            " FROM bugs b LEFT JOIN bug_occurrences o ON o.bug_id = b.id"
            " LEFT JOIN pages p ON p.id = o.page_id"
            " WHERE b.session_id = $1 GROUP BY b.id",
            session_id,
        )
        session = await conn.fetchrow(
            "SELECT status, pages_discovered, pages_crawled, bugs_found FROM crawl_sessions"
            " WHERE id = $1",
            session_id,
        )
    finally:
        await conn.close()
    assert session is not None
    return (
        {
            row["url"]: StoredPage(
                row["status"], row["attempts"], row["status_code"], row["error_message"]
            )
            for row in pages
        },
        [
            StoredBug(row["title"], row["category"], row["occurrences"], frozenset(row["pages"]))
            for row in bugs
        ],
        dict(session),
    )


async def empty_tables(url: URL) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for table in TABLES:
            await conn.execute(f"DELETE FROM {table}")
    finally:
        await conn.close()


async def crawl_and_read(
    server: BugHiveServer, database_url: URL, site: SiteServer, mode: Mode
) -> Crawled:
    """Set up the session, crawl it with WORKERS in-process clients, read what it stored;
    the tables are emptied afterwards, as after any test."""

    def connect() -> Client:
        return Client(server)

    try:
        with anyio.fail_after(CRAWL_SECONDS):
            async with connect() as client:
                session_id = await open_session(client, site.base_url, CONFIG)
            result = await crawl(
                connect,
                session_id,
                site.base_url,
                mode=mode,
                workers=WORKERS,
                claim_limit=CLAIM_LIMIT,
            )
        pages, bugs, session = await read_rows(database_url, session_id)
        return Crawled(site, result, pages, bugs, session)
    finally:
        await empty_tables(database_url)


@pytest.fixture(scope="module", params=list(Mode), ids=str)
def crawled(request: pytest.FixtureRequest, database_url: URL) -> Crawled:
    """One crawl per loop, on its own event loop, shared by the module's tests."""
    mode: Mode = request.param
    server = make_server(database_url)
    with serve(DocSite.build(pages=SITE_PAGES, index_links=INDEX_LINKS)) as site:
        return anyio.run(crawl_and_read, server, database_url, site, mode)


def test_the_site_is_realistic_and_the_crawl_concurrent(crawled: Crawled) -> None:
    """The facts the other tests rest on: the site has what issue 18 lists, and several
    workers held pages at once (otherwise no interleaving was tried)."""
    site = crawled.site.site
    assert len(site.html_pages) == SITE_PAGES + len(SECTIONS) + 2  # + home and index
    assert (len(site.redirects), len(site.files), site.index_links) == (5, 1, INDEX_LINKS)
    assert len(site.broken) >= 2
    assert site.offsite_links
    assert crawled.result.workers == WORKERS
    assert crawled.result.peak_workers_busy > 1


def test_every_reachable_page_is_analyzed_exactly_once(crawled: Crawled) -> None:
    reachable = crawled.site.reachable_urls

    assert crawled.urls_with_status("analyzed") == reachable
    assert crawled.result.analyzed == Counter(dict.fromkeys(reachable, 1))
    assert {url: crawled.pages[url].attempts for url in reachable} == dict.fromkeys(reachable, 1)
    fetches = crawled.site.fetches()
    assert {path: fetches[path] for path in crawled.site.site.reachable} == dict.fromkeys(
        crawled.site.site.reachable, 1
    )


def test_redirects_and_files_are_analyzed_with_their_status(crawled: Crawled) -> None:
    site = crawled.site
    codes = {path: crawled.pages[site.url(path)].status_code for path in site.site.redirects}
    assert codes == dict.fromkeys(site.site.redirects, 301)
    assert {crawled.pages[url].status_code for url in site.urls(site.site.files)} == {200}


def test_broken_links_end_in_error_with_their_http_status(crawled: Crawled) -> None:
    errored = {
        url: page.error_message for url, page in crawled.pages.items() if page.status == "error"
    }

    assert errored == dict.fromkeys(crawled.site.broken_urls, "HTTP 404")
    assert crawled.result.errored == Counter(dict.fromkeys(crawled.site.broken_urls, 1))


def test_fragments_tracking_variants_and_offsite_links_add_no_pages(crawled: Crawled) -> None:
    assert set(crawled.pages) == crawled.site.reachable_urls | crawled.site.broken_urls
    assert not [url for url in crawled.pages if url.startswith(OFFSITE)]


def test_no_conflict_or_unexpected_error_surfaces(crawled: Crawled) -> None:
    result = crawled.result

    assert result.surfaced_errors == []
    assert result.conflicts == 0
    assert {tool: stats.errors for tool, stats in result.tools.items() if stats.errors} == {}


def test_no_finish_without_the_claim_token_is_accepted(crawled: Crawled) -> None:
    result = crawled.result

    assert result.tokenless_attempts == result.workers_with_pages >= 1
    assert (result.tokenless_refused, result.tokenless_accepted) == (
        result.tokenless_attempts,
        0,
    )


def test_the_site_wide_defect_is_one_bug_with_an_occurrence_per_html_page(
    crawled: Crawled,
) -> None:
    html_pages = crawled.site.html_urls

    [bug] = [bug for bug in crawled.bugs if bug.title == MISSING_ALT_TITLE]

    assert (bug.category, bug.occurrences) == ("ui_ux", len(html_pages))
    assert bug.pages == html_pages


def test_the_one_page_defect_is_one_bug_with_one_occurrence(crawled: Crawled) -> None:
    [bug] = [bug for bug in crawled.bugs if bug.title == PLACEHOLDER_TITLE]

    assert bug.occurrences == 1
    assert bug.pages == {crawled.site.one_page_defect_url}
    assert len(crawled.bugs) == 2


def test_session_counters_equal_the_rows(crawled: Crawled) -> None:
    session = crawled.session

    assert session["status"] == "completed"
    assert (session["pages_discovered"], session["pages_crawled"], session["bugs_found"]) == (
        len(crawled.pages),
        len(crawled.urls_with_status("analyzed")),
        len(crawled.bugs),
    )
