"""Typed records of what a stream measures, and the two helpers every record of
the harness uses to become plain data and back.

`Latency` is the summary of a set of latency samples (metrics.latency_stats).
`StreamResult` is everything one stream process reports. Only plain data
crosses the process boundary: the stream sends `to_dict()`, the launcher
rebuilds the record with `from_dict()`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

# Field metadata: OMIT_NONE leaves a None value out of to_dict() (a key that
# only some documents have); LOCAL is never written (in-memory only).
OMIT_NONE = {"omit_none": True}
LOCAL = {"local": True}

R = TypeVar("R")


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def to_plain(record: Any) -> dict[str, Any]:
    """A dataclass record as a dict: its fields in declaration order (a
    document's key order), nested records as dicts, then the keys it did not
    know when it was read (`extra`)."""
    out: dict[str, Any] = {}
    for f in fields(record):
        if f.name == "extra" or f.metadata.get("local"):
            continue
        value = getattr(record, f.name)
        if value is None and f.metadata.get("omit_none"):
            continue
        out[f.name] = _plain(value)
    out.update(getattr(record, "extra", {}))
    return out


def from_plain(cls: type[R], d: Any, where: str, **convert: Any) -> R:
    """cls from a dict: known keys become fields (through `convert` where a field
    is a record), unknown ones go to `extra`. TypeError for a non-dict."""
    if not isinstance(d, dict):
        raise TypeError(f"{where} is {type(d).__name__}, not an object")
    own = fields(cls)  # type: ignore[arg-type]  # cls is a dataclass
    known = {f.name for f in own if not f.metadata.get("local")} - {"extra"}
    kwargs = {k: (convert[k](v) if k in convert and v is not None else v) for k, v in d.items() if k in known}
    if any(f.name == "extra" for f in own):
        kwargs["extra"] = {k: v for k, v in d.items() if k not in known}
    return cls(**kwargs)


LATENCY_KEYS = ("count", "mean", "p50", "p90", "p99", "min", "max", "stdev")


@dataclass(frozen=True)
class Latency:
    """mean, percentiles, extremes and sample stdev of latency samples, in ms.

    A figure that does not exist (p99 of 40 samples, stdev of one) is None;
    `percentile_note` says why a percentile is missing."""

    count: int = 0
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    min: float | None = None
    max: float | None = None
    stdev: float | None = None
    percentile_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in LATENCY_KEYS}
        if self.percentile_note is not None:
            out["percentile_note"] = self.percentile_note
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Latency:
        if not isinstance(d, dict):
            raise TypeError(f"a latency summary is {type(d).__name__}, not an object")
        return cls(
            count=int(d.get("count") or 0),
            mean=d.get("mean"),
            p50=d.get("p50"),
            p90=d.get("p90"),
            p99=d.get("p99"),
            min=d.get("min"),
            max=d.get("max"),
            stdev=d.get("stdev"),
            percentile_note=d.get("percentile_note"),
        )


@dataclass
class StreamResult:
    """Everything one stream reports: who and where it ran (pinning read back
    from inside it), its warm-up, the timed window on the shared monotonic clock,
    the raw per-submission samples, and its summaries (memory, knobs, quality).
    A stream that failed after measuring keeps its figures, with `error`."""

    id: int
    status: str = "failed"  # completed | interrupted | failed
    pid: int | None = None
    cpus: list[int] = field(default_factory=list)
    threads: int | None = None
    pinned_by: str | None = None  # numactl | affinity | none: set by the worker
    mems_allowed: str | None = None
    mempolicy: dict[str, Any] | None = None
    device: dict[str, Any] | None = None  # backend.describe()
    setup_s: float | None = None
    runtime: dict[str, Any] | None = None  # RUNTIME other than torch: name, version, settings, parity
    warmup: dict[str, Any] | None = None  # {pairs, calls, seconds}
    frames: int = 0  # pairs timed
    images: int = 0  # frames interpolated (pairs x INTERPOLATION)
    batch_sizes: list[int] = field(default_factory=list)  # pairs in each submission
    start: float | None = None  # time.monotonic(): the common start
    end: float | None = None
    scored_end: float | None = None  # quality mode: scoring and saving after the window ended
    latency_ms: list[float] = field(default_factory=list)  # per submission: device time if any, else host
    latency_per_pair_ms: list[float] = field(default_factory=list)
    host_submit_ms: list[float] | None = None  # host time, when latency_ms is device time
    device_ms: list[float] | None = None
    latency_clock: str | None = None  # "device events" | "host"
    model_seconds: float | None = None  # the sum of the timed regions
    memory: dict[str, Any] | None = None
    large_motion_count: int | None = None
    knobs: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None  # the source's summary (quality and video modes)
    error: str | None = None
    traceback: str | None = None
    fingerprint: Any = None  # dummy mode, --saveimages: stream 0's first output frame (HxWx3 float32 numpy)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def timed(self) -> bool:
        """The stream reached the end of a timed window (completed, interrupted or failed mid-way)."""
        return self.end is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the fingerprint as .npy bytes), to send over the socket."""
        out = to_plain(self)
        if self.fingerprint is not None:
            import numpy as np

            buf = io.BytesIO()
            np.save(buf, self.fingerprint)
            out["fingerprint"] = buf.getvalue()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StreamResult:
        return from_plain(cls, d, "a stream's result", fingerprint=_frame)


def _frame(data: Any) -> Any:
    if isinstance(data, bytes):
        import numpy as np

        return np.load(io.BytesIO(data))
    return data
