"""Processes, pinning, the start barrier and the watchdog. Knows processes, not models.

Each stream is a fresh interpreter (`python -m rifebench.run.worker`, see worker.py
for why not multiprocessing), started under numactl or pinned by affinity as
pinning.plan says, and linked to the launcher by one socket pair. Every stream
warms up and says "ready"; when all have, the launcher stamps the common start
time (time.monotonic, one clock for the whole machine) and releases them; in
duration mode that also fixes one common deadline. The watchdog fails the whole
run within bounded time when a stream raises, exits, is killed, is not ready
within BARRIER_TIMEOUT, or makes no progress for as long; the other streams are
stopped. Ctrl-C and SIGTERM stop every stream and keep what was measured.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

from rifebench.errors import UsageError
from rifebench.run import pinning
from rifebench.run.interrupts import Deferred
from rifebench.run.memory import exit_reason, oom_kills
from rifebench.status import Exit, Status
from rifebench.warning_codes import line, warning

PROGRESS_EVERY_S = 5.0
GRACE_S = 10.0  # how long stopped streams get to report before they are killed
EXIT_SETTLE_S = 1.0  # how long a dead stream's last words may take to arrive
NOISY_PCT = 25.0  # CPU use by other processes on a stream's own CPUs that earns a warning


@dataclass
class Outcome:
    status: Status  # COMPLETED (verdict still to come), FAILED, INTERRUPTED
    streams: list = field(default_factory=list)  # one result dict per stream that reported
    failures: list = field(default_factory=list)  # {"stream": id, "reason": ...}
    start: float | None = None
    warnings: list = field(default_factory=list)
    pinning: dict = field(default_factory=dict)
    telemetry: dict | None = None


@dataclass
class _Stream:
    sid: int
    proc: subprocess.Popen
    conn: Connection
    ready: bool = False
    result: dict | None = None
    pairs: int = 0
    seen: float = 0.0  # last message, for the no-progress watchdog
    closed: bool = False
    exited: float | None = None
    accounted: bool = False  # result, failure or "stopped" recorded


def preflight(cfg, gpus: list) -> pinning.Plan:
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


def _spawn(cfg, plan, sid: int, fields: dict) -> _Stream:
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
    return _Stream(sid, proc, conn, seen=time.monotonic())


def launch(cfg, plan: pinning.Plan, log=print, on_start=None, on_stop=None) -> Outcome:
    """Run cfg's streams as `plan` (from preflight) says; the outcome is plain data."""
    from rifebench.measure.telemetry import Telemetry

    outcome = Outcome(status=Status.COMPLETED, warnings=list(plan.warnings) + list(plan.notes), pinning=plan.describe())
    for w in outcome.warnings:
        log(line(w))
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    log(f"launching {cfg.streams} stream(s): {plan.summary()}")
    used = set(plan.devices)  # idle GPUs would only add their idle power to the energy per image
    tel = Telemetry(cfg.platform, [g for g in plan.gpus if g["index"] in used], cfg.socket, log)
    streams: list[_Stream] = []
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
            _Watch(cfg, streams, outcome, sigs, log, tel, on_start, on_stop).run()
        finally:
            _reap(streams)
            tel.close()
    outcome.streams.sort(key=lambda r: r["id"])
    outcome.telemetry = tel.summary(sum(r.get("images", 0) for r in outcome.streams if r.get("end") is not None))
    _report_telemetry(outcome, log)
    return outcome


def _report_telemetry(outcome: Outcome, log) -> None:
    t = outcome.telemetry
    noisy = [(s["id"], s["others_pct_of_cpus"]) for s in t["streams"] if (s["others_pct_of_cpus"] or 0) > NOISY_PCT]
    if noisy:
        worst = max(p for _, p in noisy)
        outcome.warnings.append(warning("CPU_CONTENTION", pct=worst, streams=[i for i, _ in noisy]))
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


def _reap(streams: list) -> None:
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


class _Watch:
    def __init__(self, cfg, streams, outcome, sigs, log, tel, on_start, on_stop):
        self.cfg, self.streams, self.outcome, self.sigs, self.log = cfg, streams, outcome, sigs, log
        self.tel, self.on_start, self.on_stop = tel, on_start, on_stop
        self.by_conn = {id(s.conn): s for s in streams}
        self.t_launch = time.monotonic()
        self.oom_before = oom_kills()  # streams are only starting: nothing of theirs is killed yet
        self.started = self.stopping = self.finished = False
        self.deadline = self.next_progress = None

    def fail(self, sid, reason: str, details: dict | None = None) -> None:
        if any(f["stream"] == sid for f in self.outcome.failures):
            return
        self.outcome.failures.append({"stream": sid, "reason": reason} | (details or {}))
        if self.outcome.status == Status.COMPLETED:  # the first cause names the run
            self.outcome.status = Status.FAILED
        self.log(f"error: stream {sid} failed: {reason}")

    def run(self) -> None:
        while not all(s.accounted for s in self.streams):
            self.receive()
            now = time.monotonic()
            self.check_exits(now)
            self.check_start(now)
            self.check_time(now)
            if self.sigs.received and self.outcome.status == Status.COMPLETED:
                self.outcome.status = Status.INTERRUPTED
                self.log(f"received {self.sigs.received}: stopping all streams")
            if (self.outcome.failures or self.sigs.received) and not self.stopping:
                self.stop(now)
            if self.stopping and now > self.deadline:
                for s in self.streams:
                    if s.proc.poll() is None:
                        self.log(f"stream {s.sid} did not stop within {GRACE_S:g} s: killing it")
                        s.proc.kill()
                        s.proc.wait()
                self.deadline = float("inf")  # killed: their exits are accounted next round
            self.check_finished(now)
            if self.started and not self.stopping and now >= self.next_progress:
                self.progress(now)
                self.next_progress = now + PROGRESS_EVERY_S
        self.check_finished(time.monotonic())

    def receive(self) -> None:
        open_conns = [s.conn for s in self.streams if not s.closed]
        if not open_conns:
            time.sleep(0.2)
        for conn in wait(open_conns, timeout=0.2) if open_conns else []:
            s = self.by_conn[id(conn)]
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                s.closed = True
                continue
            s.seen = time.monotonic()
            if kind == "warming":  # said before a warm-up that may compile for a minute
                self.log(f"stream {s.sid}: {payload}")
            elif kind == "ready":
                s.ready = True
                w = payload["warmup"]
                self.log(
                    f"stream {s.sid} ready: set-up {payload['setup_s']:.1f} s, warm-up {w['pairs']} pairs "
                    f"in {w['seconds']:.2f} s"
                )
            elif kind == "progress":
                s.pairs = payload
            elif kind == "result":
                s.result, s.accounted = payload, True
                self.outcome.streams.append(payload)
            elif kind == "error":
                s.accounted = True
                if self.stopping and payload["error"].startswith("StreamAborted"):
                    continue  # stopped before the start, as asked
                if payload.get("traceback"):
                    self.log(payload["traceback"].rstrip())
                self.fail(s.sid, payload["error"], payload.get("details"))

    def check_exits(self, now: float) -> None:
        for s in self.streams:
            code = s.proc.poll()
            if code is None or s.accounted:
                continue
            s.exited = s.exited or now
            if not s.closed and now - s.exited < EXIT_SETTLE_S:
                continue  # its last message may still be on the way
            s.accounted = True
            if self.stopping and code in (Exit.STREAM_STOPPED, -signal.SIGKILL):
                continue  # left when told to, or killed by us after the grace period
            why = exit_reason(code, self.oom_before)
            self.fail(s.sid, why)

    def check_start(self, now: float) -> None:
        if self.started or self.stopping or self.outcome.failures or self.sigs.received:
            return
        if not all(s.ready and not s.accounted for s in self.streams):
            return
        t0 = time.monotonic()
        for s in self.streams:
            s.conn.send(("start", t0))
            s.seen = t0
        self.started, self.outcome.start = True, t0
        self.next_progress = t0 + PROGRESS_EVERY_S
        self.log(f"all {len(self.streams)} stream(s) passed the start barrier; timing")
        self.tel.started(t0)
        if self.on_start is not None:
            self.on_start()

    def check_time(self, now: float) -> None:
        if self.stopping:
            return
        limit = self.cfg.barrier_timeout
        if not self.started and now - self.t_launch > limit:
            missing = [s.sid for s in self.streams if not s.ready]
            self.fail(missing[0], f"not ready after --barrier-timeout {limit:g} s (streams not ready: {missing})")
        if self.started:
            for s in self.streams:
                if s.result is None and not s.accounted and now - s.seen > limit:
                    self.fail(s.sid, f"no progress for {limit:g} s (--barrier-timeout): the stream is stuck")

    def stop(self, now: float) -> None:
        self.stopping, self.deadline = True, now + GRACE_S
        for s in self.streams:
            if not s.accounted:
                try:
                    s.conn.send(("stop", self.outcome.status))
                except OSError:
                    pass

    def check_finished(self, now: float) -> None:
        """`stop` goes out once the last stream has finished, not the first."""
        if self.finished or not self.started or not all(s.accounted for s in self.streams):
            return
        self.finished = True
        self.tel.stopped(now)
        if self.on_stop is not None:
            self.on_stop()

    def progress(self, now: float) -> None:
        done = [s.pairs for s in self.streams]
        elapsed = now - self.outcome.start
        rate = sum(done) / elapsed if elapsed > 0 else 0.0
        per_stream = rate / len(done)
        left = (self.cfg.num_inputs - min(done)) / per_stream if per_stream > 0 else float("inf")
        if self.cfg.dummy:
            left = max(self.cfg.min_test_duration - elapsed, left, 0.0)
            if self.cfg.max_test_duration is not None:
                left = min(left, max(self.cfg.max_test_duration - elapsed, 0.0))
        left_text = f"~{left:.0f} s left" if left != float("inf") else "time left unknown"
        self.log(f"progress: {sum(done)} pairs in {elapsed:.1f} s, {rate:.2f} pairs/s, {left_text}")
