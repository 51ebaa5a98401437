"""output.log gets everything printed, the streams' output included.

The launcher's stdout and stderr file descriptors are redirected into pipes
that threads copy to both the terminal (stdout to stdout, stderr to stderr) and
the log, so spawned streams, which inherit the descriptors, are captured
without any cooperation.
"""
from __future__ import annotations

import os
import sys
import threading


class Tee:
    def __init__(self, path: str):
        self.path = path
        self.lock = threading.Lock()

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.log = open(self.path, "wb")
        self.saved, self.threads = [], []
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
                try:
                    os.write(terminal_fd, chunk)
                except OSError:
                    pass  # the terminal went away: keep logging
                with self.lock:
                    self.log.write(chunk)
                    self.log.flush()

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        # Restoring 1 and 2 drops our write ends of the pipes (the streams have
        # exited), so each pump reads EOF, drains and stops.
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
        for t in self.threads:
            t.join(timeout=10)
        for saved in self.saved:
            os.close(saved)
        self.log.close()
