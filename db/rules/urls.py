"""URL normalization for idempotent discovery: two spellings of one page are one row.

RFC 3986 normalization (scheme and host case, default ports, ``.``/``..`` segments,
percent-encoding) is done by ``url-normalize``; on top of it the crawl policy: fragments are
dropped, query parameters sorted, tracking parameters (``utm_*``, ``gclid`` …) optionally
dropped, and a trailing-slash policy applied. ``normalize_url`` is idempotent:
``normalize_url(normalize_url(u)) == normalize_url(u)``.

Speed: ``url_normalize`` costs tens of µs per URL (IDNA-encoding the same host again for every
URL is a fifth of it), which dominated bulk discovery. Most discovered links are already
clean — ASCII, no percent-escapes, no dot segments, no userinfo — and for those
``url_normalize`` changes nothing but the scheme and host case, a default port and empty
query parameters. So a fast path recognizes that shape (``_PLAIN_URL``, ``_is_plain_path``,
``_plain_query``) and normalizes the netloc through the library's own host function, cached
per netloc. Anything else goes through ``url_normalize`` as before. Both paths give
byte-identical results (tests/db/test_urls.py checks it against the library).
"""

import re
from enum import StrEnum
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from url_normalize import url_normalize
from url_normalize.normalize_host import normalize_host

TRACKING_PREFIXES = ("utm_",)
TRACKING_PARAMS = frozenset(
    {"gclid", "dclid", "fbclid", "msclkid", "yclid", "mc_cid", "mc_eid", "_ga", "_gl", "igshid"}
)
DEFAULT_PORTS = {"http": "80", "https": "443"}
MAX_PORT = 65535

# The clean shape of an absolute http(s) URL that ``url_normalize`` leaves alone except for
# scheme/host case and a default port. Every character class is ASCII and excludes ``%``
# (no escapes to decode or re-encode), whitespace and controls (nothing for the library's
# input cleanup to remove), ``@`` in the netloc (no userinfo) and ``[``/``]`` (no IPv6).
# Path: RFC 3986 pchar without escapes, which ``url_normalize`` never quotes. Query: what it
# never quotes in a parameter (``=`` is checked separately, see ``_plain_query``). A
# fragment is dropped anyway, but one starting with ``!`` (``#!``, a "hashbang") is moved into
# the query by the library, so it is left to the library.
_PLAIN_URL = re.compile(
    r"(?P<scheme>(?i:https?))://"
    r"(?P<netloc>[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*(?::[0-9]{1,5})?)"
    r"(?P<path>/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)?"
    r"(?:\?(?P<query>[A-Za-z0-9._~!$&'()*+,;=:@/?-]*))?"
    r"(?:#(?!!)[!-~]*)?"
)
# What the library's host normalization returns for a plain ASCII host.
_PLAIN_HOST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
# User-info: a user name and/or password before the host, as in https://bob:pw@shop.example/.
# Wider than what ``urlsplit`` reads as such (the authority after "//", up to "/", "?" or "#",
# to its last "@"), so that it is found first, before any other error could quote the URL: a
# backslash counts as a slash, and the text is read as ``urlsplit`` reads it (leading controls
# and spaces skipped, tabs and line breaks removed, see ``_URLSPLIT_DROPS``).
_USERINFO = re.compile(r"(?P<head>[\x00-\x20]*[A-Za-z][A-Za-z0-9+.-]*:[/\\]{2})[^/?#]*@")
_URLSPLIT_DROPS = str.maketrans("", "", "\t\r\n")
USERINFO_REFUSED = (
    "has a user name or password in it: a URL is stored and shown in clear, so put the "
    "site's login in config.credentials (username, password) instead"
)


class TrailingSlash(StrEnum):
    KEEP = "keep"  # /about and /about/ are different pages (what the web says)
    STRIP = "strip"  # /about/ is stored as /about
    ADD = "add"  # /about is stored as /about/


class InvalidUrl(ValueError):
    """Not an absolute http(s) URL, or one with a user name or password in it."""


class _Parts(NamedTuple):
    """An RFC 3986-normalized URL, split; the fragment is gone already."""

    scheme: str
    netloc: str
    path: str
    query: str


class NormalizedUrl(NamedTuple):
    """A canonical URL and the two parts of it the crawl scope tests."""

    url: str  # what normalize_url returns
    origin: str  # origin(url)
    target: str  # path_of(url): what a pattern starting with "/" is matched against


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
    return normalize_url_split(
        url, drop_tracking_params=drop_tracking_params, trailing_slash=trailing_slash
    ).url


def normalize_url_split(
    url: str,
    *,
    drop_tracking_params: bool = True,
    trailing_slash: TrailingSlash = TrailingSlash.KEEP,
) -> NormalizedUrl:
    """``normalize_url`` with the result's origin and path, so that the crawl scope need not
    split every accepted URL again."""
    raw = url.strip()
    plain = _plain_parts(raw)
    parts = plain if plain is not None else _library_parts(url, raw)
    query = _canonical_query(parts.query, drop_tracking_params)
    path = _apply_trailing_slash(parts.path or "/", trailing_slash)
    if plain is None:
        canonical = urlunsplit((parts.scheme, parts.netloc, path, query, ""))
        return NormalizedUrl(canonical, origin(canonical), path_of(canonical))
    # Clean parts: a non-empty netloc without "/?#@[]", a path starting with "/" without
    # "?#", a query urlencode()d (no "#"). urlunsplit() is then plain concatenation, and
    # urlsplit() would give the same parts back.
    site = f"{parts.scheme}://{parts.netloc}"
    target = f"{path}?{query}" if query else path
    return NormalizedUrl(site + target, site, target)


def _library_parts(url: str, raw: str) -> _Parts:
    """RFC 3986 normalization by ``url_normalize``: the general (slow) path.

    ``urlsplit`` itself refuses some strings with a plain ``ValueError`` (an unbalanced ``[``
    or ``]`` in the host, as in ``http://a[``, or a bracketed host that is no IP address):
    those are :class:`InvalidUrl` too, so one such link is refused on its own instead of
    failing its whole batch. So is a URL with user-info (never of the fast path's shape),
    refused first: the other errors quote the URL."""
    check_no_userinfo(url)
    try:
        split = urlsplit(raw)
    except ValueError as exc:
        raise InvalidUrl(f"{url!r} is not a valid URL: {exc}") from None
    if split.scheme.lower() not in ("http", "https") or not split.netloc:
        raise InvalidUrl(f"{url!r} is not an absolute http(s) URL")
    try:
        split.port  # noqa: B018 - raises for a port that is not a number in 0-65535
    except ValueError as exc:
        raise InvalidUrl(
            f"{url!r} is not a valid URL: the port must be a number from 0 to {MAX_PORT} ({exc})"
        ) from None
    try:
        normalized = url_normalize(raw)
    except (ValueError, UnicodeError) as exc:
        raise InvalidUrl(f"{url!r} cannot be normalized: {exc}") from None
    if normalized is None:
        raise InvalidUrl(f"{url!r} is empty")
    parts = urlsplit(normalized)
    return _Parts(parts.scheme, parts.netloc, parts.path, parts.query)


def check_no_userinfo(url: str) -> str:
    """``url``, unless it has a user name or password before its host: :class:`InvalidUrl`
    then, showing it with them masked (:func:`without_userinfo`). Stored URLs are clear text
    (shown by every tool); only ``config.credentials`` keeps a password encrypted."""
    if _USERINFO.match(url.translate(_URLSPLIT_DROPS)):
        raise InvalidUrl(f"{without_userinfo(url)!r} {USERINFO_REFUSED}")
    return url


def without_userinfo(url: str) -> str:
    """``url`` with its user-info, if any, replaced by ``***``: how a refused URL is shown
    back (in an error, in a bulk refusal), so that no answer repeats a password."""
    cleaned = url.translate(_URLSPLIT_DROPS)
    masked, found = _USERINFO.subn(r"\g<head>***@", cleaned, count=1)
    return masked if found else url


def _plain_parts(raw: str) -> _Parts | None:
    """What ``_library_parts`` returns, for a URL of the clean shape; None for any other URL
    (the caller then takes the general path, errors included)."""
    match = _PLAIN_URL.fullmatch(raw)
    if match is None:
        return None
    scheme = match["scheme"].lower()
    path = match["path"] or "/"
    query = _plain_query(match["query"] or "")
    if query is None or not _is_plain_path(path):
        return None
    netloc = _plain_netloc(scheme, match["netloc"])
    if netloc is None:
        return None
    return _Parts(scheme, netloc, path, query)


def _is_plain_path(path: str) -> bool:
    """True when ``url_normalize``'s dot-segment removal leaves ``path`` as it is: no ``.`` or
    ``..`` segment, and no empty segment (``//``, which it collapses) except a trailing one."""
    if "//" not in path and "/." not in path:  # the usual case, decided without splitting
        return True
    segments = path.split("/")[1:]
    return all(s not in ("", ".", "..") for s in segments[:-1]) and (
        not segments or segments[-1] not in (".", "..")
    )


def _plain_query(query: str) -> str | None:
    """``query`` as ``url_normalize`` gives it back (without empty parameters), for a query of
    the clean shape; None when a parameter has a second ``=``, which it would percent-encode."""
    if not query:
        return query
    params = [param for param in query.split("&") if param]
    if any(param.count("=") > 1 for param in params):
        return None
    return "&".join(params)


@lru_cache(maxsize=4096)
def _plain_netloc(scheme: str, netloc: str) -> str | None:
    """``host[:port]`` normalized as ``url_normalize`` does it: the library's own host
    function (lower case, IDNA), and the port without leading zeros, dropped when it is the
    scheme's default. Cached: a crawl sees few hosts, and IDNA is the costly part. None when
    the library refuses the host or returns something unusual (general path)."""
    host, _, port = netloc.partition(":")
    try:
        host = normalize_host(host)
    except (ValueError, UnicodeError):
        return None
    if not _PLAIN_HOST.fullmatch(host):
        return None
    if port:
        if int(port) > MAX_PORT:
            return None  # the general path refuses it
        port = str(int(port))
        if DEFAULT_PORTS[scheme] == port:
            port = ""
    return f"{host}:{port}" if port else host


def _canonical_query(query: str, drop_tracking_params: bool) -> str:
    """Parameters sorted (and tracking ones dropped): the same set in any order is one page."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    if drop_tracking_params:
        pairs = [(k, v) for k, v in pairs if not is_tracking_param(k)]
    return urlencode(sorted(pairs), doseq=True, safe="/:@!$'()*,;~")


def _apply_trailing_slash(path: str, policy: TrailingSlash) -> str:
    """The session's choice whether ``/about`` and ``/about/`` are one page, and which."""
    if policy is TrailingSlash.STRIP and path != "/":
        return path.rstrip("/") or "/"
    if policy is TrailingSlash.ADD and not path.endswith("/"):
        last = path.rsplit("/", 1)[-1]
        if "." not in last:  # /page.html keeps its form; a directory-like path gets a slash
            return path + "/"
    return path


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
