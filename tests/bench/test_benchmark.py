"""benchmark.sh: profile checks, the row loop on bare metal (real runs of a tiny
model size on the CPU), failures recorded while the other rows run, output-folder
safety, interruption, and the container command line (with a stand-in docker)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rifebench.bench import profiles
from rifebench.bench import runner as bench
from rifebench.errors import UsageError
from rifebench.options import BY_ENV
from rifebench.report.schema import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmark.sh"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = "PLATFORM,PRECISION,DATA_HEIGHT,DATA_WIDTH,NUM_INPUTS,WARMUP"


def clean_env(**extra) -> dict:
    """The caller's environment without any option or benchmark variable, so a
    developer's exported PRECISION cannot change what a test runs."""
    drop = set(BY_ENV) | {"PROFILE", "IMAGE", "OVERWRITE", "INVENTORY", "DOCKER_ARGS", "CONTAINER_ENGINE"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return env | {k: str(v) for k, v in extra.items()}


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def run_bench(*args, env=None, timeout=420) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BENCH), *map(str, args)], env=env or clean_env(), capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


# --- the profile is checked whole, before anything runs ------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("PRECISION,BOGUS\nfp32,1\n", "line 1: column 2 'BOGUS' is not an option variable (accepted: MODEL,"),
        ("PRECISION,STREAMS\nfp8,1\n", "row 1 (line 2), column PRECISION: invalid value 'fp8' (accepted:"),
        ("PRECISION,STREAMS\nfp32,1\nfp32,0\n", "row 2 (line 3), column STREAMS: value '0' out of range"),
        (
            "PRECISION,MODELS_DIR\nfp32,$(rm -rf ~)\n",
            "row 1 (line 2), column MODELS_DIR: invalid value '$(rm -rf ~)': shell metacharacter(s) '$' '(' ')'",
        ),
        ("PRECISION,SEED\nfp32,1;id\n", "column SEED: invalid value '1;id': shell metacharacter(s) ';'"),
        ("PRECISION,LOAD_PATH\nfp32,`id`\n", "column LOAD_PATH: invalid value '`id`': shell metacharacter(s) '`'"),
        (
            "MIN_TEST_DURATION,MAX_TEST_DURATION\n5,2\n",
            "row 1 (line 2): --min-test-duration/MIN_TEST_DURATION: 5.0 is "
            "greater than --max-test-duration/MAX_TEST_DURATION 2.0",
        ),
        ("PRECISION,STREAMS\nfp32\n", "row 1 (line 2) has 1 cells for 2 columns"),
        ("OUTPUT_DIR,STREAMS\n/tmp/x,1\n", "column OUTPUT_DIR cannot be set in a profile"),
        ("PRECISION,precision\nfp32,fp16\n", "column PRECISION appears twice"),
        ("# only a comment\nPRECISION,STREAMS\n", "header only, no rows"),
        ("", "no header and no rows"),
    ],
)
def test_profile_errors_name_row_and_column(tmp_path, text, expected):
    path = tmp_path / "p.csv"
    path.write_text(text)
    try:
        _, rows = profiles.read(path)
        problems = profiles.validate(str(path), rows, {})
    except profiles.ProfileError as exc:
        problems = [str(exc)]
    assert len(problems) == 1, problems
    assert expected in problems[0]
    assert str(path) in problems[0]


def test_cells_columns_comments_and_environment(tmp_path):
    path = write(
        tmp_path / "p.csv",
        """
        # a comment, then lower-case columns and an empty cell
        precision, streams ,num_inputs

        bf16,2,
        fp32,,7
        """,
    )
    header, rows = profiles.read(path)
    assert header == ["PRECISION", "STREAMS", "NUM_INPUTS"]
    assert [(r.number, r.line, r.cells) for r in rows] == [
        (1, 4, {"PRECISION": "bf16", "STREAMS": "2"}),
        (2, 5, {"PRECISION": "fp32", "NUM_INPUTS": "7"}),
    ]
    environ = {"NUM_INPUTS": "3", "STREAMS": "4", "HOME": "/x", "OUTPUT_DIR": "/bench"}
    assert profiles.validate(str(path), rows, environ) == []
    # An empty cell leaves the environment's value; a cell wins over it; OUTPUT_DIR never leaks in.
    assert profiles.row_env(rows[0], environ) == {"NUM_INPUTS": "3", "STREAMS": "2", "PRECISION": "bf16", "DUMMY": "1"}
    assert profiles.row_env(rows[1], environ)["NUM_INPUTS"] == "7"
    assert "DUMMY" not in profiles.row_env(rows[1], {"DATASET_DIR": "/data"})
    cfg = profiles.resolved(rows[0], environ, str(tmp_path / "test_1"))
    assert (cfg["streams"], cfg["precision"], cfg["num_inputs"], cfg["dummy"]) == (2, "bf16", 3, True)
    assert cfg["output_dir"] == str(tmp_path / "test_1")


@pytest.mark.slow  # over 2 s on 2 cores: kept out of the fast tier
def test_shipped_profiles_are_valid_and_shaped_as_documented():
    names = sorted(p.name for p in (REPO / "profiles").glob("*.csv"))
    assert names == [
        "cpu.csv",
        "models.csv",
        "reference.rife.fp16.csv",
        "rife.bf16.csv",
        "rife.fp16.csv",
        "rife.fp32.csv",
        "rife46.optimizations.csv",
    ]
    loaded = {}
    for name in names:
        path = REPO / "profiles" / name
        _, rows = profiles.read(path)
        assert profiles.validate(str(path), rows, {}) == [], name
        loaded[name] = [profiles.resolved(r, {}, "/tmp/x") for r in rows]
    for p in ("fp16", "bf16", "fp32"):
        cfgs = loaded[f"rife.{p}.csv"]
        assert [(c["precision"], c["streams"]) for c in cfgs] == [(p, 1), (p, 2), (p, 4)]
    from rifebench.models import zoo

    sweep = {(c["model"], c["data_width"], c["data_height"], c["random_weights"]) for c in loaded["models.csv"]}
    with_weights = [n for n, s in zoo.MODELS.items() if s.weights_file is not None]
    assert sweep == {(n, w, h, n not in ("4.0", "3.6")) for n in with_weights for w, h in ((448, 256), (1280, 720))}
    cpu = loaded["cpu.csv"]
    assert all(c["platform"] == "cpu" and c["data_height"] * c["data_width"] <= 448 * 256 for c in cpu)
    assert len(cpu) <= 6 and sum(c["min_test_duration"] for c in cpu) <= 60
    study = loaded["rife46.optimizations.csv"]
    assert [(c["model"], c["optimize"], c["precision"]) for c in study] == [
        ("4.6", "baseline", "fp32"),
        ("4.6", "optimized", "fp32"),
        ("4.6", "optimized", "fp16"),
    ]
    assert all(c["saveimages"] and c["dummy"] for c in study)  # the fingerprints are compared with row 1


@pytest.mark.slow
def test_bad_profile_fails_in_a_second_and_runs_nothing(tmp_path):
    prof = write(
        tmp_path / "bad.csv",
        """
        PRECISION,STREAMS,WARMUP
        fp32,1,2
        fp32,two,2
        fp64,1,"$HOME"
        """,
    )
    out = tmp_path / "out"
    t0 = time.monotonic()
    proc = run_bench("--profile", prof, "--output-dir", out)
    assert proc.returncode == 2, proc.stderr
    assert time.monotonic() - t0 < 30
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert all(line.startswith("benchmark.sh: error: ") for line in lines)
    assert "row 2 (line 3), column STREAMS: invalid value 'two'" in lines[0]
    assert "row 3 (line 4), column PRECISION: invalid value 'fp64'" in lines[1]
    assert "row 3 (line 4), column WARMUP: invalid value '$HOME': shell metacharacter(s) '$'" in lines[2]
    assert not out.exists()


def test_missing_profile_and_unreadable_profile(tmp_path):
    proc = run_bench("--output-dir", tmp_path / "o")
    assert proc.returncode == 2 and "--profile/PROFILE: not given" in proc.stderr
    assert "a shipped profile by name: cpu, " in proc.stderr  # the names that work anywhere
    proc = run_bench(env=clean_env(PROFILE=tmp_path / "nope.csv", OUTPUT_DIR=tmp_path / "o"))
    assert proc.returncode == 2 and "PROFILE: cannot read" in proc.stderr


# --- a real benchmark on the CPU ------------------------------------------------------


@pytest.fixture(scope="module")
def cpu_bench(tmp_path_factory):
    """Three rows at 64x64: a good one, one that fails at its turn (a weights file
    for the 4.0 model that exists, so it passes the start-up checks, but is not a
    checkpoint), and a good one with two streams. Both good rows run the null
    model (the row loop is tested, not a network) and save their fingerprint."""
    root = tmp_path_factory.mktemp("bench")
    (root / "broken").mkdir()
    (root / "broken" / "flownet.pkl").write_bytes(b"not a checkpoint")
    prof = write(
        root / "two_good_one_bad.csv",
        f"""
        {TINY},STREAMS,SAVEIMAGES,MODEL,LOAD_PATH
        cpu,fp32,64,64,3,1,1,1,null,
        cpu,fp32,64,64,3,1,1,1,4.0,{root}/broken/flownet.pkl
        cpu,fp32,64,64,3,1,2,1,null,
        """,
    )
    out = root / "out"
    proc = run_bench("--profile", prof, "--output-dir", out, env=clean_env(INVENTORY="no"))
    return proc, out


def read_summary(out: Path) -> list[dict]:
    with open(out / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_benchmark_runs_every_row_and_records_the_failure(cpu_bench):
    proc, out = cpu_bench
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr
    assert "benchmark.sh: row 2: failed" in proc.stdout
    assert "benchmark.sh: row 3: passed" in proc.stdout  # the row after the failure still ran
    assert "img/s; invalid: TOO_FEW_SAMPLES" in proc.stdout  # 3 pairs: the console says so too
    for n in (1, 2, 3):
        row = json.loads((out / f"test_{n}" / "row.json").read_text())
        assert row["row"] == n and row["command"] == [sys.executable, "-m", "rifebench"]
        assert row["resolved"]["output_dir"] == str(out / f"test_{n}")
    assert json.loads((out / "test_1" / "results.json").read_text())["status"] == "passed"
    assert json.loads((out / "test_3" / "results.json").read_text())["config"]["streams"] == 2
    assert "LOAD_PATH" in (out / "test_2" / "console.log").read_text()
    assert not (out / "test_2" / "results.yaml").exists()


@pytest.mark.slow
def test_summary_csv_one_line_per_row(cpu_bench):
    _, out = cpu_bench
    rows = read_summary(out)
    assert [(r["row"], r["status"], r["exit_code"]) for r in rows] == [
        ("1", "passed", "0"),
        ("2", "failed", "2"),
        ("3", "passed", "0"),
    ]
    assert rows[0]["STREAMS"] == "1" and rows[2]["STREAMS"] == "2"
    for r in (rows[0], rows[2]):
        assert float(r["throughput_img_s"]) > 0 and float(r["latency_p50_ms"]) > 0
        assert r["latency_p99_ms"] == ""  # 3 samples: p99 does not exist below 100
        assert float(r["accuracy_pct"]) == 0.0 and float(r["peak_mem_mib"]) > 0
    # A failed row carries its reason and no figures, so it cannot pass for a measured one.
    assert rows[1]["throughput_img_s"] == "" and rows[1]["latency_p50_ms"] == ""
    assert "LOAD_PATH" in rows[1]["reason"] and "not a plain tensor state dict" in rows[1]["reason"]
    # Row 1 is the reference: speed-up 1, and row 3's fingerprint is compared with it.
    speedups = [r["speedup"].partition(" ") for r in rows]
    assert float(speedups[0][0]) == 1.0 and float(speedups[2][0]) > 0
    # Three pairs per stream are too few to trust: the rows say so, and so do their speed-ups.
    assert rows[0]["valid"] == "false" and "TOO_FEW_SAMPLES" in rows[0]["validity_reasons"].split(";")
    assert "TOO_FEW_SAMPLES" in rows[0]["warnings"].split(";") and speedups[2][2] == "(invalid)"
    assert rows[2]["psnr_db"] == "identical" or float(rows[2]["psnr_db"]) > 40
    assert float(rows[2]["ssim"]) > 0.99 and rows[2]["quality_basis"] == "row 1 output"
    assert rows[0]["valid"] in ("true", "false") and rows[1]["valid"] == ""  # a failed row has no verdict
    assert float(rows[2]["max_abs_err"]) < 0.01
    # CPU rows: the GPU columns are there and empty; benchmark.sh samples nothing of its own.
    assert all(r[k] == "" for r in rows for k in ("gpu_util_pct", "gpu_power_w", "gpu_mem_used_mib"))
    assert not list(out.glob("test_*/telemetry*"))


def _gpu(index, util, power, mem_mib):
    def st(mean, mx):
        return {"min": mean, "mean": mean, "max": mx, "count": 3}

    return {
        "index": index,
        "pci_bus_id": f"0000:{index + 0x41:02x}:00.0",
        "util_pct": st(util, util),
        "mem_used_bytes": st(1.0, mem_mib * 2**20),
        "power_w": power and st(power, power),
        "sm_clock_mhz": None,
        "mem_clock_mhz": None,
        "throttle_reasons": {},
    }


def test_gpu_columns_come_from_the_rows_timed_window(tmp_path):
    """The GPU figures of a row are its run's timed-window telemetry in results.json."""
    from rifebench.report import summary
    from rifebench.report.table import summary_csv

    def row(n, gpus):
        d = tmp_path / f"test_{n}"
        d.mkdir()
        (d / "results.json").write_text(
            json.dumps(
                {
                    "status": "passed",
                    "exit_code": 0,
                    "schema_version": SCHEMA_VERSION,
                    "mode": "dummy",
                    "config": {"platform": "cuda", "streams": len(gpus)},
                    "metrics": {
                        "throughput_img_s": 10.0,
                        "latency_ms": {"mean": 1.0, "p50": 1.0, "p99": 2.0},
                        "accuracy_pct": 0.0,
                        "duration_s": 5.0,
                    },
                    "streams": [],
                    "failures": [],
                    "telemetry": {"gpu_source": "nvml", "gpus": gpus},
                }
            )
        )
        return summary.row_record(n, {"STREAMS": str(len(gpus))}, d, 0, 9.0)

    recs = [
        row(1, [_gpu(0, 80.0, 300.0, 4096)]),
        row(2, [_gpu(0, 90.0, 310.0, 5000), _gpu(1, 70.0, 290.0, 6000)]),
        row(3, [_gpu(0, 90.0, 310.0, 5000), _gpu(1, 70.0, None, 6000)]),
    ]  # one GPU without power
    assert (recs[0].gpu_util_pct, recs[0].gpu_power_w, recs[0].gpu_mem_used_mib) == (80.0, 300.0, 4096.0)
    assert (recs[1].gpu_util_pct, recs[1].gpu_power_w, recs[1].gpu_mem_used_mib) == (80.0, 600.0, 6000.0)
    assert recs[2].gpu_power_w is None and recs[1].telemetry_tool == "nvml"
    with_csv = list(csv.DictReader(summary_csv(["STREAMS"], recs).splitlines()))
    assert [(r["gpu_util_pct"], r["gpu_power_w"], r["gpu_mem_used_mib"]) for r in with_csv] == [
        ("80", "300", "4096"),
        ("80", "600", "6000"),
        ("80", "", "6000"),
    ]


# --- summaries and plots from synthetic rows (no run: results.json written by hand) ---------

TITLE_PARTS = ("model 4.6", "448x256", "cuda", "NVIDIA H200")


def fake_row(
    bench_dir: Path,
    n: int,
    streams: int = 1,
    tp: float = 10.0,
    reasons=(),
    ci=None,
    quality=None,
    fingerprint=None,
    cells=None,
    repeat=1,
) -> dict:
    """A measured row as benchmark.sh records it, from a results.json of the current schema."""
    from rifebench.report import summary
    from rifebench.warning_codes import warning

    d = bench_dir / f"test_{n}"
    (d / "images").mkdir(parents=True)
    if fingerprint is not None:
        import numpy as np

        np.save(d / "images" / "dummy_0.npy", fingerprint)
    warns = [warning("CPU_CONTENTION", pct=76.0, streams=[0], limit=25.0)] if "CPU_CONTENTION" in reasons else []
    (d / "results.json").write_text(
        json.dumps(
            {
                "status": "failed" if quality and quality["verdict"] == "fail" else "passed",
                "exit_code": 1 if quality and quality["verdict"] == "fail" else 0,
                "schema_version": SCHEMA_VERSION,
                "mode": "dataset" if quality else "dummy",
                "model": {"name": "4.6"},
                "repeat": repeat,
                "config": {
                    "platform": "cuda",
                    "streams": streams,
                    "precision": "fp16",
                    "model": "4.6",
                    "data_height": 256,
                    "data_width": 448,
                    "dataset_dir": None,
                },
                "system": {"gpus": [{"index": 0, "name": "NVIDIA H200"}]},
                "metrics": {
                    "throughput_img_s": tp,
                    "latency_ms": {"mean": 1.1, "p50": 1.1, "p99": 1.4},
                    "accuracy_pct": 0.0,
                    "duration_s": 5.0,
                    "ci95": {"throughput_img_s": ci, "n": repeat},
                },
                "streams": [{"id": 0, "device": {"name": "NVIDIA H200"}, "latency_samples_ms": [1.0, 1.1, 1.2, 1.4]}],
                "validity": {
                    "valid": not reasons,
                    "reasons": list(reasons),
                    "checks": [
                        {"code": c, "triggered": True, "value": 76.0, "threshold": 20.0, "detail": "busy"}
                        for c in reasons
                    ],
                },
                "warnings": warns,
                "quality": quality,
                "failures": [],
            }
        )
    )
    return summary.row_record(n, cells or {"STREAMS": str(streams)}, d, 0, 9.0)


def summarise(tmp_path, records, header=("STREAMS",)):
    from rifebench.report import summary
    from rifebench.report.summary_md import markdown
    from rifebench.report.table import summary_csv

    summary.add_reference(records, tmp_path)
    meta = {"profile": "p.csv", "mode": "on bare metal", "started": "t0"}
    md = markdown(meta, {}, list(header), records, [])
    return list(csv.DictReader(summary_csv(list(header), records).splitlines())), md


def test_invalid_row_is_marked_and_its_speedup_too(tmp_path):
    """The 'speed-up 35.99' defect: row 1 ran while another process used the cores."""
    recs = [
        fake_row(tmp_path, 1, streams=1, tp=1.0, reasons=("CPU_CONTENTION",)),
        fake_row(tmp_path, 2, streams=2, tp=35.99),
    ]
    rows, md = summarise(tmp_path, recs)
    assert (rows[0]["valid"], rows[0]["validity_reasons"], rows[0]["warnings"]) == (
        "false",
        "CPU_CONTENTION",
        "CPU_CONTENTION",
    )
    assert (rows[1]["valid"], rows[1]["validity_reasons"], rows[1]["warnings"]) == ("true", "", "")
    assert rows[1]["speedup"] == "35.99 (invalid)" and rows[0]["speedup"] == "1 (invalid)"
    assert "**35.99 (invalid)**" in md and "1 measured row(s) invalid" in md
    assert "- row 1: **invalid** (CPU_CONTENTION)" in md
    assert "other processes used up to 76% of the CPUs" in md and "Remedy: find the other processes" in md
    # Both rows valid: a bare speed-up.
    ok = [fake_row(tmp_path / "b", 1, tp=2.0), fake_row(tmp_path / "b", 2, streams=2, tp=3.0)]
    rows, md = summarise(tmp_path / "b", ok)
    assert rows[1]["speedup"] == "1.5" and "invalid" not in md.split("## How to read this")[0]


def test_quality_rows_and_repetitions_fill_their_columns(tmp_path):
    q = {"psnr_mean": 35.25, "ssim_mean": 0.9712, "pass_pct": 100.0, "verdict": "pass", "frames": []}
    recs = [
        fake_row(tmp_path, 1, tp=10.0, ci=[9.5, 10.75], repeat=3, cells={"REPEAT": "3"}),
        fake_row(tmp_path, 2, tp=8.0, quality=q, cells={"REPEAT": "1"}),
    ]
    rows, md = summarise(tmp_path, recs, header=("REPEAT",))
    assert (rows[0]["throughput_ci_low"], rows[0]["throughput_ci_high"]) == ("9.5", "10.75")
    assert (rows[1]["throughput_ci_low"], rows[1]["throughput_ci_high"]) == ("", "")
    assert (rows[1]["psnr_db"], rows[1]["ssim"], rows[1]["quality_basis"]) == ("35.25", "0.9712", "ground truth")
    assert rows[0]["psnr_db"] == "" and rows[0]["quality_basis"] == ""  # no fingerprint, no quality figure
    for column in ("CI95 low img/s", "CI95 high img/s", "PSNR dB", "SSIM", "valid"):
        assert f"| {column} |" in md, column
    assert "| 35.25 | 0.9712 | ground truth |" in md


def test_dummy_fingerprints_against_row_1(tmp_path):
    import numpy as np

    ref = np.random.default_rng(0).random((16, 24, 3), dtype=np.float32)
    noisy = np.clip(
        ref + np.float32(0.01) * np.random.default_rng(1).standard_normal(ref.shape, dtype=np.float32), 0, 1
    )
    recs = [fake_row(tmp_path, n, fingerprint=f) for n, f in ((1, ref), (2, ref.copy()), (3, noisy))]
    recs.append(fake_row(tmp_path, 4))  # saved no fingerprint
    rows, md = summarise(tmp_path, recs)
    assert [r["psnr_db"] for r in rows[:2]] == ["identical", "identical"]
    assert 30 < float(rows[2]["psnr_db"]) < 50 and 0.5 < float(rows[2]["ssim"]) < 1
    assert [r["quality_basis"] for r in rows] == ["row 1 output"] * 3 + [""]
    assert "identical" in md and "inf" not in md


@pytest.mark.slow  # over 2 s on 2 cores: kept out of the fast tier
def test_plots_are_chosen_by_the_profile_and_titled(tmp_path):
    import numpy as np

    from rifebench.report import plots, summary

    fp = np.zeros((8, 8, 3), dtype=np.float32)
    same = tmp_path / "same"  # every row 1 stream: bars, and fingerprints give a quality figure
    recs = [
        fake_row(same, 1, fingerprint=fp, cells={"PRECISION": "fp16"}),
        fake_row(same, 2, tp=14.0, reasons=("CPU_CONTENTION",), fingerprint=fp + 0.01, cells={"PRECISION": "fp16"}),
    ]
    summary.add_reference(recs, same)
    assert plots.write(same, recs) == ["throughput_by_row.png", "speed_vs_quality.png", "latency_distribution.png"]
    for name in plots.write(same, recs):
        assert (same / name).read_bytes().startswith(PNG_MAGIC), name
    for draw in (
        lambda p: plots.bars_plot(recs, p),
        lambda p: plots.speed_quality_plot(recs, p),
        lambda p: plots.latency_plot(recs, same, p),
    ):
        text = draw(tmp_path / "x.png")
        assert all(part in text for part in TITLE_PARTS), text
    varied = tmp_path / "varied"  # STREAMS varies: a line over streams; no quality figure: no speed/quality
    recs = [fake_row(varied, 1, streams=1), fake_row(varied, 2, streams=2, tp=18.0, ci=[17.0, 19.0])]
    assert plots.write(varied, recs) == ["throughput_vs_streams.png", "latency_distribution.png"]
    text = plots.throughput_plot(recs, tmp_path / "y.png")
    assert text.startswith("Throughput against streams") and all(part in text for part in TITLE_PARTS)
    assert set(plots.FILES) >= {
        "throughput_vs_streams.png",
        "throughput_by_row.png",
        "speed_vs_quality.png",
        "latency_distribution.png",
    }
    docs = (REPO / "README.md").read_text() + (REPO / "profiles" / "README.md").read_text()
    assert all(name in docs for name in plots.FILES)


def test_pareto_front_and_the_device_name():
    from rifebench.report.plot_quality import pareto_front
    from rifebench.report.schema import RunResult
    from rifebench.report.summary import device_name

    rows = [{"row": n} for n in range(4)]
    points = [(30.0, 10.0, rows[0]), (35.0, 5.0, rows[1]), (28.0, 8.0, rows[2]), (35.0, 4.0, rows[3])]
    assert pareto_front(points) == [rows[1], rows[0]]  # row 2 is slower and worse than row 0; row 3 than row 1
    base = {"status": "passed", "exit_code": 0, "schema_version": SCHEMA_VERSION}
    gpu_doc = {"config": {"platform": "cuda"}, "streams": [{"id": 0}], "system": {"gpus": [{"name": "NVIDIA H200"}]}}
    assert device_name(RunResult.from_dict(base | gpu_doc)) == "NVIDIA H200"
    cpu_doc = {"config": {"platform": "cpu"}, "streams": [], "system": {"cpu_model": "AMD EPYC", "gpus": []}}
    assert device_name(RunResult.from_dict(base | cpu_doc)) == "AMD EPYC"


@pytest.mark.slow
def test_summary_md_plots_and_sysinfo(cpu_bench):
    _, out = cpu_bench
    md = (out / "summary.md").read_text()
    assert "**Result: 2 of 3 rows passed**, 1 failed" in md
    assert "- row 2 (failed): exit status 2: run_model.sh: error: --pretrained-weights/LOAD_PATH:" in md
    assert "| [1](test_1/) | 1 | null |  | passed |" in md  # varying columns only: STREAMS, MODEL, LOAD_PATH
    assert "- Same in every row: `PLATFORM=cpu`, `PRECISION=fp32`" in md
    assert not (out / "throughput_by_row.png").exists()  # STREAMS varies: a line, not bars
    for name in ("throughput_vs_streams.png", "speed_vs_quality.png", "latency_distribution.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
        assert f"]({name})" in md
    system = json.loads((out / "sysinfo.json").read_text())
    assert system["cpu_model"] and system["numa_nodes"] and system["packages"]["torch"]
    assert f"- Machine: {system['cpu_model']} (" in md
    # The same block as every run's results.json (the inventory only runs once, here).
    run_system = json.loads((out / "test_1" / "results.json").read_text())["system"]
    assert set(run_system) == set(system) - {"inventory"}
    meta = json.loads((out / "benchmark.json").read_text())
    assert meta["mode"] == "on bare metal" and meta["finished"] and meta["rows"] == 3
    assert (out / "profile.csv").read_text().startswith(TINY)
    # The manifest lists every file the benchmark wrote there: all that OVERWRITE=1 may remove later.
    listed = json.loads((out / ".rifebench-manifest.json").read_text())["files"]
    assert set(listed) == {p.name for p in out.iterdir()} - {".rifebench-manifest.json"}
    assert {"test_1", "test_3", "summary.csv", "profile.csv", "throughput_vs_streams.png"} <= set(listed)


# --- output folder safety -------------------------------------------------------------


@pytest.mark.slow
def test_existing_output_folder_is_never_overwritten_silently(tmp_path):
    prof = write(tmp_path / "p.csv", f"{TINY}\ncpu,fp32,64,64,1,0\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    proc = run_bench("--profile", prof, "--output-dir", out)
    assert proc.returncode == 2
    assert "--output-dir/OUTPUT_DIR:" in proc.stderr and "is not empty" in proc.stderr
    assert "OVERWRITE=1" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_force_removes_only_the_previous_benchmark_files(tmp_path, capsys):
    from rifebench.fsutil import MANIFEST_NAME, write_manifest

    out = tmp_path / "out"
    (out / "test_1" / "images").mkdir(parents=True)
    for name in (
        "summary.csv",
        "summary.md",
        "sysinfo.json",
        "throughput_vs_streams.png",
        "notes.txt",
        "test_9",
        "summary.md.bak",
    ):
        (out / name).write_text("old")
    write_manifest(
        out,
        ["test_1", "summary.csv", "summary.md", "sysinfo.json", "throughput_vs_streams.png", "../escape", "gone.txt"],
    )
    (tmp_path / "escape").write_text("outside")
    assert bench.prepare_output(str(out), force=True) == out
    # a test_* folder or summary-like file it did not write stays: only the manifest's entries go
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "summary.md.bak", "test_9"]
    assert (tmp_path / "escape").read_text() == "outside"
    assert "removed 5 file(s)" in capsys.readouterr().out
    assert not (out / MANIFEST_NAME).exists()
    with pytest.raises(UsageError, match=f"no {MANIFEST_NAME}.*OVERWRITE=1"):  # nothing known to be ours
        bench.prepare_output(str(out), force=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "summary.md.bak", "test_9"]
    with pytest.raises(UsageError, match="is a file"):
        bench.prepare_output(str(out / "notes.txt"), force=True)
    with pytest.raises(UsageError, match="OUTPUT_DIR: '' is empty"):
        bench.prepare_output("", force=False)


@pytest.mark.slow
def test_interrupt_records_the_row_and_skips_the_rest(tmp_path):
    prof = write(
        tmp_path / "p.csv",
        f"""
        {TINY},MIN_TEST_DURATION,MODEL
        cpu,fp32,64,64,1,0,60,null
        cpu,fp32,64,64,1,0,60,null
        """,
    )
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [str(BENCH), "--profile", str(prof), "--output-dir", str(out)],
        cwd=REPO,
        env=clean_env(INVENTORY="no"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "passed the start barrier" in line:
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(seen) + rest
    rows = read_summary(out)
    assert [(r["row"], r["status"]) for r in rows] == [("1", "interrupted"), ("2", "not run")]
    assert rows[0]["throughput_img_s"] == ""
    assert not (out / "test_2").exists()
    assert "0 of 2 rows passed" in (out / "summary.md").read_text()
