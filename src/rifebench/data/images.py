"""Frame files. Frames keep the channel order they have on disk (OpenCV's BGR,
which is what the RIFE models were trained on), so nothing here swaps channels."""
from __future__ import annotations

import os

import numpy as np

from rifebench.measure.quality import to_uint8


def save_png(path: str, frame: np.ndarray) -> None:
    import cv2

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    data = frame if frame.dtype == np.uint8 else to_uint8(frame)
    tmp = path + ".tmp.png"
    if not cv2.imwrite(tmp, data):
        raise OSError(f"could not write image {path}")
    os.replace(tmp, path)


def read_image(path: str) -> np.ndarray:
    """uint8 HxWx3 in the file's (BGR) order; OSError naming the file if unreadable."""
    import cv2

    if not os.path.isfile(path):
        raise OSError(f"missing image: {path}")
    data = cv2.imread(path, cv2.IMREAD_COLOR)
    if data is None:
        raise OSError(f"unreadable image: {path}")
    return data
