"""URL normalization: the properties idempotent discovery relies on."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from db.urls import InvalidUrl, TrailingSlash, matches, normalize_url

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


def test_patterns_starting_with_a_slash_match_the_path() -> None:
    assert matches("https://s.example/blog/post?x=1", "/blog/*")
    assert not matches("https://s.example/shop/blog", "/blog/*")
    assert matches("https://s.example/a.pdf", "*.pdf")
