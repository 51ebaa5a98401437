"""SIGINT, SIGTERM and SIGHUP: one rule for every instant of `python -m rifebench`.

The rule: a signal interrupts what has not finished and never undoes what has;
it gets one line; the exit status and results.json always agree. An
interruption exits 130 (Exit.INTERRUPTED, Ctrl-C's 128 + SIGINT, which the
reference and shells use) for all three signals, never 143 or 129. By phase:

1. start-up, from the first line of __main__ to results.json saying "running"
   (parsing, checks, weights, the folder's lock, setting earlier results aside):
   the run stops there; stderr: `run_model.sh: error: interrupted by SIGTERM
   during start-up; nothing was measured`; exit 130; no results.json; folders
   this run created and left empty are removed.
2. the run, from "running" to the streams' end: the launcher stops the streams
   and what was measured is written with status interrupted; stdout:
   `received SIGTERM: stopping all streams` (`... before the streams started`,
   `... after the streams ended`); exit 130. A run that had already failed (a
   stream died) stays failed, exit 1: its failure is what it measured.
3. writing the results: they are written whole, then say interrupted (no
   results.yaml); stdout: `received SIGTERM while writing the results: status
   interrupted`; exit 130.
4. after the results are written (the summary lines, closing the log,
   releasing the lock, the interpreter's exit): nothing is left to interrupt,
   the results stand; stdout: `received SIGTERM after the run ended: nothing
   left to interrupt (status passed, exit 0)`; exit: the run's own.

Other tools, same rule: a subcommand that does not handle a signal itself
(`rifebench fleet report`, ...) ends with exit 130 and `rifebench fleet: error:
interrupted by SIGTERM while collecting the cells and writing the report
(`rifebench fleet report`); it did not finish: run it again` (__main__.cli);
benchmark.sh before its first row: `benchmark.sh: error: interrupted by SIGTERM
during start-up; no row ran`, exit 130; from its first row on it stops the
running row and records the rest as not run (bench/runner.py).

The very first instants: run_model.sh traps the three signals until it hands
over to Python (same line, exit 130); __main__ records a signal from its first
line and reports it once its imports are done; only the interpreter's own
start and the package's __init__ (tens of milliseconds) keep the system's defaults.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rifebench.status import Exit, Status

if TYPE_CHECKING:
    from rifebench.report.schema import RunResult

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
START_UP = "during start-up; nothing was measured"


class Interrupted(KeyboardInterrupt):
    """A signal before the run began. A KeyboardInterrupt, so that the subcommands'
    own Ctrl-C handling (benchmark.sh's rows) sees all three signals."""


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def raise_on_signals() -> None:
    """The default would be a traceback for SIGINT, a silent 143 or 129 for the others."""
    for sig in SIGNALS:
        signal.signal(sig, _raise)


def raise_recorded(early: Deferred) -> None:
    """raise_on_signals, then Interrupted for a signal `early` recorded before (the
    imports of __main__, which cannot raise it usefully): none slips between."""
    raise_on_signals()
    if early.received:
        raise Interrupted(early.received)


def say(line: str) -> None:
    """One line on stdout from a signal handler: os.write, because the handler may
    run inside a print of the main thread, and a buffered stream is not reentrant."""
    with contextlib.suppress(OSError):
        os.write(1, (line + "\n").encode())


class Deferred:
    """Records the first signal while entered; the handlers before it come back on
    exit, and a signal it recorded is passed on to an enclosing Deferred (the
    launcher's, inside the run's), so none is lost between them. After settle()
    a signal is only reported (phase 4), and the start-up handler never comes
    back: the run is over."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.outcome: str | None = None  # set by settle(): what stands
        self._old: dict[signal.Signals, Any] = {}

    def __enter__(self) -> Deferred:
        self._old = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.outcome is not None:
            say(f"received {name} after the run ended: nothing left to interrupt ({self.outcome})")
            return
        self.received = self.received or name

    def settle(self, outcome: str) -> str | None:
        """The run's end: from now on signals are reported, not recorded. Returns
        the signal recorded before, if any (set first, then read: none slips between)."""
        self.outcome = outcome
        return self.received

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            if self.outcome is not None and handler is _raise:
                continue  # phase 4 lasts until the process exits
            signal.signal(sig, handler)
        outer = getattr(self._old.get(signal.Signals[self.received]), "__self__", None) if self.received else None
        if isinstance(outer, Deferred) and self.received:
            outer._handle(signal.Signals[self.received], None)


def interrupted_late(cfg: Any, run: RunResult, name: str, log: Callable[[str], None]) -> tuple[RunResult, int]:
    """A signal while the results were written: they were written whole; now they
    say "interrupted", as any interrupted run's do (and no results.yaml)."""
    from rifebench.report import results as report

    log(f"received {name} while writing the results: status interrupted")
    run = dataclasses.replace(run, status=str(Status.INTERRUPTED), exit_code=int(Exit.INTERRUPTED))
    report.write_json(cfg.output_dir, run.to_dict())
    (Path(cfg.output_dir) / "results.yaml").unlink(missing_ok=True)
    return run, int(Exit.INTERRUPTED)
