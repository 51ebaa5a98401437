"""The output fingerprint: the frame a dummy run saved with --saveimages
(images/dummy_0.npy, interpolated from the seeded dummy pair), and the one
comparison of two of them. The benchmark summary compares every row's with row
1's; `compare` compares two runs'."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FINGERPRINT = Path("images") / "dummy_0.npy"


def fingerprint_diff(ref_path: Path, other_path: Path) -> dict[str, Any]:
    """PSNR (dB, on the float output; inf when identical), SSIM (8-bit) and max
    absolute error of two fingerprints, or a note saying why they cannot be compared."""
    import numpy as np

    try:
        ref, other = np.load(ref_path), np.load(other_path)
    except (OSError, ValueError) as exc:
        return {"note": f"cannot read a fingerprint: {exc}"}
    if ref.shape != other.shape:
        return {"note": f"fingerprints differ in shape {ref.shape} vs {other.shape}"}
    from rifebench.measure.quality import output_diff

    diff: dict[str, Any] = output_diff(ref, other)
    return diff
