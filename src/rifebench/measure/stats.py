"""Confidence intervals by resampling, for figures measured a few times.

`bootstrap_ci` resamples independent measurements (one figure per
repetition, as hyperfine and pyperf repeat a benchmark in fresh processes).
`block_bootstrap_ci` resamples a run's per-pair samples in contiguous blocks:
consecutive pairs are correlated (clocks, caches, a neighbour's load), and
resampling them one by one would understate the noise. Both are seeded, so a
report is reproducible, and run in numpy: every resample at once, in chunks.

Large samples (more than MAX_RESAMPLED values) are bootstrapped m out of n
(Bickel, Goetze & van Zwet 1997; Politis, Romano & Wolf, "Subsampling", 1999):
each resample draws m = MAX_RESAMPLED values (in blocks of the full sample's
block length), and the resampled statistics' deviations from the full
sample's are scaled by sqrt(m / n), the ratio of a root-n statistic's spreads
at the two sizes. The interval means what it means below the cap, and a
window of a million pairs gets its interval in well under a second instead of
resampling a million values 2,000 times.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Stat = Callable[[list[float]], Any]  # a statistic of a sample: statistics.median, mean, Percentile(q)
Rows = npt.NDArray[np.float64]

LEVEL = 0.95
RESAMPLES = 2000
MIN_BLOCK_SAMPLES = 10
MAX_RESAMPLED = 10_000  # values per resample; above it, m out of n (module docstring)
CHUNK_VALUES = 2_000_000  # values resampled at once: about 16 MB


@dataclass(frozen=True)
class Percentile:
    """The q-th percentile, linear between closest ranks (metrics.percentile, numpy's default)."""

    q: float

    def __call__(self, values: list[float]) -> float:
        return float(np.percentile(values, self.q))


def _vector(stat: Stat) -> Callable[[Rows], npt.NDArray[np.float64]] | None:
    """stat of each row of a row-sorted matrix, or None for a statistic numpy does not know."""
    q = 50.0 if stat is statistics.median else stat.q if isinstance(stat, Percentile) else None
    if q is not None:

        def pct(rows: Rows) -> npt.NDArray[np.float64]:
            pos = (rows.shape[1] - 1) * q / 100.0
            lo = math.floor(pos)
            hi = min(lo + 1, rows.shape[1] - 1)
            out: npt.NDArray[np.float64] = rows[:, lo] + (rows[:, hi] - rows[:, lo]) * (pos - lo)
            return out

        return pct
    if stat is statistics.mean or stat is statistics.fmean:
        return lambda rows: rows.mean(axis=1)
    return None


def _finite(values: Sequence[float | None]) -> Rows:
    known = [v for v in values if v is not None]
    x = np.asarray(known, dtype=np.float64)
    return x[np.isfinite(x)]


def _interval(values: npt.NDArray[np.float64], level: float) -> tuple[float, float]:
    values = np.sort(values)
    lo = values[math.floor((1 - level) / 2 * (len(values) - 1))]
    hi = values[math.ceil((1 + level) / 2 * (len(values) - 1))]
    return float(lo), float(hi)


def _resampled(x: Rows, stats: Sequence[Stat], block: int, resamples: int, seed: int, cap: int) -> list[Rows]:
    """Each statistic over `resamples` moving-block resamples of x (block 1: the
    plain bootstrap), m out of n above `cap` values (scaled: module docstring)."""
    n = len(x)
    m = min(n, cap)
    k = -(-m // block)  # blocks per resample
    rng = np.random.default_rng(seed)
    fast = [_vector(s) for s in stats]
    outs = [np.empty(resamples) for _ in stats]
    offsets = np.arange(block)
    chunk = max(1, CHUNK_VALUES // (k * block))
    for first in range(0, resamples, chunk):
        r = min(chunk, resamples - first)
        starts = rng.integers(0, n - block + 1, size=(r, k))
        rows = x[(starts[:, :, None] + offsets).reshape(r, k * block)[:, :m]]
        rows.sort(axis=1)
        for out, stat, vec in zip(outs, stats, fast, strict=True):
            out[first : first + r] = vec(rows) if vec else [stat(row.tolist()) for row in rows]
    if m < n:
        scale, ordered = math.sqrt(m / n), np.sort(x)[None, :]
        for out, stat, vec in zip(outs, stats, fast, strict=True):
            full = float(vec(ordered)[0]) if vec else float(stat(x.tolist()))
            out[:] = full + (out - full) * scale
    return outs


def bootstrap_ci(
    values: Sequence[float | None],
    stat: Stat = statistics.median,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = 0,
    cap: int = MAX_RESAMPLED,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of stat(values); None below 2 values (None
    and non-finite values are left out)."""
    x = _finite(values)
    if len(x) < 2:
        return None
    return _interval(_resampled(x, [stat], 1, resamples, seed, cap)[0], level)


def block_bootstrap_cis(
    samples: Sequence[float],
    stats: Sequence[Stat],
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    block: int | None = None,
    seed: int = 0,
    cap: int = MAX_RESAMPLED,
) -> list[tuple[float, float] | None]:
    """Moving-block bootstrap intervals of several statistics of the same samples
    (one set of resamples); each None below MIN_BLOCK_SAMPLES samples or two
    blocks' worth (fewer say nothing about the spread). Non-finite samples are left out."""
    x = _finite(samples)
    n = len(x)
    block = block or max(1, round(n ** (1 / 3)))  # the usual n^(1/3) block length
    if n < max(2 * block, MIN_BLOCK_SAMPLES):
        return [None for _ in stats]
    return [_interval(out, level) for out in _resampled(x, stats, block, resamples, seed, max(cap, 2 * block))]


def block_bootstrap_ci(
    samples: Sequence[float],
    stat: Stat = statistics.median,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    block: int | None = None,
    seed: int = 0,
    cap: int = MAX_RESAMPLED,
) -> tuple[float, float] | None:
    """Moving-block bootstrap interval of stat(samples) (block_bootstrap_cis)."""
    return block_bootstrap_cis(samples, [stat], level, resamples, block, seed, cap)[0]


def summary(values: Sequence[float | None], level: float = LEVEL) -> dict[str, Any]:
    """{median, ci: [lo, hi] or null, n} of independent measurements (None and
    non-finite values are left out)."""
    known = _finite(values).tolist()
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
