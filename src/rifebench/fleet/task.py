"""One fleet cell: run one profile row on this node, as the scheduler asked.

`python -m rifebench.fleet.task --output-dir OUT --row N` (Slurm: one
srun task per node of array element N) or `... --completion-index` (a
Kubernetes Indexed Job: the row is JOB_COMPLETION_INDEX // replicas + 1). The
row's variables come from the plan (fleet.json) written at submission, never
from a command line, so no profile cell passes through a shell. The cell's
folder is OUT/node_<node>/test_<row>/ (test_<row>.<k> when the node already ran
the row); task.json records the task's start, then its end and exit status;
node_<node>/sysinfo.json describes the node once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import sys
from pathlib import Path

from rifebench.bench.row import harness_command, run_row
from rifebench.console import error, log, now_iso
from rifebench.errors import UsageError
from rifebench.fleet.collect import NODE_PREFIX, PLAN, TASK, read_plan_file
from rifebench.fleet.records import FleetPlan, TaskRecord
from rifebench.fsutil import atomic_write_text
from rifebench.run.interrupts import Interrupted, raise_on_signals
from rifebench.status import Exit

PROG = "fleet_task"


def node_name() -> str:
    """The scheduler's name for this node (what --nodelist takes), else the host's."""
    raw = os.environ.get("SLURMD_NODENAME") or os.environ.get("NODE_NAME") or socket.gethostname().split(".")[0]
    return re.sub(r"[^A-Za-z0-9._-]", "_", raw) or "unknown"


def cell_dir(out: Path, node: str, row: int) -> Path:
    """A fresh folder for this cell; mkdir is atomic, so two replicas never share one."""
    node_dir = out / f"{NODE_PREFIX}{node}"
    node_dir.mkdir(parents=True, exist_ok=True)
    for k in range(1, 1000):
        path = node_dir / (f"test_{row}" if k == 1 else f"test_{row}.{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"no free cell folder for row {row} under {node_dir}")


def describe_node(node_dir: Path) -> None:
    target = node_dir / "sysinfo.json"
    if target.exists():
        return
    try:
        from rifebench.measure import sysinfo

        atomic_write_text(target, json.dumps(sysinfo.collect(), indent=2, default=str) + "\n")
    except Exception as exc:  # noqa: BLE001 - a description must not stop the measurement
        log(f"{PROG}: sysinfo not written: {type(exc).__name__}: {exc}")


def run_cell(out: Path, plan: FleetPlan, row_no: int) -> int:
    rows = {r.row: r for r in plan.rows}
    if row_no not in rows:
        error(PROG, f"row {row_no} is not in {out / PLAN} (accepted: 1..{len(rows)})")
        return Exit.USAGE
    node = node_name()
    test_dir = cell_dir(out, node, row_no)
    describe_node(test_dir.parent)
    task = TaskRecord(
        state="running",
        row=row_no,
        node=node,
        host=socket.gethostname(),
        started=now_iso(),
        job_id=os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID"),
        array_task_id=os.environ.get("SLURM_ARRAY_TASK_ID"),
        completion_index=os.environ.get("JOB_COMPLETION_INDEX"),
    )
    atomic_write_text(test_dir / TASK, json.dumps(task.to_dict(), indent=2) + "\n")
    # scancel, a pod's deletion: passed on to the run, which records its interruption.
    done = run_row(harness_command(), rows[row_no].env, test_dir)
    task.state, task.exit_code, task.finished, task.wall_s = "finished", done.exit_code, now_iso(), done.wall_s
    atomic_write_text(test_dir / TASK, json.dumps(task.to_dict(), indent=2) + "\n")
    log(f"{PROG}: row {row_no} on {node}: exit {done.exit_code}")
    return Exit.FAIL if done.exit_code is None else done.exit_code


def read_plan(out: Path, plan_file: str | None) -> FleetPlan:
    """The plan, copied into the fleet folder when it came from elsewhere (a
    ConfigMap), so that the collected folder reads like a Slurm one.
    FleetReportError (one line naming the file) when it is missing or not a plan."""
    plan_path = Path(plan_file) if plan_file else out / PLAN
    plan = read_plan_file(plan_path, "--plan" if plan_file else "--output-dir")
    if plan_file and not (out / PLAN).exists():
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".{PLAN}.{os.getpid()}"
        shutil.copyfile(plan_path, tmp)
        os.replace(tmp, out / PLAN)
    return plan


def completion_row(plan: FleetPlan) -> int:
    """A Kubernetes Indexed Job's row: JOB_COMPLETION_INDEX // replicas + 1."""
    raw = os.environ.get("JOB_COMPLETION_INDEX", "")
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise UsageError(
            f"JOB_COMPLETION_INDEX: invalid value {raw!r} "
            "(accepted: the index a Kubernetes Indexed Job sets, 0 or more)"
        )
    return int(raw) // max(1, plan.replicas or 1) + 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m rifebench.fleet.task",
        allow_abbrev=False,
        description="Run one fleet cell (started by the scheduler, not by hand).",
    )
    p.add_argument("--output-dir", required=True, help="the fleet folder (shared by every node)")
    p.add_argument("--plan", help=f"the plan (default OUTPUT_DIR/{PLAN}); copied there when elsewhere")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--row", type=int, help="the profile row to run (1-based)")
    which.add_argument(
        "--completion-index",
        action="store_true",
        help="row = $JOB_COMPLETION_INDEX // replicas + 1 (Kubernetes Indexed Job)",
    )
    args = p.parse_args(argv)
    raise_on_signals()
    try:
        out = Path(args.output_dir)
        plan = read_plan(out, args.plan)
        return run_cell(out, plan, completion_row(plan) if args.completion_index else args.row)
    except UsageError as exc:  # a plan or index that is not one: the scheduler's log gets one line
        error(PROG, str(exc))
        return Exit.USAGE
    except Interrupted as exc:  # before the run started: nothing to record
        log(f"{PROG}: interrupted ({exc}) before the run started")
        return Exit.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
