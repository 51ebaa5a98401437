"""The stream process: `python -m rifebench.run.worker`, started by the launcher,
possibly through `numactl --physcpubind=... --membind=...`.

Why a fresh interpreter started by subprocess rather than multiprocessing's
spawn: numactl has to wrap the command line of each stream, with different
arguments per stream, and multiprocessing's spawn has one global executable.
The launcher and a stream talk over one socket pair (a multiprocessing
Connection, passed as an inherited file descriptor); plain data only:

  launcher -> stream: ("config", fields, info), ("start", t0), ("stop", why)
  stream -> launcher: ("ready", ...), ("progress", pairs), ("result", dict)
                      or ("error", {"error", "traceback"})

The stream ignores Ctrl-C (the launcher decides what a signal means), dies
with the launcher (PR_SET_PDEATHSIG, and end-of-file on the socket), and on
"stop" before the start barrier leaves at once: nothing was measured yet.

Fault injection, to test failure handling: the FAULT option
("<stream id>:<pairs>[:exit]", validated in config.py, read here from the
config the stream receives) makes that stream raise RuntimeError (or, with
":exit", exit with status 3 without a word) once it has timed <pairs> pairs.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection

from rifebench.status import Exit

PROGRESS_EVERY_S = 0.5


class Gate:
    """The start barrier seen from one stream: released by the launcher's
    "start" (which carries the common start time) or broken by "stop"."""

    def __init__(self):
        self.value = 0.0  # the common start time (time.monotonic), as multiprocessing.Value
        self.started = threading.Event()
        self.stop = threading.Event()
        self._changed = threading.Event()

    def release(self, t0: float) -> None:
        self.value = t0
        self.started.set()
        self._changed.set()

    def halt(self) -> None:
        self.stop.set()
        self._changed.set()

    def wait(self, timeout: float | None = None) -> None:
        from rifebench.run.stream import StreamAborted

        if not self._changed.wait(timeout):
            raise threading.BrokenBarrierError(f"start barrier not released within {timeout:g} s")
        if self.stop.is_set() and not self.started.is_set():
            raise StreamAborted("stopped by the launcher before the start")

    def abort(self) -> None:  # the launcher notices a failed stream by itself
        pass


class Progress:
    """link.progress[sid] = pairs, sent at most every PROGRESS_EVERY_S so the
    timed loop pays a clock read per pair, not a message."""

    def __init__(self, conn: Connection, fault: tuple[int, int, bool] | None = None):
        self.conn, self.next_send = conn, 0.0
        # FAULT, parsed by config.parse_fault: (stream, pair, exit)
        self.fail_at, self.fail_exit = (fault[1], fault[2]) if fault else (None, False)

    def __setitem__(self, sid: int, pairs: int) -> None:
        if self.fail_at is not None and pairs >= self.fail_at:
            if self.fail_exit:
                os._exit(Exit.STREAM_FAULT)
            raise RuntimeError(f"FAULT: stream {sid} fails after {pairs} pairs (injected by --fault)")
        now = time.monotonic()
        if now >= self.next_send:
            self.conn.send(("progress", pairs))
            self.next_send = now + PROGRESS_EVERY_S


class Outbox:
    """The queue stream_entry reports to: (kind, sid, payload) -> the socket."""

    def __init__(self, conn: Connection, extra: dict):
        self.conn, self.extra = conn, extra  # extra: added to the result (pinning read back)
        self.kinds: list[str] = []

    def put(self, item) -> None:
        kind, _sid, payload = item
        self.kinds.append(kind)
        if kind == "result":
            payload = {**payload, **self.extra}
        self.conn.send((kind, payload))


def _listen(conn: Connection, gate: Gate) -> None:
    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):
            os._exit(Exit.STREAM_ORPHANED)
        if kind == "start":
            gate.release(payload)
        elif kind == "stop":
            gate.halt()
            if not gate.started.is_set():
                os._exit(Exit.STREAM_STOPPED)


def kill_with_parent() -> None:
    """SIGKILL this process when its parent dies, however it dies (PR_SET_PDEATHSIG,
    Linux). Safe between fork and exec (benchmark.sh's rows): it imports nothing."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _die_with_parent(parent: int) -> None:
    """SIGKILL this stream when the launcher dies, however it dies."""
    kill_with_parent()
    if os.getppid() != parent:  # the launcher died before the line above
        os._exit(Exit.STREAM_ORPHANED)


def readback() -> dict:
    """Where this process may really run and allocate, read from the kernel."""
    out = {"cpus": sorted(os.sched_getaffinity(0)), "mems_allowed": None}  # Mems_allowed: the cpuset
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Mems_allowed_list:"):
                    out["mems_allowed"] = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return out


def mempolicy() -> dict | None:
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


def main(argv=None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ap = argparse.ArgumentParser(prog="rifebench.run.worker")
    ap.add_argument("--fd", type=int, required=True)
    ap.add_argument("--stream", type=int, required=True)
    ap.add_argument("--parent", type=int, required=True)
    ap.add_argument("--cpus", default="", help="pin by CPU affinity to this list (PIN=affinity)")
    args = ap.parse_args(argv)
    _die_with_parent(args.parent)
    conn = Connection(args.fd)
    if args.cpus:
        from rifebench.measure.topology import parse_cpulist

        try:  # before torch starts its thread pools, which inherit the mask
            os.sched_setaffinity(0, parse_cpulist(args.cpus))
        except OSError as exc:
            conn.send(
                (
                    "error",
                    {
                        "error": f"cannot pin stream {args.stream} to CPUs {args.cpus} by affinity: "
                        f"{exc.strerror or exc}",
                        "traceback": "",
                    },
                )
            )
            return 1
    kind, fields, info = conn.recv()
    gate = Gate()
    threading.Thread(target=_listen, args=(conn, gate), name="launcher-link", daemon=True).start()

    from rifebench.config import parse_fault
    from rifebench.run.stream import Link, stream_entry

    fault = parse_fault(fields["fault"], fields["streams"]) if fields.get("fault") else None
    fault = fault if fault and fault[0] == args.stream else None
    link = Link(
        args.stream,
        gate,
        gate,
        gate.stop,
        Progress(conn, fault),
        info["barrier_timeout"],
        info["device"],
        threads=info["threads"],
    )
    extra = {
        "pinned_by": info["method"],
        "mems_allowed": readback()["mems_allowed"],
        "mempolicy": mempolicy() if info["method"] == "numactl" else None,
    }
    outbox = Outbox(conn, extra)
    stream_entry(fields, link, outbox)
    return 0 if outbox.kinds[-1:] == ["result"] else 1


if __name__ == "__main__":
    sys.exit(main())
