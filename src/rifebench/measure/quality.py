"""Per-frame quality scores and the run's quality verdict.

Both scores follow the RIFE authors' Vimeo-90K evaluation (benchmark/Vimeo90K.py
of ECCV2022-RIFE), so that the published figures can be reproduced:

- PSNR: the prediction is rounded to 8 bits first, then -10 log10(mse) on [0, 1]
  over all three channels of the frame.
- SSIM: their `ssim_matlab`: the colour frame is treated as a 3 x H x W volume
  and filtered with an 11x11x11 Gaussian window (sigma 1.5), borders replicated,
  constants C1 = 0.01^2 and C2 = 0.03^2, the map averaged over the volume. It is
  computed here in float64 with separable filters; the tests check it against
  scikit-image's Gaussian SSIM on the replicate-padded volume.

The channel order does not change either score (SSIM's window is symmetric
along the channel axis), so frames are scored in the order they are read in.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np


class Thresholds(Protocol):
    """What the verdict reads of the run's configuration (config.Config has it)."""

    @property
    def min_psnr_db(self) -> float: ...
    @property
    def min_pass_pct(self) -> float: ...
    @property
    def interpolation(self) -> int: ...


PSNR_CAP_DB = 100.0  # identical frames: mse 0 would be +inf, which JSON cannot hold
_MSE_FLOOR = 10 ** (-PSNR_CAP_DB / 10)
_WINDOW, _SIGMA = 11, 1.5
_C1, _C2 = 0.01**2, 0.03**2


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """float HxWxC in [0, 1] -> uint8 by rounding, as the RIFE evaluation does before scoring."""
    return np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8)


def _unit(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8:
        raise TypeError(f"quality: frames must be 8-bit (uint8) images, got {frame.dtype}")
    return frame.astype(np.float64) / 255.0


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> None:
    if gt.shape != pred.shape or gt.ndim != 3 or gt.shape[2] != 3:
        raise ValueError(f"quality: need two HxWx3 frames of one size, got {gt.shape} and {pred.shape}")


def psnr(gt: np.ndarray, pred: np.ndarray) -> float:
    """PSNR in dB of two uint8 HxWx3 frames; capped at PSNR_CAP_DB for identical ones."""
    _check_pair(gt, pred)
    diff = _unit(gt) - _unit(pred)
    mse = float(np.mean(diff * diff))
    return -10.0 * math.log10(max(mse, _MSE_FLOOR))


def _kernel() -> np.ndarray:
    x = np.arange(_WINDOW, dtype=np.float64) - _WINDOW // 2
    g: np.ndarray = np.exp(-(x * x) / (2 * _SIGMA * _SIGMA))
    kernel: np.ndarray = g / g.sum()
    return kernel


_KERNEL = _kernel()


def _channel_mix(c: int) -> np.ndarray:
    """The 1-D Gaussian along the channel axis with replicated ends, as a c x c
    matrix: out[i] = sum_j M[i, j] * in[j]. With 3 channels the 11-tap window
    reaches past both ends, so the clamped taps fold onto the edge channels."""
    r = _WINDOW // 2
    m = np.zeros((c, c))
    for i in range(c):
        for t in range(-r, r + 1):
            m[i, min(max(i + t, 0), c - 1)] += _KERNEL[t + r]
    return m


def _blur(img: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """Gaussian filter of an H x W x C image taken as a volume, replicated borders on all axes."""
    import cv2

    across = img @ mix.T  # along the channel axis; separable, so the order does not matter
    out: np.ndarray = cv2.sepFilter2D(
        np.ascontiguousarray(across), cv2.CV_64F, _KERNEL, _KERNEL, borderType=cv2.BORDER_REPLICATE
    )
    return out


def ssim(gt: np.ndarray, pred: np.ndarray) -> float:
    """SSIM of two uint8 HxWx3 frames as the RIFE Vimeo-90K evaluation computes it."""
    _check_pair(gt, pred)
    x, y = _unit(gt), _unit(pred)
    mix = _channel_mix(x.shape[2])
    mu_x, mu_y = _blur(x, mix), _blur(y, mix)
    var_x = _blur(x * x, mix) - mu_x * mu_x
    var_y = _blur(y * y, mix) - mu_y * mu_y
    cov = _blur(x * y, mix) - mu_x * mu_y
    num = (2 * mu_x * mu_y + _C1) * (2 * cov + _C2)
    den = (mu_x * mu_x + mu_y * mu_y + _C1) * (var_x + var_y + _C2)
    return float(np.mean(num / den))


def checked_frame(interpolation: int) -> int | None:
    """Index of the output frame at t = 0.5 (the one with ground truth), or None
    when INTERPOLATION is even and no output frame lies at t = 0.5."""
    return (interpolation - 1) // 2 if interpolation % 2 == 1 else None


def _mean(values: list[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def merge(cfg: Thresholds, per_stream: list[dict[str, Any] | None]) -> dict[str, Any]:
    """The quality section of results.json, with the verdict.

    Every stream runs the same list, so a triplet is counted once: with several
    streams its score is the worst any stream measured (a frame passes only if it
    passed everywhere), and `streams_max_psnr_diff_db` says how far they differ.
    Verdict: pass, fail, incomplete (a stream stopped before the end of its list
    or returned nothing) or unchecked (no output frame has ground truth).
    """
    threshold = float(cfg.min_psnr_db)
    checked = checked_frame(cfg.interpolation)
    got = [q for q in per_stream if q]
    frames, spread = _worst_per_triplet(got, threshold)
    tested = len(frames)
    passed = sum(f["passed"] for f in frames)
    pass_pct = 100.0 * passed / tested if tested else None
    planned = max((q.get("planned", 0) for q in got), default=0)
    complete = len(got) == len(per_stream) and len(per_stream) > 0 and all(q.get("complete") for q in got)
    verdict = _verdict(checked, complete, pass_pct, cfg.min_pass_pct)
    n = cfg.interpolation
    return {
        "verdict": verdict,
        "complete": complete,
        "tested": tested,
        "passed": passed,
        "pass_pct": pass_pct,
        "psnr_mean": _mean([f["psnr"] for f in frames]),
        "ssim_mean": _mean([f["ssim"] for f in frames]),
        "threshold_db": threshold,
        "min_pass_pct": float(cfg.min_pass_pct),
        "planned": planned,
        "interpolation": n,
        "checked_frame_per_pair": None if checked is None else checked + 1,
        "unchecked_frames_per_pair": n if checked is None else n - 1,
        "note": _note(n, checked, verdict, tested, planned),
        "streams": len(per_stream),
        "streams_counting": (
            "each stream tests the same triplets; each triplet is counted once, with the "
            "worst PSNR and SSIM any stream measured"
        ),
        "streams_max_psnr_diff_db": spread if len(got) > 1 else None,
        "per_stream": [_stream_line(i, q, threshold) for i, q in enumerate(per_stream)],
        "psnr_definition": "prediction rounded to 8 bits; -10 log10(mse) on [0, 1] over all 3 channels "
        f"(identical frames: {PSNR_CAP_DB:g} dB)",
        "ssim_definition": "RIFE's ssim_matlab: 11x11x11 Gaussian window (sigma 1.5) over the 3xHxW volume, "
        "replicated borders, on the 8-bit prediction",
        "frames": frames,
    }


def _worst_per_triplet(got: list[dict[str, Any]], threshold: float) -> tuple[list[dict[str, Any]], float]:
    """One record per triplet, its worst score over the streams; and the largest
    PSNR difference between streams on one triplet."""
    by_index: dict[int, list[dict[str, Any]]] = {}
    for q in got:
        for f in q.get("frames", []):
            by_index.setdefault(f["index"], []).append(f)
    frames, spread = [], 0.0
    for index in sorted(by_index):
        scores = by_index[index]
        p = [s["psnr"] for s in scores]
        spread = max(spread, max(p) - min(p))
        frames.append(
            {
                "entry": scores[0]["entry"],
                "psnr": min(p),
                "ssim": min(s["ssim"] for s in scores),
                "passed": min(p) >= threshold,
            }
        )
    return frames, spread


def _verdict(checked: int | None, complete: bool, pass_pct: float | None, min_pass_pct: float) -> str:
    if checked is None:
        return "unchecked"
    if not complete:
        return "incomplete"
    return "pass" if pass_pct is not None and pass_pct >= min_pass_pct else "fail"


def _note(n: int, checked: int | None, verdict: str, tested: int, planned: int) -> str:
    parts = []
    if checked is None:
        parts.append(
            f"INTERPOLATION={n} puts no frame at t = 0.5, the only time with ground truth: no frame "
            "was checked and none counts as passed"
        )
    elif n > 1:
        parts.append(
            f"INTERPOLATION={n}: only frame {checked + 1} of {n} per pair (t = 0.5) has ground truth "
            f"and was checked; the other {n - 1} per pair were not checked and are not counted"
        )
    if verdict == "incomplete":
        parts.append(f"incomplete: {tested} of {planned} triplets were scored before the run stopped")
    return "; ".join(parts) or "every interpolated frame was checked against its ground truth"


def _stream_line(i: int, q: dict[str, Any] | None, threshold: float) -> dict[str, Any]:
    if not q:
        return {"stream": i, "returned": False}
    psnrs = [f["psnr"] for f in q.get("frames", [])]
    passed = sum(p >= threshold for p in psnrs)
    return {
        "stream": q.get("stream", i),
        "returned": True,
        "complete": q.get("complete"),
        "tested": len(psnrs),
        "passed": passed,
        "pass_pct": 100.0 * passed / len(psnrs) if psnrs else None,
        "psnr_mean": _mean(psnrs),
        "error": q.get("error"),
        "io": q.get("io"),
    }


def float_psnr(ref: np.ndarray, out: np.ndarray) -> float:
    """PSNR of two float frames in [0, 1], unrounded; inf when identical."""
    diff = np.asarray(ref, dtype=np.float64) - np.asarray(out, dtype=np.float64)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def output_diff(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """How far one model output is from another (HxWx3 floats in [0, 1]): PSNR on
    the float frames (inf when identical), SSIM after rounding both to 8 bits (the
    RIFE evaluation's), and the largest absolute error. One definition for the
    benchmark's fingerprints and the optimisation study."""
    ref64, out64 = np.asarray(ref, dtype=np.float64), np.asarray(out, dtype=np.float64)
    return {
        "psnr_db": float_psnr(ref64, out64),
        "ssim": ssim(to_uint8(ref64), to_uint8(out64)),
        "max_abs_err": float(np.abs(ref64 - out64).max()),
    }
