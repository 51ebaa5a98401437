"""Video files through PyAV (FFmpeg bundled in the `av` wheel): probe, a decoding
thread that runs ahead of the stream, and the lossless output writer.

Frames are handed over as uint8 HxWx3 in BGR order, the order the dataset
source reads PNGs in (OpenCV's) and the RIFE models were trained on, so a pair
decoded here and the same pair saved as PNG give the model identical input.
"""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, cast

from rifebench.errors import RifebenchError
from rifebench.fsutil import umask

if TYPE_CHECKING:
    from av.video.stream import VideoStream

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".y4m")
MIN_FRAMES = 3
# The output: FFV1 in Matroska with bgr0 pixels, lossless for the model's 8-bit BGR
# frames at any size (no 4:2:0 subsampling, so odd widths and heights are fine).
OUTPUT_CODEC, OUTPUT_PIX_FMT, OUTPUT_EXT = "ffv1", "bgr0", ".mkv"
READ_AHEAD_BYTES = 256 * 1024 * 1024  # decoded frames held ahead of the stream (at most READ_AHEAD_FRAMES)
READ_AHEAD_FRAMES = 64
_END = object()


class VideoError(RifebenchError, RuntimeError):
    """A bad or unreadable video: the message names the file and what is wrong."""


def is_video_path(path) -> bool:
    return path is not None and Path(str(path)).suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class VideoInfo:
    path: str
    container: str
    codec: str
    width: int
    height: int
    rate: str  # exact, as "num/den"
    fps: float
    frames: int  # packets in the file, one per frame
    pix_fmt: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def _open(path: str):
    import av

    try:
        return av.open(path)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise VideoError(f"{path} is not a video FFmpeg can open ({why})") from None


def _stream(container, path: str):
    if not container.streams.video:
        raise VideoError(f"{path} has no video stream")
    s = container.streams.video[0]
    if s.codec_context is None:
        tag = getattr(s, "codec_tag", None) or "unknown"
        raise VideoError(f"{path}: its video codec (tag {tag!r}) has no decoder in PyAV's FFmpeg (unsupported codec)")
    return s


def _rate(s) -> Fraction:
    rate = s.average_rate or s.guessed_rate or s.base_rate
    return Fraction(rate) if rate else Fraction(25)  # FFmpeg's own default when a file states none


def probe(path: str, need: int = MIN_FRAMES) -> VideoInfo:
    """Open the file, count its frames (packets, without decoding) and decode the
    first `need`: a file that is not a video, an unsupported codec or a video
    shorter than `need` frames fails here, before any model is loaded."""
    import av

    with _open(path) as container:
        s = _stream(container, path)
        packets = decoded = 0
        try:
            for packet in container.demux(s):
                if packet.size and not packet.is_discard:  # discarded: trimmed by an edit list, never shown
                    packets += 1
                if decoded < need:  # demux ends with an empty packet, which flushes the decoder
                    decoded += len(s.codec_context.decode(packet))
        except av.error.FFmpegError as exc:
            raise VideoError(f"{path}: cannot decode frame {decoded} ({exc})") from None
        cc = s.codec_context
        info = VideoInfo(
            path,
            container.format.name,
            cc.name,
            cc.width,
            cc.height,
            str(_rate(s)),
            float(_rate(s)),
            packets,
            cc.pix_fmt,
        )
    if decoded < need or packets < need:
        raise VideoError(f"{path} has {min(decoded, packets)} frame(s) (accepted: a video of at least {need} frames)")
    return info


def frame_size(path: str) -> tuple[int, int] | None:
    """(height, width) from the container's header, without decoding; None if unreadable."""
    try:
        with _open(path) as container:
            cc = _stream(container, path).codec_context
            return (cc.height, cc.width) if cc.height and cc.width else None
    except VideoError:
        return None


class FrameReader:
    """Decodes the video in its own thread, ahead of the stream, into a bounded queue.
    `next()` returns (index, uint8 HxWx3 BGR) in order, None at the end, and raises
    VideoError for a decoding failure. `decode_s` is the thread's own decoding time."""

    def __init__(self, path: str, frame_bytes: int):
        self.path = path
        depth = max(2, min(READ_AHEAD_FRAMES, READ_AHEAD_BYTES // max(1, frame_bytes)))
        self._q: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self.decode_s, self.decoded = 0.0, 0
        self._thread = threading.Thread(target=self._run, name="rife-video-decode", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            with _open(self.path) as container:
                frames = container.decode(_stream(container, self.path))
                while not self._stop.is_set():
                    t0 = time.perf_counter()
                    frame = next(frames, None)
                    if frame is None:
                        break
                    arr = frame.to_ndarray(format="bgr24")
                    self.decode_s += time.perf_counter() - t0
                    if not self._put((self.decoded, arr)):
                        return
                    self.decoded += 1
            self._put(_END)
        except Exception as exc:  # noqa: BLE001 - handed to the stream, which names the frame
            self._put(VideoError(f"{self.path}: cannot decode frame {self.decoded} ({exc})"))

    def next(self):
        item = self._q.get()
        if item is _END:
            self._q.put(_END)  # later calls see the end too
            return None
        if isinstance(item, VideoError):
            self._q.put(item)
            raise item
        return item

    def ready(self) -> int:
        return self._q.qsize()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


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
