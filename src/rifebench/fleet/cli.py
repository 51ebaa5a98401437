"""`rifebench fleet`: one profile across many nodes, through the cluster's own
scheduler, and one report.

  fleet submit PROFILE [--partition P] [--nodes N|LIST] [--gpus-per-task G]
               [--time-limit T] [--account A] [--container-image IMG]
               [--python PATH] [--output-dir DIR] [--wait] [--dry-run]
               [--skip-host-checks]
  fleet report DIR
  fleet k8s PROFILE --image IMG [--replicas N] [...] > manifest.yaml

submit checks the whole profile (cells, option combinations and, unless told
otherwise, every row's start-up checks on this host), writes fleet.json and the
sbatch script into the output folder and submits one job array (fleet/slurm.py);
every node runs the Python that fleet/interpreter.py chooses and checks.
--wait follows it with progress and writes the report (fleet/report.py);
Ctrl-C then cancels the array and marks the unfinished cells "not run".
Exit status: 0 every cell passed (or submitted, without --wait), 1 a cell
failed or was not run, 2 bad profile or options, 130 interrupted.

--force removes only what the fleet wrote (fsutil's manifest lists it): a
node_* folder goes only when it holds nothing but what its tasks wrote
(sysinfo.json, test_<row> folders of a run's files); one holding anything else
is refused, naming it, before anything is removed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

from rifebench import __version__
from rifebench.bench import profiles
from rifebench.bench.row import CONSOLE_LOG
from rifebench.bench.runner import prepare_output
from rifebench.console import error, log, now_iso
from rifebench.errors import UsageError
from rifebench.fleet import interpreter
from rifebench.fleet import slurm as fleet_slurm
from rifebench.fleet.collect import CELL_DIR, NODE_PREFIX, PLAN, TASK, load_plan
from rifebench.fleet.k8s import check_printable
from rifebench.fleet.records import FleetCell, FleetPlan, PlanRow
from rifebench.fsutil import LOCK_NAME, MANIFEST_NAME, atomic_write_text, write_manifest
from rifebench.report.previous import PREVIOUS, RESULT_SET
from rifebench.run.interrupts import raise_on_signals
from rifebench.status import Exit

PROG = "rifebench fleet"
POLL_S = 2.0
# What --force may later remove: these, and the node_<node> folders the tasks write.
OWN_FILES = (
    PLAN,
    "profile.csv",
    fleet_slurm.SCRIPT,
    fleet_slurm.LOG_DIR,
    "summary.md",
    "summary.csv",
    "fleet_report.json",
    "node_throughput.png",
)
SYSINFO = "sysinfo.json"
# What a task and its run write in node_<node>/test_<row>/, and the temporary
# files their atomic writes leave when killed (".<name>.<random>.tmp").
CELL_FILES = frozenset({TASK, CONSOLE_LOG, LOCK_NAME, PREVIOUS, *RESULT_SET})
_TEMP = re.compile(r"\.(?:task|sysinfo|results)\.(?:json|yaml)\.[a-z0-9_]+\.tmp|\.write-test-\w+")
_SLURM_LOG = re.compile(r"[0-9]+_[0-9]+\.out")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        allow_abbrev=False,
        description="Run a profile on many nodes through "
        "Slurm or Kubernetes; report the fleet's spread and its outlier nodes.",
    )
    p.add_argument("--version", action="version", version=f"rifebench {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("submit", allow_abbrev=False, help="submit a profile as one Slurm job array")
    s.add_argument("profile", metavar="PROFILE", help="a CSV profile (profiles/README.md)")
    s.add_argument("--partition", metavar="P", help="sbatch --partition")
    s.add_argument("--nodes", metavar="N|LIST", help="a node count, or a node list (sbatch --nodelist); default 1")
    s.add_argument("--gpus-per-task", metavar="G", help="sbatch --gpus-per-task (one task per node)")
    s.add_argument("--time-limit", metavar="T", help="sbatch --time, per row")
    s.add_argument("--account", metavar="A", help="sbatch --account")
    s.add_argument(
        "--container-image",
        metavar="IMG",
        help="run each task in this image through pyxis/enroot (srun --container-image); bare metal otherwise",
    )
    s.add_argument(
        "--python",
        metavar="PATH",
        help="the interpreter every node runs, with rifebench installed there "
        "(default: this one, with this checkout on PYTHONPATH: the nodes must share both paths)",
    )
    s.add_argument(
        "--output-dir",
        metavar="DIR",
        help="fleet folder on a filesystem every node shares (default ./output/fleet-<timestamp>)",
    )
    s.add_argument("--force", action="store_true", help="reuse a non-empty folder holding a previous run's files")
    s.add_argument("--wait", action="store_true", help="follow the job to its end, then write the report")
    s.add_argument("--dry-run", action="store_true", help="write fleet.json and the sbatch script, submit nothing")
    s.add_argument(
        "--skip-host-checks",
        action="store_true",
        help="check cells and option combinations only, "
        "not each row's start-up checks on this host (a login node without the nodes' devices)",
    )
    r = sub.add_parser("report", allow_abbrev=False, help="write summary.md/.csv and the plot of a fleet folder")
    r.add_argument("dir", metavar="DIR")
    from rifebench.fleet.k8s import add_arguments

    add_arguments(sub.add_parser("k8s", allow_abbrev=False, help="print a Kubernetes Indexed Job manifest"))
    return p


class ProfileProblems(UsageError):
    """Every problem of the profile, one line each (benchmark.sh's check)."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        if args.command == "report":
            return report(Path(args.dir))
        if args.command == "k8s":
            from rifebench.fleet.k8s import manifest

            sys.stdout.write(manifest(args, read_plan(args, startup=False)))
            return Exit.PASS
        return submit(args)
    except ProfileProblems as exc:
        for line in exc.args[0]:
            error(PROG, line)
        return Exit.USAGE
    except UsageError as exc:  # profiles.ProfileError, FleetReportError, the scheduler's checks
        error(PROG, str(exc))
        return Exit.USAGE


def read_plan(args: argparse.Namespace, startup: bool) -> FleetPlan:
    """The profile checked whole, as the rows' variables: what every task runs."""
    check_printable("PROFILE", args.profile)
    args.profile = profiles.locate(args.profile)
    header, rows = profiles.read(args.profile)
    problems = profiles.validate(args.profile, rows, os.environ, startup=startup)
    if problems:
        raise ProfileProblems(problems)
    return FleetPlan(
        profile=args.profile,
        header=header,
        command=["rifebench", "fleet", *args.argv],
        rows=[PlanRow(r.number, dict(r.cells), profiles.row_env(r, os.environ), r.line) for r in rows],
        created=now_iso(),
    )


def write_plan(out: Path, plan: FleetPlan) -> None:
    atomic_write_text(out / PLAN, json.dumps(plan.to_dict(), indent=2) + "\n")


def submit(args: argparse.Namespace) -> int:
    opts = fleet_slurm.options(args)
    node_python = interpreter.choose(args.python, opts.container_image)
    check_printable("--python", node_python.python)
    interpreter.check(node_python, args.skip_host_checks)  # before the rows' slower checks
    plan = read_plan(args, startup=not (args.skip_host_checks or opts.container_image))
    requested = args.output_dir or f"output/fleet-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    fleet_slurm.check("--output-dir", str(Path(requested).expanduser().resolve()))
    count = fleet_slurm.node_count(opts, len(plan.rows))  # bounded before anything is expanded or removed
    previous = Path(requested).expanduser().resolve()
    if args.force and (previous / MANIFEST_NAME).is_file():
        check_removable(previous)
        if (previous / PLAN).is_file():
            note_outputs(previous)  # the node folders its tasks wrote after the manifest
    out = prepare_output(requested, args.force)
    nodes = fleet_slurm.expand_nodes(opts.node_list) if opts.node_list else []
    sargs = fleet_slurm.sbatch_args(opts, len(plan.rows), out, count)
    plan.nodes, plan.node_count, plan.output_dir = nodes, count, str(out)
    plan.log_hint = f"{fleet_slurm.LOG_DIR}/<job>_<row>.out"
    plan.scheduler = {
        "kind": "slurm",
        "args": sargs,
        "script": fleet_slurm.SCRIPT,
        "job_id": None,
        "container_image": opts.container_image,
        "python": node_python.python,
        "pythonpath": node_python.pythonpath,
    }
    note_outputs(out)  # before the first file: a crash at any point leaves it listed
    (out / fleet_slurm.LOG_DIR).mkdir(exist_ok=True)
    shutil.copyfile(args.profile, out / "profile.csv")
    script = out / fleet_slurm.SCRIPT
    atomic_write_text(script, fleet_slurm.render(opts, sargs, out, node_python))
    write_plan(out, plan)
    log(f"{PROG}: {node_python.describe()}")
    if args.dry_run:
        log(f"{PROG}: dry run: {script} written; submit it with: sbatch {script}")
        return Exit.PASS
    job = plan.scheduler["job_id"] = fleet_slurm.submit(script)
    plan.scheduler["submitted"] = now_iso()
    write_plan(out, plan)
    log(f"{PROG}: job {job}: {len(plan.rows)} row(s) x {count} node(s); results in {out}")
    if not args.wait:
        log(f"{PROG}: follow it with squeue -j {job}; then: rifebench fleet report {out}")
        return Exit.PASS
    return follow(out, plan)


def follow(out: Path, plan: FleetPlan) -> int:
    """Progress until the array leaves the queue, then the report. Ctrl-C (or
    SIGTERM, SIGHUP) cancels the array; its unfinished cells become "not run"."""
    from rifebench.fleet.collect import collect

    job, shown = plan.scheduler["job_id"], None
    raise_on_signals()
    try:
        while True:
            live = fleet_slurm.poll(job)
            if live is not None:
                counts = progress(collect(out, plan, live))
                if counts != shown:
                    log(f"{PROG}: job {job}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
                    shown = counts
                if not live:
                    break
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        fleet_slurm.cancel(job)
        plan.cancelled, plan.cancelled_at = True, now_iso()
        write_plan(out, plan)
        log(f"{PROG}: interrupted: job {job} cancelled (scancel); unfinished cells are marked not run")
        report(out)
        return Exit.INTERRUPTED
    return report(out)


def progress(cells: list[FleetCell]) -> dict[str, int]:
    names = {"pending": "pending", "running": "running", "passed": "done"}
    counts = {"pending": 0, "running": 0, "done": 0, "failed": 0}
    for c in cells:
        counts[names.get(c.status, "failed")] += 1
    return counts


def report(out: Path) -> int:
    from rifebench.fleet.report import named
    from rifebench.fleet.report import report as write_report

    plan = load_plan(out)
    live = None
    job = plan.scheduler.get("job_id")
    if job and plan.scheduler.get("kind") == "slurm" and shutil.which("squeue"):
        live = fleet_slurm.poll(job) or None
    cells, stats, strays = write_report(out, live)
    if (out / MANIFEST_NAME).exists():  # a fleet folder we submitted (a collected one is left as it is)
        note_outputs(out)
    passed = sum(c.status == "passed" for c in cells)
    others = Counter(c.status for c in cells if c.status != "passed")
    log(
        f"{PROG}: {passed}/{len(cells)} cell(s) passed"
        + (f" ({', '.join(f'{n} {s}' for s, n in others.items())})" if others else "")
        + f"; report in {out / 'summary.md'}"
    )
    if strays:
        log(f"{PROG}: {len(strays)} folder(s) not in the plan, not counted: {named(strays)}")
    for st in stats:
        if st.outliers:
            log(f"{PROG}: row {st.row}: outlier node(s): {', '.join(st.outliers)}")
    return Exit.PASS if passed == len(cells) else Exit.FAIL


def note_outputs(out: Path) -> None:
    write_manifest(out, {*OWN_FILES, *(p.name for p in out.glob(NODE_PREFIX + "*"))})


def check_removable(out: Path) -> None:
    """--force: UsageError naming the first entry that removing the node folders
    (and the Slurm log folder) would take although the fleet did not write it."""
    try:
        listed = json.loads((out / MANIFEST_NAME).read_text())["files"]
        listed = {n for n in listed if isinstance(n, str)}
    except (OSError, ValueError, KeyError, TypeError):
        return  # prepare_output refuses an unreadable manifest, removing nothing
    if (out / PLAN).is_file():
        listed |= {p.name for p in out.glob(NODE_PREFIX + "*")}
    for name in sorted(listed):
        if name.startswith(NODE_PREFIX) or name == fleet_slurm.LOG_DIR:
            stray = foreign_entry(out / name)
            if stray is not None:
                raise UsageError(
                    f"--force: {str(stray)!r} was not written by the fleet, and removing "
                    f"{str(out / name)!r} would take it (accepted: a fleet folder holding only what "
                    "`fleet submit` and its tasks wrote; move that away, or choose another --output-dir)"
                )


def foreign_entry(folder: Path) -> Path | None:
    """The first entry of a node folder (or the Slurm log folder) that no task wrote."""
    if not os.path.lexists(folder):
        return None
    if folder.is_symlink() or not folder.is_dir():
        return folder
    for entry in sorted(folder.iterdir()):
        if folder.name == fleet_slurm.LOG_DIR:
            known = _SLURM_LOG.fullmatch(entry.name) is not None and _plain(entry)
        elif CELL_DIR.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
            inner = next((f for f in sorted(entry.iterdir()) if not _cell_file(f)), None)
            if inner is not None:
                return inner
            continue
        else:
            known = (entry.name == SYSINFO and _plain(entry)) or _TEMP.fullmatch(entry.name) is not None
        if not known:
            return entry
    return None


def _plain(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _cell_file(path: Path) -> bool:
    return not path.is_symlink() and (path.name in CELL_FILES or _TEMP.fullmatch(path.name) is not None)


if __name__ == "__main__":
    sys.exit(main())
