"""What every figure shares: a result row, timing helpers, bounded loops, peak memory."""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Row:
    """One line of the table: a figure, its floor measured in the same run, the ratio and the target."""

    what: str
    figure: str  # as shown, e.g. "median 120 ms, p95 180 ms"
    floor: str  # as shown, or "" when the issue names no floor
    ratio: float | None  # figure / floor (or floor / figure for rates), None without a floor
    target: str
    met: bool | None  # None: nothing to judge (the figure could not be measured)
    values: dict[str, Any] = field(default_factory=dict)  # the raw numbers behind `figure`
    floor_values: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def failed_row(what: str, target: str, reason: str) -> Row:
    """A row for a figure that could not be measured (shown as not met, with why)."""
    return Row(what=what, figure="not measured", floor="", ratio=None, target=target, met=False, note=reason)


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank on sorted values, interpolated)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * pct / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def ratio(figure: float, floor: float) -> float | None:
    if not floor or floor != floor or figure != figure:  # zero or NaN
        return None
    return round(figure / floor, 2)


def bounded(count: int, seconds: float) -> Iterator[int]:
    """Yield 0..count-1 but stop once `seconds` have passed (always at least once)."""
    deadline = time.monotonic() + seconds
    for i in range(count):
        if i and time.monotonic() > deadline:
            return
        yield i


def timed(fn: Callable[[], Any], count: int, seconds: float, warmup: int = 1) -> list[float]:
    """Run `fn` `warmup` times untimed, then up to `count` times within `seconds`; the durations in seconds."""
    for _ in range(warmup):
        fn()
    out: list[float] = []
    for _ in bounded(count, seconds):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 1024 / (1024 if sys.platform == "darwin" else 1), 1)


def current_rss_mb() -> float:
    """This process's resident set size now, in MB (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            pages = int(f.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except OSError:
        return 0.0
