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

from rifebench.fleet.collect import collect, load_plan, row_stats
from rifebench.fleet.report import report

REPO = Path(__file__).resolve().parents[2]


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
    cells, stats = report(out)
    assert stats[0]["outliers"] == ["gpu06"]
    assert stats[0]["median"] == 100.0 and stats[0]["measured"] == 7 and stats[0]["ci"] is not None
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
        assert stats[0]["outliers"] == [] and not any(c.get("outlier") for c in cells)


def test_a_far_value_within_a_wide_spread_is_not_an_outlier(tmp_path):
    out = make_fleet(tmp_path / "f", {1: {"a": 100.0, "b": 70.0, "c": 130.0, "d": 85.0, "e": 115.0, "f": 62.0}})
    assert stats_of(out)[1][0]["outliers"] == []


def test_two_nodes_flag_nothing_and_a_noisy_node_is_not_accused(tmp_path):
    assert stats_of(make_fleet(tmp_path / "two", {1: {"a": 100.0, "b": 50.0}}))[1][0]["outliers"] == []
    out = make_fleet(
        tmp_path / "ci", {1: {"a": 100.0, "b": 100.5, "c": 99.8, "d": 80.0}}, reps={"d": [70.0, 101.0]}
    )  # its own interval holds the median
    assert stats_of(out)[1][0]["outliers"] == []


def test_failed_and_not_run_cells_are_listed_never_missing(tmp_path):
    out = make_fleet(tmp_path / "f", {1: {"a": 100.0, "b": None}, 2: {"a": None, "b": None}}, nodes=["a", "b"])
    (out / "node_a" / "test_1" / "task.json").write_text(json.dumps({"state": "finished", "exit_code": 1}))
    cells, stats = report(out)
    by = {(c["row"], c["node"]): c for c in cells}
    assert set(by) == {(1, "a"), (1, "b"), (2, "a"), (2, "b")}
    assert all(c["status"] == "failed" for c in cells)
    assert "no task record" in by[(1, "b")]["reason"]
    assert "FAILED" in (out / "summary.md").read_text()
    cancelled = make_fleet(tmp_path / "c", {1: {"a": 100.0}, 2: {"a": None}}, cancelled=True, nodes=["a"])
    cells, _ = stats_of(cancelled)
    assert [c["status"] for c in cells] == ["passed", "not run"]


def test_a_node_count_without_folders_still_lists_every_cell(tmp_path):
    out = make_fleet(tmp_path / "f", {1: {"a": 100.0}})
    plan = json.loads((out / "fleet.json").read_text())
    (out / "fleet.json").write_text(json.dumps(plan | {"node_count": 3}))
    cells, _ = stats_of(out)
    assert [c["status"] for c in cells] == ["passed", "failed", "failed"]


@pytest.mark.slow  # three interpreters drawing plots
def test_fleet_report_command_exit_codes(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), PATH="/usr/bin:/bin")
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
