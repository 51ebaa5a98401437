"""The harness's errors. Every error class of the package derives from
RifebenchError, so that a caller can catch the harness's own failures in one
clause; each also keeps the builtin base its callers have always caught
(OSError, ValueError, RuntimeError).

UsageError is the one error for bad input (exit 2): its message is the whole
one-line error: the option, the bad value, what is accepted."""

from __future__ import annotations


class RifebenchError(Exception):
    """Root of every error the harness raises on purpose."""


class UsageError(RifebenchError, ValueError):
    """Bad input found before anything heavy ran; the tool exits 2."""
