"""Where the harness's own files are: a checkout's folders, or a user cache when installed.

A checkout keeps its weights in <repo>/model (the reference's layout); a package
installed with pip has no such folder (parents[2] of the package is then
<venv>/lib/python3.X), so its weights go to the user's cache folder instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent


def checkout_root() -> Path | None:
    """The repository root when the package runs from a checkout, else None."""
    root = PACKAGE_ROOT.parents[1]
    if (root / "run_model.sh").is_file() and ((root / ".git").exists() or (root / "setup.sh").is_file()):
        return root
    return None


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/rifebench, else ~/.cache/rifebench (the XDG base directory default)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "rifebench"


def default_models_dir() -> Path:
    """MODELS_DIR's default: <checkout>/model, or the user cache outside a checkout."""
    root = checkout_root()
    return root / "model" if root is not None else cache_dir()


def git_revision() -> str | None:
    """The checkout's commit (read from .git, no git binary needed), or None when installed."""
    root = checkout_root()
    git = root / ".git" if root is not None else None
    if git is None or not git.is_dir():
        return None
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None
        ref = head[5:]
        loose = git / ref
        if loose.is_file():
            return loose.read_text().strip() or None
        packed = git / "packed-refs"
        for line in packed.read_text().splitlines() if packed.is_file() else ():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    except OSError:
        return None
    return None


# The checkout's scripts by subcommand: users of a checkout type these names.
SCRIPTS = {
    "run": "run_model.sh",
    "bench": "benchmark.sh",
    "fetch-model": "get_model.sh",
    "fetch-dataset": "get_dataset.sh",
}


def _as_installed_command() -> bool:
    """Started as the installed `rifebench` command, or with no checkout around the
    package (pip installed): then no script exists to name."""
    return Path(sys.argv[0]).name == "rifebench" or checkout_root() is None


def tool_name(sub: str) -> str:
    """What a tool calls itself in its usage and error lines: the script a checkout's
    user typed (run_model.sh; the scripts start `python -m rifebench`), or the
    installed command's subcommand (`rifebench run`)."""
    if not _as_installed_command() and sub in SCRIPTS:
        return SCRIPTS[sub]
    return f"rifebench {sub}" if _as_installed_command() else f"python -m rifebench {sub}"


def tool_command(sub: str) -> str:
    """The command a hint tells the user to type: `./get_model.sh` in a checkout,
    `rifebench fetch-model` where only the installed command exists."""
    name = tool_name(sub)
    return f"./{name}" if name in SCRIPTS.values() else name
