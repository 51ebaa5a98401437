"""node_throughput.png: each node's throughput per row (one dot per node, a bar
at the row's median across nodes), outliers ringed and named, cells that did
not pass drawn as crosses on the axis so a failure is seen, not missing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rifebench.fleet.records import FleetCell, FleetPlan, RowStats
from rifebench.report.plot_common import finish, pyplot, title


def node_plot(plan: FleetPlan, cells: Sequence[FleetCell], stats: Sequence[RowStats], path: Path) -> str | None:
    measured = [c for c in cells if c.throughput_img_s is not None]
    if not measured and not cells:
        return None
    plt = pyplot()
    rows = [st.row for st in stats]
    nodes = list(dict.fromkeys(c.node for c in cells))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(rows) + 3), 4.8))
    width = 0.6
    for i, node in enumerate(nodes):
        offset = (i - (len(nodes) - 1) / 2) * width / max(len(nodes), 1)
        mine = [c for c in measured if c.node == node]
        xs = [rows.index(c.row) + offset for c in mine]
        color = ax.plot(xs, [c.throughput_img_s for c in mine], "o", label=node)[0].get_color() if mine else None
        for x, c in zip(xs, mine, strict=True):
            if c.outlier:
                ax.plot(x, c.throughput_img_s, "o", markersize=14, markerfacecolor="none", color="red")
                ax.annotate(
                    f"{node} ({c.outlier})",
                    (x, c.throughput_img_s),
                    textcoords="offset points",
                    xytext=(8, -3),
                    fontsize=7,
                    color="red",
                )
        bad = [c for c in cells if c.node == node and c.throughput_img_s is None]
        if bad:
            ax.plot(
                [rows.index(c.row) + offset for c in bad],
                [0] * len(bad),
                "x",
                color=color or "grey",
                markersize=9,
                clip_on=False,
            )
    for x, st in enumerate(stats):
        if st.median is not None:
            ax.hlines(st.median, x - width / 2, x + width / 2, colors="black", linewidth=1)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([_label(st) for st in stats], fontsize=7)
    ax.set_ylabel("throughput (img/s)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3, axis="y")
    if len(nodes) <= 12:
        ax.legend(fontsize=7, title="node", title_fontsize=7)
    note = "line: median across nodes; x on the axis: cell failed or not run; red ring: outlier node"
    return finish(fig, ax, path, title(f"Throughput per node, {Path(plan.profile or '?').name}", measured), note)


def _label(st: RowStats) -> str:
    cells = [f"{k}={v}" for k, v in st.cells.items()]
    return "\n".join([f"row {st.row}", *cells[:3]])
