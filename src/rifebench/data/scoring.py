"""The scorers (source.Scorer) of quality mode and video mode.

Both keep the predictions as 8-bit host frames inside the timed window (a
Backlog, bounded in bytes) and score them after it with measure/quality.py, as
LoadGen's accuracy mode scores logged outputs: the two modes share one
throughput definition. TripletScorer checks the frame at t = 0.5 of each
triplet against its middle frame and saves the frames (--saveimages);
FrameScorer checks every frame a video's inputs dropped and writes the output
video (stream 0, with --saveimages or SAVE_VIDEO).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rifebench.data.batch import Backlog, Batch
from rifebench.data.images import save_png
from rifebench.data.source import Scored
from rifebench.data.video_io import VideoError
from rifebench.data.video_writer import VideoWriter
from rifebench.data.vimeo import DatasetError, image_name
from rifebench.measure import quality

if TYPE_CHECKING:
    from rifebench.data.video import VideoSource
    from rifebench.data.vimeo import DatasetSource


def to_uint8_device(frame: Any) -> Any:
    """3xHxW prediction in [0, 1] (any float dtype, any device) -> HxWx3 uint8 on the
    host: x255, rounded half to even, clipped, as quality.to_uint8 does."""
    import torch

    u8 = (frame.float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return u8.permute(1, 2, 0).contiguous().cpu().numpy()


class KeptScorer:
    """What both scorers share: predictions kept inside the window, scored in
    order after it, the first failure (`failure`) recorded and raised."""

    failure: type[Exception] = Exception
    inside: str = ""  # the summary's words for pairs scored inside the window

    def __init__(self, kept: Sequence[int]):
        self.kept = list(kept)  # the output frames (k of N per pair) kept for scoring or saving
        self._backlog = Backlog()  # (meta, {k: uint8 HxWx3}) not scored yet
        self._consumed = 0
        self._error: str | None = None
        self._io = {"copy_s": 0.0, "score_s": 0.0}

    def consume(self, batch: Batch, outs: Sequence[Any]) -> None:
        """Inside the window: keep the batch's predictions as 8-bit host frames,
        each pair on its own; scoring and saving wait for `finish`."""
        t0 = time.monotonic()
        for j, meta in enumerate(batch.metas):
            # Rounded to 8 bits on the device, as the RIFE evaluation rounds before scoring:
            # a quarter of the bytes to copy and keep, nothing lost for PSNR or SSIM.
            host = {k: to_uint8_device(outs[k][j]) for k in self.kept}
            self._backlog.add(meta, host, sum(h.nbytes for h in host.values()) + self._meta_bytes(meta))
        self._consumed += batch.size
        self._io["copy_s"] += time.monotonic() - t0
        if self._backlog.full:  # memory first: score the backlog now, and say so
            self._backlog.scored_in_window += len(self._backlog)
            self.finish()

    def finish(self) -> None:
        """Score (and save) every kept prediction, in order; raises the first failure."""
        try:
            for meta, host in self._backlog.drain():
                self._score(meta, host)
            self._finished()
        except self.failure as exc:
            self._error = str(exc)
            raise

    def close(self) -> None:
        """Predictions not scored yet are dropped (an aborted run)."""

    def _meta_bytes(self, meta: Any) -> int:
        return 0

    def _score(self, meta: Any, host: dict[int, Any]) -> None:
        raise NotImplementedError

    def _finished(self) -> None:
        pass

    def _scoring_note(self) -> str:
        n = self._backlog.scored_in_window
        return "after the timed window" + (
            f" ({n} {self.inside}: the kept predictions reached the memory bound)" if n else ""
        )


class TripletScorer(KeptScorer):
    """Quality mode: the frame at t = 0.5 against the triplet's middle frame."""

    failure = DatasetError
    inside = "pairs scored inside it"

    def __init__(self, cfg: Any, source: DatasetSource, stream_id: int = 0):
        self.cfg, self.source, self.stream_id = cfg, source, stream_id
        self.n = cfg.interpolation
        self.checked = quality.checked_frame(self.n)
        # Every stream runs the same list; one of them writing the images is enough.
        self.images_dir = Path(cfg.output_dir) / "images" if cfg.saveimages and stream_id == 0 else None
        super().__init__([k for k in range(self.n) if self.images_dir is not None or k == self.checked])
        self._frames: dict[int, dict[str, Any]] = {}
        self._saved = 0

    def finish(self) -> None:
        t0 = time.monotonic()
        try:
            super().finish()
        finally:
            self._io["score_s"] += time.monotonic() - t0

    def _score(self, meta: dict[str, Any], host: dict[int, Any]) -> None:
        for k, u8 in sorted(host.items()):
            if self.images_dir is not None:
                path = self.images_dir / image_name(meta["entry"], k + 1, self.n)
                try:
                    save_png(str(path), u8)
                except OSError as exc:
                    raise DatasetError(f"cannot write {path}: {exc}") from None
                self._saved += 1
            if k == self.checked:
                self._frames[meta["index"]] = {
                    "index": meta["index"],
                    "entry": meta["entry"],
                    "psnr": quality.psnr(meta["gt"], u8),
                    "ssim": quality.ssim(meta["gt"], u8),
                }

    def summary(self) -> dict[str, Any]:
        src = self.source
        frames = [self._frames[i] for i in sorted(self._frames)]
        error = self._error or src.error  # a failure to score comes after any failure to load
        return {
            "stream": self.stream_id,
            "dataset_dir": str(self.cfg.dataset_dir),
            "layout": src.layout,
            "list_size": src.list_size,
            "planned": len(src),
            "consumed": self._consumed,
            "scored": len(frames),
            "complete": (
                error is None and self._consumed >= len(src) and (self.checked is None or len(frames) == len(src))
            ),
            "error": error,
            "images_dir": str(self.images_dir) if self.images_dir is not None else None,
            "saved_images": self._saved,
            "scoring": self._scoring_note(),
            "io": {k: round(v, 4) for k, v in {**src.io, **self._io}.items()},
            "frames": frames,
        }


class FrameScorer(KeptScorer):
    """Video mode: every frame between two inputs against the frame the inputs
    dropped (VIDEO_GT=drop), and the output video (stream 0, when asked)."""

    failure = VideoError
    inside = "pairs inside it"

    def __init__(self, cfg: Any, source: VideoSource, stream_id: int = 0):
        from rifebench.data.video import OUTPUT_NAME

        self.cfg, self.source, self.stream_id = cfg, source, stream_id
        self.n, self.drop = cfg.interpolation, cfg.video_gt == "drop"
        # Every stream runs the same video; one of them writing the output is enough.
        self.writes = bool(cfg.saveimages or cfg.save_video) and stream_id == 0
        self.output_path = Path(cfg.output_dir) / OUTPUT_NAME
        super().__init__(range(self.n) if self.drop or self.writes else ())
        self._writer: VideoWriter | None = None
        self._output: dict[str, Any] | None = None
        self._frames: list[dict[str, Any]] = []
        self._close_error: str | None = None

    def _meta_bytes(self, meta: dict[str, Any]) -> int:
        return sum(g.nbytes for g in meta["gts"])  # the ground truth is kept with the predictions

    def _error_now(self) -> str | None:
        # One failure per stream, as it happened first: scoring's after loading's, closing's last.
        return self._error or self.source.error or self._close_error

    def _score(self, meta: dict[str, Any], host: dict[int, Any]) -> None:
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
        self._encode(meta, host)

    def _finished(self) -> None:
        if self._writer is not None and self._consumed >= self.source.planned:
            self._close_writer()

    def _encode(self, meta: dict[str, Any], host: dict[int, Any]) -> None:
        if not self.writes:
            return
        from rifebench.data.video import output_rate

        info = self.source.info
        try:
            if self._writer is None:
                self._writer = VideoWriter(self.output_path, info.width, info.height, output_rate(info, self.cfg))
                self._writer.write(meta["f0"])
            for k in range(self.n):
                self._writer.write(host[k])
            self._writer.write(meta["f1"])
        except (OSError, ValueError) as exc:
            raise VideoError(f"cannot write {self.output_path}: {exc}") from None

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        assert writer is not None, "called with a writer open"
        try:
            output = writer.close()
        except (OSError, ValueError) as exc:
            writer.abort()
            raise VideoError(f"cannot write {self.output_path}: {exc}") from None
        output["encode_s"] = round(writer.encode_s, 4)
        output["complete"] = self._consumed >= self.source.planned and self._error_now() is None
        self._output = output
        if not output["read_back"]["ok"]:
            raise VideoError(
                f"{self.output_path}: read back as {output['read_back']}, written "
                f"{writer.frames} frames at {writer.rate} fps {writer.size[0]}x{writer.size[1]}"
            )

    def close(self) -> None:
        """An output video cut short (a failed run) is still closed and kept."""
        if self._writer is not None:
            try:
                self._close_writer()
            except VideoError as exc:
                self._close_error = str(exc)

    def summary(self) -> dict[str, Any]:
        src = self.source
        planned_frames = src.planned * self.n if self.drop else 0
        error = self._error_now()
        return {
            "stream": self.stream_id,
            "dataset_dir": str(self.cfg.dataset_dir),
            "layout": "video",
            "video": src.info.to_dict(),
            "video_gt": self.cfg.video_gt,
            "step": src.step,
            "pairs_in_video": src.pairs,
            "planned": src.planned,
            "planned_frames": planned_frames,
            "consumed": self._consumed,
            "scored": len(self._frames),
            "complete": error is None and self._consumed >= src.planned and len(self._frames) == planned_frames,
            "error": error,
            "output": self._output,
            "reuse_frames": dict(src.reuse, enabled=bool(src.interp.reuse_frames)),
            "scoring": self._scoring_note(),
            "io": {k: round(v, 4) for k, v in {**src.io, **self._io, **src.decode}.items()},
            "frames": self._frames,
        }


def scored_dataset(cfg: Any, interp: Any, stream_id: int = 0) -> Scored:
    """Quality mode's source and scorer."""
    from rifebench.data.vimeo import DatasetSource

    source = DatasetSource(cfg, interp, stream_id)
    return Scored(source, TripletScorer(cfg, source, stream_id))


def scored_video(cfg: Any, interp: Any, stream_id: int = 0, info: Any = None) -> Scored:
    """Video mode's source and scorer."""
    from rifebench.data.video import VideoSource

    source = VideoSource(cfg, interp, stream_id, info)
    return Scored(source, FrameScorer(cfg, source, stream_id))
