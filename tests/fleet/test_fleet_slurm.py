"""`rifebench fleet submit` through a real Slurm (the local one-node cluster of
conftest.py): a two-row CPU profile with --wait, a failing task as a failed
cell, Ctrl-C cancelling the array; and what is refused before anything is submitted."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rifebench

REPO = Path(__file__).resolve().parents[2]
SRC = Path(rifebench.__file__).resolve().parents[1]  # the code under test, in subprocesses too
# Null model (a fixed cost per pair), 64x64, a few pairs: the scheduler is under test, not the model.
TWO_ROWS = (
    "MODEL,NULL_MS,PLATFORM,DATA_HEIGHT,DATA_WIDTH,NUM_INPUTS,WARMUP\nnull,2,cpu,64,64,30,2\nnull,4,cpu,64,64,30,2\n"
)


def fleet(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.run(
        [sys.executable, "-m", "rifebench", "fleet", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )


def fleet_here(capsys, *args: str) -> tuple[int, str]:
    """The same command in this process (no interpreter start-up): exit status, stderr."""
    from rifebench.fleet.cli import main

    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().err


def profile(tmp_path: Path, text: str, name: str = "fleet.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def cells(out: Path) -> list[dict]:
    with open(out / "summary.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_two_rows_through_slurm_with_wait(slurm, tmp_path):
    out = tmp_path / "fleet"
    proc = fleet("submit", profile(tmp_path, TWO_ROWS), "--output-dir", str(out), "--wait", "--time-limit", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""  # no library's warning leaks (issue 21 item 33)
    assert "pending" in proc.stdout and "2 done, 0 failed" in proc.stdout
    node = os.uname().nodename.split(".")[0]
    got = cells(out)
    assert [(c["row"], c["node"], c["status"]) for c in got] == [("1", node, "passed"), ("2", node, "passed")]
    assert all(float(c["throughput_img_s"]) > 0 for c in got)
    for n in (1, 2):
        test_dir = out / f"node_{node}" / f"test_{n}"
        assert json.loads((test_dir / "results.json").read_text())["status"] == "passed"
        assert json.loads((test_dir / "task.json").read_text())["exit_code"] == 0
    md = (out / "summary.md").read_text()
    assert "**Result: 2 of 2 cells passed**" in md and "node_throughput.png" in md
    assert (out / "node_throughput.png").stat().st_size > 0
    plan = json.loads((out / "fleet.json").read_text())
    assert plan["scheduler"]["job_id"].isdigit() and "--time=5" in plan["scheduler"]["args"]
    script = (out / "fleet.sbatch").read_text()
    assert "#SBATCH --array=1-2" in script and "#SBATCH --exclusive" in script
    assert "NULL_MS" not in script  # the rows' variables never reach the script


@pytest.mark.slow
def test_a_killed_stream_is_a_failed_cell(slurm, tmp_path):
    text = "MODEL,NULL_MS,PLATFORM,DATA_HEIGHT,DATA_WIDTH,NUM_INPUTS,WARMUP,FAULT\nnull,2,cpu,64,64,30,2,0:3:exit\n"
    out = tmp_path / "fleet"
    proc = fleet("submit", profile(tmp_path, text), "--output-dir", str(out), "--wait")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # Nothing measured: the plot has no labelled dot, and matplotlib's "No artists with
    # labels found to put in legend" once leaked here (issue 21 item 33).
    assert proc.stderr == "", proc.stderr
    (cell,) = cells(out)
    assert cell["status"] == "failed" and "stream 0" in cell["reason"], cell
    assert "1 failed" in proc.stdout
    assert "row 1 on" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_ctrl_c_cancels_the_array_and_marks_cells_not_run(slurm, tmp_path):
    # Row 1 runs for a minute; row 2 waits for the node (--exclusive).
    text = (
        "MODEL,NULL_MS,PLATFORM,DATA_HEIGHT,DATA_WIDTH,NUM_INPUTS,WARMUP\nnull,50,cpu,64,64,1200,1\n"
        "null,2,cpu,64,64,30,2\n"
    )
    out = tmp_path / "fleet"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rifebench",
            "fleet",
            "submit",
            profile(tmp_path, text),
            "--output-dir",
            str(out),
            "--wait",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 90
        while not list(out.glob("node_*/test_1/task.json")) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert list(out.glob("node_*/test_1/task.json")), "row 1 never started"
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout
    assert "cancelled (scancel)" in stdout
    job = json.loads((out / "fleet.json").read_text())["scheduler"]["job_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        queued = subprocess.run(["squeue", "-h", "-r", "-j", job], capture_output=True, text=True).stdout.strip()
        if not queued:
            break
        time.sleep(0.5)
    assert not queued, f"job {job} still queued after scancel: {queued}"
    assert [c["status"] for c in cells(out)] == ["not run", "not run"]
    assert "**cancelled**" in (out / "summary.md").read_text()


def test_bad_scheduler_values_are_refused_before_submission(tmp_path, capsys):
    prof = profile(tmp_path, TWO_ROWS)
    for flag, value in (
        ("--partition", "gpu;rm -rf /"),
        ("--nodes", "0"),
        ("--time-limit", "1h"),
        ("--account", "a b"),
        ("--container-image", "$(id)"),
        ("--gpus-per-task", "-1"),
    ):
        code, err = fleet_here(
            capsys, "submit", prof, f"{flag}={value}", "--output-dir", str(tmp_path / "x"), "--dry-run"
        )
        assert code == 2, (flag, err)
        assert f"{flag}: invalid value {value!r} (accepted: " in err
    code, err = fleet_here(capsys, "submit", prof, "--output-dir", str(tmp_path / "a b"), "--dry-run")
    assert code == 2 and "--output-dir: invalid value" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "a b").exists()


@pytest.mark.slow  # the row checks import torch
def test_a_bad_row_is_refused_with_row_and_column(tmp_path):
    text = "MODEL,PLATFORM,DATA_HEIGHT\nnull,cpu,64\nnull,cpu,abc\n"
    proc = fleet("submit", profile(tmp_path, text), "--output-dir", str(tmp_path / "x"), "--dry-run", timeout=60)
    assert proc.returncode == 2
    assert "row 2 (line 3), column DATA_HEIGHT" in proc.stderr


def test_dry_run_writes_the_script_from_checked_values(tmp_path):
    out = tmp_path / "fleet"
    proc = fleet(
        "submit",
        profile(tmp_path, TWO_ROWS),
        "--output-dir",
        str(out),
        "--dry-run",
        "--partition",
        "gpu",
        "--nodes",
        "gpu[01-02],gpu07",
        "--gpus-per-task",
        "1",
        "--account",
        "perf",
        "--container-image",
        "nvcr.io#nvidia/pytorch:24.05-py3",
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    script = (out / "fleet.sbatch").read_text()
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --nodelist=gpu[01-02],gpu07",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --account=perf",
        "#SBATCH --array=1-2",
    ):
        assert line in script
    assert "--container-image=nvcr.io#nvidia/pytorch:24.05-py3" in script and "PYTHONPATH" not in script
    plan = json.loads((out / "fleet.json").read_text())
    assert plan["scheduler"]["job_id"] is None and plan["rows"][1]["env"]["NULL_MS"] == "4"
    proc = subprocess.run(["bash", "-n", str(out / "fleet.sbatch")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_a_previous_fleet_folder_is_reused_only_with_force(tmp_path, capsys):
    out, prof = tmp_path / "fleet", profile(tmp_path, TWO_ROWS)
    args = ("submit", prof, "--output-dir", str(out), "--dry-run", "--skip-host-checks")
    assert fleet_here(capsys, *args)[0] == 0
    (out / "node_gpu01" / "test_1").mkdir(parents=True)  # as a task would have written it
    (out / "mine.txt").write_text("not the fleet's")
    code, err = fleet_here(capsys, *args)
    assert code == 2 and "is not empty" in err
    assert fleet_here(capsys, *args, "--force")[0] == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "fleet.json",
        "fleet.sbatch",
        "mine.txt",
        "profile.csv",
        "slurm",
    ]


# --- bounded, no extra mounts, --force keeps what is not the fleet's (issue 21: 17, 18, 30) --


QUICK = ("--dry-run", "--skip-host-checks")


def test_node_lists_are_bounded_before_they_are_expanded(tmp_path, capsys):
    from rifebench.fleet import slurm

    assert slurm.count_nodes("gpu[01-03,07],cpu1,n[8-9]x") == len(slurm.expand_nodes("gpu[01-03,07],cpu1,n[8-9]x")) == 7
    prof, out = profile(tmp_path, TWO_ROWS), tmp_path / "fl"
    start = time.monotonic()
    for nodes, message in (
        ("n[0-9999999]", "--nodes: 'n[0-9999999]' is 10000000 node(s); with 2 profile row(s) that is 20000000 cells"),
        ("n[0-99999999999999999999]", "that is 200000000000000000000 cells (accepted: at most 100000 cells"),
        ("50001", "--nodes: '50001' is 50001 node(s); with 2 profile row(s) that is 100002 cells"),
        ("n[5-1]", "--nodes: invalid value 'n[5-1]': the range 5-1 runs backwards"),
    ):
        code, err = fleet_here(capsys, "submit", prof, "--nodes", nodes, "--output-dir", str(out), *QUICK)
        assert code == 2 and message in err and len(err.splitlines()) == 1, (nodes, err)
    assert time.monotonic() - start < 10 and not out.exists()  # refused before anything was expanded or written
    code, err = fleet_here(capsys, "submit", prof, "--nodes", "n[1-50000]", "--output-dir", str(out), *QUICK)
    assert code == 0, err
    assert len(json.loads((out / "fleet.json").read_text())["nodes"]) == 50000


def test_output_dir_cannot_add_container_mounts(tmp_path, capsys):
    prof = profile(tmp_path, TWO_ROWS)
    for value in ("/tmp/w/fl:ro,/etc", str(tmp_path / "a:b"), str(tmp_path / "a,b")):
        code, err = fleet_here(capsys, "submit", prof, "--output-dir", value, "--container-image", "img:1", "--dry-run")
        assert code == 2 and len(err.splitlines()) == 1, err
        assert f"--output-dir: invalid value {value!r} (accepted: " in err and "no ',' or ':'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.csv"]


def test_force_removes_only_what_the_fleet_wrote(tmp_path, capsys):
    out, prof = tmp_path / "fleet", profile(tmp_path, TWO_ROWS)
    args = ("submit", prof, "--output-dir", str(out), "--dry-run", "--skip-host-checks")
    assert fleet_here(capsys, *args)[0] == 0
    cell = out / "node_gpu01" / "test_1"
    cell.mkdir(parents=True)
    for name in ("task.json", "results.json", "results.yaml", "output.log", "console.log"):
        (cell / name).write_text("{}")
    (out / "node_gpu01" / "sysinfo.json").write_text("{}")
    (out / "slurm" / "12_1.out").write_text("log")
    for mine in (out / "node_gpu01" / "notes.txt", cell / "mine.csv", out / "node_backup" / "keep.txt"):
        mine.parent.mkdir(exist_ok=True)
        mine.write_text("the user's")
        before = sorted(str(p) for p in out.rglob("*"))
        code, err = fleet_here(capsys, *args, "--force")
        assert code == 2 and len(err.splitlines()) == 1, err
        assert f"--force: {str(mine)!r} was not written by the fleet, and removing " in err, err
        assert sorted(str(p) for p in out.rglob("*")) == before  # nothing removed
        mine.unlink()
    (out / "node_backup").rmdir()
    assert fleet_here(capsys, *args, "--force")[0] == 0
    assert not (out / "node_gpu01").exists() and list((out / "slurm").iterdir()) == []


def test_one_bound_on_cells_for_every_reader_and_writer():
    """slurm.py and records.py each had a MAX_CELLS = 100_000: changing one would let
    submit write a plan the report refuses. One assignment; the others import it."""
    import ast

    from rifebench.fleet import k8s, records, slurm

    package = Path(records.__file__).parent
    defined = [
        path.name
        for path in sorted(package.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        and any(
            isinstance(t, ast.Name) and t.id == "MAX_CELLS"
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        )
    ]
    assert defined == ["records.py"], defined
    assert slurm.MAX_CELLS is records.MAX_CELLS and k8s.check_cells is slurm.check_cells


# --- the interpreter the nodes run (issue 22 item 11) ----------------------------------------


def script_file(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def test_submit_says_the_nodes_must_share_this_checkout(tmp_path, capsys):
    """The script ran this .venv with this checkout's PYTHONPATH and said nothing of it."""
    from rifebench.fleet import interpreter
    from rifebench.fleet.cli import main

    out = tmp_path / "fleet"
    capsys.readouterr()
    assert main(["submit", profile(tmp_path, TWO_ROWS), "--output-dir", str(out), *QUICK]) == 0
    console = capsys.readouterr().out
    assert f"every node runs {sys.executable}" in console
    parent = interpreter.package_parent()
    assert f"with PYTHONPATH={parent} (this checkout's): the nodes must see these paths" in console
    assert "--python PATH" in console
    script = (out / "fleet.sbatch").read_text()
    assert "must see these paths" in script and f"export PYTHONPATH={interpreter.package_parent()}" in script
    assert json.loads((out / "fleet.json").read_text())["scheduler"]["python"] == sys.executable


def test_python_names_the_nodes_interpreter_and_is_checked(tmp_path, capsys):
    import rifebench

    src = Path(rifebench.__file__).resolve().parents[1]
    prof = profile(tmp_path, TWO_ROWS)
    good = script_file(tmp_path, "good", f'PYTHONPATH={src} exec {sys.executable} "$@"')
    out = tmp_path / "fleet"
    code, err = fleet_here(capsys, "submit", prof, "--python", good, "--output-dir", str(out), *QUICK)
    assert code == 0, err
    script = (out / "fleet.sbatch").read_text()
    assert f"srun --ntasks-per-node=1 --kill-on-bad-exit=0 {good} -m rifebench.fleet.task" in script
    assert "PYTHONPATH" not in script
    cases = (
        ("relative/python", QUICK, "--python: invalid value 'relative/python' (accepted: an absolute path"),
        ("/nowhere/python", ("--dry-run",), "--python: '/nowhere/python' does not exist on this host (accepted: "),
        (
            script_file(tmp_path, "bare", "echo \"ModuleNotFoundError: No module named 'rifebench'\" >&2; exit 1"),
            QUICK,
            "cannot run the fleet's task (ModuleNotFoundError: No module named 'rifebench') (accepted: ",
        ),
        (script_file(tmp_path, "old", "printf 0.0.1"), QUICK, "has rifebench '0.0.1' (accepted: rifebench "),
    )
    for python, flags, words in cases:
        bad = tmp_path / "refused"
        code, err = fleet_here(capsys, "submit", prof, "--python", python, "--output-dir", str(bad), *flags)
        assert code == 2 and len(err.splitlines()) == 1 and words in err, (python, err)
        assert not bad.exists()
    # Only the nodes have it: accepted unchecked on a login node that skips host checks.
    code, err = fleet_here(capsys, "submit", prof, "--python", "/nowhere/python", "--output-dir", str(bad), *QUICK)
    assert code == 0, err
    assert " /nowhere/python -m rifebench.fleet.task " in (bad / "fleet.sbatch").read_text()


def test_an_interpreter_in_memory_is_refused(tmp_path, capsys, monkeypatch):
    from rifebench.fleet import interpreter

    assert interpreter.filesystem("/proc/self") == "proc"  # the mount table is read as it is
    here = os.path.dirname(sys.executable)
    monkeypatch.setattr(interpreter, "filesystem", lambda p: "tmpfs" if p.startswith(here) else "nfs4")
    out = tmp_path / "fleet"
    code, err = fleet_here(capsys, "submit", profile(tmp_path, TWO_ROWS), "--output-dir", str(out), *QUICK)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"--python: {sys.executable!r} is on a tmpfs filesystem, in this host's memory, which no node sees" in err
    assert not out.exists()
