"""URL normalization for idempotent discovery: two spellings of one page are one row.

RFC 3986 normalization (scheme and host case, default ports, ``.``/``..`` segments,
percent-encoding) is done by ``url-normalize``; on top of it the crawl policy: fragments are
dropped, query parameters sorted, tracking parameters (``utm_*``, ``gclid`` …) optionally
dropped, and a trailing-slash policy applied. ``normalize_url`` is idempotent:
``normalize_url(normalize_url(u)) == normalize_url(u)``.
"""

from enum import StrEnum
from fnmatch import fnmatchcase
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from url_normalize import url_normalize

TRACKING_PREFIXES = ("utm_",)
TRACKING_PARAMS = frozenset(
    {"gclid", "dclid", "fbclid", "msclkid", "yclid", "mc_cid", "mc_eid", "_ga", "_gl", "igshid"}
)


class TrailingSlash(StrEnum):
    KEEP = "keep"  # /about and /about/ are different pages (what the web says)
    STRIP = "strip"  # /about/ is stored as /about
    ADD = "add"  # /about is stored as /about/


class InvalidUrl(ValueError):
    """Not an absolute http(s) URL."""


def is_tracking_param(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def normalize_url(
    url: str,
    *,
    drop_tracking_params: bool = True,
    trailing_slash: TrailingSlash = TrailingSlash.KEEP,
) -> str:
    """The canonical form under which a page is stored and deduplicated."""
    raw = url.strip()
    scheme = urlsplit(raw).scheme.lower()
    if scheme not in ("http", "https") or not urlsplit(raw).netloc:
        raise InvalidUrl(f"{url!r} is not an absolute http(s) URL")
    try:
        normalized = url_normalize(raw)
    except (ValueError, UnicodeError) as exc:
        raise InvalidUrl(f"{url!r} cannot be normalized: {exc}") from None
    if normalized is None:
        raise InvalidUrl(f"{url!r} is empty")
    parts = urlsplit(normalized)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if drop_tracking_params:
        pairs = [(k, v) for k, v in pairs if not is_tracking_param(k)]
    query = urlencode(sorted(pairs), doseq=True, safe="/:@!$'()*,;~")
    path = parts.path or "/"
    if trailing_slash is TrailingSlash.STRIP and path != "/":
        path = path.rstrip("/") or "/"
    elif trailing_slash is TrailingSlash.ADD and not path.endswith("/"):
        last = path.rsplit("/", 1)[-1]
        if "." not in last:  # /page.html keeps its form; a directory-like path gets a slash
            path += "/"
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


def origin(url: str) -> str:
    """``scheme://host[:port]`` of an already normalized URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def matches(url: str, pattern: str) -> bool:
    """Glob match: a pattern starting with ``/`` applies to the path (and query), any other
    pattern to the whole URL. ``*`` matches across ``/``."""
    target = path_of(url) if pattern.startswith("/") else url
    return fnmatchcase(target, pattern)
