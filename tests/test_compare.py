"""python -m rifebench.report.compare: noise measured from the folders themselves, and
only differences beyond it flagged. Result folders are generated with known
latency samples, so every verdict below is a known truth."""
from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rifebench.report import compare
from rifebench.measure.metrics import latency_stats


def make_run(folder: Path, mean_ms: float, cv: float, n: int = 80, streams: int = 1, seed: int = 0,
             status: str = "passed", config: dict | None = None, fingerprint=None) -> Path:
    """A results.json whose figures follow from its raw samples, as the runner's do."""
    rng = random.Random(seed)
    samples = [[max(0.01, rng.gauss(mean_ms, cv * mean_ms)) for _ in range(n)] for _ in range(streams)]
    wall_s = max(sum(s) for s in samples) / 1000
    pooled = [x for s in samples for x in s]
    doc = {"status": status, "config": {"precision": "fp32", "streams": streams, **(config or {})},
           "metrics": {"throughput_img_s": len(pooled) / wall_s, "latency_ms": latency_stats(pooled)},
           "streams": [{"id": i, "latency_samples_ms": s} for i, s in enumerate(samples)],
           "failures": [] if status == "passed" else [{"stream": 0, "reason": "crashed"}]}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(doc))
    if fingerprint is not None:
        (folder / "images").mkdir(exist_ok=True)
        np.save(folder / "images" / "dummy_0.npy", fingerprint)
    return folder


def make_bench(folder: Path, rows: list[tuple[dict, dict]]) -> Path:
    """rows: (cells, make_run keyword arguments), numbered from 1."""
    for n, (cells, kw) in enumerate(rows, 1):
        make_run(folder / f"test_{n}", **kw)
        (folder / f"test_{n}" / "row.json").write_text(json.dumps({"row": n, "cells": cells}))
    return folder


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rifebench.report.compare", *map(str, args)], capture_output=True,
                          text=True, timeout=60)


def verdict_line(out: str, metric: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(metric))


def test_block_noise_matches_the_known_standard_error():
    # Independent samples with a 10 % spread: the mean's relative standard error is 0.1 / sqrt(n).
    rng = random.Random(1)
    n = 2000
    noise = compare.block_noise([[rng.gauss(50.0, 5.0) for _ in range(n)]])
    expected = 0.1 / math.sqrt(n)
    assert expected / 2 < noise["throughput_img_s"] < expected * 2
    assert expected / 2 < noise["latency_p50_ms"] < expected * 3
    assert noise["latency_p99_ms"] > noise["latency_p50_ms"]  # a tail percentile is noisier
    assert compare.block_noise([[1.0] * 8]) == {k: None for k, _, _ in compare.METRICS}  # too few to tell


def test_identical_runs_are_the_same(tmp_path):
    a = make_run(tmp_path / "a", 40.0, 0.05)
    proc = run_cli(a, a)
    assert proc.returncode == 0, proc.stdout
    assert "verdict: no difference beyond the noise" in proc.stdout
    assert "same within noise" in verdict_line(proc.stdout, "throughput img/s")


def test_a_large_slowdown_is_flagged_both_ways(tmp_path):
    a = make_run(tmp_path / "a", 40.0, 0.05, seed=1)
    b = make_run(tmp_path / "b", 52.0, 0.05, seed=2, config={"precision": "bf16"})
    proc = run_cli(a, b)
    assert proc.returncode == 1
    assert "WORSE (beyond noise)" in verdict_line(proc.stdout, "throughput img/s")
    assert "WORSE (beyond noise)" in verdict_line(proc.stdout, "latency p50 ms")
    assert "configuration differs: precision 'fp32' -> 'bf16'" in proc.stdout
    proc = run_cli(b, a)
    assert proc.returncode == 1 and "BETTER (beyond noise)" in verdict_line(proc.stdout, "throughput img/s")


def test_the_threshold_follows_the_measured_noise(tmp_path):
    # The same 8 % change: flagged when the runs are steady, not when they are this noisy.
    steady_a = make_run(tmp_path / "sa", 40.0, 0.01, n=64, seed=3)
    steady_b = make_run(tmp_path / "sb", 43.2, 0.01, n=64, seed=4)
    noisy_a = make_run(tmp_path / "na", 40.0, 0.6, n=24, seed=5)
    noisy_b = make_run(tmp_path / "nb", 43.2, 0.6, n=24, seed=6)
    a, b = compare.load(steady_a)[1][0], compare.load(steady_b)[1][0]
    lines, flagged = compare.compare_pair(a, b, 0.02, 3.0)
    assert flagged and "beyond noise" in "\n".join(lines)
    a, b = compare.load(noisy_a)[1][0], compare.load(noisy_b)[1][0]
    assert a.noise["throughput_img_s"] > 0.03
    lines, flagged = compare.compare_pair(a, b, 0.02, 3.0)
    assert not flagged, lines


def test_small_changes_stay_under_the_floor(tmp_path):
    a = make_run(tmp_path / "a", 40.0, 0.0, n=64)
    b = make_run(tmp_path / "b", 40.4, 0.0, n=64)  # 1 % slower, zero measured noise
    assert run_cli(a, b).returncode == 0
    assert run_cli(a, b, "--min-diff", "0.5").returncode == 1


def test_benchmarks_are_matched_by_row_cells(tmp_path):
    fp32, bf16 = {"PRECISION": "fp32"}, {"PRECISION": "bf16"}
    a = make_bench(tmp_path / "a", [(fp32, dict(mean_ms=40.0, cv=0.02, seed=1)),
                                    (bf16, dict(mean_ms=30.0, cv=0.02, seed=2))])
    # B ran the rows in the other order and its bf16 row crashed.
    b = make_bench(tmp_path / "b", [(bf16, dict(mean_ms=30.0, cv=0.02, seed=3, status="failed")),
                                    (fp32, dict(mean_ms=40.0, cv=0.02, seed=4))])
    proc = run_cli(a, b)
    assert proc.returncode == 1
    assert "== A row 1 vs B row 2 (PRECISION=fp32) ==" in proc.stdout
    assert "status: A passed, B failed  <-- DIFFERENT" in proc.stdout
    out_fp32 = proc.stdout.split("== A row 1 vs B row 2")[1].split("==")[1]
    assert "beyond noise" not in out_fp32
    extra = make_bench(tmp_path / "c", [(fp32, dict(mean_ms=40.0, cv=0.02, seed=1))])
    proc = run_cli(extra, a)
    assert proc.returncode == 1 and "unmatched: row 2 (PRECISION=bf16)" in proc.stdout


def test_repeated_rows_give_the_run_to_run_noise(tmp_path):
    cells = {"PRECISION": "fp32"}
    # Three repeats whose throughput spreads by about 10 %: a 12 % change is within that noise.
    a = make_bench(tmp_path / "a", [(cells, dict(mean_ms=m, cv=0.01, seed=i)) for i, m in enumerate((36., 40., 44.))])
    kind, results = compare.load(a)
    assert kind == "benchmark"
    assert all(r.noise["throughput_img_s"] > 0.08 for r in results)
    lone = compare.load(make_run(tmp_path / "one", 40.0, 0.01, seed=9))[1][0]
    assert lone.noise["throughput_img_s"] < 0.01


def test_output_fingerprints_are_compared(tmp_path):
    frame = np.random.default_rng(0).random((32, 48, 3), dtype=np.float32)
    same = make_run(tmp_path / "a", 40.0, 0.0, fingerprint=frame)
    same2 = make_run(tmp_path / "b", 40.0, 0.0, fingerprint=frame.copy())
    proc = run_cli(same, same2)
    assert "output fingerprint: identical" in proc.stdout and proc.returncode == 0
    shifted = frame.copy()
    shifted[0, 0, 0] += 0.1
    make_run(tmp_path / "c", 40.0, 0.0, fingerprint=shifted)
    proc = run_cli(same, tmp_path / "c")
    assert proc.returncode == 1 and "more than one 8-bit level" in proc.stdout
    tiny = frame + 1e-4
    make_run(tmp_path / "d", 40.0, 0.0, fingerprint=tiny)
    proc = run_cli(same, tmp_path / "d")
    assert proc.returncode == 0 and "PSNR 80.00 dB" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["{empty}", "{empty}"], "holds neither results.json nor test_<n>/ folders"),
    (["{run}", "{run}", "--sigmas", "-1"], "--min-diff and --sigmas must be >= 0"),
])
def test_bad_input_exits_2(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    run = make_run(tmp_path / "run", 40.0, 0.01)
    proc = run_cli(*[a.format(empty=tmp_path / "empty", run=run) for a in args])
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("compare: error:") and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_fingerprint_diff_known_truths(tmp_path):
    from rifebench.report.summary import fingerprint_diff

    frame = np.random.default_rng(1).random((40, 56, 3)).astype(np.float32) * 0.9
    np.save(tmp_path / "a.npy", frame)
    np.save(tmp_path / "b.npy", frame + np.float32(0.01))  # mse 1e-4: 40 dB
    np.save(tmp_path / "c.npy", frame[:32])
    same = fingerprint_diff(tmp_path / "a.npy", tmp_path / "a.npy")
    assert same == {"psnr_db": math.inf, "ssim": 1.0, "max_abs_err": 0.0}
    off = fingerprint_diff(tmp_path / "a.npy", tmp_path / "b.npy")
    assert off["psnr_db"] == pytest.approx(40.0, abs=1e-3) and off["max_abs_err"] == pytest.approx(0.01, rel=1e-3)
    assert 0.9 < off["ssim"] < 1.0
    assert "differ in shape" in fingerprint_diff(tmp_path / "a.npy", tmp_path / "c.npy")["note"]
