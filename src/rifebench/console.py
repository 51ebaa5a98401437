"""The one way the tools talk to a person: progress lines on stdout, one-line
errors on stderr, and the UTC timestamp every record carries."""

from __future__ import annotations

import datetime as dt
import sys


def log(msg: str, *, stderr: bool = False) -> None:
    """One progress line on stdout (on stderr for a tool whose stdout is its
    result: the study's table), flushed so that a tee or a pipe sees it at once."""
    print(msg, file=sys.stderr if stderr else sys.stdout, flush=True)


def error(prog: str, msg: str) -> None:
    """The one-line error a tool prints before it exits non-zero."""
    print(f"{prog}: error: {msg}", file=sys.stderr, flush=True)


def now_iso() -> str:
    """Now, in UTC, ISO 8601 to the second (e.g. 2025-01-31T12:00:00+00:00)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
