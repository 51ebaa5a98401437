"""The benchmark's plots, as PNG. Each drawing function returns its title (None
when it had nothing to draw), so what a plot says can be checked without
reading pixels.

- throughput_vs_streams.png: throughput against streams, one line per
  configuration, only when the rows vary the number of streams;
- throughput_by_row.png: one bar per row otherwise;
- speed_vs_quality.png: throughput against PSNR with the Pareto front
  (report/plot_quality.py), when any row has a quality figure;
- latency_distribution.png: the per-pair latency distribution of every row.
Invalid rows are drawn hollow; every title names model, size, platform and device.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from rifebench.report.plot_common import (
    INVALID_NOTE,
    draw_ci,
    finish,
    invalid,
    measured,
    pyplot,
    row_label,
    title,
    varying_cells,
)
from rifebench.report.plot_quality import SPEED_QUALITY, speed_quality_plot
from rifebench.report.schema import SchemaError
from rifebench.report.table import RowRecord

THROUGHPUT = "throughput_vs_streams.png"
BARS = "throughput_by_row.png"
LATENCY = "latency_distribution.png"
FILES = (THROUGHPUT, BARS, SPEED_QUALITY, LATENCY)


def _samples(test_dir: Path) -> list[float]:
    from rifebench.report.summary import load_results

    try:
        run = load_results(test_dir)
    except SchemaError:  # the summary already calls the row failed
        return []
    return [s for st in (run.streams if run else []) for s in st.latency_samples_ms]


def varies_streams(records: Sequence[RowRecord]) -> bool:
    return len({r.streams for r in measured(records)}) > 1


def throughput_plot(records: Sequence[RowRecord], path: Path) -> str | None:
    """One line per configuration that differs in more than STREAMS; the
    precision always names the line. Drawn only when STREAMS varies."""
    rows = [r for r in measured(records) if r.streams]
    if not varies_streams(rows):
        return None
    varying = varying_cells(rows, skip=frozenset({"STREAMS", "PRECISION"}))
    groups: dict[str, list[RowRecord]] = {}
    for r in rows:
        label = ", ".join([str(r.precision), *(f"{k}={r.cells[k]}" for k in varying if k in r.cells)])
        groups.setdefault(label, []).append(r)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for g, (label, group) in enumerate(groups.items()):
        members = sorted(group, key=lambda r: r.streams or 0)
        xs, ys = [r.streams or 0 for r in members], [r.throughput_img_s for r in members]
        color = ax.plot(xs, ys, label=label)[0].get_color()
        draw_ci(ax, xs, members, color)
        for r in members:  # filled when valid, hollow when not
            ax.plot(
                r.streams,
                r.throughput_img_s,
                marker="o",
                markersize=7,
                color=color,
                markerfacecolor="none" if invalid(r) else color,
            )
            ax.annotate(
                f"row {r.row}",
                (r.streams, r.throughput_img_s),
                textcoords="offset points",
                xytext=(5, 4 + 9 * g),
                fontsize=7,
                color="grey",
            )
    ax.set_xlabel("streams")
    ax.set_ylabel("throughput (img/s)")
    ax.set_xticks(sorted({r.streams or 0 for r in rows}))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    note = INVALID_NOTE if any(invalid(r) for r in rows) else None
    return finish(fig, ax, path, title("Throughput against streams", rows), note)


def bars_plot(records: Sequence[RowRecord], path: Path) -> str | None:
    """One bar per measured row (error bar: the CI over repetitions), for profiles
    whose rows all run the same number of streams."""
    rows = measured(records)
    if not rows or varies_streams(rows):
        return None
    varying = varying_cells(rows)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(rows) + 2), 4.8))
    xs = list(range(len(rows)))
    ys = [r.throughput_img_s for r in rows]
    bars = ax.bar(xs, ys, color="tab:blue", edgecolor="tab:blue", linewidth=1.5)
    draw_ci(ax, xs, rows)
    for x, bar, r in zip(xs, bars, rows, strict=True):
        if invalid(r):
            bar.set_facecolor("none")
            bar.set_hatch("//")
        ax.annotate(
            f"{r.throughput_img_s:.2f}",
            (x, r.throughput_ci_high or r.throughput_img_s),
            textcoords="offset points",
            xytext=(0, 3),
            ha="center",
            fontsize=7,
        )
    ax.set_xticks(xs)
    ax.set_xticklabels([row_label(r, varying) for r in rows], fontsize=7)
    ax.set_ylabel("throughput (img/s)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3, axis="y")
    note = INVALID_NOTE if any(invalid(r) for r in rows) else None
    streams = rows[0].streams
    return finish(fig, ax, path, title(f"Throughput per row ({streams} stream(s) each)", rows), note)


def latency_plot(records: Sequence[RowRecord], bench_dir: Path, path: Path) -> str | None:
    """Box per row: box = p25..p75, line = p50, whiskers reach the furthest
    samples inside p1..p99; the red dot is the row's p99 itself. Invalid rows:
    dashed grey boxes."""
    rows = [(r, _samples(Path(bench_dir) / (r.dir or ""))) for r in measured(records)]
    rows = [(r, s) for r, s in rows if s]
    if not rows:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(rows) + 2), 4.8))
    data = [s for _, s in rows]
    box = ax.boxplot(data, whis=(1, 99), showfliers=False)
    for i, (r, _) in enumerate(rows):
        if invalid(r):
            for part in ("boxes", "medians"):
                box[part][i].set(linestyle="--", color="grey")
    ax.set_xticks(range(1, len(rows) + 1))
    ax.set_xticklabels(
        [f"row {r.row}{' (invalid)' if invalid(r) else ''}\n{r.precision} x{r.streams}" for r, _ in rows],
        fontsize=8,
    )
    ax.scatter(
        range(1, len(rows) + 1),
        [r.latency_p99_ms for r, _ in rows],
        marker=".",
        color="red",
        zorder=3,
        label="p99",
    )
    lo, hi = min(min(s) for s in data), max(max(s) for s in data)
    if lo > 0 and hi / lo > 20:
        ax.set_yscale("log")
    ax.set_ylabel("latency per pair (ms)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    what = "Latency per pair (box p25-p75, line p50, whiskers within p1-p99)"
    return finish(fig, ax, path, title(what, [r for r, _ in rows]))


def drawings(records: Sequence[RowRecord], bench_dir: Path) -> dict[str, Callable[[Path], str | None]]:
    return {
        THROUGHPUT: lambda p: throughput_plot(records, p),
        BARS: lambda p: bars_plot(records, p),
        SPEED_QUALITY: lambda p: speed_quality_plot(records, p),
        LATENCY: lambda p: latency_plot(records, bench_dir, p),
    }


def write(bench_dir: Path, records: Sequence[RowRecord]) -> list[str]:
    """The plot files written (names relative to bench_dir); temp file + rename."""
    done = []
    for name, draw in drawings(records, bench_dir).items():
        target = Path(bench_dir) / name
        tmp = target.with_name(f".{name}.tmp.png")
        try:
            if draw(tmp):
                os.replace(tmp, target)
                done.append(name)
        finally:
            tmp.unlink(missing_ok=True)
    return done
