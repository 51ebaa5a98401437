"""CLI: parse -> prepare -> launch -> report; exit codes.

`python -m rifebench [run] OPTIONS` is run_model.sh: the options are parsed
(config.py), the run prepared (run/prepare.py) and then launched and reported
(run/session.py). The other tools are subcommands: `bench` (benchmark.sh),
`compare`, `study`, `fetch-model` (get_model.sh), `fetch-dataset`
(get_dataset.sh), `fleet` (Slurm, Kubernetes). Exit status: status.Exit.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
from typing import Any, TextIO

from rifebench import console
from rifebench.errors import UsageError
from rifebench.run.interrupts import Interrupted, raise_on_signals
from rifebench.run.session import PROG
from rifebench.status import Exit

SUBCOMMANDS = {
    "bench": "rifebench.bench.runner",
    "compare": "rifebench.compare.cli",
    "study": "rifebench.study.cli",
    "fetch-model": "rifebench.fetch.weights",
    "fetch-dataset": "rifebench.fetch.vimeo",
    "fleet": "rifebench.fleet.cli",
}

TORCH_MISSING = (
    "PyTorch is not installed in this Python (accepted: run ./setup.sh in a checkout, which picks "
    "the build for this machine, or pip install torch --index-url "
    "https://download.pytorch.org/whl/cpu (or .../whl/cu128 for NVIDIA, .../whl/xpu for Intel GPUs))"
)


def error(msg: str) -> None:
    console.error(PROG, msg)


class _Stdout:
    """sys.stdout whose first broken pipe (`| head -1`) sends the rest to /dev/null,
    as Python's documentation on SIGPIPE advises, so that the run goes on and keeps
    its exit status instead of dying in a BrokenPipeError traceback."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            self._to_devnull(exc)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            self._to_devnull(exc)

    def _to_devnull(self, exc: OSError) -> None:
        if exc.errno not in (errno.EPIPE, errno.EBADF):
            raise exc
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, self._stream.fileno())
        os.close(null)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _guard_stdio() -> None:
    # A descriptor closed at start (`>&-`) leaves sys.stdout None, and the next
    # descriptor opened would take its number: give it /dev/null first.
    for fd, name, mode in ((0, "stdin", os.O_RDONLY), (1, "stdout", os.O_WRONLY), (2, "stderr", os.O_WRONLY)):
        if getattr(sys, name) is None:
            null = os.open(os.devnull, mode)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            stream = open(fd, "r" if fd == 0 else "w", closefd=False)  # noqa: SIM115 - the process's stdio, open until exit
            setattr(sys, name, stream)
    if not isinstance(sys.stdout, _Stdout):
        sys.stdout = _Stdout(sys.stdout)


def main(argv: list[str] | None = None) -> int:
    _guard_stdio()
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    if argv[:1] == ["run"]:
        argv = argv[1:]
    if "--options-markdown" in argv or "--warnings-markdown" in argv:
        from rifebench import options, warning_codes

        print((options if "--options-markdown" in argv else warning_codes).markdown_table())
        return Exit.PASS
    try:
        from rifebench.config import resolve
        from rifebench.run.prepare import lock_output_dir, prepare

        ready = prepare(resolve(argv))
        lock = lock_output_dir(ready.cfg.output_dir)
    except UsageError as exc:
        error(str(exc))
        return Exit.USAGE
    except ModuleNotFoundError as exc:
        if exc.name != "torch" and not (exc.name or "").startswith("torch."):
            raise
        error(TORCH_MISSING)
        return Exit.USAGE
    from rifebench.run.session import run_locked

    return run_locked(ready, lock)


def cli() -> int:
    """`python -m rifebench`: a signal exits 130 with one line from here on (run/interrupts.py)."""
    raise_on_signals()
    try:
        return main()
    except Interrupted as exc:
        error(f"interrupted by {exc} during start-up; nothing was measured")
        return Exit.INTERRUPTED


if __name__ == "__main__":
    sys.exit(cli())
