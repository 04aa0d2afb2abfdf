"""URL normalization: the properties idempotent discovery relies on."""

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from url_normalize import url_normalize

from db.rules.urls import (
    InvalidUrl,
    TrailingSlash,
    _library_parts,
    _plain_parts,
    check_no_userinfo,
    is_tracking_param,
    matches,
    normalize_url,
    normalize_url_split,
    origin,
    path_of,
)

segment = st.text(alphabet="abcXYZ019-._~%/ä", min_size=0, max_size=12)
param = st.tuples(
    st.sampled_from(["a", "b", "q", "utm_source", "gclid", "Page"]),
    st.text(alphabet="xyz 12+&=", max_size=6),
)


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "Https"]))
    host = draw(st.sampled_from(["shop.example", "SHOP.Example", "xn--bcher-kva.example"]))
    port = draw(st.sampled_from(["", ":80", ":443", ":8080"]))
    path = "/".join(draw(st.lists(segment, max_size=4)))
    query = "&".join(f"{k}={v}" for k, v in draw(st.lists(param, max_size=4)))
    fragment = draw(st.sampled_from(["", "#top", "#a/b"]))
    return f"{scheme}://{host}{port}/{path}{'?' + query if query else ''}{fragment}"


@settings(max_examples=300, deadline=None)
@given(urls(), st.sampled_from(list(TrailingSlash)), st.booleans())
def test_normalization_is_idempotent(url: str, slash: TrailingSlash, drop: bool) -> None:
    once = normalize_url(url, trailing_slash=slash, drop_tracking_params=drop)
    assert normalize_url(once, trailing_slash=slash, drop_tracking_params=drop) == once


@settings(max_examples=300, deadline=None)
@given(urls())
def test_equal_urls_stay_equal_and_spellings_converge(url: str) -> None:
    assert normalize_url(url) == normalize_url(url)
    scheme, rest = url.split("://", 1)
    host, _, tail = rest.partition("/")
    respelled = f"{scheme.upper()}://{host.upper()}/{tail}"
    assert normalize_url(respelled) == normalize_url(url)


@pytest.mark.parametrize(
    ("given_url", "expected"),
    [
        ("HTTP://Shop.Example:80/a/./b/../c?b=2&a=1#frag", "http://shop.example/a/c?a=1&b=2"),
        ("https://shop.example:443", "https://shop.example/"),
        ("https://shop.example/?utm_source=x&id=3&gclid=1", "https://shop.example/?id=3"),
        ("https://shop.example/%7euser", "https://shop.example/~user"),
    ],
)
def test_normalization_examples(given_url: str, expected: str) -> None:
    assert normalize_url(given_url) == expected


def test_tracking_params_are_kept_when_the_setting_is_off() -> None:
    assert normalize_url("https://s.example/?utm_source=x", drop_tracking_params=False) == (
        "https://s.example/?utm_source=x"
    )


def test_trailing_slash_policies() -> None:
    url = "https://s.example/about/"
    assert normalize_url(url, trailing_slash=TrailingSlash.KEEP) == url
    assert normalize_url(url, trailing_slash=TrailingSlash.STRIP) == "https://s.example/about"
    assert (
        normalize_url("https://s.example/about", trailing_slash=TrailingSlash.ADD)
        == "https://s.example/about/"
    )


@pytest.mark.parametrize("bad", ["ftp://s.example/", "/relative", "javascript:alert(1)", ""])
def test_non_http_urls_are_refused(bad: str) -> None:
    with pytest.raises(InvalidUrl):
        normalize_url(bad)


@pytest.mark.parametrize("bad", ["http://a[", "https://[::1", "http://a]/", "http://[zz]/"])
def test_urls_that_urlsplit_refuses_are_invalid_urls(bad: str) -> None:
    """Not a bare ValueError: callers refuse an InvalidUrl as one bad link."""
    with pytest.raises(InvalidUrl, match="is not a valid URL"):
        normalize_url(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "https://s.example:x/",
        "https://s.example:99999/a",
        "http://s.example:-1",
        "http://s.example: 80/",
    ],
)
def test_a_port_that_is_no_number_in_range_is_refused(bad: str) -> None:
    """url_normalize keeps any port: such a link was stored, and a session accepted it as its
    base URL. It is refused, saying what a port must be."""
    with pytest.raises(InvalidUrl, match="the port must be a number from 0 to 65535"):
        normalize_url(bad)


SECRET = "s3cr3t-pw"


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        (f"https://bob:{SECRET}@shop.example/", "https://***@shop.example/"),
        (f"https://{SECRET}@shop.example/a", "https://***@shop.example/a"),  # a token as user
        (f"https://:{SECRET}@shop.example/", "https://***@shop.example/"),
        (f"HTTPS://bob:{SECRET}@Shop.Example:443/a?q=1", "HTTPS://***@Shop.Example:443/a?q=1"),
        (f"https://a@{SECRET}@shop.example/", "https://***@shop.example/"),  # the last "@"
        (f"https://bob:{SECRET}@shop.example:x/", "https://***@shop.example:x/"),  # bad port
        (f"ftp://bob:{SECRET}@shop.example/", "ftp://***@shop.example/"),
        (f"http://bob:{SECRET}@a[", "http://***@a["),  # urlsplit refuses it
        (f"ht\ttp://bob:{SECRET}@shop.example/", "http://***@shop.example/"),  # urlsplit drops \t
        (f"https:\\\\bob:{SECRET}@shop.example/", "https:\\\\***@shop.example/"),
        ("https://@shop.example/", "https://***@shop.example/"),
    ],
)
def test_a_url_with_a_user_or_password_is_refused_without_repeating_them(
    given: str, shown: str
) -> None:
    """A URL is stored and shown in clear: a password in it would bypass the encryption of
    config.credentials. No error about it quotes the password (nor any other error first)."""
    with pytest.raises(InvalidUrl) as refused:
        normalize_url(given)
    message = str(refused.value)
    assert message.startswith(f"{shown!r} has a user name or password in it")
    assert "config.credentials" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    "url", ["https://shop.example/@bob", "https://shop.example/a?to=bob@x.example", "mailto:a@b"]
)
def test_an_at_sign_after_the_host_is_no_user_name(url: str) -> None:
    try:
        normalize_url(url)
    except InvalidUrl as exc:
        assert "user name" not in str(exc)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://s.example:65535/", "http://s.example:65535/"),
        ("http://s.example:080/", "http://s.example/"),
    ],
)
def test_ports_in_range_are_kept_or_dropped_when_default(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


def test_patterns_starting_with_a_slash_match_the_path() -> None:
    assert matches("https://s.example/blog/post?x=1", "/blog/*")
    assert not matches("https://s.example/shop/blog", "/blog/*")
    assert matches("https://s.example/a.pdf", "*.pdf")


# --- the fast path gives what url_normalize gives ------------------------------------------
# normalize_url takes a shortcut for clean URLs (db/rules/urls.py, _PLAIN_URL). The reference below
# is normalize_url as it was before that shortcut: url_normalize for every URL. Both must give
# the same string, or fail with the same error, for any input.


def _reference_normalize_url(
    url: str,
    *,
    drop_tracking_params: bool = True,
    trailing_slash: TrailingSlash = TrailingSlash.KEEP,
) -> str:
    check_no_userinfo(url)  # before anything that would quote it (never on the fast path)
    raw = url.strip()
    try:  # what urlsplit refuses ("http://a[") is an InvalidUrl, not a bare ValueError
        scheme, netloc = urlsplit(raw)[:2]
    except ValueError as exc:
        raise InvalidUrl(f"{url!r} is not a valid URL: {exc}") from None
    if scheme.lower() not in ("http", "https") or not netloc:
        raise InvalidUrl(f"{url!r} is not an absolute http(s) URL")
    try:
        urlsplit(raw).port  # noqa: B018 - url_normalize keeps any port, "x" and 99999 too
    except ValueError as exc:
        raise InvalidUrl(
            f"{url!r} is not a valid URL: the port must be a number from 0 to 65535 ({exc})"
        ) from None
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
        if "." not in last:
            path += "/"
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


def _outcome(normalize: Callable[..., object], url: str, **policy: Any) -> tuple[str, str]:
    """The result, or the error's type and message."""
    try:
        return ("ok", str(normalize(url, **policy)))
    except Exception as exc:  # the exact error is what is compared
        return (type(exc).__name__, str(exc))


def assert_same_as_reference(url: str, slash: TrailingSlash, drop: bool) -> None:
    policy: dict[str, Any] = {"trailing_slash": slash, "drop_tracking_params": drop}
    expected = _outcome(_reference_normalize_url, url, **policy)
    assert _outcome(normalize_url, url, **policy) == expected
    if expected[0] == "ok":
        split = normalize_url_split(url, **policy)
        assert split == (expected[1], origin(expected[1]), path_of(expected[1]))


# Each part of a generated URL is either of the fast path's shape ("clean", which still includes
# what the shortcut must normalize: case, ports, tracking parameters…) or "rough" (what only
# url_normalize handles). A few rough parts per URL: every near miss of the shortcut is tried.
CLEAN_PIECES = [*"aZ09-._~!$&'()*+,;=:@", "utm_", ".", ".."]
ROUGH_PIECES = [
    *"[]% /?#",
    "%7e",
    "%7E",
    "%2F",
    "%2f",
    "%41",
    "%zz",
    "%25",
    "%C3%A4",
    "ä",
    "\u3000",
]
CLEAN_KEYS = ["a", "B", "q", "utm_source", "UTM_Medium", "gclid", "Fbclid", ""]
CLEAN_VALUES = ["", "=", "=x", "=1+2", "=a=b", "=/?:@", "=*'()", "=~"]
PARTS: dict[str, tuple[list[str], list[str]]] = {
    "space": ([""], [" ", "\t", "\n", "\u3000", "\x00"]),
    "scheme": (["http", "https", "HTTP", "Https", "hTTpS"], ["ftp", "javascript", "http:"]),
    "userinfo": ([""], ["user@", "u:p@", "@", "U%40x:@"]),
    "host": (
        [
            *("shop.example", "SHOP.Example", "a-b.c_d.example", "localhost", "127.0.0.1"),
            *("xn--bcher-kva.example", "XN--BCHER-KVA.example", "-bad-.example", "xn--.example"),
            *("ab--cd.example", "xn--zz.example", "a_b", "x" * 64 + ".example"),
        ],
        [
            *("bücher.example", "BÜCHER.example", "例え.テスト", "[::1]", "[2001:DB8::1]"),
            *("shop.example.", ".shop.example", "a..b", "sh%6Fp.example", "", "s\u3002example"),
        ],
    ),
    "port": (
        ["", ":80", ":443", ":0080", ":00443", ":8080", ":0", ":99999"],
        [":", ":x", ":1234567"],
    ),
    "path_start": (["/"], ["", "//", "/./", "/../"]),
    "query_start": (["", "?", "?&"], ["??", "?;"]),
    "fragment": (["", "#", "#top", "#a/b?c", "#x#y", "#a!"], ["#!/shebang?x=1", "#ä", "#x y"]),
    "path": (CLEAN_PIECES, [*CLEAN_PIECES, *ROUGH_PIECES]),
    "key": (CLEAN_KEYS, [*CLEAN_KEYS, "k%3Dv", "%75tm_source", "ä"]),
    "value": (CLEAN_VALUES, [*CLEAN_VALUES, "=%20", "=%2B", "=ä", "=#", "=a b"]),
}


@st.composite
def wild_urls(draw: st.DrawFn) -> str:
    """Absolute URLs from clean to unusual: the fast path's shape and its every neighbour."""
    rough = draw(st.sets(st.sampled_from(sorted(PARTS)), max_size=3))

    def options(name: str) -> st.SearchStrategy[str]:
        clean, odd = PARTS[name]
        return st.sampled_from(odd if name in rough else clean)

    def one(name: str) -> str:
        return draw(options(name))

    segment = st.lists(options("path"), max_size=5).map("".join)
    path = one("path_start") + "/".join(draw(st.lists(segment, max_size=4)))
    params = draw(st.lists(st.tuples(options("key"), options("value")), max_size=4))
    query = "&".join(k + v for k, v in params)
    query = one("query_start") + query if not query else "?" + query
    space = one("space")
    netloc = one("userinfo") + one("host") + one("port")
    return f"{space}{one('scheme')}://{netloc}{path}{query}{one('fragment')}{space}"


@settings(max_examples=1500, deadline=None)
@given(wild_urls(), st.sampled_from(list(TrailingSlash)), st.booleans())
def test_normalization_matches_the_reference(url: str, slash: TrailingSlash, drop: bool) -> None:
    assert_same_as_reference(url, slash, drop)


@settings(max_examples=1000, deadline=None)
@given(
    st.sampled_from(["http://", "https://", "HTTPS://"]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
    st.sampled_from(list(TrailingSlash)),
    st.booleans(),
)
def test_any_ascii_after_the_scheme_matches_the_reference(
    scheme: str, rest: str, slash: TrailingSlash, drop: bool
) -> None:
    assert_same_as_reference(scheme + rest, slash, drop)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.sampled_from(list(TrailingSlash)), st.booleans())
def test_any_text_matches_the_reference(text: str, slash: TrailingSlash, drop: bool) -> None:
    assert_same_as_reference(text, slash, drop)
    assert_same_as_reference("https://shop.example/" + text, slash, drop)


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/products/1000000000-a5cd6",  # the bench's shape
        "HTTPS://Shop.Example:0443/a/b/?z=1&a=2&utm_source=x#frag",
        "http://shop.example:8080",
        "http://shop.example:80?b=1&&a=2&",
        "https://shop.example/a//b",  # empty segment: collapsed by url_normalize
        "https://shop.example/a/./b/../c/..",
        "https://shop.example/%7euser/%2fx",
        "https://shop.example/?a=b=c&d=1+2",
        "https://shop.example/#!/app/page?x=1",  # hashbang: moved into the query
        "https://user:pw@shop.example/",
        "https://[2001:DB8::1]:443/",
        "https://bücher.example/straße",
        "https://Xn--Bcher-Kva.example/",
        "https://shop.example./",
        "https://under_score.example/",
        "https://xn--.example/",
        "http://[::1",  # urlsplit refuses it with a plain ValueError: InvalidUrl here
        "  https://shop.example/padded  ",
    ],
)
@pytest.mark.parametrize("slash", list(TrailingSlash))
@pytest.mark.parametrize("drop", [True, False])
def test_examples_match_the_reference(url: str, slash: TrailingSlash, drop: bool) -> None:
    assert_same_as_reference(url, slash, drop)


@settings(max_examples=1000, deadline=None)
@given(wild_urls())
def test_the_fast_path_gives_the_librarys_parts(url: str) -> None:
    """Stronger than the result: where the shortcut applies, it splits as url_normalize does."""
    raw = url.strip()
    plain = _plain_parts(raw)
    if plain is not None:
        assert plain == _library_parts(url, raw)
