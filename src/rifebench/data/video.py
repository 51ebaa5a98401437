"""Video mode: a video file in, interpolated frames (and an output video) out.

VIDEO_GT=drop (the default) scores the model on any video without a separate
ground truth: with INTERPOLATION=N every (N+1)-th frame is an input and the N
frames between two inputs are the ground truth of the N frames interpolated at
t = i/(N+1). VIDEO_GT=none interpolates every consecutive pair of the full-rate
video and scores nothing. A stream takes the video's pairs in order, from the
first, up to NUM_INPUTS of them (as a stream takes the dataset list in quality mode).

As in quality mode nothing here runs inside the timed region: a thread decodes
ahead (video_io.FrameReader), `get` moves a ready pair to the device (REUSE_FRAMES:
the frame two consecutive pairs share is prepared once), `consume` keeps the
predictions as 8-bit host frames, and `finish`, after the window, scores them
and writes the output video (stream 0, with --saveimages or SAVE_VIDEO).
"""

from __future__ import annotations

import gc
import time
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

from rifebench.data.batch import Backlog, Batch
from rifebench.data.video_io import MIN_FRAMES, OUTPUT_EXT, FrameReader, VideoError, VideoInfo, VideoWriter, probe
from rifebench.data.vimeo import to_model_input, to_uint8_device
from rifebench.measure import quality

ACCEPTED = "a video file (mp4, mkv, webm, mov, avi or y4m) that PyAV's FFmpeg decodes, of at least 3 frames"
OUTPUT_NAME = f"interpolated{OUTPUT_EXT}"


def step_of(cfg) -> int:
    """Frames from one input to the next: N+1 when the N between are ground truth."""
    return cfg.interpolation + 1 if cfg.video_gt == "drop" else 1


def check(cfg) -> VideoInfo:
    """The start-up check (before any model loads): a decodable video with at least
    one pair of inputs, and at least 3 frames. Raises VideoError."""
    return probe(cfg.dataset_dir, need=max(MIN_FRAMES, step_of(cfg) + 1))


def output_rate(info: VideoInfo, cfg) -> Fraction:
    """(N+1) times the rate of the frames fed in: the input's own rate with frame
    dropping (the output lines up frame for frame with the input), (N+1)x with none."""
    return Fraction(info.rate) * (cfg.interpolation + 1) / step_of(cfg)


class VideoSource:
    """Consecutive pairs of a video; see the module's docstring."""

    checks_quality = True  # the stream keeps and scores (or writes) the outputs after the window

    def __init__(self, cfg, interp, stream_id: int = 0, info: VideoInfo | None = None):
        self.cfg, self.interp, self.stream_id = cfg, interp, stream_id
        self.info = info or check(cfg)
        self.n, self.step, self.drop = cfg.interpolation, step_of(cfg), cfg.video_gt == "drop"
        self.pairs = (self.info.frames - 1) // self.step
        self.planned = min(self.pairs, cfg.num_inputs)
        self.shape = (self.info.height, self.info.width, 3)
        # Every stream runs the same video; one of them writing the output is enough.
        self.writes = bool(cfg.saveimages or cfg.save_video) and stream_id == 0
        self.output_path = Path(cfg.output_dir) / OUTPUT_NAME
        self._writer: VideoWriter | None = None
        self._output: dict | None = None
        self._reader: FrameReader | None = None
        self._decode = {"decode_s": 0.0, "decoded_frames": 0}
        self._generation = -1
        self._restart()
        self._backlog = Backlog()  # (meta with its ground truth, {k: uint8 HxWx3}) not scored yet
        self._frames: list[dict] = []
        self._consumed = 0
        self._error: str | None = None
        self._io = {"load_wait_s": 0.0, "to_device_s": 0.0, "copy_s": 0.0, "score_s": 0.0}
        self._reuse = {"hits": 0, "misses": 0}

    def __len__(self) -> int:
        return self.planned

    # -- input side -------------------------------------------------------------------------
    def _restart(self) -> None:
        """Decode again from the first frame (warm-up wrapped around, or `rewind`)."""
        self._stop_reader()
        self._reader = FrameReader(self.info.path, self.info.width * self.info.height * 3)
        self._generation += 1  # REUSE_FRAMES keys: a frame of an earlier pass never hits
        self._pos, self._held, self._tensors, self._next_pair = 0, {}, {}, 0

    def rewind(self, wait_s: float = 10.0) -> None:
        """After the warm-up: start decoding from the first frame again, and give the
        reader a moment to fill its queue so the window does not start on an empty one."""
        self._restart()
        self._reuse = {"hits": 0, "misses": 0}  # the timed pass's own counts, as the io times below
        self._io = dict.fromkeys(self._io, 0.0)
        deadline = time.monotonic() + wait_s
        want = min(4, self.planned * self.step + 1)
        while self._reader.ready() < want and time.monotonic() < deadline and self._reader.alive():
            time.sleep(0.005)
        gc.collect()  # the warm-up pass's decoder objects, freed now rather than by a collection in the window

    def _frame(self, i: int):
        """Frame i (uint8 HxWx3 BGR), reading forward; raises VideoError."""
        while self._pos <= i:
            item = self._reader.next()
            if item is None:
                raise VideoError(
                    f"{self.info.path} ended after {self._pos} frames (its container holds {self.info.frames} packets)"
                )
            index, arr = item
            if arr.shape != self.shape:
                raise VideoError(
                    f"{self.info.path}: frame {index} is {arr.shape[1]}x{arr.shape[0]}, the frames "
                    f"before it {self.shape[1]}x{self.shape[0]} (accepted: one frame size throughout)"
                )
            self._held[index] = arr
            self._pos += 1
        return self._held[i]

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
        picked = []
        for p in range(index, min(index + count, self.planned)):
            first, last = p * self.step, (p + 1) * self.step
            try:
                f0 = self._frame(first)
                gts = [self._frame(i) for i in range(first + 1, last)] if self.drop else []
                f1 = self._frame(last)
            except VideoError as exc:
                if picked:  # the batch so far is good: the bad frame fails the next one
                    break
                self._error = str(exc)
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
            self._reuse["hits"] += got
            self._reuse["misses"] += 2 * len(picked) - got
        self._io["load_wait_s"] += t1 - t0
        self._io["to_device_s"] += time.monotonic() - t1
        return Batch(index, img0, img1, picked)

    # -- output side ------------------------------------------------------------------------
    def consume(self, batch: Batch, outs) -> None:
        """Inside the window: keep the predictions as 8-bit host frames for `finish`."""
        t0 = time.monotonic()
        keep = self.drop or self.writes
        for j, meta in enumerate(batch.metas):
            host = {k: to_uint8_device(outs[k][j]) for k in range(self.n)} if keep else {}
            self._backlog.add(meta, host, sum(h.nbytes for h in host.values()) + sum(g.nbytes for g in meta["gts"]))
        self._consumed += batch.size
        self._io["copy_s"] += time.monotonic() - t0
        if self._backlog.full:  # memory first: score the backlog now, and say so
            self._backlog.scored_in_window += len(self._backlog)
            self.finish()

    def finish(self) -> None:
        """Score and write every kept prediction, in order; raises the first VideoError."""
        try:
            for meta, host in self._backlog.drain():
                self._score(meta, host)
                self._encode(meta, host)
            if self._writer is not None and self._consumed >= self.planned:
                self._close_writer()
        except VideoError as exc:
            self._error = str(exc)
            raise

    def _score(self, meta: dict, host: dict) -> None:
        t0 = time.monotonic()
        for k, gt in enumerate(meta["gts"]):
            index = meta["first"] + k + 1
            self._frames.append(
                {
                    "index": index,
                    "entry": f"frame {index}",
                    "pair": meta["pair"],
                    "t": (k + 1) / (self.n + 1),
                    "psnr": quality.psnr(gt, host[k]),
                    "ssim": quality.ssim(gt, host[k]),
                }
            )
        self._io["score_s"] += time.monotonic() - t0

    def _encode(self, meta: dict, host: dict) -> None:
        if not self.writes:
            return
        try:
            if self._writer is None:
                self._writer = VideoWriter(
                    self.output_path, self.info.width, self.info.height, output_rate(self.info, self.cfg)
                )
                self._writer.write(meta["f0"])
            for k in range(self.n):
                self._writer.write(host[k])
            self._writer.write(meta["f1"])
        except (OSError, ValueError) as exc:
            raise VideoError(f"cannot write {self.output_path}: {exc}") from None

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        try:
            self._output = writer.close()
        except (OSError, ValueError) as exc:
            writer.abort()
            raise VideoError(f"cannot write {self.output_path}: {exc}") from None
        self._output["encode_s"] = round(writer.encode_s, 4)
        self._output["complete"] = self._consumed >= self.planned and self._error is None
        if not self._output["read_back"]["ok"]:
            raise VideoError(
                f"{self.output_path}: read back as {self._output['read_back']}, written "
                f"{writer.frames} frames at {writer.rate} fps {writer.size[0]}x{writer.size[1]}"
            )

    def close(self) -> None:
        """Stop decoding; an output video cut short (a failed run) is still closed and kept."""
        self._stop_reader()
        if self._writer is not None:
            try:
                self._close_writer()
            except VideoError as exc:
                self._error = self._error or str(exc)

    def _stop_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._decode["decode_s"] += self._reader.decode_s
            self._decode["decoded_frames"] += self._reader.decoded
            self._reader = None

    def summary(self) -> dict:
        planned_frames = self.planned * self.n if self.drop else 0
        return {
            "stream": self.stream_id,
            "dataset_dir": str(self.cfg.dataset_dir),
            "layout": "video",
            "video": self.info.to_dict(),
            "video_gt": self.cfg.video_gt,
            "step": self.step,
            "pairs_in_video": self.pairs,
            "planned": self.planned,
            "planned_frames": planned_frames,
            "consumed": self._consumed,
            "scored": len(self._frames),
            "complete": (
                self._error is None and self._consumed >= self.planned and len(self._frames) == planned_frames
            ),
            "error": self._error,
            "output": self._output,
            "reuse_frames": dict(self._reuse, enabled=bool(self.interp.reuse_frames)),
            "scoring": "after the timed window"
            + (
                f" ({self._backlog.scored_in_window} pairs inside it: the kept predictions reached the memory bound)"
                if self._backlog.scored_in_window
                else ""
            ),
            "io": {k: round(v, 4) for k, v in {**self._io, **self._decode}.items()},
            "frames": self._frames,
        }


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
