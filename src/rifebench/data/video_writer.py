"""The output video of video mode: FFV1 in Matroska (video_io.OUTPUT_*), written under
a temporary name in its folder, renamed into place, then read back and checked."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, cast

from rifebench.data.video_io import OUTPUT_CODEC, OUTPUT_EXT, OUTPUT_PIX_FMT, VideoError
from rifebench.data.video_probe import probe
from rifebench.fsutil import umask

if TYPE_CHECKING:
    from av.video.stream import VideoStream


class VideoWriter:
    """The output video, written under a temporary name in its folder and renamed
    into place by `close`, which then reads the file back to check it."""

    def __init__(self, path: Path, width: int, height: int, rate: Fraction):
        import av

        self.path, self.rate, self.size = Path(path), Fraction(rate), (width, height)
        fd, tmp = tempfile.mkstemp(prefix=".interpolated-", suffix=OUTPUT_EXT, dir=self.path.parent)
        os.fchmod(fd, 0o666 & ~umask())  # the mode open() would give it, not mkstemp's 0600
        os.close(fd)
        self._tmp = Path(tmp)
        self._c = av.open(tmp, "w", format="matroska")
        self._s = cast("VideoStream", self._c.add_stream(OUTPUT_CODEC, rate=self.rate))  # a video codec's stream
        self._s.width, self._s.height, self._s.pix_fmt = width, height, OUTPUT_PIX_FMT
        self.frames, self.encode_s = 0, 0.0

    def write(self, bgr) -> None:
        import av
        import numpy as np

        t0 = time.perf_counter()
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24")
        for packet in self._s.encode(frame):
            self._c.mux(packet)
        self.frames += 1
        self.encode_s += time.perf_counter() - t0

    def close(self) -> dict:
        """Flush, rename into place, and read back frame count, rate and size."""
        t0 = time.perf_counter()
        for packet in self._s.encode():
            self._c.mux(packet)
        self._c.close()
        os.replace(self._tmp, self.path)
        self.encode_s += time.perf_counter() - t0
        return {
            "path": str(self.path),
            "container": "matroska",
            "codec": OUTPUT_CODEC,
            "pix_fmt": OUTPUT_PIX_FMT,
            "lossless": True,
            "frames": self.frames,
            "rate": str(self.rate),
            "fps": float(self.rate),
            "width": self.size[0],
            "height": self.size[1],
            "read_back": read_back(self.path, self.frames, self.rate, self.size),
        }

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # whatever the container says, the partial file goes
            self._c.close()
        self._tmp.unlink(missing_ok=True)


def read_back(path: Path, frames: int, rate: Fraction, size: tuple[int, int]) -> dict:
    """What the written file says: its frame count (packets), rate and size, and whether
    they are what was written."""
    try:
        info = probe(str(path), need=1)
    except VideoError as exc:
        return {"ok": False, "error": str(exc)}
    got_rate = Fraction(info.rate)
    ok = (
        info.frames == frames
        and abs(float(got_rate) - float(rate)) <= 1e-3 * float(rate)
        and (info.width, info.height) == tuple(size)
    )
    return {"ok": ok, "frames": info.frames, "rate": info.rate, "width": info.width, "height": info.height}
