"""CrawlScope.judge (compiled patterns, one split per URL) gives the verdicts it gave when it
called fnmatch and split the normalized URL again for every pattern."""

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from db.rules.scope import CrawlScope, Verdict
from db.rules.urls import InvalidUrl, TrailingSlash, matches, origin, without_userinfo
from db.schemas import CrawlConfig
from tests.db.test_urls import _reference_normalize_url, wild_urls

PATTERNS = ["/blog/*", "/a*", "*.pdf", "*?*", "/", "*://shop.example/*", "/[ab]*", "*utm*", "/*/"]


def _reference_judge(base_url: str, config: CrawlConfig, url: str, depth: int) -> Verdict:
    """CrawlScope.judge as it was, on the url_normalize-only normalization."""

    def normalize(u: str) -> str:
        return _reference_normalize_url(
            u,
            drop_tracking_params=config.drop_tracking_params,
            trailing_slash=config.trailing_slash,
        )

    session_origin = origin(normalize(base_url))
    try:
        normalized = normalize(url)
    except InvalidUrl as exc:  # shown as given, but never with a password in it
        return Verdict(without_userinfo(url), str(exc))
    if len(normalized) > 2048:
        return Verdict(url, "is longer than 2048 characters once normalized")
    if depth > config.max_depth:
        return Verdict(url, f"is at depth {depth}, beyond max_depth {config.max_depth}")
    if config.same_origin and origin(normalized) != session_origin:
        return Verdict(url, f"is outside the session's origin {session_origin} (same_origin=true)")
    if config.include_patterns and not any(matches(normalized, p) for p in config.include_patterns):
        return Verdict(url, "matches none of include_patterns")
    for pattern in config.exclude_patterns:
        if matches(normalized, pattern):
            return Verdict(url, f"matches exclude pattern {pattern!r}")
    return Verdict(normalized)


configs = st.builds(
    CrawlConfig,
    max_depth=st.integers(0, 3),
    same_origin=st.booleans(),
    include_patterns=st.lists(st.sampled_from(PATTERNS), max_size=3),
    exclude_patterns=st.lists(st.sampled_from(PATTERNS), max_size=3),
    drop_tracking_params=st.booleans(),
    trailing_slash=st.sampled_from(list(TrailingSlash)),
)


@settings(max_examples=1000, deadline=None)
@given(
    st.sampled_from(
        ["https://shop.example/", "HTTP://Shop.Example:80/start", "https://bücher.example"]
    ),
    configs,
    wild_urls(),
    st.integers(0, 4),
)
def test_verdicts_match_the_reference(
    base_url: str, config: CrawlConfig, url: str, depth: int
) -> None:
    scope = CrawlScope(base_url, config)
    expected = _outcome(lambda: _reference_judge(base_url, config, url, depth))
    assert _outcome(lambda: scope.judge(url, depth)) == expected


def _outcome(judge: Callable[[], Verdict]) -> Verdict | tuple[str, str]:
    """The verdict, or the error's type and message (should judge ever raise)."""
    try:
        return judge()
    except ValueError as exc:
        return (type(exc).__name__, str(exc))
