"""The fleet report: one profile run on many nodes, read from one folder. Knows
files, not schedulers.

A fleet folder holds fleet.json (the plan: profile rows with their variables,
the nodes asked for, the scheduler's job) and one folder per cell,
node_<node>/test_<row>/, where the task wrapper (fleet/task.py) wrote
task.json and the run its usual files. Every (row, node) cell the plan expects
is listed: a task that never wrote its record is a failed cell, never a missing
one; a cancelled fleet's unfinished cells are "not run"; a dry run's, never
submitted, "not submitted"; the scheduler's view (pending, running) is passed
in by the caller while the job is alive. Only the plan's cells are counted: a
folder the plan has no cell for (another node, a row it does not have, a
replica beyond its node count) is a stray, listed as such (plan_dirs).

Across nodes, per row: median throughput, min, max, range ((max - min) /
median: measure.stats.range_pct, every node counts), MAD and a bootstrap 95%
interval of the median, over the cells whose figures are finite numbers: a
cell whose results.json or task.json holds a figure that is not one, or is not
of its type (report/shape.py), is a failed cell that says which. A cell whose
results.json is of a schema_version this rifebench does not read stops the
report (FleetReportError, exit 2), as does a fleet.json that is not a plan of at
most MAX_CELLS cells (fleet/records.py). A node is an outlier
of its row when all of these hold (see OUTLIER_RULE): at least MIN_NODES nodes
measured the row; its throughput is more than K_MAD robust standard deviations
(1.4826 x MAD) from the median; it differs from the median by more than
MIN_REL; and, when the node repeated the row (REPEAT >= 2), its own 95% interval
excludes the median. The first two separate a node from the fleet's spread, the
third keeps a tight fleet from flagging differences nobody would act on (with
MAD near 0 any difference is many MADs away), the last keeps a noisy node's
unlucky draw from being called slow.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rifebench.errors import UsageError
from rifebench.fleet.records import FleetCell, FleetPlan, PlanRow, RowStats, TaskRecord
from rifebench.measure.stats import bootstrap_ci, range_pct
from rifebench.report import summary
from rifebench.report.schema import RunResult, SchemaError, UnknownSchema
from rifebench.report.shape import ShapeError

PLAN = "fleet.json"
TASK = "task.json"
NODE_PREFIX = "node_"
CELL_DIR = re.compile(r"test_([0-9]{1,9})(?:\.([0-9]{1,9}))?$")
NOT_RUN, PENDING, RUNNING, FAILED = "not run", "pending", "running", "failed"
NOT_SUBMITTED = "not submitted"
K_MAD, MIN_REL, MIN_NODES, MAD_SCALE = 3.0, 0.05, 3, 1.4826
OUTLIER_RULE = (
    f"outlier: at least {MIN_NODES} nodes measured the row, |x - median| > {K_MAD:g} x 1.4826 x MAD "
    f"and > {100 * MIN_REL:g}% of the median, and the node's own 95% CI (REPEAT >= 2) excludes "
    "the median"
)


class FleetReportError(UsageError):
    """One-line message naming the folder or file; exit 2."""


def load_plan(out: Path) -> FleetPlan:
    path = Path(out) / PLAN
    if not os.path.lexists(path):
        raise FleetReportError(
            f"DIR: {str(out)!r} has no {PLAN} (accepted: a folder written by "
            "`rifebench fleet submit` or collected from a fleet's Kubernetes volume)"
        )
    return read_plan_file(path, "DIR")


def read_plan_file(path: Path, where: str) -> FleetPlan:
    """The plan in `path`; FleetReportError (one line: `where`, the file, what is
    wrong and what is accepted) for a file that is missing or is not one."""
    try:
        doc = read_json(path)
    except FileNotFoundError:
        raise FleetReportError(
            f"{where}: {str(path)!r} does not exist "
            f"(accepted: the {PLAN} `rifebench fleet submit` or `fleet k8s` writes)"
        ) from None
    except (OSError, ValueError) as exc:
        raise FleetReportError(
            f"{where}: {str(path)!r} cannot be read ({exc}) (accepted: a fleet plan in JSON)"
        ) from None
    try:
        return FleetPlan.from_dict(doc)
    except ShapeError as exc:  # names the key, the value and what it accepts
        raise FleetReportError(f"{where}: {str(path)!r} is not a fleet plan: {exc}") from None
    except (TypeError, ValueError, KeyError):
        raise FleetReportError(
            f"{where}: {str(path)!r} is not a fleet plan (accepted: the {PLAN} fleet submit writes)"
        ) from None


def read_json(path: Path) -> Any:
    """A JSON file; OSError (FileNotFoundError when it is missing) or ValueError,
    whose message is one short line, for anything else."""
    if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the report
        raise OSError(f"{path} is not a regular file")
    try:
        return json.loads(path.read_text())
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason})") from None


def cell_dirs(out: Path) -> dict[Path, dict[int, list[tuple[str, Path]]]]:
    """Node folder -> row -> [(node label, folder)]: node_<node>/test_<row>, and
    test_<row>.<k> for the k-th replica that landed on a node that already ran the row."""
    found: dict[Path, dict[int, list[tuple[str, Path]]]] = {}
    for node_dir in sorted(Path(out).glob(NODE_PREFIX + "*")):
        if not node_dir.is_dir():
            continue
        node = node_dir.name[len(NODE_PREFIX) :]
        rows = found.setdefault(node_dir, {})
        for test_dir in sorted(node_dir.iterdir()):
            m = CELL_DIR.match(test_dir.name)
            if m and test_dir.is_dir():
                label = node if m.group(2) is None else f"{node}#{m.group(2)}"
                rows.setdefault(int(m.group(1)), []).append((label, test_dir))
    return found


def plan_dirs(out: Path, plan: FleetPlan) -> tuple[dict[int, dict[str, Path]], list[str]]:
    """The folders of the plan's cells (row -> node label -> folder), and the
    strays: folders the plan has no cell for, relative to `out`. With a node list
    a row's cells are on the listed nodes, one each; with a node count (Slurm
    --nodes N, Kubernetes replicas) the first N folders of the row, by name; a
    count of 0 (a plan that does not say) takes every folder. A node folder none
    of whose folders is a cell is one stray; otherwise each extra test folder is."""
    listed, count = set(plan.nodes), max(plan.node_count or 0, len(plan.nodes))
    rows = {r.row for r in plan.rows}
    kept: dict[int, dict[str, Path]] = {r: {} for r in rows}
    strays: list[str] = []
    for node_dir, found in cell_dirs(out).items():
        extra, counted = [], False
        for row, dirs in sorted(found.items()):
            for label, test_dir in dirs:
                mine = kept.get(row)
                if mine is not None and (label in listed if listed else not count or len(mine) < count):
                    mine[label], counted = test_dir, True
                else:
                    extra.append(f"{node_dir.name}/{test_dir.name}")
        strays += extra if counted else [node_dir.name]
    return kept, strays


def collect(
    out: Path,
    plan: FleetPlan,
    live: Mapping[int, str] | None = None,
    found: Mapping[int, Mapping[str, Path]] | None = None,
) -> list[FleetCell]:
    """One record per (row, node) cell of the plan, never one for a stray folder.
    `live`: the scheduler's state of rows still queued or running; None when the
    job has left the queue. `found`: plan_dirs' cells, when the caller has them."""
    out, live = Path(out), live or {}
    if found is None:
        found = plan_dirs(out, plan)[0]
    count = max(plan.node_count or 0, len(plan.nodes))
    # A dry run's folder: no job and no task ever started. A script submitted by hand
    # has no job id in the plan either, but its tasks leave folders.
    submitted = bool(plan.scheduler.get("job_id")) or any(found.values())
    cells = []
    for row in plan.rows:
        dirs = found.get(row.row, {})
        names = list(dict.fromkeys([*plan.nodes, *dirs]))
        names += [f"(unallocated {i + 1})" for i in range(max(0, count - len(names)))]
        for node in names:
            cells.append(cell(out, plan, row, node, dirs.get(node), live.get(row.row), submitted))
    return cells


def cell(
    out: Path, plan: FleetPlan, row: PlanRow, node: str, test_dir: Path | None, live: str | None, submitted: bool = True
) -> FleetCell:
    rel = str(test_dir.relative_to(out)) if test_dir else None
    base = FleetCell(row=row.row, cells=dict(row.cells), status="", node=node, dir=rel)
    try:
        task = read_task(test_dir / TASK) if test_dir else None
    except ValueError as exc:  # a record that is not one: the cell failed, and says why
        base.status, base.reason = FAILED, str(exc)
        return base
    if test_dir is None or task is None or task.state != "finished":
        return _unfinished(base, plan, task, live, submitted)
    try:
        run = summary.load_results(test_dir)
        problem = None
    except UnknownSchema as exc:  # another version's results: nothing here can be compared with it
        raise FleetReportError(str(exc)) from None
    except SchemaError as exc:
        run, problem = None, str(exc)
    rec = summary.record_of(row.row, row.cells, test_dir, task.exit_code, task.wall_s or 0.0, run, problem)
    c = FleetCell.from_dict(rec.to_dict() | {"node": node, "dir": rel, "host": task.host})
    if plan.cancelled and c.status == "interrupted":
        c.status, c.reason = NOT_RUN, "the fleet was cancelled while this cell ran"
    c.update(telemetry(run))
    return c


def _unfinished(
    base: FleetCell, plan: FleetPlan, task: TaskRecord | None, live: str | None, submitted: bool
) -> FleetCell:
    if not submitted:
        script = plan.scheduler.get("script")
        base.status = NOT_SUBMITTED
        base.reason = "written with --dry-run and never submitted" + (
            f" (submit it: sbatch {Path(plan.output_dir or '.') / script}; if it was, no task has started yet)"
            if script
            else ""
        )
    elif plan.cancelled:  # before the scheduler's view: a cancelled task may still be stopping
        base.status, base.reason = NOT_RUN, "the fleet was cancelled before this cell finished"
    elif live in (PENDING, RUNNING):
        base.status = RUNNING if task else str(live)
    elif task:
        base.status = FAILED
        base.reason = "the task started but ended without its record (killed: time limit, memory or node failure)"
    else:
        base.status = FAILED
        log = f", {plan.log_hint}" if plan.log_hint else ""
        python = plan.scheduler.get("python")  # a node that does not see it fails before any record
        cannot = f"; a node that cannot run {python} fails so" if python else ""
        base.reason = (
            f"no task record: the task never ran here or died before starting (see the scheduler's log{log}{cannot})"
        )
    return base


def read_task(path: Path) -> TaskRecord | None:
    """The task's record; None when it wrote none, ValueError (one line naming the
    file) when what it holds is not one."""
    try:
        return TaskRecord.from_dict(read_json(path))
    except FileNotFoundError:
        return None
    except ShapeError as exc:
        raise ValueError(f"{path}: not a task record: {exc}") from None
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a task record ({exc}) (accepted: the {TASK} the fleet's task writes)") from None


def telemetry(run: RunResult | None) -> dict[str, Any]:
    """What a slow node's own run says about it: clocks, power, throttling (GPU
    telemetry of the timed window), the CPU's busy share and what else ran."""
    tel = (run.telemetry if run else None) or {}
    gpus, streams = tel.get("gpus") or [], tel.get("streams") or []

    def mean(items: list[dict[str, Any]], key: str) -> float | None:
        vals = [m for i in items if (m := (i.get(key) or {}).get("mean")) is not None]
        return statistics.fmean(vals) if vals else None

    others = [s["others_pct_of_cpus"] for s in streams if s.get("others_pct_of_cpus") is not None]
    throttle: dict[str, int] = {}
    for g in gpus:
        for name, n in (g.get("throttle_reasons") or {}).items():
            throttle[name] = throttle.get(name, 0) + n
    return {
        "sm_clock_mhz": mean(gpus, "sm_clock_mhz"),
        "mem_clock_mhz": mean(gpus, "mem_clock_mhz"),
        "power_w_mean": mean(gpus, "power_w"),
        "throttle": ", ".join(f"{k} ({v} samples)" for k, v in sorted(throttle.items()) if v) or None,
        "cpus_busy_pct": mean(streams, "cpus_busy_pct"),
        "others_pct_of_cpus": max(others) if others else None,
    }


def row_stats(plan: FleetPlan, cells: list[FleetCell]) -> list[RowStats]:
    """Per row, the figures across its measured nodes; flags outlier cells in place."""
    out = []
    by_row: dict[int, list[FleetCell]] = {}
    for c in cells:
        by_row.setdefault(c.row, []).append(c)
    for row in plan.rows:
        mine = by_row.get(row.row, [])
        # Only finite figures count (the schema refuses others; a cell's record is checked again here).
        measured = [c for c in mine if c.throughput_img_s is not None and math.isfinite(c.throughput_img_s)]
        st = RowStats(
            row=row.row,
            cells=row.cells,
            nodes=len(mine),
            measured=len(measured),
            passed=sum(c.status == "passed" for c in mine),
            statuses={s: sum(c.status == s for c in mine) for s in dict.fromkeys(c.status for c in mine)},
            **across([c.throughput_img_s for c in measured if c.throughput_img_s is not None]),
        )
        for c in measured:
            c.outlier = outlier(c, st)
        st.outliers = [c.node for c in measured if c.outlier]
        out.append(st)
    return out


def across(values: list[float]) -> dict[str, Any]:
    """Median, extremes, full range, MAD and the median's bootstrap 95% CI."""
    if not values:
        return {}
    med = statistics.median(values)
    ci = bootstrap_ci(values)
    return {
        "median": med,
        "min": min(values),
        "max": max(values),
        "range_pct": range_pct(values),
        "mad": statistics.median(abs(v - med) for v in values),
        "ci": list(ci) if ci else None,
    }


def outlier(c: FleetCell, st: RowStats) -> str | None:
    """ "slow" / "fast" when the cell passes every part of OUTLIER_RULE, else None."""
    x, med, mad = c.throughput_img_s, st.median, st.mad
    if st.measured < MIN_NODES or not med or x is None or mad is None:
        return None
    dev = x - med
    if abs(dev) <= K_MAD * MAD_SCALE * mad or abs(dev) <= MIN_REL * med:
        return None
    lo, hi = c.throughput_ci_low, c.throughput_ci_high
    if lo is not None and hi is not None and lo <= med <= hi:
        return None
    return "slow" if dev < 0 else "fast"
