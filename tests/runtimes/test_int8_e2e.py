"""PRECISION=int8 end to end with the official 4.0 weights at 128x128: quality mode with its
PSNR beside fp32's and the cache reused, the gate's refusal of a quantization calibrated on
constant frames, performance and video mode, and OpenVINO's THROUGHPUT hint. The three
graphs of 4.0 are exported once (the module's weights folder keeps its cache)."""

from __future__ import annotations

import importlib.util
import json
import shutil

import cv2
import numpy as np
import pytest

from helpers import clean_env, run_harness, sibling_module
from rifebench.data import vimeo

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(importlib.util.find_spec(m) for m in ("openvino", "nncf", "onnxscript")),
        reason="OpenVINO and NNCF are not installed (./setup.sh --dev installs them)",
    ),
]
SIZE = 128


@pytest.fixture(scope="module")
def w40(weights_40, tmp_path_factory):
    path = tmp_path_factory.mktemp("w40") / "flownet.pkl"
    shutil.copyfile(weights_40, path)
    return path


def crops(root, source, entries, value=None):
    """A triplet folder of SIZE x SIZE centre crops of real triplets (or constant `value` frames)."""
    for i, triplet in enumerate(entries):
        d = root / "sequences" / "00001" / f"{i + 1:04d}"
        d.mkdir(parents=True)
        for name, frame in zip(("im1.png", "im2.png", "im3.png"), vimeo.load(triplet), strict=True):
            h, w = frame.shape[:2]
            crop = frame[(h - SIZE) // 2 : (h + SIZE) // 2, (w - SIZE) // 2 : (w + SIZE) // 2]
            cv2.imwrite(str(d / name), crop if value is None else np.full_like(crop, value))
    (root / "tri_testlist.txt").write_text("".join(f"00001/{i + 1:04d}\n" for i in range(len(entries))))
    return root


@pytest.fixture(scope="module")
def real(shared_data, tmp_path_factory):
    _, _, listed = vimeo.triplets(shared_data / "mixed_448x256")
    return crops(tmp_path_factory.mktemp("real"), None, listed[:3])


def run(weights, out, *flags):
    proc = run_harness(
        ["--model", "4.0", "--pretrained-weights", weights, "--output-dir", out, "--warmup", "1", *flags],
        env=clean_env(),
        timeout=900,
    )
    doc = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else None
    return proc, doc


def test_int8_in_quality_mode_is_scored_beside_fp32_and_reuses_its_quantization(w40, real, shared_data, tmp_path):
    flags = ["--data", real, "--psnr-threshold", "0"]
    proc, fp32 = run(w40, tmp_path / "fp32", *flags)  # eager fp32: the reference every runtime is held to
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # 24 varied real pairs (the bundled set) calibrate it; 3 crops would not cover 8 px of motion over texture.
    calibration = shared_data / "mixed_448x256"
    int8_flags = [*flags, "--runtime", "openvino", "--precision", "int8", "--calibration", calibration]
    proc, doc = run(w40, tmp_path / "int8", *int8_flags)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rt = doc["runtime"]
    assert rt["precision"] == "int8" and rt["settings"]["graphs"] == ["head", "keep", "rerun"]
    assert rt["parity"]["threshold_db"] == 30.0 and rt["parity"]["check_pairs"]["psnr_db"] >= 30.0
    assert rt["int8"]["calibration"]["kind"] == "given" and rt["int8"]["calibration"]["pairs"] == 24
    assert [e["cached"] for e in rt["int8"]["entries"]] == [False] * 3
    assert doc["quality"]["tested"] == 3 and doc["streams"][0]["large_motion_count"] == 0
    # The quality-mode figure of INT8 beside fp32's: close, and not the same network's output.
    assert fp32["quality"]["psnr_mean"] - 2.0 < doc["quality"]["psnr_mean"] != fp32["quality"]["psnr_mean"]
    proc, again = run(w40, tmp_path / "again", *int8_flags)
    assert proc.returncode == 0 and [e["cached"] for e in again["runtime"]["int8"]["entries"]] == [True] * 3
    assert again["quality"]["psnr_mean"] == doc["quality"]["psnr_mean"]


def test_a_quantization_calibrated_on_constant_frames_fails_the_gate_in_one_line(w40, real, shared_data, tmp_path):
    _, _, listed = vimeo.triplets(shared_data / "mixed_448x256")
    grey = crops(tmp_path / "grey", None, listed[:3], value=128)
    proc, doc = run(w40, tmp_path / "o", "--data", real, "--runtime", "openvino", "--precision", "int8",
                    "--calibration", grey)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    console = proc.stdout + proc.stderr
    assert "Traceback" not in console
    (line,) = [x for x in console.splitlines() if "failed: ParityFailed: parity gate:" in x]
    assert "RUNTIME=openvino PRECISION=int8 output is" in line and "(needs >= 30 dB); not timed (calibrate on" in line
    assert (
        "dB PSNR against PyTorch fp32 on 4 check pairs (textured, moving 8 px)" in line
    )  # motion over texture shows a bad calibration
    gate = doc["failures"][0]["runtime_parity"]
    assert gate["passed"] is False and gate["check_pairs"]["psnr_db"] < 30.0


def test_int8_in_performance_and_video_mode(w40, shared_data, tmp_path):
    proc, doc = run(w40, tmp_path / "dummy", "--dummy", "--data-height", SIZE, "--data-width", SIZE,
                    "--num-inputs", "3", "--runtime", "openvino", "--precision", "int8")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert doc["runtime"]["int8"]["calibration"]["kind"] == "bundled"  # ../shared/data beside the checkout
    videos = sibling_module("data", "test_video")
    video = videos.write_video(tmp_path / "v.mkv", videos.pattern(SIZE, SIZE, 9))
    proc, doc = run(w40, tmp_path / "video", "--data", video, "--runtime", "openvino", "--precision", "int8",
                    "--calibration", shared_data / "mixed_448x256", "--psnr-threshold", "0")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert doc["runtime"]["int8"]["calibration"]["kind"] == "given"
    assert doc["quality"]["tested"] == 4 and doc["runtime"]["parity"]["passed"]


def test_the_throughput_hint_spreads_a_batch_over_openvino_s_requests(w40, tmp_path):
    proc, doc = run(w40, tmp_path / "o", "--dummy", "--data-height", SIZE, "--data-width", SIZE, "--num-inputs", "4",
                    "--batch-size", "2", "--runtime", "openvino", "--ov-hint", "throughput")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    settings = doc["runtime"]["settings"]
    assert settings["hint"] == "throughput" and settings["PERFORMANCE_HINT"] == "THROUGHPUT"
    assert settings["infer_requests"] == int(settings["OPTIMAL_NUMBER_OF_INFER_REQUESTS"]) >= 1
    assert doc["config"]["ov_hint"] == "throughput" and doc["runtime"]["parity"]["passed"]
    assert doc["runtime"]["exports"][0]["key"]["batch"] == 1  # a request runs one pair
