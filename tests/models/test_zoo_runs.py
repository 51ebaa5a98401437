"""Any release runs in every mode: `--model 4.25` in performance mode with explicit seeded
random weights (speed only, recorded), in quality and video mode with a weights file in
the release format; random weights are refused wherever quality is scored; results.json
says what the weights file was held to (published checksum, first-fetch lock, none)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import random_state
from helpers import clean_env, run_harness, sibling_module
from rifebench.config import resolve
from rifebench.errors import UsageError
from rifebench.fetch import lock
from rifebench.fsutil import sha256_file
from rifebench.models import zoo
from rifebench.models.nets.ifnet_v4 import build_version
from rifebench.models.weights import load_model, write_random_weights
from rifebench.run.prepare import check_weights

MODEL = "4.25"  # five blocks, a feature encoder, features handed between blocks, modulus 64


def release_file(path: Path, version: str = MODEL, seed: int = 0) -> Path:
    state = random_state(lambda: build_version(version), seed)
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    return path


def tiny_dataset(root: Path) -> Path:
    return sibling_module("runtimes", "test_runtimes_e2e").tiny_vimeo(root, n=2, h=72, w=100)


def tiny_video(path: Path) -> Path:
    gen = sibling_module("data", "test_video")
    return gen.write_video(path, gen.pattern(54, 90, 7, shift=2))


def harness(tmp_path: Path, name: str, *flags) -> tuple[int, str, dict | None]:
    out = tmp_path / name
    proc = run_harness(["--model", MODEL, "--output-dir", out, "--warmup", "1", *flags], env=clean_env(), timeout=600)
    doc = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else None
    return proc.returncode, proc.stdout + proc.stderr, doc


def test_random_weights_are_seeded_official_shapes_and_leave_the_caller_rng(tmp_path):
    spec = zoo.get(MODEL)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = write_random_weights(spec, zoo.random_weights_path(spec, tmp_path))
    assert torch.equal(torch.rand(1), before)  # the caller's random stream is untouched
    b = write_random_weights(spec, tmp_path / "again.pkl")
    assert a == tmp_path / "rife-4.25" / "random-seed0.pkl"
    assert all(
        torch.equal(x, y)
        for x, y in zip(
            load_model(spec, a).state_dict().values(), load_model(spec, b).state_dict().values(), strict=True
        )
    )


@pytest.mark.parametrize(
    "flags,mode",
    [
        (["--data", "DATASET"], "quality"),
        (["--data", "VIDEO"], "video"),
        (["--data", "VIDEO", "--video-gt", "drop"], "video"),
    ],
)
def test_random_weights_are_refused_where_quality_is_scored(tmp_path, flags, mode):
    paths = {"DATASET": str(tiny_dataset(tmp_path / "ds")), "VIDEO": str(tmp_path / "clip.mkv")}
    (tmp_path / "clip.mkv").write_bytes(b"")  # validated by name here; its content at start-up
    argv = ["--model", MODEL, "--random-weights", *(paths.get(f, f) for f in flags)]
    with pytest.raises(UsageError) as info:
        resolve(argv, env={})
    message = str(info.value)
    assert message.startswith(f"--random-weights/RANDOM_WEIGHTS: refused in {mode} mode") and "\n" not in message
    assert resolve([*argv, "--video-gt", "none"], env={}).random_weights if mode == "video" else True
    with pytest.raises(UsageError, match="cannot be combined with --pretrained-weights"):
        resolve(["--model", MODEL, "--dummy", "--random-weights", "--pretrained-weights", "/w.pkl"], env={})


def test_results_say_what_the_weights_are_held_to(tmp_path):
    models = tmp_path / "models"
    spec = zoo.get(MODEL)
    target = spec.weights_path(models)
    target.parent.mkdir(parents=True)
    release_file(target)
    lock.write_lock(target, spec, sha256_file(target), "test")
    cfg = resolve(["--model", MODEL, "--dummy", "--models-dir", str(models)], env={})
    info, warnings = check_weights(cfg)
    assert info.to_dict()["checksum"]["basis"] == "first-fetch lock" and info.checksum["matches"] and not warnings
    release_file(target, seed=9)  # not the file the first fetch locked
    info, warnings = check_weights(cfg)
    assert info.checksum["matches"] is False and [w["code"] for w in warnings] == ["WEIGHTS_NOT_OFFICIAL"]
    lock.lock_path(target).unlink()
    assert check_weights(cfg)[0].checksum == {
        "basis": "none",
        "expected_sha256": None,
        "matches": None,
        "lock_path": None,
    }


@pytest.mark.slow
def test_performance_mode_with_random_weights(tmp_path):
    models = tmp_path / "models"
    rc, log, doc = harness(
        tmp_path, "perf", "--dummy", "--random-weights", "--models-dir", models, "--num-inputs", "3",
        "--data-height", "64", "--data-width", "96",
    )  # fmt: skip
    assert rc == 0, log
    assert doc["config"]["random_weights"] is True and doc["model"]["checksum"] == {
        "basis": "random weights",
        "seed": 0,
    }
    assert doc["model"]["weights"].startswith("seeded random weights") and "speed only" in doc["model"]["weights"]
    assert doc["model"]["weights_path"] == str(models / "rife-4.25" / "random-seed0.pkl")
    assert doc["model"]["parameters"] == zoo.get(MODEL).inference_params and doc["model"]["modulus"] == 64
    assert doc["model"]["flops"]["gflop_per_pair"] > 0
    # said where every report reads it: the warnings (console, results.yaml, summaries), not only the model section
    assert [w["code"] for w in doc["warnings"]].count("RANDOM_WEIGHTS") == 1
    assert "warning [RANDOM_WEIGHTS]: model 4.25 ran with seeded random weights" in log


@pytest.mark.slow
def test_quality_and_video_modes_with_a_release_file(tmp_path):
    weights = release_file(tmp_path / "flownet_v4.25.pkl")
    _, log, doc = harness(tmp_path, "quality", "--data", tiny_dataset(tmp_path / "ds"), "--pretrained-weights", weights)
    assert doc is not None, log
    assert doc["model"]["name"] == MODEL and doc["model"]["checksum"]["basis"] == "none"
    assert doc["quality"]["tested"] == 2 and doc["quality"]["psnr_mean"] > 0, log
    _, log, doc = harness(
        tmp_path, "video", "--data", tiny_video(tmp_path / "clip.mkv"), "--pretrained-weights", weights
    )
    assert doc is not None, log
    assert doc["config"]["model"] == MODEL and doc["quality"]["tested"] > 0 and doc["quality"]["psnr_mean"] > 0, log
