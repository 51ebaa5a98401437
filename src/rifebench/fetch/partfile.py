"""The files the fetchers write, opened so that no symlink is ever followed.

A `.part` left in a shared folder may have been replaced by a link to another
file; resuming would append to that file and restarting would truncate it. So a
`.part` that is a link (or a FIFO, a folder, anything but a plain file) is
refused, and every open adds O_NOFOLLOW, which refuses a link planted between
the check and the open. A hard link (a file with another name) is refused too:
O_NOFOLLOW cannot tell it from the file itself. O_NONBLOCK makes a FIFO planted in that window fail
(ENXIO) instead of blocking; it changes nothing for a regular file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from rifebench.errors import UsageError

ACCEPTED = "accepted: a plain file left by an earlier download, or none; a download is never written through a link"


class LinkRefused(UsageError):
    """A file the fetcher would write is a symlink or not a plain file: bad local
    state the user must clear, not a failed transfer (exit 2, and no retry)."""


def refusal(path: Path, links: int = 1) -> LinkRefused:
    if links > 1:
        what = f"a file with {links - 1} other name(s) (hard links)"
    else:
        try:
            what = f"a symlink to {os.readlink(path)!r}" if path.is_symlink() else "not a plain file"
        except OSError:
            what = "not a plain file"
    return LinkRefused(f"{str(path)!r} is {what} ({ACCEPTED}); move it away and run again")


def _check(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise refusal(path)
    if st.st_nlink > 1:
        raise refusal(path, st.st_nlink)


def size_of(path: Path) -> int:
    """The size of a plain file at path, 0 when there is none; LinkRefused otherwise."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    _check(path, st)
    return st.st_size


def open_for_writing(path: Path, append: bool) -> BinaryIO:
    """path opened to append to (append=True) or emptied, never through a link; it is
    emptied only once the open file is known to be the plain file of one name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | (os.O_APPEND if append else 0), 0o666)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise refusal(path) from None
        raise
    try:
        _check(path, os.fstat(fd))
        if not append:
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab" if append else "wb")
