"""Which discovered URLs a crawl session accepts: the ``CrawlConfig`` limits, applied before
anything is stored. Pure functions — the repository supplies the session's facts."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import translate

from db.rules.urls import (
    InvalidUrl,
    NormalizedUrl,
    normalize_url,
    normalize_url_split,
    origin,
    without_userinfo,
)
from db.schemas import CrawlConfig


@dataclass(frozen=True, slots=True)
class Verdict:
    url: str  # normalized when accepted, as given when refused (user-info masked)
    reason: str | None = None

    @property
    def accepted(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class _Glob:
    """One include/exclude pattern, compiled once per scope rather than looked up in
    ``fnmatch``'s cache for every URL; matches exactly as ``db.rules.urls.matches`` does."""

    pattern: str
    on_path: bool  # a pattern starting with "/" applies to the path and query
    match: Callable[[str], re.Match[str] | None]

    @classmethod
    def of(cls, pattern: str) -> "_Glob":
        return cls(pattern, pattern.startswith("/"), re.compile(translate(pattern)).match)

    def matches(self, url: NormalizedUrl) -> bool:
        return self.match(url.target if self.on_path else url.url) is not None


class CrawlScope:
    """The rules of one session: normalization policy, origin, depth and URL patterns."""

    def __init__(self, base_url: str, config: CrawlConfig) -> None:
        self.config = config
        self.origin = origin(self.normalize(base_url))
        self._include = [_Glob.of(p) for p in config.include_patterns]
        self._exclude = [_Glob.of(p) for p in config.exclude_patterns]

    def normalize(self, url: str) -> str:
        return normalize_url(
            url,
            drop_tracking_params=self.config.drop_tracking_params,
            trailing_slash=self.config.trailing_slash,
        )

    def judge(self, url: str, depth: int) -> Verdict:
        config = self.config
        try:
            normalized = normalize_url_split(
                url,
                drop_tracking_params=config.drop_tracking_params,
                trailing_slash=config.trailing_slash,
            )
        except InvalidUrl as exc:
            return Verdict(without_userinfo(url), str(exc))
        if len(normalized.url) > 2048:
            return Verdict(url, "is longer than 2048 characters once normalized")
        if depth > config.max_depth:
            return Verdict(url, f"is at depth {depth}, beyond max_depth {config.max_depth}")
        if config.same_origin and normalized.origin != self.origin:
            return Verdict(url, f"is outside the session's origin {self.origin} (same_origin=true)")
        if self._include and not any(g.matches(normalized) for g in self._include):
            return Verdict(url, "matches none of include_patterns")
        for glob in self._exclude:
            if glob.matches(normalized):
                return Verdict(url, f"matches exclude pattern {glob.pattern!r}")
        return Verdict(normalized.url)
