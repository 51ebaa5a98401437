"""Run statuses and exit codes: defined once, used by the runner, the report,
the benchmark and the stream processes."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Exit(IntEnum):
    """Process exit statuses of run_model.sh, benchmark.sh and the tools."""

    PASS = 0
    FAIL = 1  # a stream failed, or the quality verdict failed
    USAGE = 2  # bad input: one line on stderr, nothing ran
    INTERRUPTED = 130  # Ctrl-C / SIGTERM: what was measured is kept
    # A stream process's own statuses, seen only by the launcher:
    STREAM_FAULT = 3  # FAULT=...:exit asked the stream to die without a word
    STREAM_STOPPED = 75  # stopped by the launcher before the start: not a failure
    STREAM_ORPHANED = 76  # the launcher went away


class Status(StrEnum):
    """results.json `status`; benchmark rows add NOT_RUN."""

    RUNNING = "running"  # written at the start: a crash of the launcher itself leaves this
    COMPLETED = "completed"  # the launcher's: every stream finished; the verdict decides passed/failed
    PASSED = "passed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    NOT_RUN = "not run"

    @property
    def exit(self) -> Exit:
        return {Status.PASSED: Exit.PASS, Status.INTERRUPTED: Exit.INTERRUPTED}.get(self, Exit.FAIL)


def status_of_exit(code: int | None) -> Status:
    """What a row's exit status says on its own (the row's results.json may say more)."""
    if code == Exit.PASS:
        return Status.PASSED
    if code == Exit.INTERRUPTED:
        return Status.INTERRUPTED
    return Status.FAILED if code is not None else Status.NOT_RUN
