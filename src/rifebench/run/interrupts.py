"""SIGINT, SIGTERM and SIGHUP from the first line of `python -m rifebench` to the last.

Start-up (torch import, weights download, model load): nothing measured yet, so
a signal raises Interrupted and the run exits 130 with one line. From the run's
start (results.json "running") to its end a signal is recorded instead: the
launcher stops the streams (its own handler, for the same three signals), and
the results are written whole before they say "interrupted", so that no file is
left claiming "running" and no temp file is left half-written.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rifebench.status import Exit, Status

if TYPE_CHECKING:
    from rifebench.report.schema import RunResult

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A signal before the run began. A KeyboardInterrupt, so that the subcommands'
    own Ctrl-C handling (benchmark.sh's rows) sees all three signals."""


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def raise_on_signals() -> None:
    """The default would be a traceback for SIGINT, a silent 143 or 129 for the others."""
    for sig in SIGNALS:
        signal.signal(sig, _raise)


class Deferred:
    """Records the first signal while entered; the handlers before it come back on exit."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._old: dict[signal.Signals, Any] = {}

    def __enter__(self) -> Deferred:
        self._old = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = self.received or signal.Signals(signum).name

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def interrupted_late(cfg: Any, run: RunResult, name: str, log: Callable[[str], None]) -> tuple[RunResult, int]:
    """A signal while the results were written: they were written whole; now they
    say "interrupted", as any interrupted run's do (and no results.yaml)."""
    from rifebench.report import results as report

    log(f"received {name} while writing the results: status interrupted")
    run = dataclasses.replace(run, status=str(Status.INTERRUPTED), exit_code=int(Exit.INTERRUPTED))
    report.write_json(cfg.output_dir, run.to_dict())
    (Path(cfg.output_dir) / "results.yaml").unlink(missing_ok=True)
    return run, int(Exit.INTERRUPTED)
