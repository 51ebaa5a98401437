"""The launcher's watch loop: messages from the streams, the start barrier, the
watchdog, signals and the grace period of stopped streams. Knows processes,
not models (see launcher.py)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from rifebench.measure.records import StreamResult
from rifebench.run.interrupts import Deferred
from rifebench.run.memory import exit_reason, oom_kills
from rifebench.status import Exit, Status

if TYPE_CHECKING:
    from rifebench.run.launcher import Outcome

PROGRESS_EVERY_S = 5.0
GRACE_S = 10.0  # how long stopped streams get to report before they are killed
EXIT_SETTLE_S = 1.0  # how long a dead stream's last words may take to arrive

Log = Callable[[str], None]
Hook = Callable[[], None] | None


@dataclass
class StreamProc:
    """One stream process as the launcher sees it."""

    sid: int
    proc: subprocess.Popen[bytes]
    conn: Connection
    ready: bool = False
    result: StreamResult | None = None
    pairs: int = 0
    seen: float = 0.0  # last message, for the no-progress watchdog
    closed: bool = False
    exited: float | None = None
    accounted: bool = False  # result, failure or "stopped" recorded


class Watch:
    def __init__(
        self,
        cfg: Any,
        streams: list[StreamProc],
        outcome: Outcome,
        sigs: Deferred,
        log: Log,
        tel: Any,
        on_start: Hook,
        on_stop: Hook,
    ):
        self.cfg, self.streams, self.outcome, self.sigs, self.log = cfg, streams, outcome, sigs, log
        self.tel, self.on_start, self.on_stop = tel, on_start, on_stop
        self.by_conn = {id(s.conn): s for s in streams}
        self.t_launch = time.monotonic()
        self.oom_before = oom_kills()  # streams are only starting: nothing of theirs is killed yet
        self.started = self.stopping = self.finished = False
        self.deadline = self.next_progress = 0.0

    def fail(self, sid: int, reason: str, details: dict[str, Any] | None = None) -> None:
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
                kind, payload = s.conn.recv()
            except (EOFError, OSError):
                s.closed = True
                continue
            s.seen = time.monotonic()
            self.handle(s, kind, payload)

    def handle(self, s: StreamProc, kind: str, payload: Any) -> None:
        """One message of the protocol in worker.py."""
        if kind == "warming":  # said before a warm-up that may compile for a minute
            self.log(f"stream {s.sid}: {payload}")
        elif kind == "ready":
            s.ready = True
            w = payload["warmup"]
            rt = payload.get("runtime_setup_s")  # a runtime's export, compile and parity: a phase of its own
            self.log(
                f"stream {s.sid} ready: set-up {payload['setup_s']:.1f} s"
                + (f", runtime set-up {rt:.1f} s" if rt is not None else "")
                + f", warm-up {w['pairs']} pairs in {w['seconds']:.2f} s"
            )
        elif kind == "progress":
            s.pairs = payload
        elif kind == "result":
            s.result, s.accounted = StreamResult.from_dict(payload), True
            self.outcome.streams.append(s.result)
        elif kind == "error":
            s.accounted = True
            if self.stopping and payload["error"].startswith("StreamAborted"):
                return  # stopped before the start, as asked
            if payload.get("traceback"):
                self.log(payload["traceback"].rstrip())
            usage = {"usage": True} if payload.get("usage") else {}  # bad input: the run exits 2 (session.py)
            self.fail(s.sid, payload["error"], (payload.get("details") or {}) | usage)

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
                with contextlib.suppress(OSError):
                    s.conn.send(("stop", self.outcome.status))

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
        elapsed = now - (self.outcome.start or now)
        rate = sum(done) / elapsed if elapsed > 0 else 0.0
        per_stream = rate / len(done)
        left = (self.cfg.num_inputs - min(done)) / per_stream if per_stream > 0 else float("inf")
        if self.cfg.dummy:
            left = max(self.cfg.min_test_duration - elapsed, left, 0.0)
            if self.cfg.max_test_duration is not None:
                left = min(left, max(self.cfg.max_test_duration - elapsed, 0.0))
        left_text = f"~{left:.0f} s left" if left != float("inf") else "time left unknown"
        self.log(f"progress: {sum(done)} pairs in {elapsed:.1f} s, {rate:.2f} pairs/s, {left_text}")
