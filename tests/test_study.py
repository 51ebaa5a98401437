"""The optimisation study: seeded inputs, the quality measures against known
truths, argument errors, and one tiny end-to-end study (two configurations,
64x64) whose table and JSON carry speed and quality against the baseline."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import REPO, clean_env
from rifebench.data.dummy import dummy_frames
from rifebench.bench.study import main, parse
from rifebench.bench.study_worker import SEQUENCE, pair_of, video_frames
from rifebench.measure.quality import output_diff as compare


def test_inputs_are_seeded_and_move():
    a0, a1 = dummy_frames(40, 56, seed=3)
    b0, b1 = dummy_frames(40, 56, seed=3)
    assert torch.equal(a0, b0) and torch.equal(a1, b1) and not torch.equal(a0, dummy_frames(40, 56, seed=4)[0])
    frames = video_frames(48, 64, SEQUENCE, seed=1)
    assert [f.shape for f in frames] == [(1, 3, 48, 64)] * SEQUENCE
    assert torch.equal(frames[1], video_frames(48, 64, SEQUENCE, seed=1)[1])
    # 3 px down and 3 px left per frame: frame 1 shifted back matches frame 0.
    assert torch.equal(frames[1][..., :-3, 3:], frames[0][..., 3:, :-3])
    assert [pair_of(k) for k in range(4)] == [(0, 1), (1, 2), (2, 0), (0, 1)]  # one shared frame per step


def test_the_video_shares_one_frame_per_pair():
    from rifebench.models import zoo
    from rifebench.models.interp import Interpolator
    from rifebench.models.nets.ifnet_v4 import build_v46

    interp = Interpolator(build_v46(), zoo.get("4.6"), "cpu", "fp32", reuse_frames=True)
    frames = video_frames(32, 32, SEQUENCE, seed=0)
    for k in range(7):
        i, j = pair_of(k)
        interp.prepare(frames[i], key=i)
        interp.prepare(frames[j], key=j)
    assert (interp.reuse["hits"], interp.reuse["misses"]) == (6, 8)  # every pair after the first: one hit


def test_quality_measures_known_truths():
    rng = np.random.default_rng(0)
    ref = rng.random((32, 40, 3)).astype(np.float32)
    same = compare(ref, ref.copy())
    assert same == {"psnr_db": math.inf, "ssim": 1.0, "max_abs_err": 0.0}
    shifted = np.clip(ref + 0.01, 0, 1)
    exact = -10 * math.log10(float(np.mean((shifted.astype(np.float64) - ref) ** 2)))
    assert compare(ref, shifted)["psnr_db"] == pytest.approx(exact)
    assert compare(ref, shifted)["max_abs_err"] == pytest.approx(0.01, abs=1e-6)
    assert compare(ref, rng.random((32, 40, 3)))["ssim"] < 0.5


def test_arguments_are_checked():
    args = parse(["--sizes", "64x48", "--configs", "baseline,mine", "--config", "mine=--precision bf16"])
    assert args.sizes == [(64, 48)] and args.flags_of["mine"] == ["--precision", "bf16"]
    for bad in (["--configs", "baseline,nope"], ["--sizes", "64by48"], ["--configs", "baseline,baseline"],
                ["--rounds", "0"], ["--config", "=x"]):
        with pytest.raises(SystemExit):
            parse(bad)


def test_a_configuration_that_cannot_run_is_refused_before_any_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.raises(SystemExit, match=r"configuration 'x'.*--compile/COMPILE: 'default' cannot run here"):
        main(["--configs", "baseline,x", "--config", "x=--compile default", "--sizes", "32x32",
              "--output", str(tmp_path / "s.json")])
    assert not (tmp_path / "s.json").exists()


@pytest.mark.slow
def test_tiny_study_end_to_end(tmp_path, weights_40):
    """Three configurations and one that fails in its worker (4.6 given 4.0's
    weights): the others are measured, the failure is a row, the exit status 1."""
    out = tmp_path / "study.json"
    cmd = [sys.executable, "-m", "rifebench.bench.study", "--sizes", "64x64", "--configs",
           "baseline,channels_last,bf16,broken", "--config", "broken=--model 4.6", "--rounds", "2", "--pairs", "1",
           "--warmup", "0", "--threads", "1", "--pretrained-weights", str(weights_40), "--output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=clean_env(), cwd=REPO)
    assert proc.returncode == 1, proc.stderr
    assert "study: failed configurations: broken" in proc.stderr
    doc = json.loads(out.read_text())
    assert doc["complete"] and [r["config"] for r in doc["rows"]] == ["baseline", "channels_last", "bf16", "broken"]
    base, cl, bf16, broken = doc["rows"]
    assert "4.6" in broken["error"] and "| 64x64 | broken | failed:" in proc.stdout
    for r in (base, cl, bf16):
        assert len(r["latency_ms"]) == len(r["cpu_ms"]) == 2 and r["fps"] > 0 and r["speedup_min"] > 0
        assert "outputs" not in r and r["knobs"]["preset"] == "baseline"
    assert base["speedup_p50"] == 1.0 and base["quality"]["psnr_db"] == 100.0
    assert cl["knobs"]["effective"]["channels_last"] is True and cl["quality"]["psnr_db"] >= 50
    assert bf16["precision"] == "bf16" and 35 <= bf16["quality"]["psnr_db"] < 100
    assert "| 64x64 | channels_last (fp32) |" in proc.stdout and "speed-up" in proc.stdout
