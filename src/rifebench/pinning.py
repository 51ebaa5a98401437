"""Which CPUs and which device each stream gets, and applying it in the child.

The CPUs the harness may use are its affinity mask (not nproc); they are split
evenly and contiguously, one slice per stream. With more streams than CPUs the
streams share CPUs (round-robin) and a warning says so.
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field


@dataclass
class Plan:
    streams: list  # per stream: list of CPU ids (empty = do not pin)
    devices: list  # per stream: device index
    method: str  # affinity | none
    warnings: list = field(default_factory=list)

    def summary(self) -> str:
        cpus = "; ".join(f"stream {i}: cpus {_ranges(c) or 'any'}" for i, c in enumerate(self.streams))
        return f"pinning by {self.method} ({cpus})"

    def describe(self) -> dict:
        return {"method": self.method, "planned_cpus": self.streams, "devices": self.devices}


def usable_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def split_cpus(cpus: list[int], n: int) -> tuple[list[list[int]], list[str]]:
    """Even, contiguous slices; the first (len % n) slices get one more CPU."""
    warnings = []
    if n > len(cpus):
        warnings.append(f"{n} streams on {len(cpus)} usable CPUs: streams share CPUs round-robin "
                        "(one CPU each); expect lower per-stream throughput")
        return [[cpus[i % len(cpus)]] for i in range(n)], warnings
    base, extra = divmod(len(cpus), n)
    out, pos = [], 0
    for i in range(n):
        size = base + (1 if i < extra else 0)
        out.append(cpus[pos : pos + size])
        pos += size
    return out, warnings


def plan(cfg) -> Plan:
    from .config import device_indices

    cpus = usable_cpus()
    slices, warnings = split_cpus(cpus, cfg.streams)
    method = "affinity"
    if cfg.pin == "none":
        slices, method = [[] for _ in range(cfg.streams)], "none"
    indices = device_indices(cfg) or [0]
    devices = [indices[i % len(indices)] for i in range(cfg.streams)]
    return Plan(slices, devices, method, warnings)


def pinned_entry(cpus: list, fn, *args) -> None:
    """Child-side: pin first (before torch starts its thread pools), then run.
    Ctrl-C reaches the whole process group; only the launcher acts on it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cpus:
        os.sched_setaffinity(0, cpus)
    fn(*args)


def _ranges(cpus: list[int]) -> str:
    parts, start, prev = [], None, None
    for c in cpus:
        if start is None:
            start = prev = c
        elif c == prev + 1:
            prev = c
        else:
            parts.append(f"{start}-{prev}" if start != prev else str(start))
            start = prev = c
    if start is not None:
        parts.append(f"{start}-{prev}" if start != prev else str(start))
    return ",".join(parts)
