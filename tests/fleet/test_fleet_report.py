"""The fleet report on synthetic multi-node folders (a fleet of one node cannot
show an outlier): the outlier rule, telemetry beside a slow node, failed and
not-run cells, and the files written."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rifebench
from rifebench.fleet.collect import collect, load_plan, row_stats
from rifebench.fleet.report import report
from rifebench.report.schema import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[2]
SRC = Path(rifebench.__file__).resolve().parents[1]  # the code under test, in subprocesses too


def make_fleet(
    out: Path,
    rows: dict[int, dict[str, float | None]],
    cancelled: bool = False,
    nodes: list[str] | None = None,
    gpu: dict | None = None,
    reps: dict | None = None,
) -> Path:
    """rows: row -> {node: throughput, or None for a task that wrote no record}."""
    out.mkdir(parents=True, exist_ok=True)
    plan = {
        "profile": "profiles/x.csv",
        "command": ["rifebench", "fleet", "submit"],
        "cancelled": cancelled,
        "rows": [{"row": r, "cells": {"STREAMS": str(r)}, "env": {}} for r in rows],
        "nodes": nodes or [],
        "node_count": len(nodes or []),
        "scheduler": {"kind": "slurm", "job_id": "7"},
    }
    (out / "fleet.json").write_text(json.dumps(plan))
    for r, per_node in rows.items():
        for node, value in per_node.items():
            if value is None:
                continue
            cell = out / f"node_{node}" / f"test_{r}"
            cell.mkdir(parents=True)
            (cell / "task.json").write_text(json.dumps({"state": "finished", "exit_code": 0, "wall_s": 1.0}))
            metrics = {"throughput_img_s": value, "latency_ms": {"p50": 1000 / value}}
            if reps and node in reps:
                metrics["ci95"] = {"throughput_img_s": reps[node]}
            doc = {
                "status": "passed",
                "exit_code": 0,
                "schema_version": SCHEMA_VERSION,
                "validity": {"valid": True, "reasons": []},
                "metrics": metrics,
                "config": {"platform": "cuda", "model": "4.6"},
                "telemetry": {"gpus": [gpu[node]] if gpu and node in gpu else []},
            }
            (cell / "results.json").write_text(json.dumps(doc))
    return out


def stats_of(out: Path):
    plan = load_plan(out)
    cells = collect(out, plan)
    return cells, row_stats(plan, cells)


def test_a_slow_node_is_flagged_with_its_telemetry(tmp_path):
    nodes = {f"gpu{i:02d}": v for i, v in enumerate([100.0, 101.0, 99.5, 100.4, 98.9, 82.0, 100.8], 1)}
    slow_gpu = {
        "sm_clock_mhz": {"mean": 1100.0},
        "power_w": {"mean": 310.0},
        "throttle_reasons": {"sw_thermal_slowdown": 40},
    }
    out = make_fleet(tmp_path / "f", {1: nodes}, gpu={"gpu06": slow_gpu})
    _cells, stats, _ = report(out)
    assert stats[0].outliers == ["gpu06"]
    assert stats[0].median == 100.0 and stats[0].measured == 7 and stats[0].ci is not None
    md = (out / "summary.md").read_text()
    assert (
        "**gpu06**, row 1: 82.00 img/s (slow); SM clock 1100 MHz; power 310 W; "
        "throttling: sw_thermal_slowdown (40 samples)" in md
    )
    assert "82.00 **(slow)**" in md
    with open(out / "summary.csv") as f:
        flagged = [r["node"] for r in csv.DictReader(f) if r["outlier"]]
    assert flagged == ["gpu06"]
    assert (out / "node_throughput.png").stat().st_size > 0


def test_noise_is_not_an_outlier(tmp_path):
    # 4% below a noisy fleet: many MADs away is not enough, nor is a tight fleet's 1%.
    noisy = make_fleet(tmp_path / "noisy", {1: {"a": 100.0, "b": 96.0, "c": 104.0, "d": 100.5, "e": 99.0}})
    tight = make_fleet(tmp_path / "tight", {1: {"a": 100.0, "b": 100.0, "c": 100.0, "d": 99.0}})
    for out in (noisy, tight):
        cells, stats = stats_of(out)
        assert stats[0].outliers == [] and not any(c.outlier for c in cells)


def test_a_far_value_within_a_wide_spread_is_not_an_outlier(tmp_path):
    out = make_fleet(tmp_path / "f", {1: {"a": 100.0, "b": 70.0, "c": 130.0, "d": 85.0, "e": 115.0, "f": 62.0}})
    assert stats_of(out)[1][0].outliers == []


def test_two_nodes_flag_nothing_and_a_noisy_node_is_not_accused(tmp_path):
    assert stats_of(make_fleet(tmp_path / "two", {1: {"a": 100.0, "b": 50.0}}))[1][0].outliers == []
    out = make_fleet(
        tmp_path / "ci", {1: {"a": 100.0, "b": 100.5, "c": 99.8, "d": 80.0}}, reps={"d": [70.0, 101.0]}
    )  # its own interval holds the median
    assert stats_of(out)[1][0].outliers == []


def test_failed_and_not_run_cells_are_listed_never_missing(tmp_path):
    out = make_fleet(tmp_path / "f", {1: {"a": 100.0, "b": None}, 2: {"a": None, "b": None}}, nodes=["a", "b"])
    (out / "node_a" / "test_1" / "task.json").write_text(json.dumps({"state": "finished", "exit_code": 1}))
    cells, _stats, _ = report(out)
    by = {(c.row, c.node): c for c in cells}
    assert set(by) == {(1, "a"), (1, "b"), (2, "a"), (2, "b")}
    assert all(c.status == "failed" for c in cells)
    assert "no task record" in by[(1, "b")].reason
    assert "FAILED" in (out / "summary.md").read_text()
    cancelled = make_fleet(tmp_path / "c", {1: {"a": 100.0}, 2: {"a": None}}, cancelled=True, nodes=["a"])
    cells, _ = stats_of(cancelled)
    assert [c.status for c in cells] == ["passed", "not run"]


def test_a_node_count_without_folders_still_lists_every_cell(tmp_path):
    out = make_fleet(tmp_path / "f", {1: {"a": 100.0}})
    plan = json.loads((out / "fleet.json").read_text())
    (out / "fleet.json").write_text(json.dumps(plan | {"node_count": 3}))
    cells, _ = stats_of(out)
    assert [c.status for c in cells] == ["passed", "failed", "failed"]


@pytest.mark.slow  # three interpreters drawing plots
def test_fleet_report_command_exit_codes(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(SRC), PATH="/usr/bin:/bin")
    good = make_fleet(tmp_path / "good", {1: {"a": 100.0, "b": 99.0}})
    bad = make_fleet(tmp_path / "bad", {1: {"a": 100.0, "b": None}}, nodes=["a", "b"])
    run = [sys.executable, "-m", "rifebench", "fleet", "report"]
    assert subprocess.run([*run, str(good)], capture_output=True, env=env).returncode == 0
    assert subprocess.run([*run, str(bad)], capture_output=True, env=env).returncode == 1
    proc = subprocess.run([*run, str(tmp_path)], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "has no fleet.json" in proc.stderr


def test_an_invalid_cell_is_counted_in_the_result_line(tmp_path):
    out = make_fleet(tmp_path / "f", {1: {"a": 100.0, "b": 99.0}})
    doc_path = out / "node_b" / "test_1" / "results.json"
    doc = json.loads(doc_path.read_text())
    doc["validity"] = {"valid": False, "reasons": ["CPU_CONTENTION"]}
    doc_path.write_text(json.dumps(doc))
    report(out)
    md = (out / "summary.md").read_text()
    assert (
        "2 of 2 cells passed** (**1 of them invalid measurements**)" in md
        or "2 of 2 cells passed (**1 of them invalid measurements**)**" in md
    ), md.splitlines()[2]


def test_a_cell_of_an_unknown_schema_stops_the_report(tmp_path, capsys):
    """Another version's results.json is not read as this one's: one line naming the file, exit 2."""
    from rifebench.fleet.cli import main

    out = make_fleet(tmp_path / "f", {1: {"a": 100.0, "b": 99.0}})
    doc_path = out / "node_b" / "test_1" / "results.json"
    doc_path.write_text(json.dumps(json.loads(doc_path.read_text()) | {"schema_version": "99"}))
    capsys.readouterr()
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("rifebench fleet: error: ")
    assert str(doc_path) in err and "schema_version '99'" in err
    assert not (out / "summary.md").exists()


def test_the_range_across_nodes_is_named_range(tmp_path):
    """(max - min) / median over the nodes is the full range (measure.stats.range_pct), not the spread."""
    out = make_fleet(tmp_path / "f", {1: {"a": 100.0, "b": 90.0, "c": 110.0}})
    _, stats, _ = report(out)
    assert stats[0].range_pct == pytest.approx(20.0)
    rows = json.loads((out / "fleet_report.json").read_text())["rows"]
    assert rows[0]["range_pct"] == pytest.approx(20.0) and "spread_pct" not in rows[0]
    assert "| range % |" in (out / "summary.md").read_text()


def test_fleet_records_round_trip():
    from rifebench.fleet.records import FleetCell, FleetPlan, PlanRow, RowStats, TaskRecord

    plan = FleetPlan(
        rows=[PlanRow(1, {"STREAMS": "2"}, {"STREAMS": "2", "DUMMY": "1"}, 2)],
        profile="p.csv",
        header=["STREAMS"],
        command=["rifebench", "fleet", "submit", "p.csv"],
        created="2026-01-01T00:00:00+00:00",
        nodes=["gpu01"],
        node_count=1,
        scheduler={"kind": "slurm", "job_id": "7"},
        extra={"written_by": "a later rifebench"},
    )
    doc = json.loads(json.dumps(plan.to_dict()))
    assert FleetPlan.from_dict(doc) == plan and doc["written_by"] == "a later rifebench"
    assert "cancelled" not in doc and "replicas" not in doc  # optional keys appear only when set
    task = TaskRecord(state="finished", row=1, node="gpu01", exit_code=0, wall_s=1.5)
    assert TaskRecord.from_dict(json.loads(json.dumps(task.to_dict()))) == task
    cell = FleetCell(row=1, cells={"STREAMS": "2"}, status="passed", node="gpu01", throughput_img_s=9.5, outlier="slow")
    assert FleetCell.from_dict(json.loads(json.dumps(cell.to_dict()))) == cell
    st = RowStats(row=1, cells={}, nodes=3, measured=3, passed=3, statuses={"passed": 3}, median=9.0, ci=[8.0, 10.0])
    assert RowStats.from_dict(json.loads(json.dumps(st.to_dict()))) == st


# --- files that are not what they claim (issue 21) -------------------------------------------


def test_a_nan_throughput_is_a_failed_cell_and_stays_out_of_the_statistics(tmp_path, capsys):
    """A NaN throughput passed ("8/8 cells passed"), and the median, interval and
    outlier rule took it: the cell is failed with the key named, the rest decide."""
    from rifebench.fleet.cli import main

    values = [100.0, 101.0, 99.5, 100.4, 98.9, 82.0, 100.8, float("nan")]
    out = make_fleet(tmp_path / "f", {1: {f"gpu{i:02d}": v for i, v in enumerate(values, 1)}})
    cells, stats = stats_of(out)
    nan = next(c for c in cells if c.node == "gpu08")
    assert nan.status == "failed" and "metrics.throughput_img_s is nan" in nan.reason
    assert nan.throughput_img_s is None and stats[0].measured == 7 and stats[0].median == 100.0
    assert stats[0].outliers == ["gpu06"] and all(x == x for x in stats[0].ci)
    capsys.readouterr()
    assert main(["report", str(out)]) == 1
    assert "7/8 cell(s) passed" in capsys.readouterr().out
    assert "7 of 8 cells passed" in (out / "summary.md").read_text()


def _plan_edit(key, value):
    return lambda plan: plan | {key: value}


@pytest.mark.parametrize(
    "change, words",
    [
        (_plan_edit("node_count", "many"), "node_count is 'many' (accepted: an integer)"),
        (_plan_edit("node_count", 10**7), "node_count 10000000"),
        (_plan_edit("node_count", 1e400), "node_count is inf"),
        (_plan_edit("node_count", float("nan")), "node_count is nan"),
        (_plan_edit("nodes", "a,b"), "nodes is 'a,b' (accepted: a list of strings)"),
        (_plan_edit("scheduler", "slurm"), "scheduler is 'slurm'"),
        (_plan_edit("command", [["x"]]), "command[0] is a list"),
        (lambda plan: plan | {"rows": [{"row": "1", "cells": {}}]}, "rows[0].row is '1'"),
        (lambda plan: plan | {"rows": [{"row": 1, "cells": {"STREAMS": 2}}]}, "rows[0].cells.STREAMS is 2"),
        (lambda plan: plan | {"rows": [{"row": i} for i in range(1, 100_002)]}, "at most 100000 cells"),
        (lambda plan: json.dumps(plan)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        (lambda plan: [plan], "is not a fleet plan"),
    ],
)
def test_a_corrupt_fleet_plan_is_one_line_and_exit_2_at_once(tmp_path, capsys, change, words):
    import time

    from rifebench.fleet.cli import main

    out = make_fleet(tmp_path / "f", {1: {"a": 100.0, "b": 99.0}})
    new = change(json.loads((out / "fleet.json").read_text()))
    (out / "fleet.json").write_text(new if isinstance(new, str) else json.dumps(new))
    capsys.readouterr()
    t0 = time.monotonic()
    assert main(["report", str(out)]) == 2
    assert time.monotonic() - t0 < 10  # node_count 10^7 once listed ten million cells
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("rifebench fleet: error: DIR: "), err
    assert str(out / "fleet.json") in err and words in err, err
    assert not (out / "summary.md").exists()


@pytest.mark.parametrize(
    "name, text, words",
    [
        ("task.json", '{"state": "finished", "exit_code": "0"}', "exit_code is '0' (accepted: an integer or null)"),
        ("task.json", '{"state": "finished", "exit_code": 0, "wall_s": NaN}', "wall_s is nan"),
        ("task.json", "[" * 100_000, "nested too deeply"),
        ("task.json", '["finished"]', "not a task record"),
        ("results.json", None, "metrics.throughput_img_s is 'fast'"),
        ("results.json", "[" * 100_000, "nested too deeply"),
    ],
)
def test_a_corrupt_cell_file_is_a_failed_cell_that_says_why(tmp_path, name, text, words):
    out = make_fleet(tmp_path / "f", {1: {"a": 100.0, "b": 99.0, "c": 101.0}})
    path = out / "node_b" / "test_1" / name
    if text is None:
        doc = json.loads(path.read_text())
        doc["metrics"]["throughput_img_s"] = "fast"
        text = json.dumps(doc)
    path.write_text(text)
    cells, stats, _ = report(out)
    bad = next(c for c in cells if c.node == "b")
    assert bad.status == "failed" and words in bad.reason and "\n" not in bad.reason, bad.reason
    assert str(path) in bad.reason
    assert stats[0].measured == 2 and stats[0].median == 100.5
    assert "2 of 3 cells passed" in (out / "summary.md").read_text()


def test_the_report_stays_linear_in_its_cells(tmp_path):
    """30,000 cells (one row, node_count 30000, no folders): listing, statistics and
    the markdown take seconds; the cell matrix was once a scan of every cell per node."""
    import time

    from rifebench.fleet.report import markdown

    out = make_fleet(tmp_path / "f", {1: {"a": 100.0}, 2: {"a": 99.0}})
    plan = json.loads((out / "fleet.json").read_text())
    (out / "fleet.json").write_text(json.dumps(plan | {"node_count": 15_000}))
    t0 = time.monotonic()
    plan = load_plan(out)
    cells = collect(out, plan)
    stats = row_stats(plan, cells)
    md = markdown(plan, cells, stats, [])
    assert time.monotonic() - t0 < 15
    assert len(cells) == 30_000 and "2 of 30000 cells passed" in md and md.count("\n| (unallocated") == 14_999


# --- only the plan's cells count; a dry run is not a failure (issue 21 item 29, issue 22 item 11) --


def test_folders_not_in_the_plan_are_strays_never_cells(tmp_path, capsys):
    """A node the list does not name, a second replica on a listed node, a row the
    plan does not have and a node folder of the user's were counted as cells."""
    from rifebench.fleet.cli import main

    out = make_fleet(tmp_path / "f", {1: {"a": 100.0, "b": 99.0, "c": 98.0}, 9: {"a": 50.0}}, nodes=["a", "b"])
    plan = json.loads((out / "fleet.json").read_text())
    plan["rows"] = plan["rows"][:1]  # row 9's folder is left from another profile
    (out / "fleet.json").write_text(json.dumps(plan))
    (out / "node_a" / "test_1.2").mkdir()  # a resubmitted script's second task on node a
    (out / "node_backup").mkdir()
    (out / "node_backup" / "keep.txt").write_text("the user's")
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    console = capsys.readouterr().out
    strays = ["node_a/test_1.2", "node_a/test_9", "node_backup", "node_c"]
    assert "2/2 cell(s) passed" in console, console
    assert f"4 folder(s) not in the plan, not counted: {', '.join(strays)}" in console
    md = (out / "summary.md").read_text()
    assert "Result: 2 of 2 cells passed" in md and "4 folder(s) not in the plan, not counted:** node_a/test_1.2" in md
    assert "| c |" not in md and "a#2" not in md
    doc = json.loads((out / "fleet_report.json").read_text())
    assert doc["strays"] == strays and len(doc["cells"]) == 2
    with open(out / "summary.csv") as f:
        assert [r["node"] for r in csv.DictReader(f)] == ["a", "b"]


def test_a_node_count_takes_that_many_folders_per_row(tmp_path):
    out = make_fleet(tmp_path / "f", {1: {"a": 100.0, "b": 99.0, "c": 98.0}})
    plan = json.loads((out / "fleet.json").read_text())
    (out / "fleet.json").write_text(json.dumps(plan | {"node_count": 2}))
    cells, stats = stats_of(out)
    assert [c.node for c in cells] == ["a", "b"] and stats[0].nodes == 2
    assert report(out).strays == ["node_c"]
    assert "2 of 2 cells passed" in (out / "summary.md").read_text()


def test_a_dry_run_folder_is_not_submitted_not_failed(tmp_path, capsys):
    from rifebench.fleet.cli import main

    out = make_fleet(tmp_path / "f", {1: {"a": None}, 2: {"a": None}})
    plan = json.loads((out / "fleet.json").read_text())
    plan |= {"node_count": 2, "output_dir": str(out), "scheduler": {"kind": "slurm", "job_id": None, "script": "s.sh"}}
    (out / "fleet.json").write_text(json.dumps(plan))
    capsys.readouterr()
    assert main(["report", str(out)]) == 1  # nothing passed: not a pass
    assert "0/4 cell(s) passed (4 not submitted)" in capsys.readouterr().out
    cells, _, _ = report(out)
    assert {c.status for c in cells} == {"not submitted"}
    assert cells[0].reason == f"written with --dry-run and never submitted (submit it: sbatch {out / 's.sh'}; " + (
        "if it was, no task has started yet)"
    )
    md = (out / "summary.md").read_text()
    assert "FAILED" not in md and "failed" not in md.split("## How to read this")[0]
    assert "| (unallocated 1) | not submitted | not submitted |" in md
    # Submitted by hand (sbatch of the dry run's script): its tasks' folders say so.
    cell = out / "node_a" / "test_1"
    cell.mkdir(parents=True)
    (cell / "task.json").write_text(json.dumps({"state": "running"}))
    cells, _, _ = report(out)
    assert "not submitted" not in {c.status for c in cells}


def test_a_task_that_never_started_names_the_interpreter(tmp_path):
    """A node that cannot see the submitting checkout's .venv never writes a record: say which Python."""
    out = make_fleet(tmp_path / "f", {1: {"a": 100.0, "b": None}}, nodes=["a", "b"])
    plan = json.loads((out / "fleet.json").read_text())
    plan["scheduler"] |= {"python": "/home/u/rifebench/.venv/bin/python"}
    (out / "fleet.json").write_text(json.dumps(plan))
    cells, _ = stats_of(out)
    assert cells[1].status == "failed"
    assert cells[1].reason.endswith("a node that cannot run /home/u/rifebench/.venv/bin/python fails so)")
