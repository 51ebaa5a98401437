"""PSNR, SSIM and the verdict: known truths, an independent oracle (scikit-image)
for SSIM, and the merge of several streams."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from rifebench.data.images import to_uint8
from rifebench.measure import quality


def rng_image(h=24, w=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def smooth_image(h=48, w=64, seed=0):
    """Low-frequency content, where SSIM is far from 0."""
    import cv2

    coarse = np.random.default_rng(seed).random((h // 8 + 2, w // 8 + 2, 3))
    return to_uint8(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1))


# --- PSNR ------------------------------------------------------------------------------


def test_psnr_known_values():
    a = rng_image()
    b = a.astype(np.int16)
    b = np.where(b < 255, b + 1, b - 1).astype(np.uint8)  # every value off by exactly one level
    assert quality.psnr(a, b) == pytest.approx(20 * math.log10(255), abs=1e-9)  # 48.13 dB
    assert quality.psnr(a, a) == quality.PSNR_CAP_DB  # identical: capped, finite for JSON
    black, white = np.zeros_like(a), np.full_like(a, 255)
    assert quality.psnr(black, white) == pytest.approx(0.0, abs=1e-12)


def test_psnr_matches_an_independent_formula():
    a, b = rng_image(seed=1), rng_image(seed=2)
    mse = np.mean((a / 255.0 - b / 255.0) ** 2)  # all three channels, [0, 1]
    assert quality.psnr(a, b) == pytest.approx(-10 * math.log10(mse), rel=1e-12)


def test_psnr_is_measured_on_the_8_bit_rounding_of_the_prediction():
    gt = rng_image(seed=3)
    pred = gt / 255.0 + 0.4 / 255.0  # rounds back to gt wherever it does not clip
    pred = np.clip(pred, 0, 1)
    assert quality.psnr(gt, to_uint8(pred)) == quality.PSNR_CAP_DB


def test_psnr_refuses_float_frames_and_mismatched_sizes():
    with pytest.raises(TypeError, match="uint8"):
        quality.psnr(rng_image(), rng_image().astype(np.float32))
    with pytest.raises(ValueError, match="one size"):
        quality.psnr(rng_image(24, 40), rng_image(24, 41))


# --- SSIM ------------------------------------------------------------------------------


def skimage_rife_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """The oracle: RIFE's ssim_matlab is a Gaussian SSIM (11 taps, sigma 1.5) over the
    3xHxW volume with replicated borders. scikit-image crops 5 px of every axis from
    its SSIM map, so padding the volume by 5 with edge values first gives exactly
    that map's mean."""
    metrics = pytest.importorskip("skimage.metrics", reason="scikit-image (requirements-dev.txt) is the oracle")
    x = np.pad(a.transpose(2, 0, 1) / 255.0, 5, mode="edge")
    y = np.pad(b.transpose(2, 0, 1) / 255.0, 5, mode="edge")
    return metrics.structural_similarity(
        x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )


@pytest.mark.parametrize("h,w,seed", [(48, 64, 0), (37, 53, 1), (16, 24, 2)])
def test_ssim_matches_scikit_image_oracle(h, w, seed):
    gt = smooth_image(h, w, seed)
    noise = np.random.default_rng(seed + 10).normal(0, 12, gt.shape)
    pred = np.clip(gt + noise, 0, 255).astype(np.uint8)
    expected = skimage_rife_ssim(gt, pred)
    assert 0.1 < expected < 0.99  # a case where a wrong window or border would show
    assert quality.ssim(gt, pred) == pytest.approx(expected, abs=1e-10)


def test_ssim_known_truths():
    a = smooth_image()
    assert quality.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    b = rng_image(48, 64, seed=5)
    # symmetric in its arguments, and blind to the channel order (BGR or RGB)
    assert quality.ssim(a, b) == pytest.approx(quality.ssim(b, a), abs=1e-12)
    assert quality.ssim(a[..., ::-1], b[..., ::-1]) == pytest.approx(quality.ssim(a, b), abs=1e-12)
    assert quality.ssim(a, b) < 0.5


def test_ssim_on_real_frames_matches_oracle(shared_data):
    import cv2

    folder = shared_data / "mixed_448x256" / "sequences" / "00002" / "0003"
    first, gt = cv2.imread(str(folder / "im1.png")), cv2.imread(str(folder / "im2.png"))
    assert quality.ssim(gt, first) == pytest.approx(skimage_rife_ssim(gt, first), abs=1e-10)


# --- merge and verdict -----------------------------------------------------------------


def cfg(**kw):
    base = {"min_psnr_db": 25.0, "min_pass_pct": 95.0, "interpolation": 1, "streams": 1}
    return SimpleNamespace(**(base | kw))


def stream(psnrs, sid=0, complete=True, planned=None):
    frames = [{"index": i, "entry": f"00001/{i:04d}", "psnr": p, "ssim": 0.9} for i, p in enumerate(psnrs)]
    return {"stream": sid, "frames": frames, "complete": complete, "planned": planned or len(psnrs)}


def test_accuracy_follows_from_per_frame_psnrs():
    psnrs = [30.0, 25.0, 24.999, 40.0]  # exactly at the threshold passes
    q = quality.merge(cfg(min_pass_pct=75.0), [stream(psnrs)])
    assert [f["passed"] for f in q["frames"]] == [True, True, False, True]
    assert (q["tested"], q["passed"], q["pass_pct"]) == (4, 3, 75.0)
    assert q["verdict"] == "pass"  # 75 >= 75
    assert q["psnr_mean"] == pytest.approx(sum(psnrs) / 4)
    assert quality.merge(cfg(min_pass_pct=75.1), [stream(psnrs)])["verdict"] == "fail"
    assert [f["entry"] for f in q["frames"]] == ["00001/0000", "00001/0001", "00001/0002", "00001/0003"]


def test_several_streams_count_each_triplet_once_with_its_worst_score():
    a = stream([30.0, 26.0, 40.0], sid=0)
    b = stream([30.0, 24.0, 40.5], sid=1)
    q = quality.merge(cfg(streams=2, min_pass_pct=50), [a, b])
    assert q["tested"] == 3 and q["passed"] == 2  # not 6 tested
    assert [f["psnr"] for f in q["frames"]] == [30.0, 24.0, 40.0]
    assert q["streams_max_psnr_diff_db"] == pytest.approx(2.0)
    assert [s["tested"] for s in q["per_stream"]] == [3, 3]


def test_incomplete_and_missing_streams_never_pass():
    q = quality.merge(cfg(), [stream([30.0, 31.0], complete=False, planned=5)])
    assert q["verdict"] == "incomplete" and q["complete"] is False
    assert "2 of 5" in q["note"]
    q = quality.merge(cfg(streams=2), [stream([30.0]), None])  # one stream returned nothing
    assert q["verdict"] == "incomplete"
    assert q["per_stream"][1] == {"stream": 1, "returned": False}
    assert quality.merge(cfg(), [None])["verdict"] == "incomplete"


def test_interpolation_checks_only_the_middle_frame():
    assert [quality.checked_frame(n) for n in (1, 2, 3, 4, 7)] == [0, None, 1, None, 3]
    q = quality.merge(cfg(interpolation=3), [stream([30.0, 31.0])])
    assert q["verdict"] == "pass" and q["tested"] == 2
    assert q["checked_frame_per_pair"] == 2 and q["unchecked_frames_per_pair"] == 2
    assert "not checked" in q["note"]
    q = quality.merge(cfg(interpolation=2), [{"stream": 0, "frames": [], "complete": True, "planned": 2}])
    assert q["verdict"] == "unchecked" and q["tested"] == 0 and q["passed"] == 0 and q["pass_pct"] is None
    assert "no frame was checked" in q["note"]
