"""One profile row run as a subprocess: the one runner behind benchmark.sh's
rows and the fleet's cells (fleet/task.py, on a node).

The row is `python -m rifebench` with this package first on PYTHONPATH (so an
installed copy works outside a checkout) or any command (`docker run ...`),
with the row's variables over the caller's environment and OUTPUT_DIR set to
the row's folder. Its output goes to console.log there (and, when asked, to
this console with a prefix). The row dies with its parent. A signal (Ctrl-C,
SIGTERM from scancel or a pod's deletion, SIGHUP) is passed on to the row,
which records its own interruption; it gets STOP_TIMEOUT_S to stop cleanly.
Its exit status is then its own (a row that had written its results keeps
them, as run/interrupts.py says); `interrupted` tells the caller to stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rifebench.run.interrupts import Deferred, Interrupted
from rifebench.run.worker import kill_with_parent
from rifebench.status import Exit

# The folder holding the rifebench package, put first on a row's PYTHONPATH.
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
STOP_TIMEOUT_S = 60.0
CONSOLE_LOG = "console.log"


@dataclass(frozen=True)
class RowRun:
    """How a row's process ended: its exit status (None: it could not start;
    Exit.INTERRUPTED when a signal stopped it), its wall time, and the signal
    passed on to it, if any (the benchmark stops after this row)."""

    exit_code: int | None
    wall_s: float
    interrupted: str | None = None


def harness_command() -> list[str]:
    """A bare-metal row: this interpreter running the harness."""
    return [sys.executable, "-m", "rifebench"]


def child_env(row_env: Mapping[str, str], test_dir: Path) -> dict[str, str]:
    """The caller's environment, the row's variables over it, OUTPUT_DIR the row's
    folder (never the benchmark's own) and this package first on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "OUTPUT_DIR"} | dict(row_env) | {"OUTPUT_DIR": str(test_dir)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p)
    return env


def run_row(cmd: list[str], row_env: Mapping[str, str], test_dir: Path, echo: str | None = None) -> RowRun:
    """Run one row in `test_dir`; `echo`: the prefix its output lines get on this
    console (None: console.log only)."""
    t0 = time.monotonic()
    code, sig = run_logged(cmd, child_env(row_env, test_dir), test_dir / CONSOLE_LOG, echo)
    return RowRun(code, time.monotonic() - t0, sig)


def run_logged(
    cmd: list[str], env: Mapping[str, str], log_path: Path, echo: str | None
) -> tuple[int | None, str | None]:
    """The process's output into log_path (and echoed): its exit status and the
    signal that reached us as Interrupted (run.interrupts.raise_on_signals) and
    was passed on to it, if any."""
    with open(log_path, "wb") as logf:
        try:
            proc = subprocess.Popen(
                cmd,
                env=dict(env),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                preexec_fn=kill_with_parent,  # noqa: PLW1509 - it only calls prctl, and no thread runs here
            )
        except OSError as exc:
            logf.write(f"error: cannot start {cmd[0]}: {exc}\n".encode())
            return None, None
        try:
            _copy(proc, logf, echo)
            return proc.wait(), None
        except KeyboardInterrupt as exc:
            sig = _signal_of(exc)
            _stop(proc, logf, sig)
            # Its own status: 130 when it was cut short; 0 or 1 when it had finished (its results stand).
            code = proc.returncode
            return (code if code is not None and code >= 0 else Exit.INTERRUPTED), sig.name


def _copy(proc: subprocess.Popen[bytes], logf: BinaryIO, echo: str | None) -> None:
    assert proc.stdout is not None  # Popen with stdout=PIPE
    for line in proc.stdout:
        logf.write(line)
        logf.flush()
        if echo is not None:
            sys.stdout.write(echo + line.decode(errors="replace"))
            sys.stdout.flush()


def _signal_of(exc: KeyboardInterrupt) -> signal.Signals:
    """The signal that stopped us (Interrupted names it); a plain Ctrl-C is SIGINT."""
    if isinstance(exc, Interrupted) and exc.args and exc.args[0] in signal.Signals.__members__:
        return signal.Signals[exc.args[0]]
    return signal.SIGINT


def _stop(proc: subprocess.Popen[bytes], logf: BinaryIO, sig: signal.Signals) -> None:
    """Pass the signal on and give the row time to record its interruption; a
    second signal meanwhile does not cut that short (the row has it already)."""
    proc.send_signal(sig)
    with Deferred():
        try:
            logf.write(proc.communicate(timeout=STOP_TIMEOUT_S)[0] or b"")
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
