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
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from rifebench.fleet.collect import NODE_PREFIX, PLAN, TASK
from rifebench.fsutil import atomic_write_text
from rifebench.status import Exit

PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


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
        print(f"fleet_task: sysinfo not written: {type(exc).__name__}: {exc}", flush=True)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def run_cell(out: Path, plan: dict, row_no: int) -> int:
    rows = {r["row"]: r for r in plan["rows"]}
    if row_no not in rows:
        print(f"fleet_task: error: row {row_no} is not in {out / PLAN} (accepted: 1..{len(rows)})", file=sys.stderr)
        return Exit.USAGE
    node = node_name()
    test_dir = cell_dir(out, node, row_no)
    describe_node(test_dir.parent)
    task = {
        "row": row_no,
        "node": node,
        "host": socket.gethostname(),
        "state": "running",
        "started": _now(),
        "job_id": os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID"),
        "array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "completion_index": os.environ.get("JOB_COMPLETION_INDEX"),
    }
    atomic_write_text(test_dir / TASK, json.dumps(task, indent=2) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "OUTPUT_DIR"} | rows[row_no]["env"]
    env["OUTPUT_DIR"] = str(test_dir)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p)
    t0 = time.monotonic()
    code = _run(test_dir / "console.log", env)
    task.update(state="finished", exit_code=code, finished=_now(), wall_s=time.monotonic() - t0)
    atomic_write_text(test_dir / TASK, json.dumps(task, indent=2) + "\n")
    print(f"fleet_task: row {row_no} on {node}: exit {code}", flush=True)
    return code


def _run(log_path: Path, env: dict) -> int:
    """The run, its output in console.log; SIGTERM/SIGINT (scancel, a pod's
    deletion) are passed on so that the run records its interruption."""
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen([sys.executable, "-m", "rifebench"], env=env, stdout=logf, stderr=subprocess.STDOUT)

        def forward(signum, frame):
            proc.send_signal(signum)

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, forward)
        return proc.wait()


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
    out = Path(args.output_dir)
    plan_path = Path(args.plan) if args.plan else out / PLAN
    plan = json.loads(plan_path.read_text())
    if args.plan and not (out / PLAN).exists():
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".{PLAN}.{os.getpid()}"
        shutil.copyfile(plan_path, tmp)
        os.replace(tmp, out / PLAN)  # the collected folder reads like a Slurm one
    if args.completion_index:
        row = int(os.environ["JOB_COMPLETION_INDEX"]) // max(1, int(plan.get("replicas") or 1)) + 1
    else:
        row = args.row
    return run_cell(out, plan, row)


if __name__ == "__main__":
    sys.exit(main())
