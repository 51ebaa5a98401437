"""CLI: parse -> prepare -> launch -> report; exit codes.

`python -m rifebench [run] OPTIONS` is run_model.sh: the options are parsed
(config.py), the run prepared (run/prepare.py) and then launched and reported
(run/session.py). The other tools are subcommands: `bench` (benchmark.sh),
`compare`, `study`, `fetch-model` (get_model.sh), `models` (the zoo), `fetch-dataset`
(get_dataset.sh), `fleet` (Slurm, Kubernetes). Exit status: status.Exit.
Signals: one rule for every instant (run/interrupts.py); the handlers go in
before anything else is imported.
"""

from __future__ import annotations

from rifebench.run.interrupts import START_UP, Deferred, Interrupted, raise_recorded

EARLY = Deferred()  # the imports below take a tenth of a second: a signal then is recorded, and cli() says so
if __name__ == "__main__":
    EARLY.__enter__()  # entered for the process's life: cli() replaces its handlers

import errno  # noqa: E402 - after the signal handlers, on purpose
import importlib  # noqa: E402 - after the signal handlers, on purpose
import os  # noqa: E402 - after the signal handlers, on purpose
import sys  # noqa: E402 - after the signal handlers, on purpose
from typing import Any, TextIO  # noqa: E402 - after the signal handlers, on purpose

from rifebench import console  # noqa: E402 - after the signal handlers, on purpose
from rifebench.errors import UsageError  # noqa: E402 - after the signal handlers, on purpose
from rifebench.run.session import PROG  # noqa: E402 - after the signal handlers, on purpose
from rifebench.status import Exit  # noqa: E402 - after the signal handlers, on purpose

SUBCOMMANDS = {
    "bench": "rifebench.bench.runner",
    "compare": "rifebench.compare.cli",
    "study": "rifebench.study.cli",
    "tune": "rifebench.tune.cli",
    "fetch-model": "rifebench.fetch.weights",
    "models": "rifebench.fetch.catalog",
    "fetch-dataset": "rifebench.fetch.vimeo",
    "fleet": "rifebench.fleet.cli",
}
# What a subcommand (and its action word) was doing, for the line a signal gets.
DOING = {
    "bench": "running the benchmark",
    "compare": "comparing the results",
    "study": "running the study",
    "tune": "searching the configurations",
    "fetch-model": "fetching the weights",
    "fetch-dataset": "fetching the dataset",
    "fleet submit": "checking and submitting the fleet",
    "fleet report": "collecting the cells and writing the report",
    "fleet k8s": "writing the Kubernetes manifest",
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
        from rifebench.run.prepare import lock_output_dir, prepare, refused

        cfg = resolve(argv)
        with refused(cfg.output_dir):  # a refusal removes the folders this run created
            ready = prepare(cfg)
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
    """`python -m rifebench`: a signal that reaches here (start-up, or a subcommand
    that does not handle it) exits 130 with one line naming the tool and what it
    was doing (run/interrupts.py has the rule)."""
    argv = sys.argv[1:]
    try:
        raise_recorded(EARLY)
        return main(argv)
    except Interrupted as exc:
        prog, doing = interrupted_tool(argv)
        console.error(prog, f"interrupted by {exc} {doing}")
        return Exit.INTERRUPTED


def interrupted_tool(argv: list[str]) -> tuple[str, str]:
    """(the tool's name, what it was doing) for the line of an interruption."""
    if not argv or argv[0] not in SUBCOMMANDS:
        return PROG, START_UP
    sub = argv[0]
    action = argv[1] if len(argv) > 1 and not argv[1].startswith("-") and f"{sub} {argv[1]}" in DOING else None
    command = f"rifebench {sub}" + (f" {action}" if action else "")
    module = sys.modules.get(SUBCOMMANDS[sub])
    prog = getattr(module, "PROG", None) or f"rifebench {sub}"
    doing = DOING.get(f"{sub} {action}") or DOING.get(sub) or "running"
    return prog, f"while {doing} (`{command}`); it did not finish: run it again"


if __name__ == "__main__":
    sys.exit(cli())
