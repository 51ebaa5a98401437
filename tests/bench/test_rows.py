"""The benchmark row: its record (one to_dict() feeds summary.csv and the
markdown table), a results.json it cannot read (a failed row that says why, never
a crash), and the one row runner of benchmark.sh and the fleet's tasks (output
kept, environment, a signal passed on to the row)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from rifebench.bench.row import PACKAGE_PARENT, child_env, run_row
from rifebench.report import summary
from rifebench.report.schema import SCHEMA_VERSION
from rifebench.report.table import RowRecord, summary_csv


def passed_run(test_dir: Path, **extra) -> Path:
    test_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "status": "passed",
        "exit_code": 0,
        "schema_version": SCHEMA_VERSION,
        "mode": "dummy",
        "config": {"platform": "cpu", "streams": 1, "data_width": 64, "data_height": 64},
        "metrics": {"throughput_img_s": 12.5, "latency_ms": {"mean": 2.0, "p50": 2.0, "p99": None}},
        "validity": {"valid": True, "reasons": []},
        "streams": [],
        "failures": [],
    }
    (test_dir / "results.json").write_text(json.dumps(doc | extra))
    return test_dir


def test_a_row_record_round_trips_and_feeds_the_csv(tmp_path):
    rec = summary.row_record(1, {"STREAMS": "1"}, passed_run(tmp_path / "test_1"), 0, 3.0)
    assert (rec.status, rec.throughput_img_s, rec.size, rec.valid) == ("passed", 12.5, "64x64", True)
    doc = json.loads(json.dumps(rec.to_dict()))
    assert RowRecord.from_dict(doc) == rec
    row = next(iter(summary_csv(["STREAMS"], [rec]).splitlines()[1:]))
    assert row.startswith("1,1,passed,0,true,,,12.5,")


def test_an_unreadable_or_unknown_results_json_is_a_failed_row_that_says_why(tmp_path):
    newer = passed_run(tmp_path / "test_1", schema_version="99")
    rec = summary.row_record(1, {}, newer, 0, 1.0)
    assert rec.status == "failed" and rec.throughput_img_s is None
    assert str(newer / "results.json") in rec.reason and "schema_version '99'" in rec.reason
    assert "\n" not in rec.reason
    broken = tmp_path / "test_2"
    broken.mkdir()
    (broken / "results.json").write_text("{")
    rec = summary.row_record(2, {}, broken, 0, 1.0)
    assert rec.status == "failed" and "not JSON" in rec.reason and str(broken / "results.json") in rec.reason
    # An interrupted row stays interrupted whatever its file says.
    assert summary.row_record(3, {}, newer, 130, 1.0).status == "interrupted"
    # No results.json at all: the row's own exit status and last error, as before.
    (tmp_path / "test_4").mkdir()
    (tmp_path / "test_4" / "console.log").write_text("run_model.sh: error: --precision/PRECISION: bad\n")
    rec = summary.row_record(4, {}, tmp_path / "test_4", 2, 1.0)
    assert rec.reason == "exit status 2: run_model.sh: error: --precision/PRECISION: bad"


def test_the_row_runs_with_its_variables_and_keeps_its_output(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OUTPUT_DIR", "/the/benchmark")
    env = child_env({"STREAMS": "2"}, tmp_path)
    assert env["OUTPUT_DIR"] == str(tmp_path) and env["STREAMS"] == "2"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == PACKAGE_PARENT
    script = "import os; print(os.environ['STREAMS'], os.environ['OUTPUT_DIR']); raise SystemExit(3)"
    done = run_row([sys.executable, "-c", script], {"STREAMS": "2"}, tmp_path, echo="[row 1] ")
    assert done.exit_code == 3 and done.wall_s > 0
    assert (tmp_path / "console.log").read_text() == f"2 {tmp_path}\n"
    assert capsys.readouterr().out == f"[row 1] 2 {tmp_path}\n"
    assert run_row(["/nonexistent/tool"], {}, tmp_path).exit_code is None
    assert "cannot start /nonexistent/tool" in (tmp_path / "console.log").read_text()


RUNNER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from rifebench.bench.row import run_row
    from rifebench.run.interrupts import raise_on_signals

    raise_on_signals()
    child = (
        "import signal, sys, time\\n"
        "def stop(n, f):\\n"
        "    print('row got', signal.Signals(n).name, flush=True); sys.exit(130)\\n"
        "signal.signal(signal.SIGTERM, stop)\\n"
        "print('ready', flush=True)\\n"
        "time.sleep(60)\\n"
    )
    done = run_row([sys.executable, "-c", child], {}, Path(sys.argv[1]))
    print("runner: exit", done.exit_code, flush=True)
    """
)


def test_a_signal_is_passed_on_to_the_row(tmp_path):
    """SIGTERM (scancel, a pod's deletion, a kill of benchmark.sh) reaches the row as
    SIGTERM, which records its interruption; the runner reports the row interrupted."""
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    log = tmp_path / "console.log"
    while not (log.exists() and "ready" in log.read_text(errors="replace")):
        assert time.monotonic() < deadline and proc.poll() is None, "the row never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert "runner: exit 130" in out
    assert "row got SIGTERM" in log.read_text()


def test_a_figure_that_is_no_finite_number_makes_a_failed_row_that_says_which(tmp_path):
    """Issue 21: a NaN throughput was a measured row (and row 1's NaN every speed-up)."""
    for n, (metrics, words) in enumerate(
        [
            ({"throughput_img_s": float("nan")}, "metrics.throughput_img_s is nan"),
            ({"throughput_img_s": float("inf")}, "metrics.throughput_img_s is inf"),
            ({"throughput_img_s": "12.5"}, "metrics.throughput_img_s is '12.5'"),
            ({"throughput_img_s": 12.5, "latency_ms": {"p50": [2.0]}}, "latency_ms.p50 is a list"),
            ({"throughput_img_s": 12.5, "ci95": {"throughput_img_s": ["a", "b"]}}, "ci95.throughput_img_s[0] is 'a'"),
        ],
        1,
    ):
        rec = summary.row_record(n, {}, passed_run(tmp_path / f"test_{n}", metrics=metrics), 0, 1.0)
        assert rec.status == "failed" and words in rec.reason and rec.throughput_img_s is None, rec.reason
    bad_gpu = {"gpus": [{"util_pct": {"max": 3.0}, "power_w": None}], "gpu_source": "nvml"}
    rec = summary.row_record(9, {}, passed_run(tmp_path / "test_9", telemetry=bad_gpu), 0, 1.0)
    assert rec.status == "passed" and rec.gpu_util_pct is None  # a summary without its mean: no figure, no crash


def test_a_failed_quality_verdict_without_its_pass_rate_is_a_reason_not_a_crash(tmp_path):
    run = passed_run(tmp_path / "test_1", status="failed", quality={"verdict": "fail", "threshold_db": 25.0})
    rec = summary.row_record(1, {}, run, 1, 1.0)
    assert rec.status == "failed" and rec.reason == "quality verdict: ?% of frames >= 25.0 dB"
