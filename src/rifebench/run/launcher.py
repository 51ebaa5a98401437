"""Processes, pinning, the start barrier and the watchdog (its loop: watch.py).
Knows processes, not models.

Each stream is a fresh interpreter (`python -m rifebench.run.worker`, see worker.py
for why not multiprocessing), started under numactl or pinned by affinity as
pinning.plan says, and linked to the launcher by one socket pair. Every stream
warms up and says "ready"; when all have, the launcher stamps the common start
time (time.monotonic, one clock for the whole machine) and releases them; in
duration mode that also fixes one common deadline. The watchdog fails the whole
run within bounded time when a stream raises, exits, is killed, is not ready
within BARRIER_TIMEOUT, or makes no progress for as long; the other streams are
stopped. Ctrl-C and SIGTERM stop every stream and keep what was measured.
Each stream's result comes back as plain data and is rebuilt here as a
measure.records.StreamResult; the report judges it (report.validity).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from rifebench.errors import UsageError
from rifebench.measure.records import StreamResult
from rifebench.run import pinning
from rifebench.run.interrupts import Deferred
from rifebench.run.watch import GRACE_S, Hook, Log, StreamProc, Watch
from rifebench.status import Status
from rifebench.warning_codes import line, warning


@dataclass
class Outcome:
    """One repetition as the launcher saw it; report.results judges it."""

    status: Status  # COMPLETED (verdict still to come), FAILED, INTERRUPTED
    streams: list[StreamResult] = field(default_factory=list)  # one per stream that reported
    failures: list[dict[str, Any]] = field(default_factory=list)  # {"stream": id, "reason": ...}
    start: float | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)
    pinning: dict[str, Any] = field(default_factory=dict)
    telemetry: dict[str, Any] | None = None


def preflight(cfg: Any, gpus: list[dict[str, Any]]) -> pinning.Plan:
    """Everything about streams that can refuse the run before anything heavy:
    the pinning the user insists on, the collector socket. `gpus`: the
    identities of the devices the streams may use (backends.gpu_identities)."""
    from rifebench.measure.telemetry import check_socket

    plan = pinning.plan(cfg, gpus=gpus)
    if cfg.devices is not None and cfg.platform == "cpu":
        plan.notes.append(warning("DEVICES_IGNORED"))
    if cfg.socket is not None:
        why = check_socket(cfg.socket)
        if why is not None:
            raise UsageError(
                f"--socket/SOCKET: {cfg.socket!r}: {why} (accepted: the Unix socket of a running telemetry collector)"
            )
    return plan


def _spawn(cfg: Any, plan: pinning.Plan, sid: int, fields: dict[str, Any]) -> StreamProc:
    parent_end, child_end = socket.socketpair()
    slot = plan.slots[sid]
    cmd = [
        *plan.prefix(sid),
        sys.executable,
        "-m",
        "rifebench.run.worker",
        "--fd",
        str(child_end.fileno()),
        "--stream",
        str(sid),
        "--parent",
        str(os.getpid()),
    ]
    if plan.method == "affinity" and slot.cpus:
        from rifebench.measure.topology import format_cpulist

        cmd += ["--cpus", format_cpulist(slot.cpus)]
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # Thread pools are sized at start-up; size them to the share from the outset.
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(slot.threads)
    # Its own session: the terminal's Ctrl-C reaches the launcher only, which
    # stops the streams in order; PR_SET_PDEATHSIG covers the launcher's death.
    proc = subprocess.Popen(cmd, pass_fds=(child_end.fileno(),), env=env, start_new_session=True)
    child_end.close()
    conn = Connection(parent_end.detach())
    info = {
        "device": slot.device,
        "threads": slot.threads,
        "barrier_timeout": cfg.barrier_timeout,
        "method": plan.method,
    }
    conn.send(("config", fields, info))
    return StreamProc(sid, proc, conn, seen=time.monotonic())


def launch(cfg: Any, plan: pinning.Plan, log: Log = print, on_start: Hook = None, on_stop: Hook = None) -> Outcome:
    """Run cfg's streams as `plan` (from preflight) says; the outcome is plain data."""
    from rifebench.measure.telemetry import Telemetry

    outcome = Outcome(status=Status.COMPLETED, warnings=list(plan.warnings) + list(plan.notes), pinning=plan.describe())
    for w in outcome.warnings:
        log(line(w))
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    log(f"launching {cfg.streams} stream(s): {plan.summary()}")
    used = set(plan.devices)  # idle GPUs would only add their idle power to the energy per image
    tel = Telemetry(cfg.platform, [g for g in plan.gpus if g["index"] in used], cfg.socket, log)
    streams: list[StreamProc] = []
    with Deferred() as sigs:  # INT/TERM/HUP set a flag; the watch loop stops cleanly
        try:
            for sid in range(cfg.streams):
                try:
                    streams.append(_spawn(cfg, plan, sid, fields))
                except OSError as exc:
                    outcome.status = Status.FAILED
                    outcome.failures.append({"stream": sid, "reason": f"could not start: {exc}"})
                    log(f"error: stream {sid} could not start: {exc}")
                    break
                tel.add_stream(
                    sid,
                    streams[-1].proc.pid,
                    plan.slots[sid].cpus or list(os.sched_getaffinity(0)),
                    plan.slots[sid].threads,
                )
            Watch(cfg, streams, outcome, sigs, log, tel, on_start, on_stop).run()
        finally:
            _reap(streams)
            tel.close()
    outcome.streams.sort(key=lambda r: r.id)
    outcome.telemetry = tel.summary(sum(r.images for r in outcome.streams if r.timed))
    _report_telemetry(outcome, log)
    return outcome


def _report_telemetry(outcome: Outcome, log: Log) -> None:
    """The sampler's figures on the console; its own warnings join the outcome's
    (CPU contention is a validity rule: report.validity judges it)."""
    t = outcome.telemetry
    assert t is not None
    outcome.warnings += t.get("warnings", [])  # the sampler's own (socket, GPU sampling); printed by the report
    if t["note"]:
        log(f"note: {t['note']}")
    for g in t["gpus"]:
        util, power = g["util_pct"], g["power_w"]
        parts = [f"utilisation mean {util['mean']:.0f}%" if util else "utilisation unknown"]
        if power:
            parts.append(f"power mean {power['mean']:.0f} W, max {power['max']:.0f} W")
        if g["throttle_reasons"]:
            parts.append(f"clocks limited by {', '.join(g['throttle_reasons'])}")
        log(f"telemetry: gpu {g['index']}: {'; '.join(parts)}")
    if t["energy_per_image_j"] is not None:
        log(f"telemetry: {t['energy_per_image_j']:.3f} J per image ({t['energy_j']:.0f} J in the timed window)")


def _reap(streams: list[StreamProc]) -> None:
    """Every stream process is gone when launch returns: those that reported
    get a moment to exit on their own, the rest are killed."""
    until = time.monotonic() + GRACE_S
    for s in streams:
        try:
            s.proc.wait(timeout=max(0.0, until - time.monotonic()))
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait()
        s.conn.close()
