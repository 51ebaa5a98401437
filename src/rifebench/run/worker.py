"""The stream process: `python -m rifebench.run.worker`, started by the launcher,
possibly through `numactl --physcpubind=... --membind=...`.

Why a fresh interpreter started by subprocess rather than multiprocessing's
spawn: numactl has to wrap the command line of each stream, with different
arguments per stream, and multiprocessing's spawn has one global executable.
The launcher and a stream talk over one socket pair (a multiprocessing
Connection, passed as an inherited file descriptor); plain data only:

  launcher -> stream: ("config", fields, info)   Config's fields; device, threads, barrier_timeout, method
                      ("start", t0)              the barrier is released; t0: the common start
                      ("stop", status)           stop now (before the start: exit at once)
  stream -> launcher: ("warming", text)          said before a warm-up that may take a minute
                      ("ready", {"warmup", "setup_s", "runtime_setup_s"})
                      ("progress", pairs)        at most every PROGRESS_EVERY_S
                      ("result", StreamResult.to_dict())
                   or ("error", {"error", "traceback", "details", "usage"})   exactly one of the two, last

`StreamChannel` is the stream's end of it. The stream ignores Ctrl-C (the
launcher decides what a signal means), dies with the launcher
(PR_SET_PDEATHSIG, and end-of-file on the socket), and on "stop" before the
start barrier leaves at once: nothing was measured yet.

Fault injection, to test failure handling: the FAULT option
("<stream>:<pairs>[:exit]" or "<stream>:hold", validated by config.parse_fault,
read here from the config the stream receives) makes that stream raise
RuntimeError (or, with ":exit", exit with status 3 without a word) once it has
timed <pairs> pairs, or ("hold") never say ready, until the launcher stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from rifebench.errors import RifebenchError, UsageError
from rifebench.measure.records import StreamResult
from rifebench.status import Exit

PROGRESS_EVERY_S = 0.5


class StreamAborted(RifebenchError, RuntimeError):
    """The launcher stopped this stream (Ctrl-C, another stream failed)."""


class StreamChannel:
    """The stream's one line to the launcher: the start barrier and the common
    start time, the stop flag, progress, and the stream's last word (result or
    error). A thread (`listen`) reads what the launcher sends; the stream's own
    thread calls the rest."""

    def __init__(self, conn: Connection, stream_id: int, fault: tuple[int, int, str] | None = None):
        self.conn, self.stream_id = conn, stream_id
        self.start_time: float | None = None  # the common start (time.monotonic) the launcher stamped
        self.sent: list[str] = []  # kinds of the messages sent, in order
        self.pinning: dict[str, Any] = {}  # pinning read back, added to the result
        self._started, self._stop, self._changed = threading.Event(), threading.Event(), threading.Event()
        self._next_progress = 0.0
        # FAULT, parsed by config.parse_fault: (stream, pair, raise | exit | hold), this stream's only
        self._fault = fault if fault and fault[0] == stream_id else None

    # -- launcher -> stream (the listening thread) --------------------------------------------

    def listen(self) -> None:
        """Until the launcher goes away: "start" releases the barrier, "stop"
        sets the stop flag (before the start, the stream leaves at once)."""
        while True:
            try:
                kind, payload = self.conn.recv()
            except (EOFError, OSError):
                os._exit(Exit.STREAM_ORPHANED)
            if kind == "start":
                self.start_time = payload
                self._started.set()
            elif kind == "stop":
                self._stop.set()
                if not self._started.is_set():
                    os._exit(Exit.STREAM_STOPPED)
            self._changed.set()

    # -- the stream's side ----------------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        """Stop early: the launcher said so."""
        return self._stop.is_set()

    def wait_start(self, timeout: float) -> float:
        """Wait at the barrier; the common start time once the launcher releases all streams."""
        if not self._changed.wait(timeout):
            raise threading.BrokenBarrierError(f"start barrier not released within {timeout:g} s")
        if self.start_time is None:
            raise StreamAborted("stopped by the launcher before the start")
        return self.start_time

    def warming(self, text: str) -> None:
        self._send("warming", text)

    def ready(self, warmup: dict[str, Any], setup_s: float, runtime_setup_s: float | None = None) -> None:
        """Warmed up. FAULT=<stream>:hold holds the stream here, never ready,
        until the launcher stops it (a late stream, for the barrier's test)."""
        if self._fault and self._fault[2] == "hold":
            self._stop.wait()
            raise StreamAborted("held by FAULT before it was ready; stopped by the launcher")
        self._send("ready", {"warmup": warmup, "setup_s": setup_s, "runtime_setup_s": runtime_setup_s})

    def progress(self, pairs: int) -> None:
        """Pairs done so far, sent at most every PROGRESS_EVERY_S so that the timed
        loop pays a clock read per pair, not a message."""
        if self._fault and self._fault[2] != "hold" and pairs >= self._fault[1]:
            if self._fault[2] == "exit":
                os._exit(Exit.STREAM_FAULT)
            raise RuntimeError(f"FAULT: stream {self.stream_id} fails after {pairs} pairs (injected by --fault)")
        now = time.monotonic()
        if now >= self._next_progress:
            self._send("progress", pairs)
            self._next_progress = now + PROGRESS_EVERY_S

    def result(self, result: StreamResult) -> None:
        for name, value in self.pinning.items():
            setattr(result, name, value)
        self._send("result", result.to_dict())

    def error(self, exc: BaseException) -> None:
        """The stream's last word when it fails. Bad input found only here (a
        UsageError: a runtime's provider, the ONNX cache's folders) is its own
        one line, flagged `usage`: the run then exits 2 as for any bad input."""
        usage = isinstance(exc, UsageError)
        self._send(
            "error",
            {
                "error": str(exc) if usage else f"{type(exc).__name__}: {exc}".strip(),
                # A designed outcome (the parity gate, a usage error) is its one line.
                "traceback": "" if usage or getattr(exc, "expected", False) else traceback.format_exc(),
                "details": getattr(exc, "details", None),
                "usage": usage,
            },
        )

    def _send(self, kind: str, payload: Any) -> None:
        self.sent.append(kind)
        self.conn.send((kind, payload))


def kill_with_parent() -> None:
    """SIGKILL this process when its parent dies, however it dies (PR_SET_PDEATHSIG,
    Linux). Safe between fork and exec (benchmark.sh's rows): it imports nothing."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


def _die_with_parent(parent: int) -> None:
    """SIGKILL this stream when the launcher dies, however it dies."""
    kill_with_parent()
    if os.getppid() != parent:  # the launcher died before the line above
        os._exit(Exit.STREAM_ORPHANED)


def readback() -> dict[str, Any]:
    """Where this process may really run and allocate, read from the kernel."""
    out: dict[str, Any] = {"cpus": sorted(os.sched_getaffinity(0)), "mems_allowed": None}  # the cpuset
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Mems_allowed_list:"):
                    out["mems_allowed"] = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return out


def mempolicy() -> dict[str, str] | None:
    """This process's NUMA memory policy, read back: a child inherits it, so
    `numactl --show` run from here prints ours."""
    import shutil
    import subprocess

    exe = shutil.which("numactl")
    if exe is None:
        return None
    try:
        text = subprocess.run([exe, "--show"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k: fields[k].strip() for k in ("policy", "membind", "physcpubind") if k in fields}


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ap = argparse.ArgumentParser(prog="rifebench.run.worker")
    ap.add_argument("--fd", type=int, required=True)
    ap.add_argument("--stream", type=int, required=True)
    ap.add_argument("--parent", type=int, required=True)
    ap.add_argument("--cpus", default="", help="pin by CPU affinity to this list (PIN=affinity)")
    args = ap.parse_args(argv)
    _die_with_parent(args.parent)
    conn = Connection(args.fd)
    if args.cpus and not _pin(conn, args.stream, args.cpus):
        return 1
    _kind, fields, info = conn.recv()

    from rifebench.config import parse_fault
    from rifebench.run.stream import Link, stream_entry

    fault = parse_fault(fields["fault"], fields["streams"]) if fields.get("fault") else None
    channel = StreamChannel(conn, args.stream, fault)
    threading.Thread(target=channel.listen, name="launcher-link", daemon=True).start()
    channel.pinning = {
        "pinned_by": info["method"],
        "mems_allowed": readback()["mems_allowed"],
        "mempolicy": mempolicy() if info["method"] == "numactl" else None,
    }
    link = Link(args.stream, channel, info["barrier_timeout"], info["device"], threads=info["threads"])
    stream_entry(fields, link)
    return 0 if channel.sent[-1:] == ["result"] else 1


def _pin(conn: Connection, stream: int, cpus: str) -> bool:
    """PIN=affinity: before torch starts its thread pools, which inherit the mask."""
    from rifebench.measure.topology import parse_cpulist

    try:
        os.sched_setaffinity(0, parse_cpulist(cpus))
    except OSError as exc:
        why = f"cannot pin stream {stream} to CPUs {cpus} by affinity: {exc.strerror or exc}"
        conn.send(("error", {"error": why, "traceback": ""}))
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
