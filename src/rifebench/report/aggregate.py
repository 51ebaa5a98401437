"""The streams of one repetition combined, honestly, and each stream summarised.

Combined throughput is total frames over (last end - first start) on the one
monotonic clock all streams share; combined latency percentiles come from all
streams' raw samples, never from averages of averages.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from rifebench.measure.metrics import latency_stats, rate
from rifebench.measure.records import Latency, StreamResult
from rifebench.report.schema import StreamSummary, Window


@dataclass
class Combined:
    """The figures of all streams of one repetition together."""

    frames: int = 0
    images: int = 0
    interpolation: int | None = None
    duration_s: float | None = None
    throughput: float | None = None  # images / the window
    end_to_end_throughput: float | None = None  # images / (window + scoring after it)
    throughput_pairs_s: float | None = None
    latency_ms: Latency = field(default_factory=Latency)
    latency_per_pair_ms: Latency = field(default_factory=Latency)
    host_submit_ms: Latency | None = None
    warmup_pairs: int = 0
    warmup_s: float | None = None
    window: Window | None = None


def aggregate(streams: list[StreamResult], interpolation: int) -> Combined:
    """Combined metrics over the streams that produced a result."""
    timed = [r for r in streams if r.timed]
    if not timed:
        return Combined()
    first_start = min(_num(r.start) for r in timed)
    last_end = max(_num(r.end) for r in timed)
    overlap = min(_num(r.end) for r in timed) - max(_num(r.start) for r in timed)
    wall = last_end - first_start
    images = sum(r.images for r in timed)
    host = [s for r in timed for s in r.host_submit_ms or []]
    scored_end = max((r.scored_end or _num(r.end)) for r in timed)
    return Combined(
        frames=sum(r.frames for r in timed),
        images=images,
        interpolation=interpolation,
        duration_s=wall,
        throughput=rate(images, wall),
        end_to_end_throughput=rate(images, scored_end - first_start),
        throughput_pairs_s=rate(sum(r.frames for r in timed), wall),
        latency_ms=latency_stats(s for r in timed for s in r.latency_ms),
        latency_per_pair_ms=latency_stats(s for r in timed for s in r.latency_per_pair_ms or r.latency_ms),
        host_submit_ms=latency_stats(host) if host else None,
        warmup_pairs=sum((r.warmup or {}).get("pairs", 0) for r in timed),
        warmup_s=max((r.warmup or {}).get("seconds", 0.0) for r in timed),
        window=Window(
            first_start=first_start,
            last_end=last_end,
            overlap_s=max(overlap, 0.0),
            overlap_pct=100.0 * max(overlap, 0.0) / wall if wall > 0 else None,
        ),
    )


def _num(x: float | None) -> float:
    """A window time of a timed stream (never None there)."""
    assert x is not None
    return x


def model_throughput(streams: list[StreamResult]) -> float | None:
    """Images over the inference time alone (the sum of the timed regions). With
    several streams, the longest stream's inference time: as if the streams had
    only run the model, together from the common start."""
    timed = [r for r in streams if r.timed and r.model_seconds]
    if not timed:
        return None
    return rate(sum(r.images for r in timed), max(_num(r.model_seconds) for r in timed))


def _iso(mono: float | None, wall_minus_mono: float) -> str | None:
    """A time.monotonic() reading as UTC wall-clock time (one offset for the whole run)."""
    if mono is None:
        return None
    return dt.datetime.fromtimestamp(mono + wall_minus_mono, dt.UTC).isoformat(timespec="milliseconds")


def stream_summary(r: StreamResult, t0: float, wall_minus_mono: float | None = None) -> StreamSummary:
    """results.json `streams[]` entry of one stream; t0: the common start."""
    window = (_num(r.end) - _num(r.start)) if r.timed else None
    if wall_minus_mono is None:
        wall_minus_mono = time.time() - time.monotonic()
    return StreamSummary(
        id=r.id,
        status=r.status,
        pid=r.pid,
        cpus=r.cpus,
        threads=r.threads,
        pinned_by=r.pinned_by,
        mems_allowed=r.mems_allowed,
        mempolicy=r.mempolicy,
        device=r.device,
        runtime=r.runtime,  # RUNTIME's name, version, settings, parity
        frames=r.frames,
        images=r.images,
        throughput=rate(r.images, window),
        model_throughput=rate(r.images, r.model_seconds),
        latency_ms=latency_stats(r.latency_ms),
        latency_clock=r.latency_clock,
        batch_sizes=sorted(set(r.batch_sizes)),
        submissions=len(r.batch_sizes),
        large_motion_count=r.large_motion_count,
        start=r.start,
        end=r.end,
        start_iso=_iso(r.start, wall_minus_mono),
        end_iso=_iso(r.end, wall_minus_mono),
        start_offset_s=None if r.start is None else r.start - t0,
        end_offset_s=None if r.end is None else r.end - t0,
        warmup=r.warmup,
        memory=r.memory,
        latency_samples_ms=r.latency_ms,
        host_submit_samples_ms=r.host_submit_ms,
    )
