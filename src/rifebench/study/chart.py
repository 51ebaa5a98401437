"""The study's speed-vs-quality chart: one point per (model, configuration) of a
size, FPS across, PSNR against the dataset's ground truth up, every point
labelled, the Pareto front (no other point is both faster and better) drawn and
marked on the rows. Rows with random weights (speed only) have no quality: they
are listed under the chart, never placed on it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rifebench.study.records import StudyRow


def charted(rows: Sequence[StudyRow]) -> list[StudyRow]:
    return [r for r in rows if r.fps and r.dataset_quality and not r.error]


def front(rows: Sequence[StudyRow]) -> list[StudyRow]:
    """The Pareto front of (FPS, PSNR), fastest first: each point better than every faster one."""
    best, out = -float("inf"), []
    for r in sorted(rows, key=lambda r: (-(r.fps or 0.0), -_psnr(r))):
        if _psnr(r) > best:
            out.append(r)
            best = _psnr(r)
    return out


def _psnr(r: StudyRow) -> float:
    return float((r.dataset_quality or {})["psnr_db"])


def label(r: StudyRow) -> str:
    return f"{r.model} {r.config}" if r.model else r.config


def draw_charts(out: Path, rows: Sequence[StudyRow]) -> list[str]:
    """One PNG per size that has scored rows; sets each row's `pareto`. The file names."""
    names = []
    for size in dict.fromkeys(r.size for r in rows):
        of_size = [r for r in rows if r.size == size]
        points = charted(of_size)
        on_front = {id(r) for r in front(points)}
        for r in points:
            r.pareto = id(r) in on_front
        if points:
            name = f"study-{size}.png"
            _draw(out / name, size, points, [r for r in of_size if r.weights == "random"])
            names.append(name)
    return names


def _draw(path: Path, size: str, points: list[StudyRow], speed_only: list[StudyRow]) -> None:
    from rifebench.report.plot_common import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 6))
    try:
        line = front(points)
        ax.plot([r.fps for r in line], [_psnr(r) for r in line], "-", color="tab:red", label="Pareto front")
        for r in points:
            ax.scatter(r.fps, _psnr(r), color="tab:red" if r.pareto else "tab:blue", zorder=3)
            ax.annotate(label(r), (r.fps, _psnr(r)), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel(f"pairs per second at {size} (median pair time)")
        ax.set_ylabel("PSNR dB against the dataset's ground truth")
        ax.set_title(f"speed vs quality at {size}: one point per (model, configuration)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower left")
        if speed_only:
            listed = ", ".join(label(r) for r in speed_only)
            fig.text(0.01, 0.01, f"speed only (random weights, not drawn): {listed}", fontsize=6, wrap=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
