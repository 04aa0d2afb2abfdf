"""Which discovered URLs a crawl session accepts: the ``CrawlConfig`` limits, applied before
anything is stored. Pure functions — the repository supplies the session's facts."""

from dataclasses import dataclass

from db.schemas import CrawlConfig
from db.urls import InvalidUrl, matches, normalize_url, origin


@dataclass(frozen=True)
class Verdict:
    url: str  # normalized when accepted, as given when refused
    reason: str | None = None

    @property
    def accepted(self) -> bool:
        return self.reason is None


class CrawlScope:
    """The rules of one session: normalization policy, origin, depth and URL patterns."""

    def __init__(self, base_url: str, config: CrawlConfig) -> None:
        self.config = config
        self.origin = origin(self.normalize(base_url))

    def normalize(self, url: str) -> str:
        return normalize_url(
            url,
            drop_tracking_params=self.config.drop_tracking_params,
            trailing_slash=self.config.trailing_slash,
        )

    def judge(self, url: str, depth: int) -> Verdict:
        try:
            normalized = self.normalize(url)
        except InvalidUrl as exc:
            return Verdict(url, str(exc))
        if len(normalized) > 2048:
            return Verdict(url, "is longer than 2048 characters once normalized")
        config = self.config
        if depth > config.max_depth:
            return Verdict(url, f"is at depth {depth}, beyond max_depth {config.max_depth}")
        if config.same_origin and origin(normalized) != self.origin:
            return Verdict(url, f"is outside the session's origin {self.origin} (same_origin=true)")
        if config.include_patterns and not any(
            matches(normalized, p) for p in config.include_patterns
        ):
            return Verdict(url, "matches none of include_patterns")
        for pattern in config.exclude_patterns:
            if matches(normalized, pattern):
                return Verdict(url, f"matches exclude pattern {pattern!r}")
        return Verdict(normalized)
