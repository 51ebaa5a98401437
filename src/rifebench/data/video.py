"""Video mode: a video file in, interpolated frames (and an output video) out.

VIDEO_GT=drop (the default) scores the model on any video without a separate
ground truth: with INTERPOLATION=N every (N+1)-th frame is an input and the N
frames between two inputs are the ground truth of the N frames interpolated at
t = i/(N+1). VIDEO_GT=none interpolates every consecutive pair of the full-rate
video and scores nothing. A stream takes the video's pairs in order, from the
first, up to NUM_INPUTS of them (as a stream takes the dataset list in quality mode).

As in quality mode nothing here runs inside the timed region: a thread decodes
ahead (video_io.FrameReader) and `get` moves a ready pair to the device
(REUSE_FRAMES: the frame two consecutive pairs share is prepared once). The
predictions are scored, and the output video written, by scoring.FrameScorer.
"""

from __future__ import annotations

import gc
import time
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

from rifebench.data.batch import Batch
from rifebench.data.video_io import MIN_FRAMES, OUTPUT_EXT, FrameReader, VideoError, VideoInfo
from rifebench.data.video_probe import probe
from rifebench.data.vimeo import to_model_input
from rifebench.measure import quality

ACCEPTED = "a video file (mp4, mkv, webm, mov, avi or y4m) that PyAV's FFmpeg decodes, of at least 3 frames"
OUTPUT_NAME = f"interpolated{OUTPUT_EXT}"


def step_of(cfg) -> int:
    """Frames from one input to the next: N+1 when the N between are ground truth."""
    return cfg.interpolation + 1 if cfg.video_gt == "drop" else 1


def check(cfg) -> VideoInfo:
    """The start-up check (before any model loads): a decodable video with at least
    one pair of inputs, and at least 3 frames; with frame dropping, at a constant rate.
    Raises VideoError, its message ending with what is accepted."""
    try:
        info = probe(cfg.dataset_dir, need=max(MIN_FRAMES, step_of(cfg) + 1))
    except VideoError as exc:
        if exc.accepted is None:
            raise VideoError(exc.message, ACCEPTED) from None
        raise
    if cfg.video_gt == "drop" and info.variable_rate:
        # Frame dropping scores the frames between two inputs at t = i/(N+1); with uneven
        # timestamps they lie elsewhere. Refused rather than scored at their true time:
        # not every model takes an arbitrary t, and a batch shares one.
        low, high = info.interval_range_ms or (0.0, 0.0)
        raise VideoError(
            f"{info.path} has a variable frame rate (frames {low:g} to {high:g} ms apart), so the frames "
            f"between two inputs do not lie at t = i/(INTERPOLATION+1) as frame dropping scores them",
            "a constant-frame-rate video, or --video-gt none (VIDEO_GT=none), which scores nothing",
        )
    return info


def output_rate(info: VideoInfo, cfg) -> Fraction:
    """(N+1) times the rate of the frames fed in: the input's own rate with frame
    dropping (the output lines up frame for frame with the input), (N+1)x with none."""
    return Fraction(info.rate) * (cfg.interpolation + 1) / step_of(cfg)


class VideoSource:
    """Consecutive pairs of a video (source.Source); see the module's docstring."""

    endless = False
    checks_quality = False  # by itself: with its scorer (scoring.scored_video) it is checked

    def __init__(self, cfg, interp, stream_id: int = 0, info: VideoInfo | None = None):
        self.cfg, self.interp, self.stream_id = cfg, interp, stream_id
        self.info = info or check(cfg)
        self.n, self.step, self.drop = cfg.interpolation, step_of(cfg), cfg.video_gt == "drop"
        # Planned from what the container declares: a file holding fewer frames fails
        # where they run out (README "Bad input"), never passes as a shorter video.
        self.pairs = (self.info.expected_frames - 1) // self.step
        self.planned = min(self.pairs, cfg.num_inputs)
        self.shape = (self.info.height, self.info.width, 3)
        self._reader: FrameReader | None = None
        self.decode = {"decode_s": 0.0, "decoded_frames": 0}
        self._generation = -1
        self._restart()
        self.error: str | None = None  # the frame that failed to decode: the stream stops there
        self.io = {"load_wait_s": 0.0, "to_device_s": 0.0}
        self.reuse = {"hits": 0, "misses": 0}

    def __len__(self) -> int:
        return self.planned

    def _restart(self) -> None:
        """Decode again from the first frame (warm-up wrapped around, or `rewind`)."""
        self._stop_reader()
        self._reader = FrameReader(self.info.path, self.info.width * self.info.height * 3)
        self._generation += 1  # REUSE_FRAMES keys: a frame of an earlier pass never hits
        self._pos, self._next_pair = 0, 0
        self._last_time: float | None = None  # the timestamp of frame _pos - 1
        self._broken: VideoError | None = None  # why the frame at _pos cannot be served: raised again
        self._held: dict[int, Any] = {}  # decoded frames (uint8 HxWx3) still needed, by index
        self._tensors: dict[int, Any] = {}  # model inputs of the latest frames, by index

    @property
    def reader(self) -> FrameReader:
        if self._reader is None:
            raise VideoError(f"{self.info.path}: read after the source was closed")
        return self._reader

    def rewind(self, wait_s: float = 10.0) -> None:
        """After the warm-up: start decoding from the first frame again, and give the
        reader a moment to fill its queue so the window does not start on an empty one."""
        self._restart()
        self.reuse = {"hits": 0, "misses": 0}  # the timed pass's own counts, as the io times below
        self.io = dict.fromkeys(self.io, 0.0)
        deadline = time.monotonic() + wait_s
        want = min(4, self.planned * self.step + 1)
        while self.reader.ready() < want and time.monotonic() < deadline and self.reader.alive():
            time.sleep(0.005)
        gc.collect()  # the warm-up pass's decoder objects, freed now rather than by a collection in the window

    def _frame(self, i: int):
        """Frame i (uint8 HxWx3 BGR), reading forward; raises VideoError."""
        while self._pos <= i:
            if self._broken is not None:  # the bad frame was read: the next one must not take its place
                raise self._broken
            item = self.reader.next()
            if item is None:
                raise VideoError(self._ended())
            index, arr, when = item
            try:
                self._check_time(index, when)
                if arr.shape != self.shape:
                    raise VideoError(
                        f"{self.info.path}: frame {index} is {arr.shape[1]}x{arr.shape[0]}, the frames "
                        f"before it {self.shape[1]}x{self.shape[0]} (accepted: one frame size throughout)"
                    )
            except VideoError as exc:
                self._broken = exc
                raise
            self._held[index] = arr
            self._pos += 1
        return self._held[i]

    def _ended(self) -> str:
        info = self.info
        if info.declared_frames and info.declared_frames > self._pos:
            return (
                f"{info.path} ended after {self._pos} frames where {info.declared_from} declares "
                f"{info.declared_frames}: the file is truncated or damaged"
            )
        return f"{info.path} ended after {self._pos} frames where it holds {info.frames} packets"

    def _check_time(self, index: int, when: float | None) -> None:
        """Frames missing between two decoded ones (a damaged file, or a decoder that
        dropped one) would shift every later frame's place: the stream stops there."""
        step, last = self.info.frame_interval_s, self._last_time
        self._last_time = when
        if not step or self.info.variable_rate or when is None or last is None:
            return
        k = round((when - last) / step)
        if k >= 2:
            raise VideoError(
                f"{self.info.path}: {k - 1} frame(s) missing after frame {index - 1} (timestamps "
                f"{last:.3f} s -> {when:.3f} s at {1 / step:.3f} fps): the file is damaged"
            )

    def _tensor(self, i: int):
        """Frame i as a model input; the one two pairs share is converted once."""
        if i not in self._tensors:
            self._tensors = {k: v for k, v in self._tensors.items() if k > i - 2 * self.step}
            self._tensors[i] = to_model_input(self._frame(i))
        return self._tensors[i]

    def _pick(self, index: int, count: int) -> list[dict]:
        if index != self._next_pair and (index * self.step < self._pos and index * self.step not in self._held):
            self._restart()
        self._held = {k: v for k, v in self._held.items() if k >= index * self.step}
        picked: list[dict[str, Any]] = []
        for p in range(index, min(index + count, self.planned)):
            first, last = p * self.step, (p + 1) * self.step
            try:
                f0 = self._frame(first)
                gts = [self._frame(i) for i in range(first + 1, last)] if self.drop else []
                f1 = self._frame(last)
            except VideoError as exc:
                if picked:  # the batch so far is good: the bad frame fails the next one
                    break
                self.error = str(exc)
                raise
            picked.append({"pair": p, "first": first, "last": last, "f0": f0, "gts": gts, "f1": f1})
        self._next_pair = picked[-1]["pair"] + 1
        return picked

    def get(self, index: int, count: int = 1) -> Batch:
        """Up to `count` consecutive pairs from pair `index`, as one batch on the device."""
        import torch

        t0 = time.monotonic()
        picked = self._pick(index, count)
        firsts = [self._tensor(m["first"]) for m in picked]
        lasts = [self._tensor(m["last"]) for m in picked]
        t1 = time.monotonic()
        hits = self.interp.reuse["hits"]
        if len(picked) == 1:  # REUSE_FRAMES names each frame (its index in this pass over the video)
            img0 = self.interp.prepare(firsts[0], key=(self._generation, picked[0]["first"]))
            img1 = self.interp.prepare(lasts[0], key=(self._generation, picked[0]["last"]))
        else:
            img0, img1 = self.interp.prepare(torch.cat(firsts)), self.interp.prepare(torch.cat(lasts))
        if self.interp.reuse_frames:
            got = self.interp.reuse["hits"] - hits
            self.reuse["hits"] += got
            self.reuse["misses"] += 2 * len(picked) - got
        self.io["load_wait_s"] += t1 - t0
        self.io["to_device_s"] += time.monotonic() - t1
        return Batch(index, img0, img1, picked)

    def release(self, batch: Batch) -> None:
        """Nothing to do: the reader thread decodes ahead on its own."""

    def close(self) -> None:
        """Stop decoding."""
        self._stop_reader()

    def _stop_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self.decode["decode_s"] += self._reader.decode_s
            self.decode["decoded_frames"] += self._reader.decoded
            self._reader = None


def merge_quality(cfg, per_stream: list[dict | None]) -> dict | None:
    """The quality section in video mode: every interpolated frame scored against the
    frame it replaces, with quality mode's pass rate and verdict; None with VIDEO_GT=none."""
    if cfg.video_gt != "drop":
        return None
    # Each scored frame is a record of its own (index = its frame number), so quality
    # mode's merge applies with one checked frame per record.
    one = SimpleNamespace(min_psnr_db=cfg.min_psnr_db, min_pass_pct=cfg.min_pass_pct, interpolation=1)
    q = quality.merge(one, per_stream)
    n = cfg.interpolation
    planned = max((s.get("planned_frames", 0) for s in per_stream if s), default=0)
    note = (
        f"frame dropping: frames 0, {n + 1}, {2 * (n + 1)}, ... are the inputs and the {n} frame(s) between two "
        f"inputs the ground truth of those interpolated at t = i/{n + 1}; every interpolated frame is checked"
    )
    if q["verdict"] == "incomplete":
        note += f"; incomplete: {q['tested']} of {planned} frames were scored before the run stopped"
    q.update(
        interpolation=n,
        checked_frame_per_pair="all",
        unchecked_frames_per_pair=0,
        planned=planned,
        note=note,
        ground_truth="frame dropping (VIDEO_GT=drop)",
        streams_counting="each stream processes the same video; each frame is counted once, with the worst "
        "PSNR and SSIM any stream measured",
    )
    return q
