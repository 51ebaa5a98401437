"""results.json's `video` section and console lines for video mode. Knows files, not models.

Rates, each frames over the seconds of its own stage, per stream and for stream 0
(the one that writes the output video): decoding (the decoding thread's own
time), the model (interpolated frames over the timed inference), scoring and
encoding (after the window), and end to end: frames of output video (inputs and
interpolated, as written or as they would be) over the stream's window plus its
scoring and encoding after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rifebench.measure.metrics import rate
from rifebench.measure.records import StreamResult
from rifebench.report.schema import RunResult

NO_SCORES = "accuracy: 0 (VIDEO_GT=none: nothing scored, no quality verdict)"


def quality(cfg: Any, streams: list[StreamResult]) -> dict[str, Any] | None:
    from rifebench.data.video import merge_quality

    merged: dict[str, Any] | None = merge_quality(cfg, [r.quality for r in streams])
    return merged


def _stream_rates(cfg: Any, r: StreamResult) -> dict[str, Any]:
    q = r.quality or {}
    io = q.get("io") or {}
    out = q.get("output") or {}
    pairs = r.frames
    output_frames = pairs * (cfg.interpolation + 1) + 1 if pairs else 0
    until = r.scored_end or r.end
    return {
        "stream": r.id,
        "pairs": pairs,
        "output_frames": output_frames,
        "decode_fps": rate(io.get("decoded_frames", 0), io.get("decode_s")),
        "model_fps": rate(r.images, r.model_seconds),
        "score_fps": rate(q.get("scored", 0), io.get("score_s")) if q.get("scored") else None,
        "encode_fps": rate(out.get("frames", 0), out.get("encode_s")) if out else None,
        "end_to_end_output_fps": rate(output_frames, until - r.start) if until and r.start else None,
        "load_wait_s": io.get("load_wait_s"),
        "to_device_s": io.get("to_device_s"),
        "reuse_frames": q.get("reuse_frames"),
    }


def section(cfg: Any, streams: list[StreamResult]) -> dict[str, Any] | None:
    """The `video` section, or None outside video mode."""
    if cfg.mode != "video":
        return None
    got = [r for r in streams if r.quality]
    first = next((r for r in got if r.id == 0), got[0] if got else None)
    q = (first.quality if first else None) or {}
    return {
        "input": q.get("video"),
        "video_gt": cfg.video_gt,
        "step": q.get("step"),
        "pairs_in_video": q.get("pairs_in_video"),
        "pairs_per_stream": q.get("planned"),
        "streams_note": "each stream processes the same video from its first frame (min(NUM_INPUTS, pairs) "
        "pairs), as each stream runs the whole list in quality mode",
        "output": q.get("output"),
        "rates": _stream_rates(cfg, first) if first else None,
        "rates_per_stream": [_stream_rates(cfg, r) for r in got],
        "rates_basis": (__doc__ or "").split("\n\n", 1)[1].replace("\n", " ").strip(),
    }


def lines(run: RunResult) -> list[str]:
    """Console lines for the run's summary."""
    v = run.video
    if not v:
        return []

    def f(x: float | None, spec: str = ".2f") -> str:
        return "n/a" if x is None else format(x, spec)

    r = v.get("rates") or {}
    inp = v.get("input") or {}
    out = [
        f"video: {inp.get('width')}x{inp.get('height')} {inp.get('codec')} at {f(inp.get('fps'))} fps, "
        f"VIDEO_GT={v['video_gt']}, {v.get('pairs_per_stream')} pairs per stream; end to end "
        f"{f(r.get('end_to_end_output_fps'))} output fps, model {f(r.get('model_fps'))}, decode "
        f"{f(r.get('decode_fps'))}, score {f(r.get('score_fps'))}, encode {f(r.get('encode_fps'))} fps"
    ]
    reuse = r.get("reuse_frames") or {}
    if reuse.get("enabled"):
        out.append(f"REUSE_FRAMES: {reuse.get('hits')} hits, {reuse.get('misses')} misses")
    o = v.get("output")
    if o:
        check = "checked" if (o.get("read_back") or {}).get("ok") else f"CHECK FAILED {o.get('read_back')}"
        cut = "" if o.get("complete") else ", cut short by the failure"
        out.append(
            f"output video: {o['path']} ({o['codec']}, lossless, {o['frames']} frames at {o['rate']} fps, {check}{cut})"
        )
    return out


def log_lines(run: RunResult, log: Callable[[str], None]) -> None:
    for text in lines(run):
        log(text)


def add(run: RunResult, cfg: Any, streams: list[StreamResult]) -> None:
    """Put the `video` section into results.json's document (video mode only)."""
    if cfg.mode != "video":
        return
    run.video = section(cfg, streams)
    if run.quality is None:
        run.metrics.accuracy_note = "VIDEO_GT=none: nothing is scored; accuracy is 0 and no verdict is made"
