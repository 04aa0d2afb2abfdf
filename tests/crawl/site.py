"""A generated documentation site served on loopback: what a crawl test needs from a real site.

Earlier tests crawled link lists this project made up; a real documentation site is HTML a
crawler must parse, and it is where the crawl loop broke (issue 18). This one has what such a
site has: a nav bar of 50 links on every page, self-links, ``#fragments``, ``../`` relative
links, tracking-parameter variants (``utm_*``, ``fbclid``: dropped by the default
``CrawlConfig``, so they are the same page), an index page with 20,000 links (mostly repeats
with different fragments), broken links (404), redirects (301 from ``/old/…``), a PDF, off-site
links, one defect on every HTML page (an ``<img>`` without ``alt``) and one on a single page
(placeholder text).

:class:`DocSite` is the site as data, built from its size alone (deterministic), and knows —
independently of the server under test — every path a correct crawl reaches, every path that
answers 404 and where the defects are. :class:`SiteServer` serves it on ``127.0.0.1`` (a free
port) from a daemon thread with the standard library only, and logs every request, so a test
can also check what the crawler fetched and how many requests it had in flight at once.
"""

import html
import posixpath
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

HOME = "/"
GENINDEX = "/genindex.html"
PDF_PATH = "/files/reference-manual.pdf"
LOGO = "/static/logo.png"
OFFSITE = "https://external.example"
SECTIONS = ("tutorial", "library", "reference", "howto", "faq", "whatsnew")
NAV_LINKS = 50  # home, the index, the section indexes and the first leaf pages
# Module-like page names: pages of a real site differ in words, not in numbers, so a
# site-wide defect cannot be grouped by a numeric path template.
WORDS = (
    "os", "sys", "json", "re", "time", "path", "socket", "threading", "logging", "random",
    "string", "struct", "codecs", "csv", "email", "html", "http", "urllib", "zlib", "gzip",
    "shutil", "glob", "pickle", "sqlite", "uuid", "math", "heapq", "bisect", "array", "queue",
    "signal", "select", "mmap", "ssl", "hashlib", "hmac", "secrets", "base64", "binascii",
    "locale",
)  # fmt: skip
BROKEN_EVERY, BROKEN_AT = 11, 5  # leaf pages i with i % 11 == 5 link a draft that 404s
REDIRECT_EVERY, REDIRECT_AT = 17, 3  # leaf pages i with i % 17 == 3 link their /old/ address
MIN_PAGES = 8

HTML_TYPE = "text/html; charset=utf-8"
PDF_TYPE = "application/pdf"
# The one-page defect: what a crawler's placeholder rule looks for.
PLACEHOLDER = "Lorem ipsum dolor sit amet, consectetur adipiscing elit."


@dataclass(frozen=True, slots=True)
class Resource:
    """One answer of the site: status, type and body; a redirect's target path."""

    status: int
    content_type: str
    body: bytes
    location: str | None = None


NOT_FOUND = Resource(404, HTML_TYPE, b"<!DOCTYPE html><title>Not found</title><h1>404</h1>")


@dataclass(frozen=True)
class DocSite:
    """The site as data: every path it answers, and what a correct crawl must find there.

    Paths are absolute (``/docs/library/os.html``) and canonical: what the server under test
    stores once the host is put in front (``SiteServer.url``)."""

    resources: Mapping[str, Resource]
    html_pages: frozenset[str]
    redirects: Mapping[str, str]  # /old/… path → the page it moved to
    files: frozenset[str]  # non-HTML resources linked from pages (the PDF)
    broken: frozenset[str]  # linked paths that answer 404
    offsite_links: frozenset[str]  # absolute URLs on another origin, as linked
    one_page_defect: str  # the only page with placeholder text
    index_links: int  # links on GENINDEX

    @property
    def reachable(self) -> frozenset[str]:
        """Every path a crawl from HOME reaches and analyses: the HTML pages, the redirects'
        sources and the files."""
        return self.html_pages | self.redirects.keys() | self.files

    @classmethod
    def build(cls, pages: int = 80, index_links: int = 20_000) -> "DocSite":
        """A site of ``pages`` documentation pages in six sections, plus the home page, the
        index (``index_links`` links) and a section index each."""
        if not MIN_PAGES <= pages <= len(_names()):
            raise ValueError(f"pages must be between {MIN_PAGES} and {len(_names())}")
        return _Builder(pages, index_links).site()


def _names() -> list[str]:
    return [*WORDS, *(f"{a}-{b}" for a in WORDS for b in WORDS if a != b)]


def _relative(source: str, target: str) -> str:
    """The relative reference from page ``source`` to ``target``, as a static site generator
    writes it (``../library/os.html``; ``../../`` for the home page)."""
    reference = posixpath.relpath(target, posixpath.dirname(source))
    if target.endswith("/"):
        reference = "./" if reference == "." else reference + "/"
    return reference


def _link(href: str, text: str) -> str:
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


class _Builder:
    """Writes the pages of a :class:`DocSite` (one method per kind of page)."""

    def __init__(self, pages: int, index_links: int) -> None:
        self.index_links = index_links
        self.names = _names()[:pages]
        self.sections = [SECTIONS[i % len(SECTIONS)] for i in range(pages)]
        self.leaves = [
            f"/docs/{s}/{n}.html" for s, n in zip(self.sections, self.names, strict=True)
        ]
        self.section_indexes = [f"/docs/{s}/index.html" for s in SECTIONS]
        leaves_in_nav = NAV_LINKS - 2 - len(SECTIONS)
        self.nav = [HOME, GENINDEX, *self.section_indexes, *self.leaves[:leaves_in_nav]]
        self.defect_page = pages // 2
        self.pdf_page = 7
        self.broken = {"/docs/api/removed.html"}  # linked from the home page
        self.redirects: dict[str, str] = {}
        self.offsite = {f"{OFFSITE}/about?utm_source=docs", f"{OFFSITE}/"}

    def site(self) -> DocSite:
        resources = {
            HOME: self.page(HOME, "Documentation", self.home_body()),
            GENINDEX: self.page(GENINDEX, "Index", self.index_body()),
        }
        for section, path in zip(SECTIONS, self.section_indexes, strict=True):
            resources[path] = self.page(path, section.title(), self.section_body(section, path))
        for i, path in enumerate(self.leaves):
            resources[path] = self.page(path, self.names[i], self.leaf_body(i))
        html_pages = frozenset(resources)
        for source, target in self.redirects.items():
            resources[source] = Resource(301, HTML_TYPE, b"<title>Moved</title>", target)
        resources[PDF_PATH] = Resource(200, PDF_TYPE, b"%PDF-1.4\n%%EOF\n")
        resources[LOGO] = Resource(200, "image/png", b"\x89PNG\r\n\x1a\n")
        return DocSite(
            resources=resources,
            html_pages=html_pages,
            redirects=dict(self.redirects),
            files=frozenset({PDF_PATH}),
            broken=frozenset(self.broken),
            offsite_links=frozenset(self.offsite),
            one_page_defect=self.leaves[self.defect_page],
            index_links=self.index_links,
        )

    def page(self, path: str, title: str, body: str) -> Resource:
        """Every page's frame: the header with the logo (the site-wide defect: no ``alt``),
        the nav bar, a back-to-top fragment link and an off-site footer link."""
        nav = "".join(
            f"<li>{_link(_relative(path, target), target)}</li>" for target in self.nav[1:]
        )
        text = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} - Docs</title>
<link rel="stylesheet" href="{_relative(path, "/static/docs.css")}"></head>
<body><header><a href="{_relative(path, HOME)}"><img src="{LOGO}" class="logo"></a>
<img src="/static/search.svg" alt="Search">
<nav><ul><li>{_link("/?utm_source=nav", "Home")}</li>{nav}</ul></nav></header>
<main><h1 id="top">{html.escape(title)}</h1>
{body}
<p>{_link("#top", "Back to top")}</p></main>
<footer>{_link(f"{OFFSITE}/about?utm_source=docs", "About us")}</footer></body></html>
"""
        return Resource(200, HTML_TYPE, text.encode())

    def home_body(self) -> str:
        sections = "".join(
            f"<li>{_link(_relative(HOME, p), s.title())}</li>"
            for s, p in zip(SECTIONS, self.section_indexes, strict=True)
        )
        return (
            f"<p>Welcome. Start with a section, or the {_link('genindex.html#A', 'index')}.</p>"
            f"<ul>{sections}</ul>"
            f"<p>{_link('/docs/api/removed.html', 'API (removed)')} "
            f"{_link(f'{OFFSITE}/', 'Our company')}</p>"
        )

    def index_body(self) -> str:
        """``index_links`` entries, each a leaf page with its own fragment; every 50th with a
        tracking parameter."""
        entries = []
        for i in range(self.index_links):
            leaf = i % len(self.leaves)
            name = self.names[leaf]
            query = "?utm_source=genindex" if i % 50 == 0 else ""
            href = f"{_relative(GENINDEX, self.leaves[leaf])}{query}#{name}.entry-{i}"
            entries.append(f"<li>{_link(href, f'{name} (entry {i})')}</li>")
        return f'<ul class="genindex">{"".join(entries)}</ul>'

    def section_body(self, section: str, path: str) -> str:
        pages = "".join(
            f"<li>{_link(_relative(path, leaf), self.names[i])}</li>"
            for i, leaf in enumerate(self.leaves)
            if self.sections[i] == section
        )
        manual = ""
        if section == "reference":
            manual = f"<p>{_link(_relative(path, PDF_PATH), 'Reference manual (PDF)')}</p>"
        return f"<ul>{pages}</ul>{manual}"

    def leaf_body(self, i: int) -> str:
        path, name, count = self.leaves[i], self.names[i], len(self.leaves)
        siblings = [j for j in range(count) if self.sections[j] == self.sections[i]]
        at = siblings.index(i)
        previous = self.leaves[siblings[at - 1]]
        following = self.leaves[siblings[(at + 1) % len(siblings)]]
        see_also, related = self.leaves[(i + 7) % count], self.leaves[(3 * i + 1) % count]
        parts = [
            f"<p>{_link('#intro', 'Introduction')} {_link(f'{name}.html', 'Permalink')} "
            f"{_link(f'{name}.html#api', 'API')}</p>",
            f'<h2 id="intro">Introduction</h2><p>The {html.escape(name)} module.</p>',
            f"<p>See also {_link(_relative(path, see_also) + '#see-also', 'a related page')} "
            f"and {_link(_relative(path, related) + f'?fbclid=IwAR0{i:04x}', 'another')}.</p>",
            f"<p>{_link(_relative(path, previous), 'Previous')} "
            f"{_link(_relative(path, following) + '?utm_source=nav&utm_medium=sidebar', 'Next')}</p>",
            f"<p>{_link(f'{OFFSITE}/blog/{name}', 'Blog post')}</p>",
        ]
        if i == self.defect_page:
            parts.append(f"<p>{PLACEHOLDER}</p>")
        if i % BROKEN_EVERY == BROKEN_AT:
            parts.append(f"<p>{_link(f'{name}-draft.html', 'Draft notes')}</p>")
            self.broken.add(posixpath.join(posixpath.dirname(path), f"{name}-draft.html"))
        if i % REDIRECT_EVERY == REDIRECT_AT:
            old = f"/old/{name}.html"
            parts.append(f"<p>{_link(old, 'Old address')}</p>")
            self.redirects[old] = path
        if i == self.pdf_page:
            parts.append(f"<p>{_link(_relative(path, PDF_PATH), 'Manual (PDF)')}</p>")
        self.offsite.add(f"{OFFSITE}/blog/{name}")
        return "\n".join(parts)


@dataclass(slots=True)
class Request:
    """One request to the site, timed with ``time.perf_counter``. Logged when it arrives
    (before it is answered, so a client never sees an answer the log does not hold yet);
    ``ended`` is set once the answer is written."""

    path: str  # as requested, with its query
    status: int
    started: float
    ended: float | None = None


class _Listener(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: "SiteServer") -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    timeout = 30  # an idle keep-alive connection's thread ends

    def do_GET(self) -> None:
        started = time.perf_counter()
        listener = self.server
        assert isinstance(listener, _Listener)
        owner = listener.owner
        resource = owner.site.resources.get(urlsplit(self.path).path, NOT_FOUND)
        request = owner.record(Request(self.path, resource.status, started))
        self.send_response(resource.status)
        self.send_header("Content-Type", resource.content_type)
        self.send_header("Content-Length", str(len(resource.body)))
        if resource.location is not None:
            self.send_header("Location", owner.url(resource.location))
        self.end_headers()
        self.wfile.write(resource.body)
        self.wfile.flush()
        request.ended = time.perf_counter()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is ``SiteServer.requests``."""


class SiteServer:
    """Serves a :class:`DocSite` on ``127.0.0.1`` (a free port) from a daemon thread.

    Use as a context manager (or ``start``/``stop``); ``base_url`` is
    ``http://127.0.0.1:<port>``, the origin a crawl session is given."""

    def __init__(self, site: DocSite) -> None:
        self.site = site
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._listener: _Listener | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        self._listener = _Listener(self)
        self._thread = threading.Thread(
            target=self._listener.serve_forever, name="doc-site", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.shutdown()
            self._listener.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> "SiteServer":
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._listener is None:
            raise RuntimeError("the site is not being served: call start() first")
        host, port = self._listener.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def urls(self, paths: Iterable[str]) -> frozenset[str]:
        """Absolute URLs of site paths, as the server under test stores them."""
        return frozenset(self.url(path) for path in paths)

    @property
    def reachable_urls(self) -> frozenset[str]:
        return self.urls(self.site.reachable)

    @property
    def html_urls(self) -> frozenset[str]:
        return self.urls(self.site.html_pages)

    @property
    def broken_urls(self) -> frozenset[str]:
        return self.urls(self.site.broken)

    @property
    def one_page_defect_url(self) -> str:
        return self.url(self.site.one_page_defect)

    def record(self, request: Request) -> Request:
        with self._lock:
            self._requests.append(request)
        return request

    @property
    def requests(self) -> list[Request]:
        """Every request received so far, in the order they arrived."""
        with self._lock:
            return list(self._requests)

    def fetches(self) -> Counter[str]:
        """How many times each path (query left out) was requested."""
        return Counter(urlsplit(request.path).path for request in self.requests)

    def max_concurrent_requests(self) -> int:
        """The most requests in flight at one moment (a request that ends as another starts
        does not overlap it; one not answered yet is still in flight)."""
        requests = self.requests
        events = sorted(
            [(r.started, 1) for r in requests]
            + [(r.ended, -1) for r in requests if r.ended is not None]
        )
        in_flight = peak = 0
        for _, change in events:
            in_flight += change
            peak = max(peak, in_flight)
        return peak


@contextmanager
def serve(site: DocSite) -> Iterator[SiteServer]:
    """``site`` served on loopback for the block; the server's ``base_url`` is its origin."""
    with SiteServer(site) as server:
        yield server
