"""python -m rifebench compare: a difference is claimed only where the folders
show it to be beyond their own noise, quality and outputs are compared too, and
runs of different workloads are refused. Result folders are generated with
known figures, so every verdict below is a known truth; one real pair of
quality runs checks the whole path."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rifebench.compare import cli as compare
from rifebench.compare.stats import Figure, figures, judge
from rifebench.measure.metrics import latency_stats
from rifebench.report.schema import SCHEMA_VERSION, RunResult

REPO = Path(__file__).resolve().parents[2]
DUMMY = {
    "dummy": True,
    "dataset_dir": None,
    "model": "4.0",
    "data_height": 256,
    "data_width": 448,
    "interpolation": 1,
    "batch_size": 1,
    "precision": "fp32",
    "platform": "cpu",
    "streams": 1,
    "seed": 0,
    "min_test_duration": 0.0,
    "min_psnr_db": 25.0,
    "output_dir": "x",
}
DATASET = DUMMY | {"dummy": False, "dataset_dir": "/data/vimeo"}


def _samples(mean_ms: float, cv: float, n: int, rng: random.Random) -> list[float]:
    return [max(0.01, rng.gauss(mean_ms, cv * mean_ms)) for _ in range(n)]


def make_run(
    folder: Path,
    mean_ms: float = 40.0,
    cv: float = 0.02,
    n: int = 80,
    reps=None,
    seed: int = 0,
    status: str = "passed",
    config: dict | None = None,
    quality: dict | None = None,
    fingerprint=None,
) -> Path:
    """A results.json whose figures follow from its raw samples, as the runner's do;
    reps: one mean latency per repetition (default: one repetition of mean_ms)."""
    rng = random.Random(seed)
    per_rep = [_samples(m, cv, n, rng) for m in (reps or [mean_ms])]
    tps = [1000 * len(s) / sum(s) for s in per_rep]
    cfg = DUMMY | (config or {})
    doc = {
        "status": status,
        "exit_code": 0 if status == "passed" else 1,
        "schema_version": SCHEMA_VERSION,
        "mode": "dummy" if cfg["dummy"] else "dataset",
        "config": cfg,
        "metrics": {"throughput_img_s": statistics.median(tps), "latency_ms": latency_stats(per_rep[-1]).to_dict()},
        "validity": {"valid": True, "reasons": []},
        "repetitions": [
            {
                "index": i,
                "status": status,
                "throughput_img_s": tp,
                "latency_ms": latency_stats(s).to_dict(),
                "frames": n,
            }
            for i, (tp, s) in enumerate(zip(tps, per_rep, strict=False))
        ],
        "streams": [{"id": 0, "latency_samples_ms": per_rep[-1]}],
        "quality": quality,
        "failures": [] if status == "passed" else [{"stream": 0, "reason": "crashed"}],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(doc))
    if fingerprint is not None:
        (folder / "images").mkdir(exist_ok=True)
        np.save(folder / "images" / "dummy_0.npy", fingerprint)
    return folder


def quality(psnr: float, verdict: str = "pass", ssim: float = 0.95, pass_pct: float = 100.0, n: int = 3) -> dict:
    return {
        "psnr_mean": psnr,
        "ssim_mean": ssim,
        "pass_pct": pass_pct,
        "verdict": verdict,
        "complete": True,
        "planned": n,
        "frames": [{"entry": f"00001/{i:04d}", "psnr": psnr, "ssim": ssim, "passed": True} for i in range(1, n + 1)],
    }


def make_bench(folder: Path, rows: list[tuple[dict, dict]]) -> Path:
    """rows: (cells, make_run keyword arguments), numbered from 1."""
    for n, (cells, kw) in enumerate(rows, 1):
        make_run(folder / f"test_{n}", **kw)
        (folder / f"test_{n}" / "row.json").write_text(json.dumps({"row": n, "cells": cells}))
    return folder


def line(out: str, start: str) -> str:
    return next(x for x in out.splitlines() if x.startswith(start))


# --- noise -------------------------------------------------------------------------------


def test_the_latency_interval_holds_the_known_median():
    # Independent samples, median 50 ms, sd 5 ms: the median's standard error is about
    # 1.25 * 5 / sqrt(n), so a 95% interval about 4 of those wide.
    rng = random.Random(1)
    doc = {
        "status": "passed",
        "exit_code": 0,
        "schema_version": SCHEMA_VERSION,
        "metrics": {"latency_ms": {"p50": 50.0}},
        "streams": [{"id": 0, "latency_samples_ms": _samples(50, 0.1, 1000, rng)}],
    }
    ci = figures(RunResult.from_dict(doc))["latency_p50_ms"].ci
    width = 4 * 1.25 * 5 / 1000**0.5
    assert ci[0] < 50 < ci[1] and width / 2 < ci[1] - ci[0] < width * 2


def test_the_verdict_rule():
    a, near, far = Figure(10.0, (9.5, 10.5), 3), Figure(10.3, (10.1, 10.6), 3), Figure(12.0, (11.8, 12.2), 3)
    assert judge(a, near, +1, 0.02)[1:] == ("same within noise", False)
    assert judge(a, far, +1, 0.02) == ("+20.0%", "BETTER (beyond noise)", True)
    assert judge(a, far, -1, 0.02)[1] == "WORSE (beyond noise)"
    assert judge(a, far, +1, 0.25)[1:] == ("same within --min-diff (intervals apart)", False)
    assert judge(Figure(10.0, None, 1), Figure(20.0, None, 3), +1, 0.02)[1:] == ("noise unknown (n=1/3)", None)


def test_identical_folders_show_no_difference(compare_cli, tmp_path):
    a = make_run(tmp_path / "a", reps=[40.0, 40.4, 39.6])
    rc, out, _ = compare_cli(a, a)
    assert rc == 0 and "verdict: no difference beyond the noise" in out
    assert "same within noise" in line(out, "throughput img/s")
    rc, out, _ = compare_cli(make_run(tmp_path / "one"), tmp_path / "one")
    assert rc == 0 and "no difference" in out


def test_clearly_different_repetitions_are_beyond_noise(compare_cli, tmp_path):
    a = make_run(tmp_path / "a", reps=[40.0, 40.4, 39.6], seed=1)
    b = make_run(tmp_path / "b", reps=[52.0, 52.5, 51.5], seed=2, config={"precision": "bf16"})
    rc, out, _ = compare_cli(a, b)
    assert rc == 1
    tp = line(out, "throughput img/s")
    assert "WORSE (beyond noise)" in tp and tp.count("[") == 2  # both intervals shown
    assert "configuration differs: precision 'fp32' -> 'bf16'" in out
    rc, out, _ = compare_cli(b, a)
    assert rc == 1 and "BETTER (beyond noise)" in line(out, "throughput img/s")


def test_one_repetition_has_no_throughput_noise(compare_cli, tmp_path):
    # 30 % slower, but one window gives one throughput figure: no interval, no claim.
    a = make_run(tmp_path / "a", n=3, seed=1)
    b = make_run(tmp_path / "b", mean_ms=52.0, n=3, seed=2)
    rc, out, _ = compare_cli(a, b)
    assert rc == 0, out
    assert "noise unknown (n=1)" in line(out, "throughput img/s")
    assert "noise unknown (n=3)" in line(out, "latency p50 ms")  # 3 samples cannot show their spread
    assert "beyond noise" not in out.replace("no difference beyond the noise", "")
    assert "noise unknown for 2 figure(s)" in line(out, "verdict:")
    # With enough samples the latency interval exists, and the slowdown is beyond it.
    a = make_run(tmp_path / "c", n=120, seed=1)
    b = make_run(tmp_path / "d", mean_ms=52.0, n=120, seed=2)
    rc, out, _ = compare_cli(a, b)
    assert rc == 1 and "WORSE (beyond noise)" in line(out, "latency p50 ms")
    assert "noise unknown (n=1)" in line(out, "throughput img/s")


def test_min_diff_is_a_floor(compare_cli, tmp_path):
    a = make_run(tmp_path / "a", reps=[40.0, 40.02, 39.98], cv=0.0)
    b = make_run(tmp_path / "b", reps=[40.4, 40.42, 40.38], cv=0.0)  # 1 % slower, intervals apart
    rc, out, _ = compare_cli(a, b)
    assert rc == 0 and "same within --min-diff" in line(out, "throughput img/s")
    assert compare_cli(a, b, "--min-diff", "0.5")[0] == 1


# --- workloads ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config_b, named",
    [
        (DATASET, "mode 'dummy' -> 'dataset'"),
        ({"data_height": 720, "data_width": 1280}, "data size '448x256' -> '1280x720'"),
        ({"model": "4.6"}, "model '4.0' -> '4.6'"),
        ({"batch_size": 4}, "batch_size 1 -> 4"),
    ],
)
def test_different_workloads_are_refused_unless_forced(compare_cli, tmp_path, config_b, named):
    a = make_run(tmp_path / "a")
    b = make_run(tmp_path / "b", config=config_b, quality=quality(30.0) if not config_b.get("dummy", True) else None)
    rc, out, err = compare_cli(a, b)
    assert rc == 2 and out == ""
    assert err.startswith("compare: error: different workloads: ") and named in err and "--force" in err
    assert len(err.strip().splitlines()) == 1
    rc, out, _ = compare_cli(a, b, "--force")
    assert rc in (0, 1) and f"workload differs (compared anyway: --force): {named}" in out


def test_options_the_mode_does_not_read_are_ignored(compare_cli, tmp_path):
    # Dataset runs: the dummy frame size, seed and duration do not apply.
    a = make_run(tmp_path / "a", config=DATASET, quality=quality(30.0))
    b = make_run(
        tmp_path / "b",
        config=DATASET | {"data_height": 720, "seed": 7, "min_test_duration": 5.0, "platform": "cuda"},
        quality=quality(30.0),
    )
    rc, out, _ = compare_cli(a, b)
    assert rc == 0, out
    assert line(out, "configuration differs") == "configuration differs: platform 'cpu' -> 'cuda'"
    # ...but a different list of triplets is a different workload.
    c = make_run(tmp_path / "c", config=DATASET, quality=quality(30.0, n=4))
    rc, _, err = compare_cli(a, c)
    assert rc == 2 and "triplets 3 -> 4" in err


# --- quality and outputs -----------------------------------------------------------------


def test_quality_runs_compare_psnr_ssim_and_pass_rate(compare_cli, tmp_path):
    # fp32 against bf16: the rows were missing altogether once.
    a = make_run(tmp_path / "a", config=DATASET, quality=quality(30.00, ssim=0.9512, pass_pct=100.0))
    b = make_run(
        tmp_path / "b", config=DATASET | {"precision": "bf16"}, quality=quality(29.80, ssim=0.9490, pass_pct=66.7)
    )
    rc, out, _ = compare_cli(a, b)
    assert rc == 1
    assert "-0.20 dB" in line(out, "mean PSNR dB") and "WORSE (more than --psnr-drop 0.05 dB)" in out
    assert "-0.0022" in line(out, "mean SSIM") and "-33.3 pts" in line(out, "pass rate %")
    assert "quality verdict: both pass" in out
    assert compare_cli(a, b, "--psnr-drop", "0.3")[0] == 0
    close = make_run(tmp_path / "c", config=DATASET, quality=quality(29.97))
    rc, out, _ = compare_cli(a, close)
    assert rc == 0 and "same within --psnr-drop 0.05 dB" in line(out, "mean PSNR dB")


def test_a_verdict_change_is_a_difference(compare_cli, tmp_path):
    a = make_run(tmp_path / "a", config=DATASET, quality=quality(30.0))
    b = make_run(
        tmp_path / "b", config=DATASET | {"min_pass_pct": 100.0}, status="failed", quality=quality(30.0, verdict="fail")
    )
    rc, out, _ = compare_cli(a, b)
    assert rc == 1 and "quality verdict: A pass, B fail  <-- DIFFERENT" in out


def test_output_fingerprints(compare_cli, tmp_path):
    frame = np.random.default_rng(0).random((32, 48, 3), dtype=np.float32)
    a = make_run(tmp_path / "a", fingerprint=frame)
    rc, out, _ = compare_cli(a, make_run(tmp_path / "b", fingerprint=frame.copy(), config={"precision": "bf16"}))
    assert rc == 0 and "output fingerprint: identical" in out
    rc, out, _ = compare_cli(a, make_run(tmp_path / "c", fingerprint=frame + 1e-4))
    assert rc == 0 and "PSNR 80.00 dB" in out and "within one 8-bit level" in out
    shifted = frame.copy()
    shifted[0, 0, 0] += 0.1
    rc, out, _ = compare_cli(a, make_run(tmp_path / "d", fingerprint=shifted))
    assert rc == 1 and "more than one 8-bit level" in out
    rc, out, _ = compare_cli(a, make_run(tmp_path / "e"))
    assert rc == 0 and "only A has images/dummy_0.npy" in out


# --- benchmarks --------------------------------------------------------------------------


def test_benchmarks_are_matched_by_row_cells(compare_cli, tmp_path):
    fp32, bf16 = {"PRECISION": "fp32"}, {"PRECISION": "bf16"}
    a = make_bench(tmp_path / "a", [(fp32, {"mean_ms": 40.0, "seed": 1}), (bf16, {"mean_ms": 30.0, "seed": 2})])
    # B ran the rows in the other order and its bf16 row crashed.
    b = make_bench(
        tmp_path / "b", [(bf16, {"mean_ms": 30.0, "seed": 3, "status": "failed"}), (fp32, {"mean_ms": 40.0, "seed": 4})]
    )
    rc, out, _ = compare_cli(a, b)
    assert rc == 1
    assert "== A row 1 vs B row 2 (PRECISION=fp32) ==" in out
    assert "status: A passed, B failed  <-- DIFFERENT" in out
    assert "beyond noise" not in out.split("== A row 1 vs B row 2")[1].split("==")[1]
    extra = make_bench(tmp_path / "c", [(fp32, {"mean_ms": 40.0, "seed": 1})])
    rc, out, _ = compare_cli(extra, a)
    assert rc == 1 and "unmatched: B row 2 (PRECISION=bf16): A has no row with these cells  <-- DIFFERENT" in out


def test_repeated_rows_give_the_run_to_run_noise(tmp_path):
    cells = {"PRECISION": "fp32"}
    a = make_bench(tmp_path / "a", [(cells, {"mean_ms": m, "seed": i}) for i, m in enumerate((36.0, 40.0, 44.0))])
    kind, results = compare.load(a)
    assert kind == "benchmark"
    for r in results:
        lo, hi = r.figures["throughput_img_s"].ci
        assert hi / lo > 1.1 and r.figures["throughput_img_s"].n == 3


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["{empty}", "{empty}"], "holds neither results.json nor test_<n>/ folders"),
        (["{run}", "{run}", "--min-diff", "nan"], "--min-diff: 'nan' is not accepted (accepted: a finite number >= 0"),
        (["{run}", "{run}", "--min-diff", "inf"], "--min-diff: 'inf'"),
        (["{run}", "{run}", "--min-diff", "-1"], "--min-diff: '-1'"),
        (["{run}", "{run}", "--min-diff", "two"], "--min-diff: 'two'"),
        (["{run}", "{run}", "--psnr-drop", "-0.1"], "--psnr-drop: '-0.1'"),
        (["{run}", "{bare}"], "bare/results.json' has no metrics (status 'running'"),
        (["{run}", "{broken}"], "broken/results.json' is not a readable results.json"),
    ],
)
def test_bad_input_exits_2_with_one_line(compare_cli, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    run = make_run(tmp_path / "run")
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "results.json").write_text(json.dumps({"status": "running", "config": DUMMY}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{")
    rc, out, err = compare_cli(
        *[a.format(empty=tmp_path / "empty", run=run, bare=tmp_path / "bare", broken=tmp_path / "broken") for a in args]
    )
    assert rc == 2 and out == ""
    assert err.startswith("compare: error:") and message in err and len(err.strip().splitlines()) == 1


def test_a_results_json_of_an_unknown_schema_is_refused(compare_cli, tmp_path):
    """Another version's results.json is never compared: one line naming the file, exit 2,
    whether it is a run named on the command line or a row of a benchmark."""
    run = make_run(tmp_path / "run")
    newer = make_run(tmp_path / "newer")
    doc = json.loads((newer / "results.json").read_text())
    (newer / "results.json").write_text(json.dumps(doc | {"schema_version": "99"}))
    rc, out, err = compare_cli(run, newer)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("compare: error: ") and f"{newer / 'results.json'}" in err and "'99'" in err
    bench = make_bench(tmp_path / "bench", [({"PRECISION": "fp32"}, {}), ({"PRECISION": "bf16"}, {})])
    (bench / "test_2" / "results.json").write_text(json.dumps(doc | {"schema_version": "1"}))
    rc, out, err = compare_cli(bench, bench)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"{bench / 'test_2' / 'results.json'}" in err and "schema_version '1'" in err


def test_the_subcommand_and_its_exit_status(tmp_path):
    a = make_run(tmp_path / "a", reps=[40.0, 40.4, 39.6])
    proc = subprocess.run(
        [sys.executable, "-m", "rifebench", "compare", a, a], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert proc.returncode == 0 and "no difference beyond the noise" in proc.stdout, proc.stderr


# --- one real pair -----------------------------------------------------------------------


@pytest.mark.slow
def test_two_real_quality_runs(compare_cli, tmp_path, weights_40):
    from helpers import sibling_module

    datasets = sibling_module("data", "test_dataset")
    make_dataset, run = datasets.make_dataset, datasets.run

    make_dataset(tmp_path / "data", n=3)
    outs = []
    for scale in ("1", "0.25"):
        out = tmp_path / f"scale_{scale}"
        proc = run(
            ["--data", tmp_path / "data", "--num-inputs", 3, "--model", "4.0", "--scale", scale, "--output-dir", out],
            weights_40,
        )
        assert proc.returncode in (0, 1), proc.stderr[-2000:]
        outs.append(out)
    docs = [json.loads((o / "results.json").read_text()) for o in outs]
    drop = docs[1]["quality"]["psnr_mean"] - docs[0]["quality"]["psnr_mean"]
    rc, out, _ = compare_cli(*outs)
    assert f"{drop:+.2f} dB" in line(out, "mean PSNR dB")
    assert "configuration differs: scale 1.0 -> 0.25" in out and "different workloads" not in out
    assert rc == (1 if abs(drop) > 0.05 or docs[0]["quality"]["verdict"] != docs[1]["quality"]["verdict"] else 0)
