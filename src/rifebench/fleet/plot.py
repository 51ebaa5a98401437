"""node_throughput.png: each node's throughput per row (one dot per node, a bar
at the row's median across nodes), outliers ringed and named, cells that did
not pass drawn as crosses on the axis so a failure is seen, not missing.

Linear in the cells, with a bounded number of artists: up to LEGEND_NODES nodes
each has its colour and a legend entry; beyond, all dots share one artist (a
legend of thousands of nodes would hide the plot) and only the first
NAMED_OUTLIERS outliers are named. The title says what the rows ran: per row,
what a measured cell recorded, else what the plan asked for (a dry run's
folder, a row whose every cell failed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rifebench.data.video_io import is_video_path
from rifebench.errors import UsageError
from rifebench.fleet.records import FleetCell, FleetPlan, RowStats
from rifebench.options import BY_ENV
from rifebench.report.plot_common import finish, pyplot

LEGEND_NODES = 12
NAMED_OUTLIERS = 20
WIDTH = 0.6  # of a row's column, shared by its nodes' dots
NOTE = "line: median across nodes; x on the axis: cell did not pass; red ring: outlier node"


def node_plot(plan: FleetPlan, cells: Sequence[FleetCell], stats: Sequence[RowStats], path: Path) -> str | None:
    column = {st.row: i for i, st in enumerate(stats)}
    cells = [c for c in cells if c.row in column]
    if not cells:
        return None
    plt = pyplot()
    nodes = list(dict.fromkeys(c.node for c in cells))
    slot = {node: (i - (len(nodes) - 1) / 2) * WIDTH / len(nodes) for i, node in enumerate(nodes)}

    def x(c: FleetCell) -> float:
        return column[c.row] + slot[c.node]

    measured = [c for c in cells if c.throughput_img_s is not None]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(stats) + 3), 4.8))
    if len(nodes) <= LEGEND_NODES:
        _per_node(ax, nodes, cells, x)
    else:
        ax.plot([x(c) for c in measured], [c.throughput_img_s for c in measured], "o", markersize=3, alpha=0.6)
        bad = [c for c in cells if c.throughput_img_s is None]
        _crosses(ax, [x(c) for c in bad], "grey")
    _outliers(ax, [c for c in measured if c.outlier], x)
    for i, st in enumerate(stats):
        if st.median is not None:
            ax.hlines(st.median, i - WIDTH / 2, i + WIDTH / 2, colors="black", linewidth=1)
    ax.set_xticks(range(len(stats)))
    ax.set_xticklabels([_label(st) for st in stats], fontsize=7)
    ax.set_ylabel("throughput (img/s)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3, axis="y")
    # Only labelled dots make a legend: legend() without any warns on stderr (a dry run's folder).
    if any(line.get_label() and not line.get_label().startswith("_") for line in ax.get_lines()):
        ax.legend(fontsize=7, title="node", title_fontsize=7)
    heading = f"Throughput per node, {Path(plan.profile or '?').name}\n{what_ran(plan, measured)}"
    return finish(fig, ax, path, _text(heading), NOTE)


def _per_node(ax: Any, nodes: Sequence[str], cells: Sequence[FleetCell], x: Callable[[FleetCell], float]) -> None:
    """A colour and a legend entry per node (few nodes); its failed cells in its colour."""
    by_node: dict[str, list[FleetCell]] = {}
    for c in cells:
        by_node.setdefault(c.node, []).append(c)
    for node in nodes:
        mine = [c for c in by_node[node] if c.throughput_img_s is not None]
        color = "grey"
        if mine:
            line = ax.plot([x(c) for c in mine], [c.throughput_img_s for c in mine], "o", label=_text(node))[0]
            color = line.get_color()
        _crosses(ax, [x(c) for c in by_node[node] if c.throughput_img_s is None], color)


def _crosses(ax: Any, xs: Sequence[float], color: str) -> None:
    if xs:
        ax.plot(xs, [0] * len(xs), "x", color=color, markersize=9, clip_on=False)


def _outliers(ax: Any, flagged: Sequence[FleetCell], x: Callable[[FleetCell], float]) -> None:
    if not flagged:
        return
    ys = [c.throughput_img_s for c in flagged]
    ax.plot([x(c) for c in flagged], ys, "o", markersize=14, markerfacecolor="none", color="red")
    for c in flagged[:NAMED_OUTLIERS]:
        ax.annotate(
            _text(f"{c.node} ({c.outlier})"),
            (x(c), c.throughput_img_s),
            textcoords="offset points",
            xytext=(8, -3),
            fontsize=7,
            color="red",
        )


def what_ran(plan: FleetPlan, measured: Sequence[FleetCell]) -> str:
    """Model, frame size, platform (and device, once measured) of the rows: a
    row's measured cell says what ran; the plan says what was asked."""
    first: dict[int, FleetCell] = {}
    for cell in measured:
        first.setdefault(cell.row, cell)
    models, sizes, platforms = [], [], []
    for row in plan.rows:
        c = first.get(row.row)
        models.append(c.model if c and c.model else _option(row.env, "MODEL"))
        sizes.append(c.size if c and c.size else _size(row.env))
        platforms.append(c.platform if c and c.platform else _option(row.env, "PLATFORM"))
    devices = [c.device for c in measured if c.device]
    parts = [f"model {_few(models, 'models')}", _few(sizes, "sizes"), _few(platforms, "platforms")]
    return ", ".join(parts + ([_few(devices, "devices")] if devices else []))


def _option(env: Mapping[str, str], name: str) -> str:
    option = BY_ENV[name]
    raw = env.get(name)
    if raw is None:
        return str(option.default)
    try:
        return str(option.parse(raw, "env"))
    except UsageError:  # a plan edited by hand: shown as written
        return raw


def _size(env: Mapping[str, str]) -> str:
    data = env.get("DATASET_DIR")
    if data:
        return f"{'video' if is_video_path(data) else 'dataset'} {Path(data).name}"
    return f"{_option(env, 'DATA_WIDTH')}x{_option(env, 'DATA_HEIGHT')}"


def _few(values: Sequence[str], plural: str) -> str:
    distinct = list(dict.fromkeys(values))
    return " / ".join(distinct) if len(distinct) <= 3 else f"{len(distinct)} {plural}"


def _text(s: str) -> str:
    """matplotlib reads $...$ as mathematics: a name holding "$" is shown as written."""
    return s.replace("$", r"\$")


def _label(st: RowStats) -> str:
    cells = [f"{k}={v}" for k, v in st.cells.items()]
    return _text("\n".join([f"row {st.row}", *cells[:3]]))
