"""The benchmark's plots, as PNG: throughput against streams per precision, and
the per-pair latency distribution of every measured row.

matplotlib is forced onto its Agg backend before pyplot is imported, so no
display is ever needed (servers, containers, CI).
"""
from __future__ import annotations

from pathlib import Path

THROUGHPUT = "throughput_vs_streams.png"
LATENCY = "latency_distribution.png"
FILES = (THROUGHPUT, LATENCY)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _samples(test_dir: Path) -> list[float]:
    from rifebench.report.summary import load_results

    doc = load_results(test_dir) or {}
    return [s for st in doc.get("streams", []) for s in st.get("latency_samples_ms") or []]


def _group_label(rec: dict, varying: list[str]) -> str:
    parts = [f"{rec.get('precision')}"] + [f"{k}={rec['cells'][k]}" for k in varying if k in rec["cells"]]
    return ", ".join(parts)


def throughput_plot(records: list[dict], path: Path) -> bool:
    """One line per configuration that differs in more than STREAMS; the
    precision always names the line."""
    measured = [r for r in records if r.get("throughput_img_s") is not None and r.get("streams")]
    if not measured:
        return False
    keys = sorted({k for r in measured for k in r["cells"]} - {"STREAMS", "PRECISION"})
    varying = [k for k in keys if len({r["cells"].get(k) for r in measured}) > 1]
    groups: dict[str, list[dict]] = {}
    for r in measured:
        groups.setdefault(_group_label(r, varying), []).append(r)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for g, (label, rows) in enumerate(groups.items()):
        rows = sorted(rows, key=lambda r: r["streams"])
        ax.plot([r["streams"] for r in rows], [r["throughput_img_s"] for r in rows], marker="o", label=label)
        for r in rows:  # offset per line, so labels of points that coincide stay readable
            ax.annotate(f"row {r['row']}", (r["streams"], r["throughput_img_s"]), textcoords="offset points",
                        xytext=(5, 4 + 9 * g), fontsize=7, color="grey")
    ax.set_xlabel("streams")
    ax.set_ylabel("throughput (img/s)")
    ax.set_title("Throughput against streams")
    ax.set_xticks(sorted({r["streams"] for r in measured}))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def latency_plot(records: list[dict], bench_dir: Path, path: Path) -> bool:
    """Box per row: box = p25..p75, line = p50, whiskers reach the furthest
    samples inside p1..p99; the red dot is the row's p99 itself."""
    rows = [(r, _samples(Path(bench_dir) / r["dir"])) for r in records if r.get("throughput_img_s") is not None]
    rows = [(r, s) for r, s in rows if s]
    if not rows:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(rows) + 2), 4.5))
    data = [s for _, s in rows]
    ax.boxplot(data, whis=(1, 99), showfliers=False)
    ax.set_xticks(range(1, len(rows) + 1))
    ax.set_xticklabels([f"row {r['row']}\n{r.get('precision')} x{r.get('streams')}" for r, _ in rows], fontsize=8)
    ax.scatter(range(1, len(rows) + 1), [r.get("latency_p99_ms") for r, _ in rows], marker=".", color="red",
               zorder=3, label="p99")
    lo, hi = min(min(s) for s in data), max(max(s) for s in data)
    if lo > 0 and hi / lo > 20:
        ax.set_yscale("log")
    ax.set_ylabel("latency per pair (ms)")
    ax.set_title("Latency per pair (box p25-p75, line p50, whiskers within p1-p99)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(bench_dir: Path, records: list[dict]) -> list[str]:
    """The plot files written (names relative to bench_dir); temp file + rename."""
    import os

    done = []
    for name, draw in ((THROUGHPUT, lambda p: throughput_plot(records, p)),
                       (LATENCY, lambda p: latency_plot(records, bench_dir, p))):
        target = Path(bench_dir) / name
        tmp = target.with_name(f".{name}.tmp.png")
        try:
            if draw(tmp):
                os.replace(tmp, target)
                done.append(name)
        finally:
            tmp.unlink(missing_ok=True)
    return done
