"""The ONNX cache's files: which folder, the lock, and the check of an entry.

An entry is `<key>.onnx` and its key file `<key>.onnx.json` (the key, the graph's
sha256 and size). Every file is written as a fresh temporary file in the folder,
renamed into place; the lock is opened without following a link and is never
truncated: no symlink in the cache is followed when writing, and a link at the
folder's or the lock's name is refused. An entry whose graph does not match the
sha256 in its key (truncated, replaced) is not used. The folder beside the
weights comes first; when it cannot be written (a read-only model folder is a
normal deployment) and holds no valid entry, the user's cache folder is used.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rifebench.errors import UsageError
from rifebench.fsutil import atomic_write_bytes, atomic_write_text
from rifebench.paths import cache_dir

CACHE_DIR = "onnx-cache"
LOCK_NAME = ".lock"
MAX_KEY_FILE_BYTES = 1 << 20  # a key file is a few hundred bytes
ABSENT = "absent"  # entry_problem's answer for an entry never written


class CacheError(UsageError, OSError):
    """Why the cache cannot be used: one line, naming the path and the fix. A
    usage error: the run exits 2 with this line, even when a stream finds it."""

    expected = True  # a designed outcome: the stream reports this line, not a traceback


def folders(weights_path: str) -> list[Path]:
    """The cache folders, in order: beside the weights, then the user's cache folder."""
    beside = Path(weights_path).expanduser().resolve().parent / CACHE_DIR
    user = cache_dir() / CACHE_DIR
    return [beside] if user == beside else [beside, user]


def refuse_link(path: Path) -> None:
    if path.is_symlink():
        raise CacheError(
            f"ONNX cache: {str(path)!r} is a symlink (accepted: a real folder or file, or none; "
            "the cache is never written through a link: remove it)"
        )


def unwritable(folder: Path) -> str | None:
    """Why new entries cannot go into `folder` (created if missing), or None."""
    refuse_link(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"{str(folder)!r} is not writable ({exc.strerror or exc})"
    return None


def subfolder(candidates: list[Path], name: str) -> Path:
    """A folder that another library writes (TensorRT's engines): `name` in the
    first candidate that can be written (the graph's own folder first; a
    read-only one that held a valid graph gives way), never a link."""
    reasons = []
    for folder in dict.fromkeys(candidates):
        why = unwritable(folder / name)
        if why is None:
            return folder / name
        reasons.append(why)
    raise CacheError(
        f"ONNX cache: no folder can take the {name}/ cache: {'; '.join(reasons)} (accepted: a weights folder, "
        "or $XDG_CACHE_HOME (else ~/.cache), that this user can write)"
    )


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """One exporter at a time per cache folder: streams of one run start together.
    The lock file is opened without following a link and never truncated; a FIFO
    or a folder at its name is refused, as a link is."""
    lock = folder / LOCK_NAME
    flags = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(lock, flags, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            refuse_link(lock)
        raise CacheError(
            f"ONNX cache: cannot open its lock {str(lock)!r} ({exc.strerror}) (accepted: a regular file, or none)"
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CacheError(
                f"ONNX cache: its lock {str(lock)!r} is not a regular file "
                "(accepted: a regular file, or none: remove it)"
            )
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def key_path(graph: Path) -> Path:
    return graph.with_name(graph.name + ".json")


def _read_key_file(path: Path) -> dict[str, Any]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError("not a regular file")
        text = f.read(MAX_KEY_FILE_BYTES + 1)
    if len(text) > MAX_KEY_FILE_BYTES:
        raise ValueError("too large")
    meta = json.loads(text)
    if not isinstance(meta, dict):
        raise ValueError("not a JSON object")
    return meta


def _sha256_nofollow(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError("not a regular file")
        while block := f.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def entry_problem(graph: Path, key: dict[str, Any]) -> str | None:
    """Why the entry at `graph` cannot be used for `key` (ABSENT when it was never
    written), or None when it can: its graph matches the sha256 in its key file."""
    if not os.path.lexists(graph):
        return ABSENT
    if os.path.islink(graph):
        return "is a symlink"
    try:
        meta = _read_key_file(key_path(graph))
    except FileNotFoundError:
        return "has no key file"
    except (OSError, ValueError) as exc:
        return f"its key file is unreadable ({getattr(exc, 'strerror', None) or exc})"
    if meta.get("key") != key:
        return "its key file holds another key"
    if not isinstance(meta.get("sha256"), str):
        return "its key file holds no sha256 (written by an older version)"
    try:
        digest, size = _sha256_nofollow(graph)
    except (OSError, ValueError) as exc:
        return f"is unreadable ({getattr(exc, 'strerror', None) or exc})"
    if digest != meta["sha256"]:
        return f"does not match the sha256 in its key file ({size} bytes; truncated or replaced)"
    return None


def write_entry(graph: Path, key: dict[str, Any], data: bytes, export_s: float, created: float) -> None:
    """The graph, then its key file, each a fresh file renamed into place: a
    reader sees the old entry or the new one, and a mismatch between the two
    while they change is caught by the sha256."""
    meta = {
        "key": key,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "export_s": export_s,
        "created": created,
    }
    try:
        atomic_write_bytes(graph, data)
        atomic_write_text(key_path(graph), json.dumps(meta, indent=2) + "\n")
    except OSError as exc:
        raise CacheError(f"ONNX cache: cannot write {str(graph)!r} ({exc.strerror or exc})") from None
