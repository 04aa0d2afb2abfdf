"""Text that comes from crawled websites: page titles, analysis results, bug descriptions and
evidence. A hostile page can put instructions for the next agent in them ("ignore previous
instructions…"), hide them with zero-width characters, or reorder what a reader sees with
bidi overrides.

The server never interprets such text; it stores it and returns it only inside structured
fields. On the way in, one function — :func:`clean_untrusted` — removes the characters that
hide or disguise text: C0/C1 control characters (tab, newline and carriage return stay), zero-
width characters, bidi embedding/override/isolate marks and Unicode tag characters (invisible
ASCII look-alikes). The ``UNTRUSTED`` marker applies it to every tool argument and input model
field (``Evidence``) that carries web text, so all an agent stores passes through it; code that
calls the repositories directly cleans its own input. Lengths are bounded by the same input
types (``max_length``): over-long text is refused, never truncated.
"""

from typing import Any

from pydantic import AfterValidator

_KEPT_CONTROLS = {0x09, 0x0A, 0x0D}
_INVISIBLE = {
    0x00AD,  # soft hyphen
    0x061C,  # Arabic letter mark
    0x180E,  # Mongolian vowel separator
    *range(0x200B, 0x2010),  # zero-width space/non-joiner/joiner, LRM, RLM
    *range(0x202A, 0x202F),  # bidi embeddings and overrides (LRE, RLE, PDF, LRO, RLO)
    *range(0x2060, 0x2065),  # word joiner, invisible operators
    *range(0x2066, 0x206A),  # bidi isolates (LRI, RLI, FSI, PDI)
    0xFEFF,  # zero-width no-break space (BOM)
    *range(0xE0000, 0xE0080),  # tag characters
}
REMOVED = dict.fromkeys(
    [
        *(c for c in range(0x20) if c not in _KEPT_CONTROLS),
        *range(0x7F, 0xA0),
        *_INVISIBLE,
    ]
)


def clean_text(text: str) -> str:
    """``text`` without control, zero-width, bidi-control and tag characters."""
    return text.translate(REMOVED)


def clean_untrusted(value: Any) -> Any:
    """Clean a string, or every string (keys included) of a JSON value; ``None`` passes.

    Refuses (``ValueError``, reported against the field) a non-empty string that consists of
    nothing but such characters: storing it as empty text would hide that it was refused."""
    if isinstance(value, str):
        cleaned = clean_text(value)
        if value.strip() and not cleaned.strip():
            raise ValueError("consists only of invisible or control characters")
        return cleaned
    return _clean_json(value)


def _clean_json(value: Any) -> Any:
    """Every string of a JSON value cleaned (depth is bounded by the input type beforehand)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_clean_json(item) for item in value]
    if isinstance(value, dict):
        return {clean_text(str(key)): _clean_json(item) for key, item in value.items()}
    return value


# Put on every input field that can carry text from a crawled website.
UNTRUSTED = AfterValidator(clean_untrusted)
