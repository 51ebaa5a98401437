"""The resampling intervals (measure/stats.py): numpy's resamples mean what the
pure-Python ones meant, a million samples get their interval in seconds, and
the m-out-of-n cap keeps the interval's width."""

from __future__ import annotations

import math
import random
import statistics
import time

import numpy as np
import pytest

from rifebench.measure.metrics import percentile
from rifebench.measure.stats import (
    MAX_RESAMPLED,
    Percentile,
    block_bootstrap_ci,
    block_bootstrap_cis,
    bootstrap_ci,
    summary,
)


def _old_interval(values, level=0.95):
    values.sort()
    n = len(values) - 1
    return values[math.floor((1 - level) / 2 * n)], values[math.ceil((1 + level) / 2 * n)]


def old_bootstrap_ci(values, stat=statistics.median, resamples=2000, seed=0):
    """The pure-Python implementation numpy replaced (issue 21), kept as the reference."""
    rng = random.Random(seed)
    return _old_interval([stat(rng.choices(values, k=len(values))) for _ in range(resamples)])


def old_block_bootstrap_ci(samples, stat=statistics.median, resamples=2000, seed=0):
    n = len(samples)
    block = max(1, round(n ** (1 / 3)))
    rng = random.Random(seed)
    starts = range(n - block + 1)
    out = []
    for _ in range(resamples):
        draw = []
        while len(draw) < n:
            s = rng.choice(starts)
            draw.extend(samples[s : s + block])
        out.append(stat(draw[:n]))
    return _old_interval(out)


def ar1(n: int, phi: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    x, out = 0.0, []
    for _ in range(n):
        x = phi * x + rng.gauss(0, 1)
        out.append(50.0 + x)
    return out


def close(new, old, tol=0.3):
    """Two intervals of one statistic agree within `tol` of the old one's width
    (the resamples are random: the endpoints move by a few percent of it)."""
    width = old[1] - old[0]
    return abs(new[0] - old[0]) <= tol * width and abs(new[1] - old[1]) <= tol * width


@pytest.mark.parametrize("q", [50, 90])
def test_the_block_interval_matches_the_pure_python_one(q):
    samples = ar1(400, 0.6, seed=3)

    def stat(v):
        return percentile(sorted(v), q)

    old = old_block_bootstrap_ci(samples, stat)
    new = block_bootstrap_ci(samples, Percentile(q))
    assert close(new, old), (new, old)
    assert block_bootstrap_ci(samples, stat) == pytest.approx(new)  # any callable: the same resamples


def test_the_plain_interval_matches_the_pure_python_one():
    rng = random.Random(5)
    values = [rng.gauss(100.0, 10.0) for _ in range(40)]
    assert close(bootstrap_ci(values), old_bootstrap_ci(values))
    assert close(bootstrap_ci(values, statistics.mean), old_bootstrap_ci(values, statistics.mean))
    assert bootstrap_ci(values, seed=1) == bootstrap_ci(values, seed=1)  # seeded


def test_non_finite_values_are_left_out():
    assert bootstrap_ci([1.0, math.nan, 2.0, 3.0, math.inf]) == bootstrap_ci([1.0, 2.0, 3.0])
    assert summary([3.0, math.nan, 1.0, 2.0])["median"] == 2.0 and summary([math.nan])["n"] == 0
    assert bootstrap_ci([1.0, math.nan]) is None


def test_a_million_samples_get_their_interval_in_seconds():
    """Issue 21: 2,000 resamples of a million values took minutes after a short
    window. Both latency intervals of a run (one set of resamples), from the list
    the run holds; the bound is generous for a loaded machine (about 0.5 s idle)."""
    samples = (np.random.default_rng(0).gamma(9.0, 1.0, 1_000_000) + 10).tolist()
    t0 = time.perf_counter()
    p50, p99 = block_bootstrap_cis(samples, [Percentile(50), Percentile(99)])
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0, f"{elapsed:.2f} s"
    true50, true99 = np.percentile(samples, [50, 99])
    assert p50[0] < true50 < p50[1] and p99[0] < true99 < p99[1]
    assert p50[1] - p50[0] < 0.05  # a million iid samples pin the median (sd 3): about 0.03 wide


def test_m_out_of_n_keeps_the_width_of_the_interval():
    """Above the cap, resamples of m values scaled by sqrt(m/n): the width of the
    full moving-block bootstrap, and of theory for iid samples."""
    samples = ar1(40_000, 0.5, seed=7)
    full = block_bootstrap_ci(samples, cap=len(samples), resamples=400)
    capped = block_bootstrap_ci(samples, cap=4_000, resamples=400)
    assert capped[0] < statistics.median(samples) < capped[1]
    assert (capped[1] - capped[0]) == pytest.approx(full[1] - full[0], rel=0.25)
    iid = np.random.default_rng(1).normal(0.0, 1.0, 4 * MAX_RESAMPLED).tolist()
    lo, hi = bootstrap_ci(iid)
    theory = 2 * 1.96 * 1.2533 / math.sqrt(len(iid))  # the median's standard error, sqrt(pi/2) sd/sqrt(n)
    assert hi - lo == pytest.approx(theory, rel=0.25)


def test_too_few_samples_give_no_interval():
    assert block_bootstrap_ci([1.0] * 9) is None and block_bootstrap_cis([1.0, 2.0], [statistics.mean]) == [None]
    assert bootstrap_ci([1.0]) is None


def test_a_long_window_says_what_it_computes_before_its_intervals(capsys):
    """A run's one-repetition intervals (report.repetitions.ci95): both latency
    percentiles from one set of resamples; above the cap, a line on the console
    first says what the wait is for."""
    from types import SimpleNamespace

    from rifebench.report.repetitions import ci95

    def rep(n):
        samples = (np.random.default_rng(n).gamma(9.0, 1.0, n) + 10).tolist()
        return [
            SimpleNamespace(streams=[SimpleNamespace(latency_ms=samples)], combined=SimpleNamespace(throughput=1.0))
        ]

    small = ci95(rep(5_000))
    assert capsys.readouterr().out == "" and small["latency_p50_ms"] and small["latency_p99_ms"]
    large = ci95(rep(3 * MAX_RESAMPLED))
    assert capsys.readouterr().out.startswith("computing the latency intervals: moving-block bootstrap of 30,000")
    lo, hi = large["latency_p50_ms"]
    assert lo < hi and large["latency_p99_ms"][0] > hi
    assert ci95(rep(50))["latency_p99_ms"] is None  # p99 of 50 samples is no percentile
