"""Earlier runs' results in OUTPUT_DIR: moved aside whole, one folder per run,
before anything of this run is written (output.log included); and what a run
whose results could not be written must not leave behind.

previous/ may hold the user's own folders too (a baseline kept by hand): the
rotation counts and prunes only the folders it made, named by their run's UTC
start (STAMP_RE), and never touches anything else there."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
from pathlib import Path

# One run's result set: moved aside together, so an earlier run's files never
# mix with this run's (an old images/ folder least of all).
RESULT_SET = ("results.yaml", "results.json", "output.log", "images", "interpolated.mkv")
PREVIOUS = "previous"
KEEP_PREVIOUS = 5
# The names set_aside_previous gives: 20260301T100000Z, and ~2, ~3 ... for runs of the same second.
STAMP_RE = re.compile(r"[0-9]{8}T[0-9]{6}Z(~[0-9]+)?")


def set_aside_previous(output_dir: str, keep: int = KEEP_PREVIOUS) -> Path | None:
    """Move an earlier run's result set to OUTPUT_DIR/previous/<its UTC start>/
    before anything runs, so a stale results.yaml can never pass for this
    run's; keep the newest `keep` earlier runs. Returns the folder, if any."""
    out = Path(output_dir)
    present = [out / n for n in RESULT_SET if os.path.lexists(out / n)]
    if not present:
        return None
    folder = out / PREVIOUS / _run_stamp(out)
    for n in range(2, 1000):
        if not os.path.lexists(folder):
            break
        folder = folder.with_name(f"{folder.name.split('~')[0]}~{n}")
    folder.mkdir(parents=True)
    for path in present:
        os.replace(path, folder / path.name)  # renames move a symlink itself, never its target
    older = kept_runs(output_dir)
    for old in older[:-keep] if keep > 0 else older:
        shutil.rmtree(old)
    return folder


def kept_runs(output_dir: str) -> list[Path]:
    """The earlier runs' folders the rotation made in OUTPUT_DIR/previous/, oldest
    first; a folder of another name, a file or a link there is not one of them."""
    try:
        entries = list((Path(output_dir) / PREVIOUS).iterdir())
    except OSError:  # no previous/ (a first run), or not a folder
        return []
    ours = (p for p in entries if STAMP_RE.fullmatch(p.name) and p.is_dir() and not p.is_symlink())
    return sorted(ours, key=_age_key)


def _run_stamp(out: Path) -> str:
    """The earlier run's start, from its results.json, else the files' age."""
    try:
        doc = json.loads((out / "results.json").read_text())
        when = dt.datetime.fromisoformat(doc.get("started") or doc["created"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        times = [os.lstat(out / n).st_mtime for n in RESULT_SET if os.path.lexists(out / n)]
        when = dt.datetime.fromtimestamp(min(times), dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _age_key(p: Path) -> tuple[str, int]:
    stamp, _, n = p.name.partition("~")
    return stamp, int(n) if n.isdigit() else 1


def discard_unfinished(output_dir: str) -> None:
    """After a failed final write: no results.json may go on saying "running",
    nor a results.yaml stand without the results.json it belongs to."""
    for name in ("results.json", "results.yaml"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(Path(output_dir) / name)
