"""The performance figures of one result folder with their 95% intervals, and
the rule that calls a difference between two folders "beyond noise".

Interval of a figure:
- two repetitions or more: percentile bootstrap of the figure over the
  repetitions (run-to-run noise, which a single window cannot show);
- one repetition: latency percentiles from a moving-block bootstrap of the
  per-submission samples (the run's own `metrics.ci95` when it has one, as
  that is the same computation); throughput has none, since one window gives
  one throughput figure;
- a benchmark that repeats a row (the same cells) adds the spread of the
  repeats to each of them.
A difference is beyond noise only when the two intervals do not overlap and
the relative change exceeds --min-diff. Without an interval on either side the
noise is unknown, and no difference is claimed.
"""

from __future__ import annotations

from dataclasses import dataclass

from rifebench.measure.metrics import MIN_SAMPLES_FOR
from rifebench.measure.records import Latency
from rifebench.measure.stats import Percentile, block_bootstrap_ci, bootstrap_ci
from rifebench.report.schema import Repetition, RunResult

# (key, label, +1 when larger is better)
METRICS = (
    ("throughput_img_s", "throughput img/s", +1),
    ("latency_p50_ms", "latency p50 ms", -1),
    ("latency_p99_ms", "latency p99 ms", -1),
)
PERCENTILE = {"latency_p50_ms": ("p50", 50), "latency_p99_ms": ("p99", 99)}
# A bootstrap of a handful of samples gives an interval far narrower than the truth.
MIN_SAMPLES = MIN_SAMPLES_FOR["p90"]


@dataclass
class Figure:
    value: float | None
    ci: tuple[float, float] | None
    n: int  # how many measurements the interval rests on (repetitions, rows or samples)


def _of(key: str, throughput: float | None, latency: Latency) -> float | None:
    """The figure `key` of a run or a repetition."""
    if key == "throughput_img_s":
        return throughput
    value: float | None = getattr(latency, PERCENTILE[key][0])
    return value


def figures(run: RunResult) -> dict[str, Figure]:
    m = run.metrics
    return {
        key: _figure(run, key, _of(key, m.throughput_img_s, m.latency_ms), run.repetitions) for key, _, _ in METRICS
    }


def _figure(run: RunResult, key: str, value: float | None, reps: list[Repetition]) -> Figure:
    if len(reps) >= 2:
        per = [v for r in reps if (v := _of(key, r.throughput_img_s, r.latency_ms)) is not None]
        ci = bootstrap_ci(per)
        if ci is not None or key == "throughput_img_s":
            return Figure(value, ci, len(per))
    if key == "throughput_img_s":
        return Figure(value, None, max(len(reps), 1))
    samples = [s for st in run.streams for s in st.latency_samples_ms]
    if len(samples) < MIN_SAMPLES or value is None:
        return Figure(value, None, len(samples))
    stored = run.metrics.ci95 or {}
    if key in stored and len(reps) <= 1:
        return Figure(value, (stored[key][0], stored[key][1]) if stored[key] else None, len(samples))
    q = PERCENTILE[key][1]
    if q == 99 and len(samples) < MIN_SAMPLES_FOR["p99"]:
        return Figure(value, None, len(samples))
    return Figure(value, block_bootstrap_ci(samples, Percentile(q)), len(samples))


def pool_repeats(groups: list[list[dict[str, Figure]]]) -> None:
    """Rows a benchmark repeated: widen each repeat's interval to cover the
    bootstrap interval of the repeats' figures."""
    for rows in groups:
        if len(rows) < 2:
            continue
        for key, _, _ in METRICS:
            values = [v for r in rows if key in r and (v := r[key].value) is not None]
            ci = bootstrap_ci(values)
            if ci is None:
                continue
            for r in rows:
                own = r[key].ci
                r[key].ci = ci if own is None else (min(own[0], ci[0]), max(own[1], ci[1]))
                r[key].n = max(r[key].n, len(values)) if own is not None else len(values)


def judge(a: Figure, b: Figure, sign: int, min_diff: float) -> tuple[str, str, bool | None]:
    """(change shown, verdict, flagged); flagged None when the noise is unknown."""
    if a.value is None or b.value is None or a.value == 0:
        return "", "not comparable", False
    change = (b.value - a.value) / a.value
    shown = f"{100 * change:+.1f}%"
    if a.ci is None or b.ci is None:
        ns = sorted({f.n for f in (a, b) if f.ci is None})
        return shown, f"noise unknown (n={'/'.join(map(str, ns))})", None
    if a.ci[0] <= b.ci[1] and b.ci[0] <= a.ci[1]:
        return shown, "same within noise", False
    if abs(change) <= min_diff:
        return shown, "same within --min-diff (intervals apart)", False
    return shown, ("BETTER" if change * sign > 0 else "WORSE") + " (beyond noise)", True


def interval(f: Figure) -> str:
    return "n/a" if f.ci is None else f"[{_g(f.ci[0])}, {_g(f.ci[1])}]"


def _g(x: float) -> str:
    return f"{x:.2f}" if abs(x) < 1e4 else f"{x:.3g}"
