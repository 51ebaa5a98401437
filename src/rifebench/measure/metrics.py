"""Statistics derived from raw samples. Raw samples are kept; merging streams
concatenates samples, it never averages averages."""
from __future__ import annotations

import math
from typing import Iterable, Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    n = len(sorted_values)
    if n == 0:
        return None
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def latency_stats(samples_ms: Iterable[float]) -> dict:
    """mean, p50, p90, p99, min, max and stdev (sample stdev; null below 2 samples)."""
    values = sorted(samples_ms)
    n = len(values)
    if n == 0:
        return {k: None for k in ("count", "mean", "p50", "p90", "p99", "min", "max", "stdev")} | {"count": 0}
    mean = math.fsum(values) / n
    stdev = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {
        "count": n,
        "mean": mean,
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "min": values[0],
        "max": values[-1],
        "stdev": stdev,
    }


def rate(count: float, seconds: float | None) -> float | None:
    if not seconds or seconds <= 0:
        return None
    return count / seconds
