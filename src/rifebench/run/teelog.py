"""output.log gets everything printed, the streams' output included.

The launcher's stdout and stderr file descriptors are redirected into pipes
that threads copy to both the terminal (stdout to stdout, stderr to stderr) and
the log, so spawned streams, which inherit the descriptors, are captured
without any cooperation. The log is opened without following a symlink, and a
log that cannot be written (a full disk) stops the log, never the terminal copy.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from types import TracebackType
from typing import BinaryIO, Self

from rifebench.fsutil import open_nofollow


class Tee:
    def __init__(self, path: str, prog: str = "run_model.sh"):
        self.path = path
        self.prog = prog
        self.lock = threading.Lock()
        self.log_error: OSError | None = None

    def __enter__(self) -> Self:
        sys.stdout.flush()
        sys.stderr.flush()
        self.log: BinaryIO = open_nofollow(self.path)
        self.saved: list[int] = []
        self.threads: list[threading.Thread] = []
        for fd in (1, 2):
            saved = os.dup(fd)
            read_fd, write_fd = os.pipe()
            os.dup2(write_fd, fd)
            os.close(write_fd)
            t = threading.Thread(target=self._pump, args=(read_fd, saved), daemon=True)
            t.start()
            self.saved.append(saved)
            self.threads.append(t)
        return self

    def _pump(self, read_fd: int, terminal_fd: int) -> None:
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                with contextlib.suppress(OSError):  # the terminal went away: keep logging
                    os.write(terminal_fd, chunk)
                self._log(chunk)

    def _log(self, chunk: bytes) -> None:
        with self.lock:
            if self.log_error is not None:
                return
            try:
                self.log.write(chunk)
                self.log.flush()
            except OSError as exc:
                self.log_error = exc
                self._warn_log_stopped(exc)

    def _warn_log_stopped(self, exc: OSError) -> None:
        msg = (
            f"{self.prog}: warning: {self.path}: not written from here on "
            f"({exc.strerror or exc}); the console still has everything\n"
        )
        with contextlib.suppress(OSError, IndexError):
            os.write(self.saved[1], msg.encode())

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        # Restoring 1 and 2 drops our write ends of the pipes (the streams have
        # exited), so each pump reads EOF, drains and stops.
        for fd, saved in zip((1, 2), self.saved, strict=True):
            os.dup2(saved, fd)
        for t in self.threads:
            t.join(timeout=10)
        for saved in self.saved:
            os.close(saved)
        with contextlib.suppress(OSError):  # already reported by the pump, or nothing left to lose
            self.log.close()
