"""Which Python every Slurm task runs, and the checks `fleet submit` can make of it.

Bare metal, each node runs `PYTHON -m rifebench.fleet.task`. By default PYTHON
is the submitting interpreter (sys.executable) and the script exports
PYTHONPATH=<the folder holding this rifebench package>: paths of the submitting
host, which every node must see at the same place (a shared filesystem).
`--python PATH` names another interpreter, one with rifebench installed where
the nodes see it; no PYTHONPATH is set then. In a container (--container-image)
the image's interpreter runs (its WORKDIR's .venv, or --python inside the image).

What submit checks here, before anything is written: a --python interpreter
runs and imports this version of rifebench (the nodes read the plan this one
writes); with --skip-host-checks (a login node that lacks the nodes' software)
one that is missing here is accepted unchecked. Neither the interpreter (nor
what its link points to) nor the package folder may lie on a memory filesystem
(tmpfs, ramfs): no other node sees those. That the nodes see the same paths
cannot be checked from here: submit says so, and the plan keeps the
interpreter, so the report can name it beside a task that never started.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rifebench import __version__
from rifebench.errors import UsageError

IMAGE_PYTHON = ".venv/bin/python"  # in the images' WORKDIR (docker/*/Dockerfile)
MEMORY_FS = frozenset({"tmpfs", "ramfs"})
PROBE = "import sys, rifebench, rifebench.fleet.task; sys.stdout.write(rifebench.__version__)"
PROBE_TIMEOUT_S = 120


@dataclass(frozen=True)
class NodePython:
    python: str  # what srun starts on every node
    pythonpath: str | None = None  # exported by the script; None: the interpreter has rifebench
    in_image: bool = False

    def describe(self) -> str:
        """The console's line: what every node runs, and what it needs."""
        if self.in_image:
            return f"every node runs {self.python} inside the image (the image's rifebench)"
        real = os.path.realpath(self.python)
        shown = self.python + (f" (a link to {real})" if real != self.python else "")
        if self.pythonpath is None:
            return f"every node runs {shown}: each must have it, with rifebench {__version__} installed"
        return (
            f"every node runs {shown} with PYTHONPATH={self.pythonpath} (this checkout's): the nodes must see "
            "these paths as this host does (a shared filesystem); otherwise give --python PATH of an "
            "interpreter with rifebench installed on the nodes, or --container-image"
        )


def package_parent() -> str:
    """The folder holding this rifebench package: what PYTHONPATH must name."""
    return str(Path(__file__).resolve().parents[2])


def choose(python: str | None, container_image: str | None) -> NodePython:
    if python is not None and not python.strip():
        raise UsageError("--python: invalid value '' (accepted: the path of a Python interpreter)")
    if container_image:
        return NodePython(python or IMAGE_PYTHON, None, in_image=True)
    if python is None:
        return NodePython(sys.executable, package_parent())
    if not os.path.isabs(python):
        raise UsageError(
            f"--python: invalid value {python!r} (accepted: an absolute path, the same on every node, "
            "e.g. /shared/venvs/rifebench/bin/python)"
        )
    return NodePython(python)


def check(node: NodePython, skip_host_checks: bool) -> None:
    """UsageError (one line naming --python or the path) when the nodes cannot run it."""
    if node.in_image:
        return
    for what, path in (("--python", node.python), ("--python", os.path.realpath(node.python))) + (
        (("the package folder (PYTHONPATH)", node.pythonpath),) if node.pythonpath else ()
    ):
        fs = filesystem(path)
        if fs in MEMORY_FS:
            raise UsageError(
                f"{what}: {path!r} is on a {fs} filesystem, in this host's memory, which no node sees "
                "(accepted: an interpreter and package on a filesystem every node shares, --python PATH of one "
                "installed on every node, or --container-image)"
            )
    if node.pythonpath is not None:
        return  # this interpreter, running now: nothing to probe
    if not os.path.exists(node.python):
        if skip_host_checks:
            return
        raise UsageError(
            f"--python: {node.python!r} does not exist on this host (accepted: an interpreter with rifebench "
            f"installed; one only the nodes have with --skip-host-checks, unchecked)"
        )
    probe(node.python)


def probe(python: str) -> None:
    """Run the interpreter as a node will (sbatch passes this environment on, and
    srun starts in this folder): it must import this version's fleet task."""
    try:
        proc = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(
            f"--python: {python!r} could not be run ({type(exc).__name__}: {exc}) (accepted: a Python "
            f"interpreter with rifebench {__version__} installed)"
        ) from None
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise UsageError(
            f"--python: {python!r} cannot run the fleet's task ({why}) (accepted: a Python interpreter with "
            f"rifebench {__version__} installed)"
        )
    if proc.stdout.strip() != __version__:
        raise UsageError(
            f"--python: {python!r} has rifebench {proc.stdout.strip()[:40]!r} (accepted: rifebench {__version__}, "
            "this one's: the nodes read the plan it writes)"
        )


def filesystem(path: str) -> str | None:
    """The type of the filesystem holding `path` (/proc/self/mountinfo: the longest
    mount point above it); None where that is not known."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    path = os.path.abspath(path)
    best, kind = -1, None
    for line in lines:
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or not rest:
            continue
        mount = _unescape(parts[4])
        inside = path == mount or path.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= best:  # a later mount on the same point hides the earlier
            best, kind = len(mount), rest.split()[0]
    return kind


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field
