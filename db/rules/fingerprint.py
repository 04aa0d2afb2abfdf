"""Bug fingerprints: what makes two reports the same bug (version 2).

A QA lead wants one ticket per defect, with every page it shows on. So by default a bug is
its **category and normalized title, across the whole session** (``scope="site"``): the same
finding on 526 pages is one bug with 526 occurrences. Narrower scopes stay available:
``"template"`` adds the page's path template (``/products/123`` and ``/products/456`` share
``/products/{n}``; version 1's only rule), ``"page"`` the page's own path. An explicit
``dedup_key`` (e.g. ``"header-logo-overlap"``) replaces the title and the scope.

Normalizing a title folds what varies between reports of one defect and keeps what tells two
defects apart: case, spacing, punctuation, identifiers (UUIDs, long hex, numbers of five digits
or more) and counts or measures ("3 images", "1200 ms") are folded; HTTP status codes and
numbers that name something ("HTTP 404" vs "HTTP 500", "error 1045", "h1", "utf8") are kept.

The version is part of what is hashed, so fingerprints of different versions never collide,
and :data:`FINGERPRINT_VERSION` goes out with every filing, so an agent can tell why two
reports were grouped.
"""

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

FINGERPRINT_VERSION = 2
Scope = Literal["site", "template", "page"]
SCOPES: tuple[Scope, ...] = ("site", "template", "page")

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_HEX = re.compile(r"^[0-9a-f]{12,}$", re.I)
_IDENTIFIER = re.compile(
    r"\b(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|(?=[0-9a-f]*\d)[0-9a-f]{12,}|\d{5,})\b",
    re.I,
)
# A number after a word that names codes keeps its value: "HTTP 500", "error 1045", "code: 7".
_CODE_WORDS = frozenset(
    {"http", "https", "status", "error", "errno", "err", "code", "exit", "sqlstate", "wcag"}
)
_WORD_BEFORE = re.compile(r"(\w+)\W{0,2}$")
# A free-standing number (not part of a word such as "h1" or "utf8"), decimals included, with
# the unit of a measure right after it ("1200ms", "3.5s", "40kb", "12px", "80%").
_NUMBER = re.compile(r"(?<![\w.,])(\d+(?:[.,]\d+)*)(ms|s|kb|mb|gb|b|px|em|rem|%)?(?!\w)")
# Punctuation and spacing; the placeholders of folded parts (# and {id}) stay.
_NON_WORD = re.compile(r"(?:[^\w#{}]|_)+")


def _fold_number(match: re.Match[str]) -> str:
    number, unit = match.group(1), match.group(2) or ""
    if not unit:
        if number.isdigit() and len(number) == 3 and 100 <= int(number) <= 599:
            return number  # an HTTP status code: "404" and "500" are different defects
        before = _WORD_BEFORE.search(match.string, 0, match.start())
        if before is not None and before.group(1) in _CODE_WORDS:
            return number
    return f"#{unit}"


def normalize_title(title: str) -> str:
    """The form of a title that reports of one defect share: "Button  overlaps price 3" and
    "button overlaps price 12" are one title; "HTTP 404 on link" and "HTTP 500 on link" are
    two."""
    folded = unicodedata.normalize("NFKC", title).casefold()
    folded = _IDENTIFIER.sub("{id}", folded)
    folded = _NUMBER.sub(_fold_number, folded)
    return " ".join(_NON_WORD.sub(" ", folded).split())


def path_template(url: str) -> str:
    """The page's path with identifiers replaced: numbers → {n}, UUIDs and long hex → {id}."""
    segments = []
    for segment in urlsplit(url).path.split("/"):
        if segment.isdigit():
            segments.append("{n}")
        elif _UUID.match(segment) or _HEX.match(segment):
            segments.append("{id}")
        else:
            segments.append(segment)
    return "/".join(segments) or "/"


@dataclass(frozen=True)
class Fingerprint:
    """A report's fingerprint and how it was made, to tell the agent why it grouped."""

    value: str
    key: Literal["title", "dedup_key"]
    scope: Scope | None  # None with a dedup_key: the key alone decides
    normalized: str
    version: int = FINGERPRINT_VERSION


def bug_fingerprint(
    category: str, title: str, page_url: str, dedup_key: str | None, scope: Scope = "site"
) -> Fingerprint:
    if dedup_key:
        normalized = normalize_title(dedup_key)
        basis = f"key\x1f{normalized}"
    else:
        normalized = normalize_title(title)
        where = {
            "site": "",
            "template": path_template(page_url),
            "page": urlsplit(page_url).path or "/",
        }[scope]
        basis = f"title\x1f{normalized}\x1f{scope}\x1f{where}"
    text = f"v{FINGERPRINT_VERSION}\x1f{category}\x1f{basis}"
    return Fingerprint(
        value=hashlib.sha256(text.encode()).hexdigest(),
        key="dedup_key" if dedup_key else "title",
        scope=None if dedup_key else scope,
        normalized=normalized,
    )
