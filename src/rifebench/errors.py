"""The one error every layer raises for bad input (exit 2). Its message is the
whole one-line error: the option, the bad value, what is accepted."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input found before anything heavy ran; the runner exits 2."""
