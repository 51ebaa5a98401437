"""Small file helpers shared by the weights fetcher, the runners and the report
writers: atomic writes that never follow a symlink, the output-folder checks
every tool makes before it runs, and the lock that keeps two runs apart."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

from rifebench.errors import RifebenchError

# Below this a run cannot even write its log and results; a real check of the
# space frames and weights need belongs to the dataset and weights fetchers.
MIN_FREE_BYTES = 64 << 20
LOCK_NAME = ".rifebench.lock"
# What a tool wrote in a folder it owns: all that a later --force may remove.
MANIFEST_NAME = ".rifebench-manifest.json"


class OutputDirError(RifebenchError, OSError):
    """Why a folder cannot take a run's outputs; the caller adds its option name."""


class LockedError(OutputDirError):
    def __init__(self, path: Path, pid: str):
        super().__init__(f"{str(path)!r} is in use by another run (PID {pid or 'unknown'})")
        self.pid = pid


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def umask() -> int:
    """The process umask, read without changing it where /proc allows (setting
    it to read it back races with other threads creating files)."""
    try:
        with open("/proc/self/status") as f:
            for row in f:
                if row.startswith("Umask:"):
                    return int(row.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a fresh mkstemp file in the same folder, fsync, then rename, so
    a reader never sees a half-written file, a crash never leaves one, and a
    symlink planted at `path` is replaced, never written through. The file gets
    the mode open() would give it (0666 less the umask), not mkstemp's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# What a path can be besides a regular file, in words (a symlink only shows in an lstat mode).
_KINDS = (
    (stat.S_ISLNK, "a symlink"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind_name(mode: int) -> str:
    """The kind of file a stat mode describes: "a regular file", "a folder", "a FIFO (named pipe)", ..."""
    return next((name for test, name in _KINDS if test(mode)), "a regular file")


def open_nofollow(path: str | os.PathLike, mode: int = 0o666):
    """A binary file truncated for writing; refuses (ELOOP) a symlink at `path`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    return os.fdopen(fd, "wb")


def _container_fix() -> str:
    """In our images a mounted folder belongs to the host's user, not to the
    container's: name the two ways that make the documented run work."""
    if not os.environ.get("RIFEBENCH_IMAGE_FLAVOUR"):
        return ""
    return (
        f"; in this container the run is uid {os.getuid()}: start it as your own user with "
        '--user "$(id -u):$(id -g)" -e HOME=/tmp, or with podman mount the folder with :U (-v DIR:/tmp/output:U)'
    )


def prepare_dir(path: str | os.PathLike, files: tuple[str, ...] = (), min_free: int = MIN_FREE_BYTES) -> Path:
    """Create `path` if needed and check that it can take a run's outputs: a
    folder, writable, with `min_free` bytes free, and none of `files` (the
    names the run will write there) a symlink. Raises OutputDirError with the
    reason; the caller names its own option."""
    if not str(path).strip():
        raise OutputDirError("'' is empty (accepted: a folder path; '.' for the current folder)")
    out = Path(path).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"{str(out)!r} is a file (accepted: a folder)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise OutputDirError(
            f"{str(out)!r} is not writable ({exc.strerror or exc}) "
            f"(accepted: a folder this user can create and write{_container_fix()})"
        ) from None
    free = shutil.disk_usage(out).free
    if free < min_free:
        raise OutputDirError(
            f"{str(out)!r} has {free >> 20} MiB free (accepted: a folder with at least {min_free >> 20} MiB free)"
        )
    for name in files:
        if (out / name).is_symlink():
            raise OutputDirError(
                f"{str(out / name)!r} is a symlink (accepted: a real file or folder, or none; "
                "outputs are never written through a link)"
            )
    return out


class OutputLock:
    """An exclusive lock on a folder for as long as a run lives, held with
    flock on OUTPUT_DIR/.rifebench.lock (released by the kernel even when the
    holder is killed). The file keeps the holder's PID for the refusal message."""

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> OutputLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise LockedError(self.path.parent, pid) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):  # the lock goes with the descriptor; the pid is a courtesy
                os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def write_manifest(folder: str | os.PathLike, names) -> None:
    """Record the top-level names a tool wrote in `folder` (the manifest itself
    and the lock aside), so that --force later removes those and nothing else."""
    own = sorted(n for n in set(names) if n not in (MANIFEST_NAME, LOCK_NAME))
    atomic_write_text(Path(folder) / MANIFEST_NAME, json.dumps({"files": own}, indent=1) + "\n")


def remove_manifest_files(folder: str | os.PathLike) -> int:
    """Remove what the manifest in `folder` lists (plain names inside the
    folder only; a symlink is removed, never followed), then the manifest.
    Returns how many entries went; OutputDirError when there is no manifest."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    try:
        if path.is_symlink():
            raise ValueError("a symlink")
        names = json.loads(path.read_text())["files"]
        if not isinstance(names, list):
            raise ValueError("no list of files")
    except FileNotFoundError:
        raise OutputDirError(
            f"{str(folder)!r} has no {MANIFEST_NAME}, so none of its files is known to be a benchmark's"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OutputDirError(f"{str(path)!r} is unreadable ({exc})") from None
    removed = 0
    for name in names:
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name:
            continue  # only names directly in this folder: a manifest never reaches outside it
        entry = folder / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif os.path.lexists(entry):
            entry.unlink()
        else:
            continue
        removed += 1
    path.unlink()
    return removed
