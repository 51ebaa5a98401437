"""speed_vs_quality.png: throughput against PSNR, the question this tool exists
for (how much quality does a faster configuration cost?).

PSNR is a dataset row's mean over its frames against the ground truth, or a
dummy row's output fingerprint against row 1's. Outputs identical to row 1's
have no finite PSNR: they sit at a capped position labelled "identical". The
Pareto front joins the valid rows that no other valid row beats on both axes;
invalid rows are drawn hollow and kept off the front.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from rifebench.report.plot_common import INVALID_NOTE, finish, invalid, measured, pyplot, title
from rifebench.report.table import RowRecord

T = TypeVar("T")

SPEED_QUALITY = "speed_vs_quality.png"
IDENTICAL = "identical"
CAP_MARGIN_DB = 6.0  # how far right of the best finite PSNR the "identical" position sits
CAP_MIN_DB = 60.0


def with_quality(records: Sequence[RowRecord]) -> tuple[list[RowRecord], list[RowRecord]]:
    """(rows with a PSNR figure, measured rows without one)."""
    rows = measured(records)
    return [r for r in rows if r.psnr_db is not None], [r for r in rows if r.psnr_db is None]


def _psnr(r: RowRecord) -> float:
    return math.nan if r.psnr_db is None else r.psnr_db


def cap(rows: Sequence[RowRecord]) -> float:
    finite = [_psnr(r) for r in rows if math.isfinite(_psnr(r))]
    return max(CAP_MIN_DB, max(finite, default=0.0) + CAP_MARGIN_DB)


def pareto_front(points: Sequence[tuple[float, float, T]]) -> list[T]:
    """Rows no other row beats on both PSNR and throughput (x, y both higher is better)."""
    best, front = -math.inf, list[T]()
    for _x, y, rec in sorted(points, key=lambda p: (-p[0], -p[1])):
        if y > best:
            front.append(rec)
            best = y
    return front


def _xlabel(rows: Sequence[RowRecord]) -> str:
    bases = sorted({r.quality_basis or "?" for r in rows})
    return "PSNR dB (" + "; ".join(f"vs {b}" for b in bases) + ")"


def _ticks(ax: Any, capped: float, any_identical: bool) -> None:
    if not any_identical:
        return
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi and t < capped - CAP_MARGIN_DB / 2]
    ax.set_xticks([*ticks, capped])
    ax.set_xticklabels([f"{t:g}" for t in ticks] + [IDENTICAL])


def speed_quality_plot(records: Sequence[RowRecord], path: Path) -> str | None:
    rows, left_out = with_quality(records)
    if not rows:
        return None
    capped = cap(rows)
    points = [(_psnr(r) if math.isfinite(_psnr(r)) else capped, r.throughput_img_s or 0.0, r) for r in rows]
    front = pareto_front([p for p in points if not invalid(p[2])])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    for x, y, r in points:
        marker = "o" if r.mode == "dataset" else "s"
        ax.plot(
            x,
            y,
            marker=marker,
            markersize=8,
            color="tab:blue",
            markerfacecolor="none" if invalid(r) else "tab:blue",
            linestyle="none",
        )
        label = f"row {r.row}" + (f" ({IDENTICAL})" if not math.isfinite(_psnr(r)) else "")
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7, color="dimgrey")
    if front:
        on_front = {id(r) for r in front}
        xy = sorted((p[0], p[1]) for p in points if id(p[2]) in on_front)
        ax.plot(
            [p[0] for p in xy],
            [p[1] for p in xy],
            linestyle="--",
            color="tab:orange",
            marker="o",
            markersize=13,
            markerfacecolor="none",
            label="Pareto front (no valid row is both faster and closer)",
        )
        ax.legend(fontsize=7, loc="lower left")
    ax.set_xlabel(_xlabel(rows))
    ax.set_ylabel("throughput (img/s)")
    ax.set_ylim(0, 1.12 * max(p[1] for p in points))
    ax.grid(alpha=0.3)
    lo, hi = min(p[0] for p in points), max(p[0] for p in points)
    ax.set_xlim(lo - max(1.0, 0.08 * (hi - lo)), hi + max(2.0, 0.15 * (hi - lo)))  # room for the labels
    _ticks(ax, capped, any(not math.isfinite(_psnr(r)) for r in rows))
    notes = []
    if left_out:
        notes.append("left out, no quality figure: " + ", ".join(f"row {r.row}" for r in left_out))
    if any(invalid(r) for r in rows):
        notes.append(INVALID_NOTE)
    if len({r.mode for r in rows}) > 1:
        notes.append("squares: dummy rows (output vs row 1); circles: dataset rows (vs ground truth)")
    return finish(fig, ax, path, title("Speed against quality", rows), "\n".join(notes) or None)
