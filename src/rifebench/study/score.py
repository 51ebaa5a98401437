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
    psnr = min(s["psnr_db"] for s in scores)
    return {
        "identical": math.isinf(psnr),
        "psnr_db": None if math.isinf(psnr) else psnr,
        "ssim": min(s["ssim"] for s in scores),
        "max_abs_err": max(s["max_abs_err"] for s in scores),
        "pairs": len(scores),
    }


def score(row: StudyRow, base: StudyRow) -> StudyRow:
    """Speed, quality and warnings of one row against the first (the reference)."""
    if not row.measured:
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
        row.quality = quality(base.outputs, row.outputs)
    mem = row.memory or {}
    # GPUs: the allocator's peak. CPUs: the process's peak RSS, and how much of it
    # the run added to the loaded model (torch alone is a few hundred MiB).
    row.peak_mem_bytes = mem.get("peak_allocated_bytes") or mem.get("peak_rss_bytes")
    if mem.get("peak_allocated_bytes") is None and mem.get("peak_rss_bytes") and row.rss_after_load_bytes:
        row.peak_mem_added_bytes = mem["peak_rss_bytes"] - row.rss_after_load_bytes
    row.fallbacks = [f"{f['knob']}: {f['reason']}" for f in (row.knobs or {}).get("fallbacks", [])]
    return row
