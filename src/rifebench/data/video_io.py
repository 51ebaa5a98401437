"""Video files through PyAV (FFmpeg bundled in the `av` wheel): what a path names,
opening it safely, and a decoding thread that runs ahead of the stream. What a file
says about itself is video_probe.py; the lossless output writer is video_writer.py.

Frames are handed over as uint8 HxWx3 in BGR order, the order the dataset
source reads PNGs in (OpenCV's) and the RIFE models were trained on, so a pair
decoded here and the same pair saved as PNG give the model identical input.
"""

from __future__ import annotations

import os
import queue
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rifebench.errors import RifebenchError
from rifebench.fsutil import kind_name

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".y4m")
MIN_FRAMES = 3
# The output: FFV1 in Matroska with bgr0 pixels, lossless for the model's 8-bit BGR
# frames at any size (no 4:2:0 subsampling, so odd widths and heights are fine).
OUTPUT_CODEC, OUTPUT_PIX_FMT, OUTPUT_EXT = "ffv1", "bgr0", ".mkv"
READ_AHEAD_BYTES = 256 * 1024 * 1024  # decoded frames held ahead of the stream (at most READ_AHEAD_FRAMES)
READ_AHEAD_FRAMES = 64
# The largest frame accepted, as the largest dummy frame (DATA_WIDTH x DATA_HEIGHT maxima), either way
# round: a header may declare 30000x30000, and FFmpeg then fails with a misleading errno.
MAX_SIDE, MAX_PIXELS = 15360, 15360 * 8640
MAX_SIZE_TEXT = f"frames of at most {MAX_SIDE}x8640 or 8640x{MAX_SIDE} pixels"
_Y4M_SIZE = re.compile(rb"YUV4MPEG2 (?:[^\n]* )?W(\d+) H(\d+)")
_END = object()


class VideoError(RifebenchError, RuntimeError):
    """A bad or unreadable video: the message names the file and what is wrong;
    `accepted`, where given, says what would be (the message ends with it)."""

    def __init__(self, message: str, accepted: str | None = None):
        super().__init__(message if accepted is None else f"{message} (accepted: {accepted})")
        self.message, self.accepted = message, accepted


def is_video_path(path) -> bool:
    """Video mode is decided by the name as given (a link's own name, not its target's)."""
    return path is not None and Path(str(path)).suffix.lower() in VIDEO_EXTENSIONS


def kind_of(path) -> str | None:
    """What `path` is, in words ("a regular file", "a FIFO (named pipe)", ...; a link
    says what it points to), without opening it; None when nothing is there."""
    try:
        mode = os.stat(path).st_mode  # follows links; never opens, so a FIFO cannot block
    except OSError:
        return "a link to a missing file" if os.path.islink(path) else None
    what = kind_name(mode)
    return f"a link to {os.path.realpath(path)}, {what}" if os.path.islink(path) else what


def path_problem(path, want: str) -> str | None:
    """None when `path` is `want` ("a regular file", "a folder"), after links;
    otherwise what it is instead, in words: "does not exist", "is a FIFO (named pipe), not ..."."""
    kind = kind_of(path)
    if kind is None:
        return "does not exist"
    return None if kind == want or kind.endswith(f", {want}") else f"is {kind}, not {want}"


def size_problem(width: int, height: int) -> str | None:
    """Why frames of width x height are refused, or None."""
    if max(width, height) <= MAX_SIDE and width * height <= MAX_PIXELS:
        return None
    return f"declares {width}x{height} frames"


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
    declared_frames: int | None = None  # what the container says it holds; None: it says nothing
    declared_from: str | None = None  # where that figure comes from, in words
    frame_interval_s: float | None = None  # the median interval between consecutive timestamps
    variable_rate: bool = False  # intervals that are not whole multiples of the median
    interval_range_ms: tuple[float, float] | None = None  # shortest and longest interval
    fingerprint: str | None = None  # sha256 (16 hex digits) of the first frames' pixels and size

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def expected_frames(self) -> int:
        """The frames a reader should get: what the container declares, where it
        declares more than its packets hold (a truncated or damaged file)."""
        return max(self.frames, self.declared_frames or 0)


def check_file(path: str) -> None:
    """A regular file, and for a y4m a declared size within the bound (FFmpeg itself
    fails on one with 'Device or resource busy'). Raises VideoError."""
    if why := path_problem(path, "a regular file"):
        raise VideoError(f"{path} {why}", None if why == "does not exist" else "a video file")
    try:
        with open(path, "rb") as f:
            head = f.readline(256)
    except OSError as exc:
        raise VideoError(f"{path} cannot be read ({exc.strerror})") from None
    if m := _Y4M_SIZE.match(head):
        width, height = int(m[1]), int(m[2])
        if why := size_problem(width, height):
            raise VideoError(f"{path} {why}", MAX_SIZE_TEXT)


def open_video(path: str):
    import av

    check_file(path)
    try:
        return av.open(path)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise VideoError(f"{path} is not a video FFmpeg can open ({why})") from None


def video_stream(container, path: str):
    if not container.streams.video:
        raise VideoError(f"{path} has no video stream")
    s = container.streams.video[0]
    if s.codec_context is None:
        tag = getattr(s, "codec_tag", None) or "unknown"
        raise VideoError(f"{path}: its video codec (tag {tag!r}) has no decoder in PyAV's FFmpeg (unsupported codec)")
    cc = s.codec_context
    if why := size_problem(cc.width, cc.height):
        raise VideoError(f"{path} {why}", MAX_SIZE_TEXT)
    return s


def frame_size(path: str) -> tuple[int, int] | None:
    """(height, width) from the container's header, without decoding; None if unreadable."""
    try:
        with open_video(path) as container:
            cc = video_stream(container, path).codec_context
            return (cc.height, cc.width) if cc.height and cc.width else None
    except VideoError:
        return None


class FrameReader:
    """Decodes the video in its own thread, ahead of the stream, into a bounded queue.
    `next()` returns (index, uint8 HxWx3 BGR, time in seconds or None) in order, None at
    the end, and raises VideoError for a decoding failure (a frame the decoder flags
    corrupt is one). `decode_s` is the thread's own decoding time."""

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
            with open_video(self.path) as container:
                frames = container.decode(video_stream(container, self.path))
                while not self._stop.is_set():
                    t0 = time.perf_counter()
                    frame = next(frames, None)
                    if frame is None:
                        break
                    if frame.is_corrupt:  # decoded with errors concealed: not the frame the file held
                        raise ValueError("the decoder found it damaged")
                    arr = frame.to_ndarray(format="bgr24")
                    self.decode_s += time.perf_counter() - t0
                    if not self._put((self.decoded, arr, frame.time)):
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
