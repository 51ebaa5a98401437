"""Shared helpers for tests that run the harness as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OPTION_VARS = None


def clean_env(**extra) -> dict:
    """The environment minus every harness variable, so the host's settings
    never leak into a test; then the test's own."""
    from rifebench.options import OPTIONS

    env = {k: v for k, v in os.environ.items() if k not in {o.env for o in OPTIONS}}
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_harness(args, env=None, timeout=300, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rifebench", *map(str, args)],
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or REPO,
    )
