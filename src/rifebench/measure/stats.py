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

LEVEL = 0.95
RESAMPLES = 2000
MIN_BLOCK_SAMPLES = 10


def _interval(values: list[float], level: float) -> tuple[float, float]:
    values.sort()
    lo = values[int(math.floor((1 - level) / 2 * (len(values) - 1)))]
    hi = values[int(math.ceil((1 + level) / 2 * (len(values) - 1)))]
    return lo, hi


def bootstrap_ci(
    values: Sequence[float],
    stat: Callable = statistics.median,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of stat(values); None below 2 values."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    rng = random.Random(seed)
    n = len(values)
    return _interval([stat(rng.choices(values, k=n)) for _ in range(resamples)], level)


def block_bootstrap_ci(
    samples: Sequence[float],
    stat: Callable = statistics.median,
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


def summary(values: Sequence[float], level: float = LEVEL) -> dict:
    """{median, ci: [lo, hi] or null, n} of independent measurements."""
    values = [v for v in values if v is not None]
    ci = bootstrap_ci(values, level=level)
    return {
        "median": statistics.median(values) if values else None,
        "ci": list(ci) if ci else None,
        "n": len(values),
        "level": level,
    }
