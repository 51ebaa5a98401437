"""A prepared run, launched and reported: the output folder locked, the previous
results set aside, output.log opened, the repetitions launched, results.json
written. Returns the exit status (status.Exit)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from rifebench import __version__
from rifebench.console import error, log
from rifebench.run import prepare as preparation
from rifebench.run.interrupts import Deferred, interrupted_late
from rifebench.status import Exit, Status
from rifebench.warning_codes import line

if TYPE_CHECKING:
    from rifebench.config import Config
    from rifebench.fsutil import OutputLock
    from rifebench.report.repetitions import Outcome as Repetition
    from rifebench.run.prepare import Prepared

PROG = "run_model.sh"


def run_locked(ready: Prepared, lock: OutputLock) -> int:
    """The run in its locked folder: the lock lives as long as the run; the
    previous results go aside before output.log is opened."""
    from rifebench.report.previous import set_aside_previous
    from rifebench.run.teelog import Tee

    try:
        set_aside_previous(ready.cfg.output_dir)
        with Tee(str(Path(ready.cfg.output_dir) / "output.log")), Deferred() as sigs:
            return run(ready, sigs)
    finally:
        lock.release()


def run(ready: Prepared, sigs: Deferred | None = None) -> int:
    from rifebench.report import results as report
    from rifebench.report.console_summary import print_summary
    from rifebench.run.launcher import Outcome, launch

    sigs = sigs or Deferred()  # not entered: records nothing

    cfg = ready.cfg
    log(
        f"rifebench {__version__}: model {cfg.model}, {cfg.mode_name} mode ({cfg.mode}), platform {cfg.platform}, "
        f"precision {cfg.precision}{' (amp)' if cfg.amp else ''}, {cfg.streams} stream(s)"
    )
    for w in ready.warnings:
        log(line(w))
    started_wall = time.time()
    model = ready.model.to_dict()
    try:
        report.begin(cfg, model)
    except OSError as exc:
        return results_lost(cfg, exc)
    outcomes: list[Repetition] = []
    for i in range(cfg.repeat):
        if cfg.repeat > 1:
            log(f"repetition {i + 1} of {cfg.repeat}")
        # A signal before the launch stops the run here; one during it, the launcher.
        outcomes.append(Outcome(Status.INTERRUPTED) if sigs.received else launch(cfg, ready.plan, log=log))
        outcomes[-1].warnings[:0] = ready.warnings
        if outcomes[-1].status != Status.COMPLETED:
            break  # a failed or interrupted repetition ends the run; its failure is the run's
    streams = outcomes[-1].streams
    peak = preparation.device_peak(cfg, streams) if streams else None
    if sigs.received and outcomes[-1].status == Status.COMPLETED:
        outcomes[-1].status = Status.INTERRUPTED  # after the streams ended: kept, but not a pass
    try:
        result, code = report.finish(cfg, model, outcomes, started_wall, peak.to_dict() if peak else None)
    except OSError as exc:
        return results_lost(cfg, exc)
    if sigs.received and result.status != Status.INTERRUPTED:  # arrived while the results were written
        result, code = interrupted_late(cfg, result, sigs.received, log)
    print_summary(result, log)
    return code


def results_lost(cfg: Config, exc: OSError) -> int:
    """A result file could not be written (a full disk): say so in one line and
    leave no results.json claiming "running"; earlier runs stay in previous/."""
    from rifebench.report.previous import discard_unfinished

    discard_unfinished(cfg.output_dir)
    error(
        PROG,
        f"--output-dir/OUTPUT_DIR: results not written in {cfg.output_dir!r} ({exc.strerror or exc}); "
        "earlier runs' results are kept in its previous/ folder",
    )
    return Exit.FAIL
