"""Statistics derived from raw samples. Raw samples are kept; merging streams
concatenates samples, it never averages averages."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from rifebench.measure.records import Latency


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    n = len(sorted_values)
    if n == 0:
        return None
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


# A percentile needs enough samples above it to mean anything: p90 from fewer
# than 10 samples, or p99 from fewer than 100, is an extreme value, not a
# percentile. Below these counts it is null and `percentile_note` says why.
MIN_SAMPLES_FOR = {"p90": 10, "p99": 100}


def latency_stats(samples_ms: Iterable[float]) -> Latency:
    """mean, p50, p90, p99, min, max and stdev (sample stdev; null below 2 samples)."""
    values = sorted(samples_ms)
    n = len(values)
    if n == 0:
        return Latency()
    mean = math.fsum(values) / n
    missing = [k for k, need in MIN_SAMPLES_FOR.items() if n < need]
    note = ", ".join(f"{k} needs >= {MIN_SAMPLES_FOR[k]} samples" for k in missing) + f"; {n} measured"
    return Latency(
        count=n,
        mean=mean,
        p50=percentile(values, 50),
        p90=percentile(values, 90) if n >= MIN_SAMPLES_FOR["p90"] else None,
        p99=percentile(values, 99) if n >= MIN_SAMPLES_FOR["p99"] else None,
        min=values[0],
        max=values[-1],
        stdev=math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None,
        percentile_note=note if missing else None,
    )


def rate(count: float, seconds: float | None) -> float | None:
    if not seconds or seconds <= 0:
        return None
    return count / seconds
