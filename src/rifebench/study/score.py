"""The study's scoring: FPS and speed-up from one statistic (the median pair
time over all rounds), each with a 95% bootstrap interval over the rounds (the
speed-up's from ratios within a round, which the rotation exposed to the same
load); quality as outputs against the reference's, equal outputs "identical",
never a capped or infinite PSNR; the dispersion warning."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from rifebench.measure.quality import output_diff
from rifebench.measure.stats import bootstrap_ci, spread_pct
from rifebench.study.records import StudyRow
from rifebench.warning_codes import warning

SPREAD_LIMIT_PCT = 20.0  # measure.stats.spread_pct of a configuration's pair times
STATISTIC = (
    "FPS = 1000 / median ms per pair; speed-up = reference median / configuration median; "
    "[95% CI]: percentile bootstrap over the rounds (speed-up: ratios paired by round)"
)


def speed(rounds_ms: list[list[float]], ref_rounds_ms: list[list[float]] | None) -> dict[str, Any]:
    """FPS and speed-up of one configuration from the same statistic (the median
    pair time over all rounds), each with its 95% CI from the per-round figures.
    `ref_rounds_ms` is the reference's pair times by round (None: no reference)."""
    rounds = [r for r in rounds_ms if r]
    pooled = [x for r in rounds for x in r]
    ms = statistics.median(pooled)
    ci = bootstrap_ci([1000.0 / statistics.median(r) for r in rounds])
    out: dict[str, Any] = {
        "ms_p50": ms,
        "ms_min": min(pooled),
        "fps": 1000.0 / ms,
        "fps_ci95": list(ci) if ci else None,
        "rounds": len(rounds),
        "pairs": len(pooled),
        "spread_pct": spread_pct(pooled),
        "speedup": None,
        "speedup_ci95": None,
    }
    ref_pooled = [x for r in ref_rounds_ms or [] for x in r]
    if ref_rounds_ms and ref_pooled:
        ratios = [
            statistics.median(b) / statistics.median(a)
            for a, b in zip(rounds_ms, ref_rounds_ms, strict=False)  # a failed round leaves one side short
            if a and b
        ]
        ci = bootstrap_ci(ratios)
        out.update(speedup=statistics.median(ref_pooled) / ms, speedup_ci95=list(ci) if ci else None)
    return out


def quality(ref_outputs: Sequence[Any], outputs: Sequence[Any]) -> dict[str, Any]:
    """Outputs against the reference's; `identical` (and psnr_db null: JSON has
    no infinity) when every pair's output is equal."""
    scores = [output_diff(a, b) for a, b in zip(ref_outputs, outputs, strict=False)]
    if any(math.isnan(float(v)) for s in scores for v in s.values()):  # min() and max() would skip a NaN
        raise ValueError("its outputs (or the reference's) hold NaN values: no quality to score")
    psnr = min(s["psnr_db"] for s in scores)
    return {
        "identical": math.isinf(psnr),
        "psnr_db": None if math.isinf(psnr) else psnr,
        "ssim": min(s["ssim"] for s in scores),
        "max_abs_err": max(s["max_abs_err"] for s in scores),
        "pairs": len(scores),
    }


def _number(t: Any) -> bool:
    """A finite number >= 0 (not a bool; an integer beyond float range is none)."""
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        return False
    try:
        return math.isfinite(t) and t >= 0
    except OverflowError:
        return False


def bad_figure(row: StudyRow) -> str | None:
    """Why the worker's figures cannot be scored (a pair time that is not a
    finite positive number), or None."""
    for r, times in enumerate(row.rounds_ms, 1):
        for t in times:
            if not _number(t) or t == 0:
                return f"round {r}: a pair time of {t!r} ms (accepted: a finite number > 0)"
    for t in row.cpu_ms:
        if not _number(t):
            return f"a CPU time of {t!r} ms per pair (accepted: a finite number >= 0)"
    return None


def score(row: StudyRow, base: StudyRow) -> StudyRow:
    """Speed, quality and warnings of one row against the first (the reference).
    A row whose figures are not finite is failed, with the reason: no statistic takes them."""
    if not row.measured:
        return row
    if why := bad_figure(row):
        row.error = f"the worker measured {why}"
        # Kept, as null where not a number: study.json holds no NaN.
        row.rounds_ms = [[t if _number(t) else None for t in r] for r in row.rounds_ms]  # type: ignore[misc]  # failed row
        row.cpu_ms = [t if _number(t) else None for t in row.cpu_ms]  # type: ignore[misc]  # failed row: null, no NaN
        return row
    row.update(speed(row.rounds_ms, base.rounds_ms if base.measured else None))
    row.warnings = []
    if row.spread_pct is not None and row.spread_pct > SPREAD_LIMIT_PCT:
        row.warnings.append(
            warning("DISPERSION", config=f"{row.config} at {row.size}", spread_pct=row.spread_pct, pairs=row.pairs)
        )
    # CPU platform: process CPU time per pair, insensitive to time slicing by other
    # processes (not to cache or memory-bandwidth sharing).
    if base.measured and row.platform == "cpu" and row.cpu_ms and base.cpu_ms:
        row.speedup_cpu_time = statistics.median(base.cpu_ms) / statistics.median(row.cpu_ms)
    if base.outputs and row.outputs:
        try:
            row.quality = quality(base.outputs, row.outputs)
        except ValueError as exc:
            row.error = str(exc)
    mem = row.memory or {}
    # GPUs: the allocator's peak. CPUs: the process's peak RSS, and how much of it
    # the run added to the loaded model (torch alone is a few hundred MiB).
    row.peak_mem_bytes = mem.get("peak_allocated_bytes") or mem.get("peak_rss_bytes")
    if mem.get("peak_allocated_bytes") is None and mem.get("peak_rss_bytes") and row.rss_after_load_bytes:
        row.peak_mem_added_bytes = mem["peak_rss_bytes"] - row.rss_after_load_bytes
    row.fallbacks = [f"{f['knob']}: {f['reason']}" for f in (row.knobs or {}).get("fallbacks", [])]
    return row
