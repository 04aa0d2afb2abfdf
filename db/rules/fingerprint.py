"""Bug fingerprints: what makes two reports the same bug.

A fingerprint is the SHA-256 of the category and either an explicit ``dedup_key`` chosen by
the agent (e.g. ``"header-logo-overlap"`` for a site-wide defect) or the normalized title plus
the page's path template (``/products/123`` and ``/products/456`` share ``/products/{n}``).
"""

import hashlib
import re
import unicodedata
from urllib.parse import urlsplit

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_HEX = re.compile(r"^[0-9a-f]{12,}$", re.I)
_DIGITS = re.compile(r"\d+")
_NON_WORD = re.compile(r"[\W_]+")


def normalize_title(title: str) -> str:
    """Case-, space- and number-insensitive form: "Button  overlaps price 3" and
    "button overlaps price 12" are one title."""
    folded = unicodedata.normalize("NFKC", title).casefold()
    return " ".join(_NON_WORD.sub(" ", _DIGITS.sub("#", folded)).split())


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


def bug_fingerprint(category: str, title: str, page_url: str, dedup_key: str | None) -> str:
    basis = (
        f"key\x1f{normalize_title(dedup_key)}"
        if dedup_key
        else f"title\x1f{normalize_title(title)}\x1f{path_template(page_url)}"
    )
    return hashlib.sha256(f"{category}\x1f{basis}".encode()).hexdigest()
