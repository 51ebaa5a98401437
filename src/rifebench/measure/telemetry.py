"""Telemetry while the run lasts: the collector socket, and sampling in-process.

SOCKET speaks the reference collector's protocol: one connection per word,
the bare word (`start`, `stop`) and nothing else, then close. `start` goes out
once every stream has passed the start barrier, `stop` once the last stream
has finished.

About once a second a thread samples each stream process (CPU use as a share
of its CPUs, resident memory, and how busy its CPUs are with anything at all,
which shows interference) and each GPU the streams use, found by its PCI bus
id (gpu.py: NVML through nvidia-ml-py, else `nvidia-smi`, on NVIDIA; `xpu-smi`
on Intel GPUs). These summaries are also benchmark.sh's per-row GPU columns.
Summaries (min/mean/max) cover the timed window only: between `start` and
`stop`. Energy per image comes from the GPUs' energy counters when NVML has
them, else from mean sampled power x duration; the method is recorded.
"""

from __future__ import annotations

import math
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from rifebench.warning_codes import warning

if TYPE_CHECKING:
    import psutil

    from rifebench.measure.gpu import Sample
    from rifebench.measure.inventory import GpuRecord

INTERVAL_S = 1.0
STREAM_FIELDS = ("cpu_pct_of_share", "rss_bytes", "cpus_busy_pct")


def check_socket(path: str, timeout: float = 5.0) -> str | None:
    """None when a collector listens on path, else why not. The socket file of a
    collector that died stays behind, so only a connection proves a listener; the
    probe sends nothing, which a collector sees as an empty connection."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return exc.strerror or str(exc)
    if not stat.S_ISSOCK(mode):
        return "not a Unix socket"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
    except OSError as exc:
        if isinstance(exc, ConnectionRefusedError):
            return "no collector listens on it (a stale socket file?)"
        return f"cannot connect: {exc.strerror or exc}"
    return None


def send(path: str, word: str, timeout: float = 5.0) -> str | None:
    """Send one word to the collector; None on success, else why not."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(word.encode())
        return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def stats(values: Iterable[float | None]) -> dict[str, float] | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return None
    return {"min": min(vals), "mean": math.fsum(vals) / len(vals), "max": max(vals), "count": len(vals)}


class Telemetry:
    """Owned by the launcher: streams are added as they start; `started` and
    `stopped` mark the timed window (and talk to the collector)."""

    def __init__(
        self,
        platform: str,
        gpus: list[GpuRecord],
        socket_path: str | None,
        log: Callable[[str], object] = print,
        interval: float = INTERVAL_S,
    ):
        from rifebench.measure import gpu as gpumon

        self.log, self.interval, self.socket_path = log, interval, socket_path
        self.socket: dict[str, Any] | None = {"path": socket_path, "sent": [], "errors": []} if socket_path else None
        self.gpu: gpumon.GpuSource | None = None
        self.gpu_note: str | None = None
        if platform != "cpu":
            self.gpu, self.gpu_note = gpumon.open_gpu_source(platform, gpus)
        self.bus_of = {g["index"]: g.get("pci_bus_id") for g in gpus}
        self.streams: dict[int, tuple[psutil.Process, list[int], int]] = {}  # sid -> (process, cpus, share)
        self.samples: list[dict[str, Any]] = []
        self.warnings: list[dict[str, Any]] = []  # warning_codes dicts, reported in the summary
        self.marks: dict[str, float] = {}
        self.floor: float | None = None  # the last sample before the start mark
        self.energy: dict[str, dict[int, float | None]] = {}
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="telemetry", daemon=True)
        self.thread.start()

    def add_stream(self, sid: int, pid: int, cpus: list[int], share: int) -> None:
        import psutil

        try:
            p = psutil.Process(pid)
            p.cpu_percent(None)  # the first call only sets the reference point
        except psutil.Error:
            return
        with self.lock:
            self.streams[sid] = (p, list(cpus), max(1, share))

    def _loop(self) -> None:
        while not self.done.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        import psutil

        with self.lock:
            t = time.monotonic()
            busy = psutil.cpu_percent(percpu=True)
            row: dict[str, Any] = {"t": t, "streams": {}, "gpus": {}}
            for sid, (p, cpus, share) in self.streams.items():
                try:
                    with p.oneshot():
                        cpu, rss = p.cpu_percent(None), p.memory_info().rss
                except psutil.Error:
                    continue
                mine = [busy[c] for c in cpus if c < len(busy)]
                row["streams"][sid] = {
                    "cpu_pct_of_share": cpu / share,
                    "rss_bytes": rss,
                    "cpus_busy_pct": sum(mine) / len(mine) if mine else None,
                }
            if self.gpu is not None:
                try:
                    row["gpus"] = self.gpu.sample()
                except Exception as exc:  # noqa: BLE001 - a failing monitor must not stop the run
                    self.gpu_note = f"GPU sampling stopped: {type(exc).__name__}: {exc}"
                    self.warnings.append(warning("GPU_SAMPLING_STOPPED", why=f"{type(exc).__name__}: {exc}"))
                    self.gpu = None
            self.samples.append(row)

    def _mark(self, which: str, t: float, word: str) -> None:
        self.sample()  # closes the interval before the mark: at the start, that one is left out
        self.marks[which] = t
        if which == "start":
            self.floor = self.samples[-1]["t"]
        if self.gpu is not None:
            self.energy[which] = self.gpu.energy_j()
        if self.socket is not None and self.socket_path is not None:  # the one is set with the other
            why = send(self.socket_path, word)
            if why is None:
                self.socket["sent"].append(word)
            else:
                self.socket["errors"].append(f"{word}: {why}")
                self.warnings.append(warning("SOCKET_SEND_FAILED", path=self.socket_path, word=word, why=why))

    def started(self, t: float) -> None:
        self._mark("start", t, "start")

    def stopped(self, t: float) -> None:
        if "start" in self.marks and "stop" not in self.marks:
            self._mark("stop", t, "stop")

    def close(self) -> None:
        self.done.set()
        self.thread.join(timeout=10)
        if self.gpu is not None:
            self.gpu.close()

    def summary(self, images: int) -> dict[str, Any]:
        t0, t1 = self.marks.get("start"), self.marks.get("stop")
        floor = t0 if self.floor is None else self.floor
        rows = [
            r for r in self.samples if t0 is not None and t1 is not None and floor is not None and floor < r["t"] <= t1
        ]
        out: dict[str, Any] = {
            "interval_s": self.interval,
            "window_s": None if t1 is None or t0 is None else t1 - t0,
            "samples": rows,
            "socket": self.socket,
            "gpu_source": getattr(self.gpu, "name", None),
            "note": self.gpu_note,
            "warnings": list(self.warnings),
            "streams": [],
            "gpus": [],
        }
        for sid, (_, cpus, share) in sorted(self.streams.items()):
            mine = [r["streams"][sid] for r in rows if sid in r["streams"]]
            st: dict[str, Any] = {"id": sid, **{k: stats(m[k] for m in mine) for k in STREAM_FIELDS}}
            # What else kept this stream's CPUs busy; only meaningful when the
            # CPUs are its alone and it may use all of them.
            shared = any(set(cpus) & set(c) for k, (_, c, _) in self.streams.items() if k != sid)
            alone = share == len(cpus) and not shared
            own, busy = st["cpu_pct_of_share"], st["cpus_busy_pct"]
            st["others_pct_of_cpus"] = max(0.0, busy["mean"] - own["mean"]) if alone and own and busy else None
            out["streams"].append(st)
        energies = []
        for idx in sorted({i for r in rows for i in r["gpus"]}):
            seen: list[Sample] = [r["gpus"][idx] for r in rows if idx in r["gpus"]]
            g: dict[str, Any] = {
                "index": idx,
                "pci_bus_id": self.bus_of.get(idx),
                **{
                    k: stats(m.get(k) for m in seen)
                    for k in ("util_pct", "mem_used_bytes", "power_w", "sm_clock_mhz", "mem_clock_mhz")
                },
            }
            g["throttle_reasons"] = {
                n: sum(n in m.get("throttle", []) for m in seen)
                for n in sorted({n for m in seen for n in m.get("throttle", [])})
            }
            e0, e1 = (self.energy.get(w, {}).get(idx) for w in ("start", "stop"))
            if e0 is not None and e1 is not None and e1 >= e0:
                g["energy_j"], g["energy_method"] = e1 - e0, "energy counter"
            elif g["power_w"] and out["window_s"]:
                g["energy_j"], g["energy_method"] = g["power_w"]["mean"] * out["window_s"], "mean power x duration"
            else:
                g["energy_j"], g["energy_method"] = None, None
            energies.append(g["energy_j"])
            out["gpus"].append(g)
        total = math.fsum(energies) if energies and None not in energies else None
        out["energy_j"] = total
        out["energy_per_image_j"] = total / images if total is not None and images else None
        return out
