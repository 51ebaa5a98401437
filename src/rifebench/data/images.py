"""Frame files. Frames keep the channel order they have on disk (OpenCV's BGR,
which is what the RIFE models were trained on), so nothing here swaps channels."""

from __future__ import annotations

import os
import sys
import threading

import numpy as np

from rifebench.fsutil import atomic_write_bytes
from rifebench.measure.quality import to_uint8
from rifebench.warning_codes import line, warning


def save_png(path: str, frame: np.ndarray) -> None:
    """Encoded in memory, then written atomically (fsutil): no predictable
    temporary name for a planted symlink to catch, never a half-written PNG."""
    import cv2

    data = frame if frame.dtype == np.uint8 else to_uint8(frame)
    ok, png = cv2.imencode(".png", data)
    if not ok:
        raise OSError(f"could not encode image {path}")
    atomic_write_bytes(path, png.tobytes())


def read_image(path: str) -> np.ndarray:
    """uint8 HxWx3 in the file's (BGR) order; OSError naming the file if unreadable.
    16-bit samples are scaled to 8 bits, grayscale is expanded and alpha dropped,
    each reported once per process (IMAGE_CONVERTED)."""
    import cv2

    if not os.path.isfile(path):
        raise OSError(f"missing image: {path}")
    # IMREAD_COLOR would convert silently (16-bit by truncation): read as stored and
    # say what is changed.
    data = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if data is None:
        raise OSError(f"unreadable image: {path}")
    done = []
    if data.dtype == np.uint16:
        # x / 257, rounded: 65535 -> 255 exactly, where >> 8 would round every value down
        data = ((data.astype(np.uint32) + 128) // 257).astype(np.uint8)
        done.append("16-bit samples scaled to 8 bits")
    elif data.dtype != np.uint8:
        raise OSError(f"unsupported image {path}: {data.dtype} samples (accepted: 8- or 16-bit integer images)")
    channels = 1 if data.ndim == 2 else data.shape[2]
    if channels == 1:
        data = cv2.cvtColor(data, cv2.COLOR_GRAY2BGR)
        done.append("grayscale expanded to 3 channels")
    elif channels == 4:
        data = np.ascontiguousarray(data[:, :, :3])
        done.append("alpha channel dropped")
    elif channels != 3:
        raise OSError(f"unsupported image {path}: {channels} channels (accepted: 1, 3 or 4)")
    if done:
        _report(path, "; ".join(done))
    return data


_reported: set[str] = set()
_reported_lock = threading.Lock()


def _report(path: str, what: str) -> None:
    # Once per kind of conversion: a dataset of 3,782 RGBA triplets gives one line, not 11,346.
    with _reported_lock:
        if what in _reported:
            return
        _reported.add(what)
    print(line(warning("IMAGE_CONVERTED", path=path, what=what)), file=sys.stderr, flush=True)
