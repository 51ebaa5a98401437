"""The fleet's task (what each node runs): a plan or index that is not one is one
line naming it and exit 2, never a traceback in the scheduler's log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rifebench
from rifebench.fleet.task import main

SRC = Path(rifebench.__file__).resolve().parents[1]
PLAN = {"rows": [{"row": 1, "cells": {}, "env": {"MODEL": "null"}}], "node_count": 1, "scheduler": {"kind": "slurm"}}


@pytest.mark.parametrize(
    "text, words",
    [
        ('{"rows": [', "cannot be read (Expecting value"),
        ("[1, 2]", "is not a fleet plan (accepted: the fleet.json fleet submit writes)"),
        (json.dumps(PLAN | {"node_count": "many"}), "is not a fleet plan: node_count is 'many'"),
        ("[" * 100_000, "cannot be read (nested too deeply)"),
        (b"\xff\xfe{}", "cannot be read (not UTF-8 text"),
        (None, "does not exist (accepted: the fleet.json `rifebench fleet submit` or `fleet k8s` writes)"),
    ],
)
@pytest.mark.parametrize("given", ["--plan", "--output-dir"])
def test_a_corrupt_plan_is_one_line_naming_it(tmp_path, capsys, text, words, given):
    out = tmp_path / "out"
    out.mkdir()
    path = tmp_path / "etc" / "fleet.json" if given == "--plan" else out / "fleet.json"
    path.parent.mkdir(exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    args = ["--output-dir", str(out), "--row", "1"] + (["--plan", str(path)] if given == "--plan" else [])
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"fleet_task: error: {given}: {str(path)!r} "), err
    assert words in err, err
    assert [p for p in out.iterdir() if p != path] == []  # no cell folder, no copied plan


@pytest.mark.parametrize("index", [None, "", "x", "-1", "\u00b2", "9" * 40])
def test_a_bad_completion_index_is_one_line(tmp_path, capsys, monkeypatch, index):
    (tmp_path / "fleet.json").write_text(json.dumps(PLAN | {"replicas": 2}))
    if index is None:
        monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    else:
        monkeypatch.setenv("JOB_COMPLETION_INDEX", index)
    capsys.readouterr()
    assert main(["--output-dir", str(tmp_path), "--completion-index"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fleet_task: error: JOB_COMPLETION_INDEX: invalid value " in err, err


def test_the_task_process_prints_no_traceback(tmp_path):
    (tmp_path / "fleet.json").write_text('{"rows": 7}')
    env = dict(os.environ, PYTHONPATH=str(SRC))
    cmd = [sys.executable, "-m", "rifebench.fleet.task", "--output-dir", str(tmp_path), "--row", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == (
        f"fleet_task: error: --output-dir: {str(tmp_path / 'fleet.json')!r} is not a fleet plan "
        "(accepted: the fleet.json fleet submit writes)"
    )
