"""Slurm for `rifebench fleet submit`: the scheduler's values checked, the sbatch
script rendered from them, the job submitted, followed and cancelled.

One job array, one element per profile row (array index = row number). Each
element allocates the fleet's nodes (--nodes N, or --nodelist LIST), each node
whole (--exclusive: two rows on one node would measure each other), and runs
one srun task per node: every srun task is one (row, node) cell. Slurm cannot
pin the elements of one array to different nodes, so a cell is an srun task,
and all nodes run a row at the same time, under the same conditions. Rows run
one after another when they need the same nodes.

Every value written into the script is checked against a pattern first and
quoted with shlex; the rows' variables are not in the script at all (the task
reads them from fleet.json), so no profile cell passes through a shell. The
output folder may hold neither "," nor ":": it becomes a --container-mounts
value, where they separate mounts and options. A fleet is at most MAX_CELLS
(row, node) cells, counted from the node list's ranges before any is expanded.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rifebench.errors import UsageError
from rifebench.fleet.interpreter import NodePython
from rifebench.fleet.records import MAX_CELLS

SCRIPT = "fleet.sbatch"
LOG_DIR = "slurm"
CONTAINER_WORKDIR = "/opt/rifebench"  # the images' WORKDIR (docker/*/Dockerfile)
_RANGE = r"[0-9]+(-[0-9]+)?"
_HOST = rf"[A-Za-z][A-Za-z0-9_.-]*(\[{_RANGE}(,{_RANGE})*\][A-Za-z0-9_.-]*)?"
PATTERNS = {
    "--partition": (r"[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*", "a partition name, or several separated by commas"),
    "--nodes": (rf"[1-9][0-9]*|{_HOST}(,{_HOST})*", "a node count (e.g. 4) or a node list (e.g. gpu[01-04],gpu07)"),
    "--gpus-per-task": (r"([A-Za-z0-9_.-]+:)?[0-9]+", "a count, optionally with a type (e.g. 1 or h100:1)"),
    "--time-limit": (
        r"[0-9]+(-[0-9]+)?(:[0-9]{1,2}){0,2}|UNLIMITED|INFINITE",
        "minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS",
    ),
    "--account": (r"[A-Za-z0-9_.-]+", "an account name"),
    "--container-image": (
        r"[A-Za-z0-9][A-Za-z0-9._/:@#+-]*",
        "an image reference as pyxis takes it (e.g. nvcr.io#nvidia/pytorch:24.05-py3 or a .sqsh path)",
    ),
    "--output-dir": (
        r"/[A-Za-z0-9_./+=@-]*",
        "an absolute path of letters, digits and _ . / + = @ - on a filesystem every node shares; "
        "no ',' or ':', which split a --container-mounts value, and no spaces, which #SBATCH lines cannot quote",
    ),
}


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    nodes: str = "1"
    gpus_per_task: str | None = None
    time_limit: str | None = None
    account: str | None = None
    container_image: str | None = None

    @property
    def node_list(self) -> str | None:
        return None if self.nodes.isdigit() else self.nodes


def check(flag: str, value: str | None) -> str | None:
    """The value when it matches the flag's pattern; UsageError otherwise."""
    if value is None:
        return None
    pattern, accepted = PATTERNS[flag]
    if not re.fullmatch(pattern, value):
        raise UsageError(f"{flag}: invalid value {value!r} (accepted: {accepted})")
    return value


def options(args: argparse.Namespace) -> SlurmOptions:
    return SlurmOptions(
        check("--partition", args.partition),
        check("--nodes", args.nodes or "1") or "1",
        check("--gpus-per-task", args.gpus_per_task),
        check("--time-limit", args.time_limit),
        check("--account", args.account),
        check("--container-image", args.container_image),
    )


def _items(node_list: str) -> list[str]:
    return re.findall(r"[^,\[]+(?:\[[^\]]*\][^,\[]*)*", node_list)


def count_nodes(node_list: str) -> int:
    """How many names expand_nodes would give, from the ranges alone (nothing expanded)."""
    total = 0
    for item in _items(node_list):
        m = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", item)
        if not m:
            total += 1
            continue
        n = 0
        for part in m.group(2).split(","):
            first, _, last = part.partition("-")
            if int(last or first) < int(first):
                raise UsageError(
                    f"--nodes: invalid value {node_list!r}: the range {part} runs backwards "
                    "(accepted: ranges from low to high, e.g. gpu[01-04])"
                )
            n += int(last or first) - int(first) + 1
        total += n * (count_nodes(m.group(3)) if "[" in m.group(3) else 1)
    return total


def check_cells(flag: str, value: str | int, nodes: int, rows: int) -> None:
    """At most MAX_CELLS (row, node) cells; checked before a node list is expanded."""
    if nodes * rows > MAX_CELLS:
        raise UsageError(
            f"{flag}: {value!r} is {nodes} node(s); with {rows} profile row(s) that is {nodes * rows} cells "
            f"(accepted: at most {MAX_CELLS} cells, rows x nodes)"
        )


def node_count(opts: SlurmOptions, rows: int) -> int:
    """The fleet's node count, bounded (check_cells) before anything is expanded."""
    count = count_nodes(opts.node_list) if opts.node_list else int(opts.nodes)
    check_cells("--nodes", opts.nodes, count, rows)
    return count


def expand_nodes(node_list: str) -> list[str]:
    """A Slurm node list as names: gpu[01-03,07],cpu1 -> gpu01 gpu02 gpu03 gpu07 cpu1."""
    names = []
    for item in _items(node_list):
        m = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", item)
        if not m:
            names.append(item)
            continue
        prefix, ranges, rest = m.groups()
        tails = expand_nodes(rest) if "[" in rest else [rest]
        for part in ranges.split(","):
            first, _, last = part.partition("-")
            for i in range(int(first), int(last or first) + 1):
                names += [f"{prefix}{i:0{len(first)}d}{tail}" for tail in tails]
    return names


def sbatch_args(opts: SlurmOptions, rows: int, out: Path, node_count: int) -> list[str]:
    args = [
        "--job-name=rifebench-fleet",
        f"--array=1-{rows}",
        f"--nodes={node_count}",
        "--ntasks-per-node=1",
        "--exclusive",
        f"--output={out / LOG_DIR}/%A_%a.out",
    ]
    if opts.node_list:
        args.append(f"--nodelist={opts.node_list}")
    for flag, value in (
        ("--partition", opts.partition),
        ("--gpus-per-task", opts.gpus_per_task),
        ("--time", opts.time_limit),
        ("--account", opts.account),
    ):
        if value:
            args.append(f"{flag}={value}")
    return args


def srun_command(opts: SlurmOptions, out: Path, node: NodePython) -> list[str]:
    """The task each node runs (fleet/interpreter.py says which Python)."""
    cmd = ["srun", "--ntasks-per-node=1", "--kill-on-bad-exit=0"]
    if opts.container_image:
        cmd += [
            f"--container-image={opts.container_image}",
            f"--container-mounts={out}:{out}",
            f"--container-workdir={CONTAINER_WORKDIR}",
        ]
    return [*cmd, node.python, "-m", "rifebench.fleet.task", "--output-dir", str(out), "--row"]


def render(opts: SlurmOptions, args: list[str], out: Path, node: NodePython) -> str:
    lines = [
        "#!/bin/bash",
        "# Written by `rifebench fleet submit`; resubmit with: sbatch " + shlex.quote(str(out / SCRIPT)),
        *(f"#SBATCH {a}" for a in args),
        "set -euo pipefail",
    ]
    if node.pythonpath is not None:
        lines += [
            "# Every node runs this checkout's interpreter and package: they must see these paths",
            "# (a shared filesystem). `fleet submit --python PATH` names another interpreter.",
            f"export PYTHONPATH={shlex.quote(node.pythonpath)}${{PYTHONPATH:+:$PYTHONPATH}}",
        ]
    lines.append(" ".join(shlex.quote(c) for c in srun_command(opts, out, node)) + ' "$SLURM_ARRAY_TASK_ID"')
    return "\n".join(lines) + "\n"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise UsageError(
            f"fleet submit: {name} is not on PATH (accepted: a Slurm login node, or --dry-run to write the script only)"
        )
    return path


def submit(script: Path) -> str:
    proc = subprocess.run([_tool("sbatch"), "--parsable", str(script)], capture_output=True, text=True)
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(
            f"fleet submit: sbatch refused the job ({why}) (accepted: values this cluster has; the script is {script})"
        )
    return proc.stdout.strip().split(";")[0]


def poll(job_id: str) -> dict[int, str] | None:
    """Row -> "pending" / "running" for the array elements still queued;
    {} once the job has left the queue; None when squeue could not answer."""
    proc = subprocess.run([_tool("squeue"), "-h", "-r", "-j", job_id, "-o", "%i|%T"], capture_output=True, text=True)
    if proc.returncode != 0:
        # squeue refuses a job id it has forgotten: the job is over.
        return {} if "Invalid job id" in proc.stderr else None
    states = {}
    for line in proc.stdout.split():
        ident, _, state = line.partition("|")
        index = ident.rpartition("_")[2]
        if index.isdigit():
            states[int(index)] = "pending" if state in ("PENDING", "CONFIGURING") else "running"
    return states


def cancel(job_id: str) -> None:
    subprocess.run([_tool("scancel"), job_id], capture_output=True)
