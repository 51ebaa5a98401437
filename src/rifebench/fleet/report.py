"""The fleet report's files: summary.csv (one line per (row, node) cell),
summary.md (per row the figures across nodes, the cell matrix, outliers with
their telemetry, cells that did not pass) and the per-node plot."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from rifebench.console import log
from rifebench.fleet.collect import MIN_NODES, OUTLIER_RULE, collect, load_plan, plan_dirs, row_stats
from rifebench.fleet.records import FleetCell, FleetPlan, RowStats
from rifebench.fsutil import atomic_write_text
from rifebench.report.table import csv_text

CSV_KEYS = (
    "row",
    "node",
    "status",
    "reason",
    "outlier",
    "throughput_img_s",
    "throughput_ci_low",
    "throughput_ci_high",
    "latency_p50_ms",
    "latency_p99_ms",
    "valid",
    "validity_reasons",
    "warnings",
    "sm_clock_mhz",
    "mem_clock_mhz",
    "power_w_mean",
    "throttle",
    "cpus_busy_pct",
    "others_pct_of_cpus",
    "device",
    "host",
    "dir",
)
TELEMETRY = (
    ("sm_clock_mhz", "SM clock {:.0f} MHz"),
    ("mem_clock_mhz", "mem clock {:.0f} MHz"),
    ("power_w_mean", "power {:.0f} W"),
    ("throttle", "throttling: {}"),
    ("cpus_busy_pct", "CPUs busy {:.0f}%"),
    ("others_pct_of_cpus", "other processes {:.0f}% of its CPUs"),
)
PLOT = "node_throughput.png"
STRAYS_SHOWN = 20  # summary.md and the console name this many stray folders, then a count


class FleetReport(NamedTuple):
    cells: list[FleetCell]  # the plan's (row, node) cells
    stats: list[RowStats]  # per row, across nodes
    strays: list[str]  # folders the plan has no cell for (collect.plan_dirs), not counted


def report(out: Path, live: Mapping[int, str] | None = None) -> FleetReport:
    """Collect, compute, write summary.csv, summary.md, the plot and
    fleet_report.json, all from the records' to_dict()."""
    out = Path(out)
    plan = load_plan(out)
    found, strays = plan_dirs(out, plan)
    cells = collect(out, plan, live, found)
    stats = row_stats(plan, cells)
    plots = []
    try:
        from rifebench.fleet.plot import node_plot

        if node_plot(plan, cells, stats, out / PLOT):
            plots.append(PLOT)
    except Exception as exc:  # noqa: BLE001 - a plotting problem must not lose the summary
        log(f"fleet: warning: plot not written: {type(exc).__name__}: {exc}")
    cell_dicts = [c.to_dict() for c in cells]
    atomic_write_text(out / "summary.csv", csv_text(CSV_KEYS, cell_dicts))
    atomic_write_text(out / "summary.md", markdown(plan, cells, stats, plots, strays))
    doc = {"rows": [st.to_dict() for st in stats], "cells": cell_dicts, "strays": strays}
    atomic_write_text(out / "fleet_report.json", json.dumps(doc, indent=2, default=str) + "\n")
    return FleetReport(cells, stats, strays)


def named(strays: Sequence[str]) -> str:
    """The first STRAYS_SHOWN folders, then how many more."""
    more = len(strays) - STRAYS_SHOWN
    return ", ".join(strays[:STRAYS_SHOWN]) + (f" and {more} more" if more > 0 else "")


def _num(v: float | None, spec: str = ".2f") -> str:
    return "n/a" if v is None else format(v, spec)


def telemetry_line(c: FleetCell) -> str:
    d = c.to_dict()
    parts = [fmt.format(d[k]) for k, fmt in TELEMETRY if d.get(k) is not None]
    if c.valid is False:
        parts.append("invalid: " + ", ".join(c.validity_reasons))
    return "; ".join(parts) or "no telemetry recorded"


def markdown(
    plan: FleetPlan,
    cells: Sequence[FleetCell],
    stats: Sequence[RowStats],
    plots: Sequence[str],
    strays: Sequence[str] = (),
) -> str:
    nodes = list(dict.fromkeys(c.node for c in cells))
    passed = sum(c.status == "passed" for c in cells)
    invalid = sum(c.status == "passed" and c.valid is False for c in cells)
    others = {s: sum(c.status == s for c in cells) for s in dict.fromkeys(c.status for c in cells)}
    sched = plan.scheduler
    out = [
        f"# Fleet: {Path(plan.profile or '?').name}",
        "",
        f"- **Result: {passed} of {len(cells)} cells passed**"
        + "".join(f", {n} {s}" for s, n in others.items() if s != "passed")
        + (f" (**{invalid} of them invalid measurements**)" if invalid else ""),
        f"- {len(plan.rows)} row(s) x {len(nodes)} node(s); {sched.get('kind', '?')} job "
        f"{sched.get('job_id') or '(not submitted)'}" + (", **cancelled**" if plan.cancelled else ""),
        f"- Command: `{' '.join(plan.command)}`",
    ]
    if sched.get("args"):
        out.append(f"- Scheduler arguments: `{' '.join(sched['args'])}`")
    if strays:
        out.append(f"- **{len(strays)} folder(s) not in the plan, not counted:** {named(strays)}")
    out += _per_row(stats) + _matrix(nodes, cells, stats) + _outliers(cells) + _problems(cells)
    if plots:
        out += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    out += [
        "",
        "## How to read this",
        "",
        "- Range % = (max - min) / median; MAD = median absolute deviation "
        "from the median; the CI is a bootstrap 95% interval of the median over the nodes (none below 2).",
        f"- An {OUTLIER_RULE}. A row measured on fewer than {MIN_NODES} nodes flags none.",
        "- A failed cell is a task that ran and failed, or that never wrote its record; `not run`: the fleet "
        "was cancelled first; `not submitted`: a dry run's folder, never submitted. Per-cell files: "
        "`node_<node>/test_<row>/`; a folder the plan has no cell for (another node, a row it does not have, "
        "a replica beyond its node count) is named above and not counted.",
    ]
    return "\n".join(out) + "\n"


def _per_row(stats: Sequence[RowStats]) -> list[str]:
    out = [
        "",
        "## Per row, across nodes (throughput img/s)",
        "",
        "| row | cells | nodes passed | median | min | max | range % | MAD | 95% CI of median | outliers |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for st in stats:
        label = " ".join(f"{k}={v}" for k, v in st.cells.items()) or "(defaults)"
        ci = "n/a" if not st.ci else f"[{st.ci[0]:.2f}, {st.ci[1]:.2f}]"
        out.append(
            f"| {st.row} | {label} | {st.passed}/{st.nodes} | {_num(st.median)} | "
            f"{_num(st.min)} | {_num(st.max)} | {_num(st.range_pct, '.1f')} | {_num(st.mad)} | "
            f"{ci} | {', '.join(st.outliers) or '-'} |"
        )
    return out


def _matrix(nodes: Sequence[str], cells: Sequence[FleetCell], stats: Sequence[RowStats]) -> list[str]:
    out = [
        "",
        "## Cells (throughput img/s, or status)",
        "",
        "| node | " + " | ".join(f"row {st.row}" for st in stats) + " |",
        "|---|" + "---|" * len(stats),
    ]
    by_node: dict[str, dict[int, FleetCell]] = {}
    for c in cells:  # one pass: a fleet of many nodes stays linear
        by_node.setdefault(c.node, {}).setdefault(c.row, c)
    for node in nodes:
        mine = by_node.get(node, {})
        out.append(f"| {node} | " + " | ".join(_cell_text(mine.get(st.row)) for st in stats) + " |")
    return out


def _cell_text(c: FleetCell | None) -> str:
    if c is None:
        return "-"
    if c.throughput_img_s is None:
        return c.status.upper() if c.status == "failed" else c.status
    mark = {"slow": " **(slow)**", "fast": " **(fast)**"}.get(c.outlier or "", "")
    return f"{c.throughput_img_s:.2f}{mark}" + (" (invalid)" if c.valid is False else "")


def _outliers(cells: Sequence[FleetCell]) -> list[str]:
    flagged = [c for c in cells if c.outlier]
    if not flagged:
        return []
    out = ["", "## Outlier nodes", ""]
    for c in flagged:
        out.append(f"- **{c.node}**, row {c.row}: {c.throughput_img_s:.2f} img/s ({c.outlier}); {telemetry_line(c)}")
    return out


def _problems(cells: Sequence[FleetCell]) -> list[str]:
    """Cells that did not pass, and measured cells whose own checks call them invalid."""
    out = [f"- row {c.row} on {c.node} ({c.status}): {c.reason or '-'}" for c in cells if c.status != "passed"]
    out += [
        f"- row {c.row} on {c.node}: measured but **invalid** ({telemetry_line(c)})"
        for c in cells
        if c.status == "passed" and c.valid is False
    ]
    return ["", "## Cells that did not pass or are invalid", "", *out] if out else []
