"""Confidence intervals by resampling, for figures measured a few times.

`bootstrap_ci` resamples independent measurements (one figure per
repetition, as hyperfine and pyperf repeat a benchmark in fresh processes).
`block_bootstrap_ci` resamples a run's per-pair samples in contiguous blocks:
consecutive pairs are correlated (clocks, caches, a neighbour's load), and
resampling them one by one would understate the noise. Both are seeded, so a
report is reproducible.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from typing import Any

Stat = Callable[[list[float]], Any]  # a statistic of a sample: statistics.median, mean, a percentile

LEVEL = 0.95
RESAMPLES = 2000
MIN_BLOCK_SAMPLES = 10


def _interval(values: list[float], level: float) -> tuple[float, float]:
    values.sort()
    lo = values[math.floor((1 - level) / 2 * (len(values) - 1))]
    hi = values[math.ceil((1 + level) / 2 * (len(values) - 1))]
    return lo, hi


def bootstrap_ci(
    values: Sequence[float | None],
    stat: Stat = statistics.median,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of stat(values); None below 2 values (None values are left out)."""
    known = [v for v in values if v is not None]
    if len(known) < 2:
        return None
    rng = random.Random(seed)
    n = len(known)
    return _interval([stat(rng.choices(known, k=n)) for _ in range(resamples)], level)


def block_bootstrap_ci(
    samples: Sequence[float],
    stat: Stat = statistics.median,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    block: int | None = None,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Moving-block bootstrap interval of stat(samples); None below MIN_BLOCK_SAMPLES
    samples or two blocks' worth (fewer say nothing about the spread)."""
    samples = list(samples)
    n = len(samples)
    block = block or max(1, round(n ** (1 / 3)))  # the usual n^(1/3) block length
    if n < max(2 * block, MIN_BLOCK_SAMPLES):
        return None
    rng = random.Random(seed)
    starts = range(n - block + 1)
    out = []
    for _ in range(resamples):
        draw: list[float] = []
        while len(draw) < n:
            s = rng.choice(starts)
            draw.extend(samples[s : s + block])
        out.append(stat(draw[:n]))
    return _interval(out, level)


def summary(values: Sequence[float | None], level: float = LEVEL) -> dict[str, Any]:
    """{median, ci: [lo, hi] or null, n} of independent measurements (None values are left out)."""
    known = [v for v in values if v is not None]
    ci = bootstrap_ci(known, level=level)
    return {
        "median": statistics.median(known) if known else None,
        "ci": list(ci) if ci else None,
        "n": len(known),
        "level": level,
    }


def spread_pct(values: Sequence[float]) -> float | None:
    """The spread of a set of measurements: (p90 - p10) / median, in percent.

    The one definition of "spread" in the harness (study rows, warnings): the
    interdecile range ignores the odd outlier that the full range would report.
    None below 2 values or with a median of 0."""
    if len(values) < 2:
        return None
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    med = statistics.median(values)
    return 100.0 * (deciles[-1] - deciles[0]) / med if med else None


def range_pct(values: Sequence[float]) -> float | None:
    """(max - min) / median, in percent: the full range across a few independent
    figures (a fleet's nodes), where every value counts. None without values or
    with a median of 0."""
    if not values:
        return None
    med = statistics.median(values)
    return 100.0 * (max(values) - min(values)) / med if med else None
