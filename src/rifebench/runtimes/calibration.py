"""PRECISION=int8: the frames the quantization is calibrated on, and their fingerprint.

Which set, first found: --calibration (a Vimeo-90K triplet folder or a video file); the run's
own data (quality mode's dataset, video mode's video); the real triplets beside the checkout
(../shared/data/mixed_448x256, the project's bundled set); else synthetic frames (a seeded
moving texture), with the warning INT8_SYNTHETIC_CALIBRATION: activation ranges from synthetic
frames need not fit real video.

CALIBRATION_PAIRS pairs are taken, spread evenly over the set (a video: its first pairs, at the
run's step), read as uint8 frames. The fingerprint (sha256 of those frames, their sizes and the
timesteps) is part of the INT8 cache key: another set, or the same files changed, is another
entry. Frames are resized to the graph's padded size (the activation ranges of a RIFE network
depend on the motion in pixels, which scales with the frame).
"""

from __future__ import annotations

import hashlib
import itertools
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rifebench.data import vimeo
from rifebench.data.video_io import frame_size, is_video_path, path_problem
from rifebench.paths import checkout_root
from rifebench.warning_codes import warning

CALIBRATION_PAIRS = 24  # as the first trial of the issue: 24 of the 48 bundled 448x256 triplets
BUNDLED = Path("shared") / "data" / "mixed_448x256"  # beside the checkout
SYNTHETIC_SEED = 0
CHECK_SEED, CHECK_SHIFT_PX = 100, 8
ACCEPTED = "a Vimeo-90K triplet folder (tri_testlist.txt) or a video file"


@dataclass(frozen=True)
class CalibrationSource:
    kind: str  # given | dataset | video | bundled | synthetic
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CalibrationSource:
        return cls(d["kind"], d.get("path"))


def bundled_set() -> Path | None:
    """The real 448x256 triplets shipped beside a checkout, when they are there."""
    root = checkout_root()
    folder = root.parent / BUNDLED if root is not None else None
    return folder if folder is not None and (folder / vimeo.LIST_FILE).is_file() else None


def source_of(calibration: str | None, dataset_dir: str | None, bundled: Path | None = None) -> CalibrationSource:
    """Which set calibrates this run (see the module's docstring for the order)."""
    if calibration:
        return CalibrationSource("given", calibration)
    if dataset_dir:
        return CalibrationSource("video" if is_video_path(dataset_dir) else "dataset", dataset_dir)
    if bundled is not None:
        return CalibrationSource("bundled", str(bundled))
    return CalibrationSource("synthetic")


def problem(path: str) -> str | None:
    """Why --calibration's value is not a calibration set (one phrase), or None. Reads no frame."""
    if is_video_path(path):
        return path_problem(path, "a regular file")
    if why := path_problem(path, "a folder"):
        return why
    why = path_problem(os.path.join(path, vimeo.LIST_FILE), "a regular file")
    if why is None:
        return None
    return f"has no {vimeo.LIST_FILE}" if why == "does not exist" else f"holds a {vimeo.LIST_FILE} that {why}"


def warnings_of(source: CalibrationSource) -> list[dict[str, Any]]:
    return [warning("INT8_SYNTHETIC_CALIBRATION", pairs=CALIBRATION_PAIRS)] if source.kind == "synthetic" else []


def _spread(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n) (all of them when n <= k)."""
    return sorted({round(float(x)) for x in np.linspace(0, n - 1, min(n, k))})


def triplet_pairs(root: str, count: int = CALIBRATION_PAIRS) -> list[tuple[np.ndarray, np.ndarray]]:
    _, _, listed = vimeo.triplets(root)
    out = []
    for i in _spread(len(listed), count):
        first, _, last = vimeo.load(listed[i])
        out.append((first, last))
    return out


def video_pairs(path: str, step: int, count: int = CALIBRATION_PAIRS) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first `count` pairs (frames 0 and step, step and 2 step, ...) of the video."""
    from rifebench.data.video_io import FrameReader

    h, w = frame_size(path) or (720, 1280)
    reader = FrameReader(path, h * w * 3)
    frames: list[np.ndarray] = []
    try:
        while len(frames) < count * step + 1 and (item := reader.next()) is not None:
            if item[0] % step == 0:
                frames.append(item[1])
    finally:
        reader.close()
    return list(itertools.pairwise(frames))


def synthetic_pairs(height: int, width: int, count: int = CALIBRATION_PAIRS) -> list[tuple[np.ndarray, np.ndarray]]:
    from rifebench.data.dummy import dummy_frames

    def u8(x) -> np.ndarray:
        return np.ascontiguousarray((x[0].permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8))

    pairs = [dummy_frames(height, width, SYNTHETIC_SEED + k) for k in range(count)]
    return [(u8(a), u8(b)) for a, b in pairs]


def read_pairs(source: CalibrationSource, hw: tuple[int, int], step: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The calibration pairs as uint8 HxWx3 frames; DatasetError or VideoError on a bad set."""
    if source.kind == "synthetic":
        return synthetic_pairs(*hw)
    assert source.path is not None, "a calibration set from a file has its path"
    if is_video_path(source.path):
        return video_pairs(source.path, step)
    return triplet_pairs(source.path)


def fingerprint(pairs: list[tuple[np.ndarray, np.ndarray]], timesteps: list[float]) -> str:
    h = hashlib.sha256(repr((len(pairs), timesteps)).encode())
    for pair in pairs:
        for f in pair:
            h.update(repr(f.shape).encode())
            h.update(np.ascontiguousarray(f).tobytes())
    return h.hexdigest()


def samples(pairs, hw: tuple[int, int], batch: int, timesteps: list[float]) -> list[dict[str, np.ndarray]]:
    """Graph inputs: the pairs resized to the padded size, `batch` pairs a sample (the last
    sample's short batch filled from the first pairs), the timesteps in turn."""
    import cv2

    def tensor(f: np.ndarray) -> np.ndarray:
        f = cv2.resize(f, (hw[1], hw[0]), interpolation=cv2.INTER_AREA) if f.shape[:2] != hw else f
        return f.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0)

    frames = [(tensor(a), tensor(b)) for a, b in pairs]
    out = []
    for k, start in enumerate(range(0, len(frames), batch)):
        group = [frames[(start + i) % len(frames)] for i in range(batch)]
        out.append(
            {
                "img0": np.concatenate([g[0] for g in group]),
                "img1": np.concatenate([g[1] for g in group]),
                "timestep": np.array([timesteps[k % len(timesteps)]], dtype=np.float32),
            }
        )
    return out


def check_pairs(height: int, width: int, count: int) -> list[tuple[Any, Any]]:
    """`count` seeded pairs (float32 1x3xHxW tensors) of a textured scene moving CHECK_SHIFT_PX
    down and right: motion over texture, where a badly calibrated flow shows (runtimes/parity.py)."""
    import torch
    import torch.nn.functional as F

    out, m = [], CHECK_SHIFT_PX + 8
    for k in range(count):
        g = torch.Generator().manual_seed(CHECK_SEED + k)
        coarse = torch.rand(1, 3, (height + m) // 8 + 2, (width + m) // 8 + 2, generator=g)
        base = F.interpolate(coarse, size=(height + m, width + m), mode="bicubic", align_corners=False)
        base = (base + 0.1 * torch.rand(base.shape, generator=g)).clamp(0, 1)
        s = 4 + CHECK_SHIFT_PX
        out.append(
            (
                base[:, :, 4 : 4 + height, 4 : 4 + width].contiguous(),
                base[:, :, s : s + height, s : s + width].contiguous(),
            )
        )
    return out
