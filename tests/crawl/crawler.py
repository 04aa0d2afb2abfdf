"""A rule-based crawler driving BugHive through the MCP client: the crawl loop an agent runs,
with rules where the model would be.

N workers, each with its own MCP client, claim pages (``claim_pages_to_crawl``), fetch them
over HTTP (redirects not followed), parse them with ``html.parser`` and finish them, in one of
two loops (:class:`Mode`): the separate tools (``bulk_create_pages`` → ``create_bug`` per
finding → ``mark_analyzed``) or ``finish_page``, one call per page. A page answering 4xx/5xx
is given up with ``mark_page_error``; a redirect is finished with its ``Location`` as its only
link; a non-HTML file is finished with its content type, without links or bugs.

It measures what an agent pays (issue 18): per tool, calls, argument bytes (the arguments as
compact JSON) and answer bytes (the result's text block); and it records every error result
as a :class:`SurfacedError`, since the normal loop expects none. Once per worker it also tries
to finish a page it holds *without* its ``claim_token``: fencing must refuse that; those
probes are counted apart, so they do not enter the economy figures.

Answers are read only for the fields an agent relies on — claim ``items[].id/url/depth``,
the claim's one ``claim_token`` and ``remaining``;
``create_session``'s ``id``; ``finish_page``'s ``status`` — so that compacting the other
answers does not break the crawler.
"""

import json
import math
import re
import time
from collections import Counter, deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import anyio
import httpx2
from mcp import Client
from mcp.types import CallToolResult, TextContent

Connect = Callable[[], AbstractAsyncContextManager[Client]]

MISSING_ALT_TITLE = "Image without alt text"
PLACEHOLDER_TITLE = "Placeholder text left on the page"
_PLACEHOLDER = re.compile(r"lorem ipsum", re.IGNORECASE)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
CLAIM_ERRORS_BEFORE_GIVING_UP = 3


class Mode(StrEnum):
    SEPARATE = "separate"  # bulk_create_pages → create_bug per finding → mark_analyzed
    FINISH_PAGE = "finish_page"  # finish_page: one call per page


@dataclass(frozen=True, slots=True)
class Finding:
    """A bug found on a page, in ``create_bug``'s fields (without session and page)."""

    category: str
    priority: str
    title: str
    description: str

    def fields(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "priority": self.priority,
            "title": self.title,
            "description": self.description,
        }


class _PageParser(HTMLParser):
    """The facts the rules need: the title, every ``<a href>`` as written, ``<img>`` elements
    without ``alt`` and whether the text holds placeholder words."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.hrefs: list[str] = []
        self.images_without_alt = 0
        self.placeholder = False
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "a" and attributes.get("href") is not None:
            self.hrefs.append(str(attributes["href"]))
        elif tag == "img" and "alt" not in attributes:
            self.images_without_alt += 1
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif _PLACEHOLDER.search(data):
            self.placeholder = True


@dataclass(frozen=True, slots=True)
class PageAnalysis:
    title: str | None
    links: list[str]  # absolute, as found: repeats and fragments kept
    findings: list[Finding]


def analyze_html(url: str, text: str) -> PageAnalysis:
    """The rules: an ``<img>`` without ``alt`` (the same finding, and title, on every page it
    is on) and placeholder text. Links are resolved against ``url``; only http(s) ones kept."""
    parser = _PageParser()
    parser.feed(text)
    parser.close()
    findings = []
    if parser.images_without_alt:
        findings.append(
            Finding(
                "ui_ux",
                "medium",
                MISSING_ALT_TITLE,
                "An <img> has no alt attribute: screen readers announce its file name.",
            )
        )
    if parser.placeholder:
        findings.append(
            Finding(
                "ui_ux",
                "low",
                PLACEHOLDER_TITLE,
                "The page shows 'Lorem ipsum' placeholder text instead of its content.",
            )
        )
    links = [urljoin(url, href.strip()) for href in parser.hrefs]
    return PageAnalysis(
        title=parser.title.strip() or None,
        links=[link for link in links if urlsplit(link).scheme in ("http", "https")],
        findings=findings,
    )


@dataclass
class ToolStats:
    calls: int = 0
    argument_bytes: int = 0
    answer_bytes: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # message (ids masked) → count


@dataclass(frozen=True, slots=True)
class SurfacedError:
    """An error result (or a wrong answer) the normal crawl loop did not expect."""

    tool: str
    message: str
    page_url: str | None = None

    @property
    def is_conflict(self) -> bool:
        return "conflict" in self.message.lower()


@dataclass
class CrawlResult:
    """What one crawl did and what it cost, tool by tool. The tokenless probes are not in
    ``tools``."""

    mode: Mode
    workers: int
    elapsed_seconds: float = 0.0
    tools: dict[str, ToolStats] = field(default_factory=dict)
    analyzed: Counter[str] = field(default_factory=Counter)  # URL → accepted finishes
    errored: Counter[str] = field(default_factory=Counter)  # URL → accepted mark_page_error
    surfaced_errors: list[SurfacedError] = field(default_factory=list)
    tokenless_attempts: int = 0
    tokenless_refused: int = 0
    tokenless_accepted: int = 0
    workers_with_pages: int = 0
    peak_workers_busy: int = 0  # most workers holding claimed pages at one moment
    claim_sizes: Counter[int] = field(default_factory=Counter)  # pages per claim → claims

    @property
    def pages_analyzed(self) -> int:
        return sum(self.analyzed.values())

    @property
    def pages_errored(self) -> int:
        return sum(self.errored.values())

    @property
    def calls(self) -> int:
        return sum(stats.calls for stats in self.tools.values())

    @property
    def argument_bytes(self) -> int:
        return sum(stats.argument_bytes for stats in self.tools.values())

    @property
    def answer_bytes(self) -> int:
        return sum(stats.answer_bytes for stats in self.tools.values())

    @property
    def conflicts(self) -> int:
        return sum(error.is_conflict for error in self.surfaced_errors)

    def per_analyzed_page(self, total: int) -> float:
        """``total`` (calls, or bytes) per analysed page, as the issue measures the loop."""
        return total / self.pages_analyzed if self.pages_analyzed else float("nan")

    @property
    def pages_per_second(self) -> float:
        finished = self.pages_analyzed + self.pages_errored
        return finished / self.elapsed_seconds if self.elapsed_seconds else float("nan")


@dataclass(frozen=True, slots=True)
class Answer:
    ok: bool
    data: dict[str, Any]  # the structured content ({} for an error)
    text: str


def _text(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


def _answer(result: CallToolResult) -> Answer:
    text = _text(result)
    if result.is_error:
        return Answer(False, {}, text)
    data = result.structured_content
    if data is None:
        data = json.loads(text)
    return Answer(True, dict(data), text)


def _compact(arguments: dict[str, Any]) -> bytes:
    return json.dumps(arguments, separators=(",", ":"), ensure_ascii=False).encode()


async def open_session(client: Client, base_url: str, config: dict[str, Any]) -> str:
    """create_session → start_session → create_page of the base URL's home page: the set-up
    before workers start, outside the crawl's figures. Returns the session id."""

    async def call(tool: str, **arguments: Any) -> dict[str, Any]:
        answer = _answer(await client.call_tool(tool, arguments))
        if not answer.ok:
            raise RuntimeError(f"{tool} failed: {answer.text}")
        return answer.data

    session = await call("create_session", base_url=base_url, config=config)
    session_id = str(session["id"])
    await call("start_session", session_id=session_id)
    await call("create_page", session_id=session_id, url=base_url.rstrip("/") + "/")
    return session_id


@dataclass(frozen=True, slots=True)
class _Fetched:
    status: int
    content_type: str | None
    body: bytes
    location: str | None
    elapsed_ms: int


@dataclass
class _Worker:
    client: Client
    fence_probe_pending: bool = True
    held_pages: bool = False


class Crawler:
    """One crawl of a session by ``workers`` concurrent workers, each connected with
    ``connect()`` (e.g. ``lambda: Client(server)`` in process). Only pages on ``base_url``'s
    origin are fetched: nothing leaves the machine even if the server accepted an off-site
    link (that is recorded as a surfaced error)."""

    def __init__(
        self,
        connect: Connect,
        session_id: str,
        base_url: str,
        *,
        mode: Mode,
        workers: int = 8,
        claim_limit: int = 10,
        http_timeout: float = 30.0,
    ) -> None:
        self.connect = connect
        self.session_id = session_id
        self.origin = _origin(base_url)
        self.mode = mode
        self.workers = workers
        self.claim_limit = claim_limit
        self.http_timeout = http_timeout
        self.result = CrawlResult(mode=mode, workers=workers)
        # Workers inside a claim or holding its pages: while any is, the frontier may grow.
        self._busy = 0
        self._holding = 0
        self._idle: deque[anyio.Event] = deque()  # one event per waiting worker, oldest first
        self._done = False

    async def run(self) -> CrawlResult:
        """Crawl until the frontier is empty and no worker holds a page, then complete the
        session. Returns the figures (also in ``self.result``)."""
        started = time.perf_counter()
        async with (
            httpx2.AsyncClient(
                follow_redirects=False, timeout=self.http_timeout, trust_env=False
            ) as http,
            anyio.create_task_group() as workers,
        ):
            for _ in range(self.workers):
                workers.start_soon(self._work, http)
        async with self.connect() as client:
            await self._call(client, "complete_session", {"session_id": self.session_id})
        self.result.elapsed_seconds = time.perf_counter() - started
        return self.result

    def _wake(self, count: int | None = None) -> None:
        """Wake ``count`` waiting workers (all by default), oldest first."""
        while self._idle and (count is None or count > 0):
            self._idle.popleft().set()
            count = None if count is None else count - 1

    async def _wait(self) -> None:
        woken = anyio.Event()
        self._idle.append(woken)
        await woken.wait()

    async def _work(self, http: httpx2.AsyncClient) -> None:
        """Claim, crawl the claimed pages, repeat, until the crawl is done.

        An empty claim while other workers are busy (in a claim, or holding pages that may
        add links) waits instead of polling: a claim that sees more pages waiting than it
        took wakes enough idle workers for them. An empty claim with remaining 0 by the last
        busy worker means the crawl is done: no page can be added any more, and every page
        added so far was claimed, since whoever added it claimed again afterwards. No wake-up
        is lost: a worker decides to wait and queues itself with no ``await`` in between."""
        async with self.connect() as client:
            worker = _Worker(client)
            claim_errors = 0
            while not self._done:
                self._busy += 1
                try:
                    claim, items = await self._claim(client)
                    if items:
                        await self._crawl_claimed(worker, http, items)
                finally:
                    self._busy -= 1
                if not claim.ok:
                    claim_errors += 1
                    if claim_errors >= CLAIM_ERRORS_BEFORE_GIVING_UP:
                        self._wake()  # the others decide without this worker
                        return
                    continue
                claim_errors = 0
                if items:
                    continue
                if self._busy == 0:
                    if int(claim.data["remaining"]) == 0:
                        self._done = True
                        self._wake()
                    continue
                await self._wait()

    async def _claim(self, client: Client) -> tuple[Answer, list[dict[str, Any]]]:
        claim = await self._call(
            client,
            "claim_pages_to_crawl",
            {"session_id": self.session_id, "limit": self.claim_limit},
        )
        if not claim.ok:
            return claim, []
        # One claim_token finishes every page of the claim.
        token = claim.data.get("claim_token")
        items = [{"claim_token": token, **item} for item in claim.data["items"]]
        self.result.claim_sizes[len(items)] += 1
        waiting = int(claim.data["remaining"])
        if waiting:
            self._wake(math.ceil(waiting / self.claim_limit))
        return claim, items

    async def _crawl_claimed(
        self, worker: _Worker, http: httpx2.AsyncClient, items: list[dict[str, Any]]
    ) -> None:
        if not worker.held_pages:
            worker.held_pages = True
            self.result.workers_with_pages += 1
        self._holding += 1
        self.result.peak_workers_busy = max(self.result.peak_workers_busy, self._holding)
        try:
            for item in items:
                await self._crawl_page(worker, http, item)
        finally:
            self._holding -= 1

    async def _crawl_page(
        self, worker: _Worker, http: httpx2.AsyncClient, item: dict[str, Any]
    ) -> None:
        url, page_id, token = str(item["url"]), str(item["id"]), str(item["claim_token"])
        client = worker.client
        if _origin(url) != self.origin:
            self.result.surfaced_errors.append(
                SurfacedError("claim_pages_to_crawl", "claimed a page outside the site", url)
            )
            await self._give_up(client, url, page_id, token, "outside the site: not fetched")
            return
        if worker.fence_probe_pending:
            worker.fence_probe_pending = False
            await self._probe_tokenless_finish(client, page_id)
        try:
            fetched = await self._fetch(http, url)
        except httpx2.HTTPError as exc:
            self.result.surfaced_errors.append(SurfacedError("http", repr(exc), url))
            await self._give_up(client, url, page_id, token, f"fetch failed: {exc!r}")
            return
        if fetched.status >= 400:
            await self._give_up(client, url, page_id, token, f"HTTP {fetched.status}")
            return
        analysis = PageAnalysis(title=None, links=[], findings=[])
        if 300 <= fetched.status < 400:
            location = [urljoin(url, fetched.location)] if fetched.location else []
            analysis = PageAnalysis(title=None, links=location, findings=[])
        elif (fetched.content_type or "").startswith("text/html"):
            analysis = analyze_html(url, fetched.body.decode("utf-8", errors="replace"))
        facts: dict[str, Any] = {
            "status_code": fetched.status,
            "content_length": len(fetched.body),
            "response_time_ms": fetched.elapsed_ms,
        }
        if analysis.title is not None:
            facts["title"] = analysis.title
        if fetched.content_type is not None:
            facts["content_type"] = fetched.content_type
        if self.mode is Mode.FINISH_PAGE:
            await self._finish_in_one_call(client, item, token, facts, analysis)
        else:
            await self._finish_with_separate_tools(client, item, token, facts, analysis)

    async def _fetch(self, http: httpx2.AsyncClient, url: str) -> _Fetched:
        started = time.perf_counter()
        response = await http.get(url)
        return _Fetched(
            status=response.status_code,
            content_type=response.headers.get("content-type"),
            body=response.content,
            location=response.headers.get("location"),
            elapsed_ms=round((time.perf_counter() - started) * 1000),
        )

    async def _finish_in_one_call(
        self,
        client: Client,
        item: dict[str, Any],
        token: str,
        facts: dict[str, Any],
        analysis: PageAnalysis,
    ) -> None:
        url = str(item["url"])
        answer = await self._call(
            client,
            "finish_page",
            {
                "page_id": str(item["id"]),
                "claim_token": token,
                **facts,
                "links": [{"url": link} for link in analysis.links],
                "bugs": [finding.fields() for finding in analysis.findings],
            },
            page_url=url,
        )
        if not answer.ok:
            return
        if answer.data.get("status") != "analyzed":
            message = f"finish_page answered status {answer.data.get('status')!r}"
            self.result.surfaced_errors.append(SurfacedError("finish_page", message, url))
            return
        self.result.analyzed[url] += 1

    async def _finish_with_separate_tools(
        self,
        client: Client,
        item: dict[str, Any],
        token: str,
        facts: dict[str, Any],
        analysis: PageAnalysis,
    ) -> None:
        url, page_id = str(item["url"]), str(item["id"])
        if analysis.links:
            depth = int(item["depth"]) + 1
            pages = [
                {"url": link, "depth": depth, "parent_page_id": page_id} for link in analysis.links
            ]
            await self._call(
                client,
                "bulk_create_pages",
                {"session_id": self.session_id, "pages": pages},
                page_url=url,
            )
        for finding in analysis.findings:
            await self._call(
                client,
                "create_bug",
                {"session_id": self.session_id, "page_id": page_id, **finding.fields()},
                page_url=url,
            )
        answer = await self._call(
            client,
            "mark_analyzed",
            {"page_id": page_id, "claim_token": token, **facts},
            page_url=url,
        )
        if answer.ok:
            self.result.analyzed[url] += 1

    async def _give_up(
        self, client: Client, url: str, page_id: str, token: str, reason: str
    ) -> None:
        answer = await self._call(
            client,
            "mark_page_error",
            {"page_id": page_id, "error_message": reason, "claim_token": token},
            page_url=url,
        )
        if answer.ok:
            self.result.errored[url] += 1

    async def _probe_tokenless_finish(self, client: Client, page_id: str) -> None:
        """A stale worker's write: mark_analyzed on a held page without its claim_token. It
        must be refused; counted apart from the economy figures."""
        self.result.tokenless_attempts += 1
        result = await client.call_tool(
            "mark_analyzed", {"page_id": page_id, "title": "stale worker", "status_code": 200}
        )
        if result.is_error:
            self.result.tokenless_refused += 1
        else:
            self.result.tokenless_accepted += 1

    async def _call(
        self,
        client: Client,
        tool: str,
        arguments: dict[str, Any],
        *,
        page_url: str | None = None,
    ) -> Answer:
        """One metered tool call; an error result is recorded as surfaced."""
        stats = self.result.tools.setdefault(tool, ToolStats())
        stats.calls += 1
        stats.argument_bytes += len(_compact(arguments))
        answer = _answer(await client.call_tool(tool, arguments))
        stats.answer_bytes += len(answer.text.encode())
        if not answer.ok:
            stats.errors[_UUID.sub("<id>", answer.text)] += 1
            self.result.surfaced_errors.append(SurfacedError(tool, answer.text, page_url))
        return answer


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


async def crawl(
    connect: Connect,
    session_id: str,
    base_url: str,
    *,
    mode: Mode,
    workers: int = 8,
    claim_limit: int = 10,
) -> CrawlResult:
    """Crawl a started, seeded session (:func:`open_session`) to the end and complete it."""
    crawler = Crawler(
        connect, session_id, base_url, mode=mode, workers=workers, claim_limit=claim_limit
    )
    return await crawler.run()


__all__ = [
    "MISSING_ALT_TITLE",
    "PLACEHOLDER_TITLE",
    "Connect",
    "CrawlResult",
    "Crawler",
    "Finding",
    "Mode",
    "PageAnalysis",
    "SurfacedError",
    "ToolStats",
    "analyze_html",
    "crawl",
    "open_session",
]
