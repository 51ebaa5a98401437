"""The per-node plot: a title that says what ran, nothing on stderr whatever the
fleet's state, and linear in its nodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

import rifebench
from helpers import sibling_module
from rifebench.fleet.collect import collect, load_plan, row_stats
from rifebench.fleet.plot import node_plot
from rifebench.fleet.records import FleetCell, FleetPlan, PlanRow

SRC = Path(rifebench.__file__).resolve().parents[1]  # the code under test, in the subprocess too
make_fleet = sibling_module("fleet", "test_fleet_report").make_fleet
ROW_ENV = {"MODEL": "null", "PLATFORM": "cpu", "DATA_WIDTH": "64", "DATA_HEIGHT": "48"}


def dry_run(out: Path, rows: int = 2) -> Path:
    """A folder as `fleet submit --dry-run` leaves it: a plan, no job, no cell folder."""
    make_fleet(out, {r: {"a": None} for r in range(1, rows + 1)})
    plan = json.loads((out / "fleet.json").read_text())
    for row in plan["rows"]:
        row["env"] = dict(ROW_ENV)
    plan |= {"node_count": 2, "scheduler": {"kind": "slurm", "job_id": None, "script": "fleet.sbatch"}}
    (out / "fleet.json").write_text(json.dumps(plan))
    return out


def plot_of(out: Path) -> str | None:
    plan = load_plan(out)
    cells = collect(out, plan)
    return node_plot(plan, cells, row_stats(plan, cells), out / "p.png")


def test_the_title_says_what_the_rows_ran_before_anything_was_measured(tmp_path):
    """A dry run's plot read "model ?, size ?, platform ?, device ?": the plan knows."""
    title = plot_of(dry_run(tmp_path / "f"))
    assert title == "Throughput per node, x.csv\nmodel null, 64x48, cpu", title
    out = make_fleet(tmp_path / "m", {1: {"a": 100.0, "b": 99.0}})  # measured: the results say it
    assert plot_of(out) == "Throughput per node, x.csv\nmodel 4.6, NonexNone, cuda"


def test_the_title_of_a_dataset_row_and_of_defaults(tmp_path):
    out = dry_run(tmp_path / "f")
    plan = json.loads((out / "fleet.json").read_text())
    plan["rows"][0]["env"] = {"DATASET_DIR": "/data/clip$1.mp4", "MODEL": "4.0"}
    plan["rows"][1]["env"] = {}
    (out / "fleet.json").write_text(json.dumps(plan))
    title = plot_of(out)  # "$" would start matplotlib's mathematics: shown as written
    assert title == "Throughput per node, x.csv\nmodel 4.0, video clip\\$1.mp4 / 1280x720, auto", title


def test_the_report_writes_nothing_on_stderr(tmp_path):
    """`fleet submit --wait` (which ends with this report) and `fleet report` of a
    dry run's folder leaked matplotlib's "No artists with labels found to put in legend"."""
    env = dict(os.environ, PYTHONPATH=str(SRC))
    env.pop("PYTHONWARNINGS", None)
    out = dry_run(tmp_path / "f")
    cmd = [sys.executable, "-m", "rifebench", "fleet", "report", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1 and proc.stderr == "", proc.stderr
    assert "0/4 cell(s) passed (4 not submitted)" in proc.stdout and (out / "node_throughput.png").exists()


@pytest.mark.parametrize(
    "shape",
    [
        {1: {"a": None, "b": None}},  # nothing measured (every cell failed)
        {1: {"a": 100.0}, 2: {"a": None}},
        {1: {f"n{i:02d}": (100.0 + i if i % 3 else None) for i in range(13)}},  # past the legend's nodes
        {1: {f"n{i}": 100.0 for i in range(6)} | {"slow": 50.0}},  # an outlier, named
    ],
)
def test_no_warning_whatever_the_fleet(tmp_path, shape):
    out = make_fleet(tmp_path / "f", shape, nodes=sorted({n for cells in shape.values() for n in cells}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plot_of(out)


def test_the_plot_is_linear_in_its_nodes(tmp_path):
    """Every node once scanned every cell (and each row looked up in a list):
    40,000 nodes took minutes. Now one pass and a few artists."""
    n = 40_000
    plan = FleetPlan(rows=[PlanRow(1, {"STREAMS": "1"}, dict(ROW_ENV))], profile="p.csv", node_count=n)
    cells = [
        FleetCell(row=1, cells={}, status="passed", node=f"n{i:05d}", throughput_img_s=100.0 + i % 7)
        if i % 10
        else FleetCell(row=1, cells={}, status="failed", node=f"n{i:05d}")
        for i in range(n)
    ]
    for c in cells[1:200:3]:
        c.outlier = "slow"
    stats = row_stats(plan, cells)
    t0 = time.monotonic()
    assert node_plot(plan, cells, stats, tmp_path / "p.png")
    assert time.monotonic() - t0 < 20 and (tmp_path / "p.png").stat().st_size > 0
