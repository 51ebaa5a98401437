"""benchmarks/gpu_check.sh and its helpers: the table builder on made-up
results (fast), random weights the harness accepts, the bare loop, and the
whole script in its CPU dry run, so that the GPU check cannot rot unseen."""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import REPO, clean_env


def benchmark_script(name: str):
    """A script of benchmarks/ as a module; the folder goes on the path as when the scripts run."""
    if str(REPO / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO / "benchmarks"))
    return importlib.import_module(name)


bare_loop = benchmark_script("bare_loop")
gpu_table = benchmark_script("gpu_table")
random_weights = benchmark_script("random_weights")

DRY_STEPS = {"1", "8", "11", "18", "19", "20"}


def gpu_doc(**over) -> dict:
    doc = {
        "status": "passed",
        "failures": [],
        "quality": None,
        "metrics": {"throughput_img_s": 512.25, "latency_ms": {"p50": 7.5}, "host_submit_ms": {"p50": 0.42}},
        "device_time": {
            "streams": [{"device_span_pct": 97.4}, {"device_span_pct": 96.1}],
            "achieved_tflops": 120.5,
            "share_of_peak_pct": 12.2,
        },
        "telemetry": {"gpus": [{"util_pct": {"mean": 99.0}}]},
        "warnings": [{"code": "HOST_BOUND"}, {"code": "HOST_BOUND"}, {"code": "KNOB_FALLBACK"}],
        "knobs": {
            "effective": {"channels_last": True, "compile": "reduce-overhead", "cuda_graphs": False},
            "fallbacks": [{"knob": "cuda_graphs", "wanted": True, "effective": False}],
        },
    }
    doc.update(over)
    return doc


def write_work(tmp_path: Path, steps: list[tuple], docs: dict) -> Path:
    for rundir, doc in docs.items():
        (tmp_path / rundir).mkdir(parents=True, exist_ok=True)
        name = "overhead.json" if "ratio" in doc else "results.json"
        (tmp_path / rundir / name).write_text(json.dumps(doc))
    (tmp_path / "steps.tsv").write_text("".join("\t".join(map(str, s)) + "\n" for s in steps))
    return tmp_path


def table_rows(text: str) -> dict[str, list[str]]:
    rows = [[c.strip() for c in ln.strip().strip("|").split(" | ")] for ln in text.splitlines() if ln.startswith("| ")]
    assert rows[0][0] == "step" and len(rows[0]) == len(gpu_table.COLUMNS)
    return {r[0]: r for r in rows[1:]}


def test_table_rows_say_what_each_step_measured_or_why_not(tmp_path):
    overhead = {
        "ratio": 0.975,
        "harness_median_pairs_s": 97.5,
        "bare_median_pairs_s": 100.0,
        "harness_pairs_s": [97.5] * 3,
        "bare_pairs_s": [100.0] * 3,
    }
    quality = gpu_doc(status="failed", quality={"verdict": "fail", "pass_pct": 90.0, "psnr_mean": 34.65})
    work = write_work(
        tmp_path,
        [
            (10, "runs/4", 0, 0, "same as 4", "--batch-size 1"),
            (4, "runs/4", 0, 40, "harness", "--optimize optimized"),
            (6, "runs/6", 124, 150, "harness", "--compile max-autotune-no-cudagraphs"),
            (7, "runs/7", 1, 3, "harness", "--streams 1"),
            (12, "runs/12", "skip", 0, "harness", "--batch-size 8"),
            (17, "runs/17", 1, 20, "quality", "--precision fp16"),
            (19, "runs/19", 0, 90, "overhead", "--rounds 3"),
        ],
        {
            "runs/4": gpu_doc(),
            "runs/17": quality,
            "runs/19": overhead,
            "runs/19/harness_round_3": gpu_doc(),
            "runs/19/harness_round_1": gpu_doc(metrics={}),
        },
    )
    (work / "runs/7").mkdir()
    (work / "runs/7/console.log").write_text("Traceback ...\nRuntimeError: CUDA out of memory | really\n")
    rows = table_rows(gpu_table.render(work, 34.640))
    assert list(rows) == ["4", "6", "7", "10", "12", "17", "19"]  # step order, not run order
    r4 = rows["4"]
    assert r4[2:10] == ["512.25", "7.50", "0.420", "97/96", "120.50", "12.2", "99", "HOST_BOUND, KNOB_FALLBACK"]
    assert "compile=reduce-overhead, CL" in r4[1] and "FELL BACK: cuda_graphs True->False" in r4[1]
    assert rows["10"][2] == "512.25" and "same as 4" in rows["10"][-1]
    assert rows["6"][-1].startswith("TIMEOUT after 150 s")
    assert rows["7"][-1] == "FAILED (exit 1): RuntimeError: CUDA out of memory \\| really"
    assert rows["12"][-1].startswith("SKIPPED")
    assert "verdict fail" in rows["17"][-1] and "PSNR 34.650 dB vs CPU 34.640 (+0.010)" in rows["17"][-1]
    assert rows["19"][2] == "97.50" and rows["19"][3] == "7.50"  # the last round's results, not the first's
    assert "ratio harness/bare 0.975" in rows["19"][-1]


def test_a_stream_failure_is_failed_not_a_verdict(tmp_path):
    doc = gpu_doc(status="failed", failures=[{"stream": 1, "reason": "exited with status 3"}])
    work = write_work(tmp_path, [(8, "runs/8", 1, 9, "harness", "--streams 2")], {"runs/8": doc})
    assert table_rows(gpu_table.render(work, 34.64))["8"][-1] == "FAILED: stream 1: exited with status 3"


@pytest.mark.parametrize("model", ["4.6", "paper"])
def test_random_weights_load_in_the_harness(tmp_path, model):
    from rifebench.models import zoo
    from rifebench.models.weights import load_model

    path = random_weights.write_random_weights(model, tmp_path / "w.pkl", seed=3)
    net = load_model(zoo.get(model), path)
    assert sum(p.numel() for p in net.parameters()) == zoo.get(model).inference_params


def test_random_weights_refuses_a_model_without_weights(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "random_weights.py"),
            "--model",
            "null",
            "--out",
            str(tmp_path / "w.pkl"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "--model 'null' takes no weights (accepted: 4.0, 4.1," in proc.stderr
    assert "4.25, 4.25.lite, 4.25.heavy, 4.26, 4.26.heavy, 3.6, paper)" in proc.stderr


def test_bare_loop_runs_any_model_and_checks_its_arguments(tmp_path, monkeypatch):
    from rifebench.models.interp import Interpolator

    calls: list[tuple[float, float]] = []  # (start, end) of every interpolation
    interpolate = Interpolator.interpolate

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        out = interpolate(self, *args, **kwargs)
        calls.append((start, time.perf_counter()))
        return out

    monkeypatch.setattr(Interpolator, "interpolate", timed)
    path = random_weights.write_random_weights("4.6", tmp_path / "w.pkl")
    before = time.perf_counter()
    rate = bare_loop.bare_loop("4.6", path, "cpu", "auto", 32, 48, pairs=2, warmup=1)
    whole_call_s = time.perf_counter() - before
    assert len(calls) == 1 + 2  # the warm-up, then the pairs timed
    timed_calls_s = sum(end - start for start, end in calls[1:])
    # pairs/s over a window that holds the 2 timed calls and lies inside the whole call
    assert math.isfinite(rate) and 2 / whole_call_s <= rate <= 2 / timed_calls_s
    with pytest.raises(ValueError, match="precision must be one of auto, fp16, bf16, fp32, got 'fp8'"):
        bare_loop.bare_loop("4.6", path, "cpu", "fp8", 32, 48, 1, 0)


def tiny_dataset(root: Path) -> Path:
    clip = root / "sequences" / "00001" / "0001"
    clip.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("im1.png", "im2.png", "im3.png"):
        cv2.imwrite(str(clip / name), rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    (root / "tri_testlist.txt").write_text("00001/0001\n")
    return root


@pytest.mark.slow
def test_dry_run_makes_one_row_per_step_and_the_archive(tmp_path, weights_40):
    weights = tmp_path / "model" / "rife-4.0"
    weights.mkdir(parents=True)
    (weights / "flownet.pkl").symlink_to(weights_40)
    out = tmp_path / "out"
    env = clean_env(PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO / "tests")]))
    proc = subprocess.run(
        [
            "bash",
            str(REPO / "benchmarks" / "gpu_check.sh"),
            "--dry-run",
            "--out",
            str(out),
            "--weights-dir",
            str(tmp_path / "model"),
            "--data",
            str(tiny_dataset(tmp_path / "data")),
            "--python",
            sys.executable,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.log", "gpu_check.md", "gpu_check.tar.gz"]
    text = (out / "gpu_check.md").read_text()
    assert "DRY RUN" in text and "- torch: " in text and "4.6 weights: random" in text
    rows = table_rows(text)
    assert set(rows) == DRY_STEPS
    for r in rows.values():
        assert not r[-1].startswith(("FAILED", "TIMEOUT", "SKIPPED")), r
        float(r[2]), float(r[3])  # img/s and latency are numbers
    assert "PSNR" in rows["18"][-1] and "ratio harness/bare" in rows["19"][-1]
    assert "--streams 2" in rows["8"][1] and "--batch-size 2" in rows["11"][1]
    assert "--runtime onnxruntime" in rows["20"][1]  # the runtime step runs (CPU provider in a dry run)
    with tarfile.open(out / "gpu_check.tar.gz") as tar:
        names = tar.getnames()
    for sid in DRY_STEPS - {"19"}:
        assert f"runs/{sid}/results.json" in names and f"runs/{sid}/output.log" in names
    assert "runs/19/overhead.json" in names and "runs/19/harness_round_1/results.json" in names
