"""A prepared run, launched and reported: the output folder locked, the previous
results set aside, output.log opened, the repetitions launched, results.json
written. Returns the exit status (status.Exit). Signals: run/interrupts.py
(one rule for every phase)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from rifebench import __version__, paths
from rifebench.console import error, log
from rifebench.run import prepare as preparation
from rifebench.run.interrupts import START_UP, Deferred, interrupted_late
from rifebench.status import Exit, Status
from rifebench.warning_codes import line

if TYPE_CHECKING:
    from rifebench.config import Config
    from rifebench.fsutil import OutputLock
    from rifebench.report.repetitions import Outcome as Repetition
    from rifebench.run.prepare import Prepared

PROG = paths.tool_name("run")


def run_locked(ready: Prepared, lock: OutputLock) -> int:
    """The run in its locked folder: the lock lives as long as the run; the
    previous results go aside before output.log is opened. Signals are deferred
    from here on (a set-aside cut in half would split the earlier run's files)."""
    from rifebench.report.previous import set_aside_previous
    from rifebench.run.teelog import Tee

    try:
        with Deferred() as sigs:
            set_aside_previous(ready.cfg.output_dir)
            with Tee(str(Path(ready.cfg.output_dir) / "output.log")):
                return run(ready, sigs)
    finally:
        lock.release()


def run(ready: Prepared, sigs: Deferred | None = None) -> int:
    from rifebench.report import results as report
    from rifebench.report.console_summary import print_summary
    from rifebench.run.launcher import Outcome, launch

    sigs = sigs or Deferred()  # not entered: records nothing

    cfg = ready.cfg
    log(header(cfg))
    for w in ready.warnings:
        log(line(w))
    if sigs.received:  # while the earlier results were set aside or the log opened: still start-up
        error(PROG, f"interrupted by {sigs.received} {START_UP}")
        sigs.settle(f"interrupted during start-up, exit {int(Exit.INTERRUPTED)}")
        return Exit.INTERRUPTED
    started_wall = time.time()
    model = ready.model.to_dict()
    try:
        report.begin(cfg, model)
    except OSError as exc:
        return results_lost(cfg, exc, sigs)
    outcomes: list[Repetition] = []
    for i in range(cfg.repeat):
        if cfg.repeat > 1:
            log(f"repetition {i + 1} of {cfg.repeat}")
        # A signal before the launch stops the run here; one during it, the launcher.
        if sigs.received:
            when = "the streams started" if i == 0 else f"repetition {i + 1} started"
            log(f"received {sigs.received} before {when}: status interrupted")
            outcomes.append(Outcome(Status.INTERRUPTED))
        else:
            outcomes.append(launch(cfg, ready.plan, log=log))
        outcomes[-1].warnings[:0] = ready.warnings
        if outcomes[-1].status != Status.COMPLETED:
            break  # a failed or interrupted repetition ends the run; its failure is the run's
    usage = next((f for f in outcomes[-1].failures if f.get("usage")), None)
    if usage is not None:
        return refused_in_a_stream(cfg, str(usage["reason"]), sigs)
    streams = outcomes[-1].streams
    peak = preparation.device_peak(cfg, streams) if streams else None
    seen = sigs.received  # during the run: the outcome says interrupted (or failed, which stands)
    if seen and outcomes[-1].status == Status.COMPLETED:
        log(f"received {seen} after the streams ended: the measurement is kept, status interrupted")
        outcomes[-1].status = Status.INTERRUPTED  # kept, but not a pass
    try:
        result, code = report.finish(cfg, model, outcomes, started_wall, peak.to_dict() if peak else None)
    except OSError as exc:
        return results_lost(cfg, exc, sigs)
    late = sigs.settle(f"status {result.status}, exit {code}")
    if late and not seen and result.status != Status.INTERRUPTED:  # arrived while the results were written
        result, code = interrupted_late(cfg, result, late, log)
        sigs.outcome = f"status {result.status}, exit {code}"
    print_summary(result, log)
    return code


def header(cfg: Config) -> str:
    """The first line: what runs, the runtime by name and version when it is not
    PyTorch's eager mode (its parity gate is said when the streams pass it)."""
    text = (
        f"rifebench {__version__}: model {cfg.model}, {cfg.mode_name} mode ({cfg.mode}), platform {cfg.platform}, "
        f"precision {cfg.precision}{' (amp)' if cfg.amp else ''}, {cfg.streams} stream(s)"
    )
    if cfg.runtime == "torch":
        return text
    from rifebench.runtimes.net import PARITY_DB, runtime_version

    return (
        f"{text}, runtime {cfg.runtime} {runtime_version(cfg.runtime) or '(version unknown)'} "
        f"(parity gate: >= {PARITY_DB[cfg.precision]:g} dB PSNR against PyTorch fp32 before timing)"
    )


def results_lost(cfg: Config, exc: OSError, sigs: Deferred) -> int:
    """A result file could not be written (a full disk): say so in one line and
    leave no results.json claiming "running"; name the earlier runs' results
    only where previous/ holds some."""
    from rifebench.report.previous import discard_unfinished, kept_runs

    discard_unfinished(cfg.output_dir)
    kept = kept_runs(cfg.output_dir)
    where = "; earlier runs' results are kept in its previous/ folder" if kept else ""
    sigs.settle(f"results not written, exit {int(Exit.FAIL)}")
    error(PROG, f"--output-dir/OUTPUT_DIR: results not written in {cfg.output_dir!r} ({exc.strerror or exc}){where}")
    return Exit.FAIL


def refused_in_a_stream(cfg: Config, reason: str, sigs: Deferred) -> int:
    """Bad input that only a stream could find (a runtime's provider, the ONNX
    cache's folders): as any bad input, one line and exit 2, and no results.json
    left claiming "running" (nothing was measured; earlier results stay in previous/)."""
    from rifebench.report.previous import discard_unfinished

    discard_unfinished(cfg.output_dir)
    sigs.settle(f"refused, exit {int(Exit.USAGE)}")
    error(PROG, reason)
    return Exit.USAGE
