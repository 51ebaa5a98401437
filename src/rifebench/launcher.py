"""Processes, pinning, barriers and the watchdog. Knows processes, not models.

Each stream is a spawned process (never forked: torch and its thread pools do
not survive a fork). Every stream warms up, then all pass one start barrier
whose action stamps the common start time; a watchdog fails the whole run
within bounded time when any stream raises, exits or is killed, and stops the
rest. Only plain data crosses the process boundary.
"""
from __future__ import annotations

import dataclasses
import functools
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import time
from dataclasses import dataclass, field

from . import pinning
from .stream import Link, stream_entry

PROGRESS_EVERY_S = 5.0
GRACE_S = 10.0  # how long stopped streams get to report before they are killed


@dataclass
class Outcome:
    status: str  # passed-so-far ("completed"), failed, interrupted
    streams: list = field(default_factory=list)  # one result dict per stream
    failures: list = field(default_factory=list)  # {"stream": id, "reason": ...}
    start: float | None = None
    warnings: list = field(default_factory=list)
    pinning: dict = field(default_factory=dict)


def _stamp(value) -> None:
    value.value = time.monotonic()


class _Signals:
    """SIGINT/SIGTERM set a flag; the launcher loop turns it into a clean stop."""

    def __init__(self):
        self.received = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def launch(cfg, log=print, on_start=None, on_stop=None) -> Outcome:
    n = cfg.streams
    plan = pinning.plan(cfg)
    outcome = Outcome(status="completed", warnings=list(plan.warnings), pinning=plan.describe())
    for w in plan.warnings:
        log(f"warning: {w}")
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    start_value = ctx.Value("d", 0.0)
    barrier = ctx.Barrier(n, action=functools.partial(_stamp, start_value))
    stop = ctx.Event()
    progress = ctx.Array("q", n)
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    procs = []
    for sid in range(n):
        link = Link(sid, barrier, start_value, stop, progress, cfg.barrier_timeout, plan.devices[sid])
        p = ctx.Process(target=pinning.pinned_entry, args=(plan.streams[sid], stream_entry, fields, link, q),
                        name=f"rife-stream-{sid}", daemon=True)
        procs.append(p)
    log(f"launching {n} stream(s): {plan.summary()}")
    with _Signals() as sigs:
        for p in procs:
            p.start()
        _watch(cfg, procs, q, barrier, stop, progress, start_value, outcome, sigs, log, on_start)
    if on_stop is not None:
        on_stop()
    outcome.start = start_value.value or None
    outcome.streams.sort(key=lambda r: r["id"])
    return outcome


def _watch(cfg, procs, q, barrier, stop, progress, start_value, outcome, sigs, log, on_start):
    n = len(procs)
    ready, results, dead_since = set(), {}, {}
    t_launch = time.monotonic()
    next_progress = None
    started = False
    stop_deadline = None

    def fail(sid, reason):
        if not any(f["stream"] == sid for f in outcome.failures):
            outcome.failures.append({"stream": sid, "reason": reason})
            log(f"error: stream {sid} failed: {reason}")

    while len(results) + len(outcome.failures) < n or any(p.is_alive() for p in procs):
        try:
            kind, sid, payload = q.get(timeout=0.2)
        except queue_mod.Empty:
            kind = None
        now = time.monotonic()
        if kind == "ready":
            ready.add(sid)
            w = payload["warmup"]
            log(f"stream {sid} ready: set-up {payload['setup_s']:.1f} s, warm-up {w['pairs']} pairs "
                f"in {w['seconds']:.2f} s")
        elif kind == "result":
            results[sid] = payload
            outcome.streams.append(payload)
        elif kind == "error":
            fail(sid, payload["error"])
            log(payload["traceback"].rstrip())
        if not started and start_value.value:
            started = True
            next_progress = now + PROGRESS_EVERY_S
            log(f"all {n} stream(s) passed the start barrier; timing")
            if on_start is not None:
                on_start()
        # Watchdog: a process that is gone without a result has failed; give
        # its last message a moment to arrive through the queue first.
        for sid, p in enumerate(procs):
            if not p.is_alive() and sid not in results and not any(f["stream"] == sid for f in outcome.failures):
                dead_since.setdefault(sid, now)
                if now - dead_since[sid] > 1.0:
                    code = p.exitcode
                    why = (f"killed by signal {signal.Signals(-code).name}" if code is not None and code < 0
                           else f"exited with status {code} without a result")
                    fail(sid, why)
        if not started and len(ready) < n and now - t_launch > cfg.barrier_timeout and not outcome.failures:
            missing = sorted(set(range(n)) - ready)
            fail(missing[0], f"not ready after --barrier-timeout {cfg.barrier_timeout:g} s "
                             f"(streams not ready: {missing})")
        if sigs.received and not stop.is_set():
            log(f"received {sigs.received}: stopping all streams")
            outcome.status = "interrupted"
        if (outcome.failures or sigs.received) and stop_deadline is None:
            stop.set()
            barrier.abort()
            stop_deadline = now + GRACE_S
        if stop_deadline is not None and now > stop_deadline:
            for p in procs:
                if p.is_alive():
                    p.kill()
            for p in procs:
                p.join(timeout=5)
            break
        if started and next_progress is not None and now >= next_progress and not stop.is_set():
            _progress(cfg, progress, start_value.value, now, log)
            next_progress = now + PROGRESS_EVERY_S
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
    if outcome.failures:
        outcome.status = "failed"


def _progress(cfg, progress, start, now, log):
    done = list(progress[:])
    elapsed = now - start
    total = sum(done)
    rate = total / elapsed if elapsed > 0 else 0.0
    slowest = min(done)
    if cfg.dummy:
        per_stream_rate = rate / len(done) if done else 0
        left_count = (cfg.num_inputs - slowest) / per_stream_rate if per_stream_rate > 0 else float("inf")
        left = max(cfg.min_test_duration - elapsed, left_count, 0.0)
        if cfg.max_test_duration is not None:
            left = min(left, max(cfg.max_test_duration - elapsed, 0.0))
    else:
        per_stream_rate = rate / len(done) if done else 0
        left = (cfg.num_inputs - slowest) / per_stream_rate if per_stream_rate > 0 else float("inf")
    left_text = f"~{left:.0f} s left" if left != float("inf") else "time left unknown"
    log(f"progress: {total} pairs in {elapsed:.1f} s, {rate:.2f} pairs/s, {left_text}")


def cpu_count_usable() -> int:
    return len(os.sched_getaffinity(0))
