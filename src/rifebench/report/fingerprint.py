"""The output fingerprint: the frame a dummy run saved with --saveimages
(images/dummy_0.npy, interpolated from the seeded dummy pair), and the one
comparison of two of them. The benchmark summary compares every row's with row
1's; `compare` compares two runs'."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

FINGERPRINT = Path("images") / "dummy_0.npy"
MAX_PIXELS = 8640 * 15360  # the largest dummy frame (DATA_HEIGHT x DATA_WIDTH maxima)


def read_fingerprint(path: Path) -> Any:
    """The HxWx3 float32 frame in `path`, its .npy header checked before any data
    is read (a header may declare 100000x100000x3 in a file of 100 bytes), every
    value finite; ValueError (or OSError) saying why not."""
    import numpy as np

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the reader
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f".npy format version {version} (accepted: 1.0 or 2.0, as numpy.save writes)")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if dtype != np.float32 or len(shape) != 3 or shape[2] != 3 or shape[0] * shape[1] > MAX_PIXELS:
            raise ValueError(
                f"an array of {dtype} {shape} (accepted: a float32 HxWx3 frame of at most {MAX_PIXELS} pixels)"
            )
        nbytes = shape[0] * shape[1] * 3 * 4
        data = f.read(nbytes + 1)
    if len(data) != nbytes:
        raise ValueError(f"{len(data)} bytes of data where its header declares {nbytes}")
    frame = np.frombuffer(bytearray(data), np.float32).reshape(shape, order="F" if fortran else "C")
    if not np.isfinite(frame).all():
        raise ValueError("NaN or infinite values in the frame")
    return frame


def fingerprint_diff(ref_path: Path, other_path: Path) -> dict[str, Any]:
    """PSNR (dB, on the float output; inf when identical), SSIM (8-bit) and max
    absolute error of two fingerprints, or a note saying why they cannot be compared."""
    frames = []
    for path in (ref_path, other_path):
        try:
            frames.append(read_fingerprint(path))
        except (OSError, ValueError) as exc:
            return {"note": f"cannot read the fingerprint {path}: {exc}"}
    ref, other = frames
    if ref.shape != other.shape:
        (h0, w0), (h1, w1) = ref.shape[:2], other.shape[:2]
        return {"note": f"fingerprints differ in size {w0}x{h0} vs {w1}x{h1}"}  # width x height, as everywhere
    from rifebench.measure.quality import output_diff

    diff: dict[str, Any] = output_diff(ref, other)
    return diff
