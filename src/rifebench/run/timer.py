"""The one definition of a timed pair, used by the streams and by the study.

A timed submission is the model call on frames already on the device (the
source prepares them: copy, padding, cast), for BATCH_SIZE pairs at once. Two
clocks time it:
- the host clock (time.perf_counter) around the call, plus the wait when this
  submission synchronises (every ASYNC-th, or every one in quality mode): on a
  CPU this is the compute time; on a GPU without a sync it is only the time
  the host took to queue the work (`host_submit_ms`);
- on devices with events (CUDA, XPU), a start and an end event recorded on the
  device's stream around the call, without synchronising, and read after the
  timed window: the device's own time for that submission (`device_ms`).
The latency a run reports is the device time where there is one, else the host
time; results.json says which in `latency_basis`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class TimedDevice(Protocol):
    """What the timer needs of a backend (backends.device.Backend)."""

    def event(self) -> Any:  # a timing event (torch.cuda.Event, ...) or None where the device has none
        ...

    def sync(self) -> None: ...


class PairTimer:
    def __init__(self, backend: TimedDevice, sync_every: int = 0):
        self.backend = backend
        self.sync_every = sync_every  # 0: never inside the loop (the caller syncs at the end)
        self.host_ms: list[float] = []
        self._events: list[tuple[Any, Any]] = []
        self.has_events = backend.event() is not None

    def __call__(self, fn: Callable[[], T], *, sync: bool = False) -> T:
        """Run fn() as one timed submission; returns its result."""
        n = len(self.host_ms) + 1
        start = self.backend.event() if self.has_events else None
        t0 = time.perf_counter()
        if start is not None:
            start.record()
        out = fn()
        if start is not None:
            end = self.backend.event()
            end.record()
            self._events.append((start, end))
        if sync or (self.sync_every and n % self.sync_every == 0):
            self.backend.sync()
        self.host_ms.append((time.perf_counter() - t0) * 1000.0)
        return out

    def device_ms(self) -> list[float] | None:
        """Per-submission device times; call after the device was synchronised."""
        if not self.has_events:
            return None
        return [float(s.elapsed_time(e)) for s, e in self._events]

    def latency_ms(self) -> list[float]:
        return self.device_ms() or list(self.host_ms)
