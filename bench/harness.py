"""What every workload shares: figures measured side by side, their medians and ratios, the
table printed at the end, and progress bars.

A *row* compares one BugHive figure with its floor. Both are the median over the repeats, and
the repeats alternate which side runs first, so a burst of load from another process on the
machine hits both sides alike.
"""

import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from tqdm import tqdm

Metrics = dict[str, float]
Side = Callable[[], Awaitable[Metrics]]


@dataclass(frozen=True)
class Target:
    """A goal from issue 5: ``op value`` on the ``ratio`` (BugHive / floor) or, for growth
    figures, on the ``bughive`` figure itself."""

    op: Literal["<=", ">="]
    value: float
    applies_to: Literal["ratio", "bughive"] = "ratio"
    unit: str = "x"

    def met(self, row: "Row") -> bool:
        measured = row.ratio if self.applies_to == "ratio" else row.bughive
        return measured <= self.value if self.op == "<=" else measured >= self.value

    def __str__(self) -> str:
        sign = "≤" if self.op == "<=" else "≥"
        subject = "" if self.applies_to == "ratio" else "BugHive "
        return f"{subject}{sign} {self.value:g}{self.unit}"


@dataclass
class Row:
    """One compared figure. ``ratio`` is always BugHive / floor; ``higher_is_better`` says
    which way is good (rows/s vs ms)."""

    name: str
    unit: str
    bughive: float
    floor: float
    higher_is_better: bool = False
    target: Target | None = None
    bughive_runs: list[float] = field(default_factory=list)
    floor_runs: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.bughive / self.floor if self.floor else float("inf")

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = None if self.target is None else {**asdict(self.target)}
        data["target_text"] = None if self.target is None else str(self.target)
        data["ratio"] = self.ratio
        data["met"] = self.met
        return data


@dataclass
class WorkloadResult:
    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "seconds": round(self.seconds, 2),
            "rows": [row.to_json() for row in self.rows],
            "facts": self.facts,
        }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return float(ordered[rank - 1])


async def side_by_side(
    repeats: int, bughive: Side, floor: Side, *, bar: "tqdm[Any] | None" = None
) -> tuple[list[Metrics], list[Metrics]]:
    """Run both sides ``repeats`` times, alternating which goes first."""
    ours: list[Metrics] = []
    theirs: list[Metrics] = []
    for repeat in range(repeats):
        order = [(bughive, ours), (floor, theirs)]
        if repeat % 2:
            order.reverse()
        for run, sink in order:
            sink.append(await run())
            if bar is not None:
                bar.update(1)
    return ours, theirs


def compare(
    name: str,
    unit: str,
    ours: Sequence[Metrics],
    theirs: Sequence[Metrics],
    metric: str,
    floor_metric: str | None = None,
    *,
    higher_is_better: bool = False,
    target: Target | None = None,
    note: str = "",
) -> Row:
    """A row from the medians of one metric over the repeats of both sides."""
    mine = [m[metric] for m in ours]
    base = [m[floor_metric or metric] for m in theirs]
    return Row(
        name=name,
        unit=unit,
        bughive=median(mine),
        floor=median(base),
        higher_is_better=higher_is_better,
        target=target,
        bughive_runs=mine,
        floor_runs=base,
        note=note,
    )


class Stopwatch:
    """Wall-clock seconds since creation (``perf_counter``)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


# --- progress bars ---------------------------------------------------------------------

_progress_enabled: bool | None = None


def set_progress(enabled: bool | None) -> None:
    """``True``/``False`` forces bars on/off; ``None`` shows them only on a terminal."""
    global _progress_enabled
    _progress_enabled = enabled


def progress(total: int | None, desc: str, unit: str = "it") -> "tqdm[Any]":
    disable = None if _progress_enabled is None else not _progress_enabled
    return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=disable, file=sys.stderr)


# --- the table ---------------------------------------------------------------------------


def _number(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return "—"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def table_lines(results: Iterable[WorkloadResult]) -> list[str]:
    """A Markdown table: one line per row, the workload named on its first row."""
    header = ["workload", "figure", "unit", "BugHive", "floor", "ratio", "target", "met"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        for index, row in enumerate(result.rows):
            met = {None: "", True: "yes", False: "**no**"}[row.met]
            cells = [
                result.title if index == 0 else "",
                row.name,
                row.unit,
                _number(row.bughive),
                _number(row.floor),
                f"{row.ratio:.2f}x",
                "" if row.target is None else str(row.target),
                met,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines
