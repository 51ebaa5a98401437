"""Which checksum holds a weights file: the published one, or the first verified fetch's.

Most RIFE releases publish no sha256. For those, the first file that passes the
architecture check (every key and shape of the model, loaded with the safe
unpickler) has its sha256 recorded in a lock file beside it
(``flownet.pkl.lock.json``), and every later fetch, and every run, is held to
it: a changed upstream file or a swapped local one is then noticed instead of
silently measured. Deleting the lock accepts a new file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rifebench.console import now_iso
from rifebench.fetch.http import FetchError
from rifebench.fsutil import atomic_write_bytes, sha256_file
from rifebench.models.zoo import ModelSpec

LOCK_SUFFIX = ".lock.json"
PUBLISHED = "published checksum"
FIRST_FETCH = "first-fetch lock"
UNCHECKED = "none"  # no published checksum and no lock (a file given by path, or never fetched)


@dataclass(frozen=True)
class Checksum:
    """What a weights file was held to, for results.json's model section."""

    basis: str  # PUBLISHED, FIRST_FETCH or UNCHECKED
    expected_sha256: str | None
    matches: bool | None  # None: nothing to compare with
    lock_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "basis": self.basis,
            "expected_sha256": self.expected_sha256,
            "matches": self.matches,
            "lock_path": self.lock_path,
        }


def lock_path(weights: Path) -> Path:
    return weights.with_name(weights.name + LOCK_SUFFIX)


def read_lock(weights: Path) -> str | None:
    """The sha256 locked for ``weights``, or None without a lock. A lock that cannot be
    read is a FetchError naming it (it is never silently replaced)."""
    path = lock_path(weights)
    if not path.exists() and not path.is_symlink():
        return None
    try:
        if path.is_symlink() or not path.is_file():
            raise ValueError("not a regular file")
        digest = json.loads(path.read_text())["sha256"]
        if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise ValueError(f"sha256 {digest!r} is not 64 hex digits")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FetchError(
            f"lock file {path} is unreadable ({exc}); delete it to lock the next verified fetch again"
        ) from None
    return digest


def write_lock(weights: Path, spec: ModelSpec, digest: str, origin: str) -> Path:
    """Record ``digest`` as the sha256 every later fetch of spec's weights must have."""
    path = lock_path(weights)
    doc = {
        "model": spec.name,
        "file": weights.name,
        "sha256": digest,
        "verified": f"every key and shape of model {spec.name}",
        "origin": origin,
        "locked_at": now_iso(),
        "note": "no published checksum: later fetches and runs are held to this sha256; delete this file to "
        "accept a new one",
    }
    atomic_write_bytes(path, (json.dumps(doc, indent=2) + "\n").encode())
    return path


def architecture_problem(spec: ModelSpec, path: str | os.PathLike) -> str | None:
    """Why the file at ``path`` is not a checkpoint of spec's architecture (keys and
    shapes, loaded with the safe unpickler), or None when it is."""
    from rifebench.models.weights import WeightsError, load_model

    try:
        load_model(spec, path)
    except WeightsError as exc:  # the work folder's path means nothing to the reader: its file name does
        return str(exc).replace(str(path), Path(path).name)
    return None


def lock_problem(spec: ModelSpec, weights: Path, candidate: Path) -> str | None:
    """For a model without a published sha256: why ``candidate`` (to become ``weights``)
    is refused, by the lock beside ``weights`` or by the architecture check."""
    locked = read_lock(weights)
    if locked is not None:
        got = sha256_file(candidate)
        if got != locked:
            return (
                f"sha256 {got} differs from the first verified fetch's {locked} locked in {lock_path(weights)} "
                "(delete the lock to accept a new file)"
            )
        return None
    return architecture_problem(spec, candidate)


def checksum_of(spec: ModelSpec, weights: Path, digest: str) -> Checksum:
    """What the file at ``weights`` (sha256 ``digest``) is held to."""
    if spec.sha256:
        return Checksum(PUBLISHED, spec.sha256, digest == spec.sha256)
    try:
        locked = read_lock(weights)
    except FetchError:
        locked = None
    if locked is None:
        return Checksum(UNCHECKED, None, None)
    return Checksum(FIRST_FETCH, locked, digest == locked, str(lock_path(weights)))
