"""Download and extract the Vimeo-90K triplet test set (vimeo_interp_test.zip, 1.7 GB).

Into DIR (--dir, else $DATASET_DIR, else the current directory) go the archive
DIR/vimeo_interp_test.zip and the dataset DIR/vimeo_interp_test/, the folder to
pass as --data/DATASET_DIR. Steps, each skipped when its result is already there:

1. download to DIR/vimeo_interp_test.zip.part, resuming a previous .part with an
   HTTP Range request, then rename it to .zip once the server's full length arrived
   (fetch/http.py: retries, timeouts, free-space check, HTML pages refused);
2. check that the uncompressed size the zip's central directory declares fits the
   free space, then test the archive (every member's CRC, zipfile.testzip); a
   corrupt archive is moved aside to .zip.corrupt so that the next run fetches it anew;
3. extract into a hidden temporary folder and rename it into place only when
   complete, so that a vimeo_interp_test/ folder is never half-extracted. An archive
   holding a symlink or special-file member, a name that leaves the folder or a name
   twice is refused before anything is extracted; each file is created afresh
   (O_EXCL | O_NOFOLLOW), and the extracted tree must hold no link and be a triplet
   test folder before it is called ready.

A .zip.part that is a symlink (or not a plain file) is refused with exit 2 and left
as it is: a download is never written through a link (fetch/partfile.py).

Environment: RIFEBENCH_VIMEO_URL (the archive's address, for mirrors and tests),
RIFEBENCH_FETCH_TIMEOUT (seconds to connect and to wait for each read, 15).
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import stat
import sys
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath

from rifebench import __version__, paths
from rifebench.errors import UsageError
from rifebench.fetch import http
from rifebench.fetch.http import FetchError

PROG = paths.tool_name("fetch-dataset")
AGAIN = paths.tool_command("fetch-dataset")

URL = "http://data.csail.mit.edu/tofu/testset/vimeo_interp_test.zip"
ARCHIVE = "vimeo_interp_test.zip"
FOLDER = "vimeo_interp_test"
LIST_FILE = "tri_testlist.txt"

__all__ = ["URL", "FetchError", "download", "extract", "get", "is_dataset", "main", "test_archive"]


def log(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def download(url: str, archive: Path) -> None:
    """Fetch url to archive via archive.part, resuming the .part when there is one."""
    start = time.monotonic()
    try:
        http.download(url, archive, what="the zip archive", log=log)
    except FetchError as exc:
        if exc.resumable:
            raise FetchError(f"{exc}; run {AGAIN} again to resume") from None
        raise
    log(f"downloaded {archive.name}: {_mb(archive.stat().st_size)} in {time.monotonic() - start:.1f} s")


# --- check and extract ------------------------------------------------------------------


def test_archive(archive: Path) -> None:
    """Every member's CRC; a bad archive is moved aside to .corrupt and refused."""
    problem = None
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                problem = f"member {bad!r} fails its CRC check"
    except zipfile.BadZipFile as exc:
        problem = f"not a valid zip archive ({exc})"
    except OSError as exc:
        problem = f"cannot read it ({exc.strerror or exc})"
    if problem:
        aside = archive.with_name(archive.name + ".corrupt")
        os.replace(archive, aside)
        raise FetchError(
            f"{archive} is corrupt: {problem}; moved to {aside.name}, nothing extracted; run "
            f"{AGAIN} again to download it anew"
        )


def _dataset_root(folder: Path) -> Path | None:
    """The folder holding the list file: the archive's top folder or the folder itself."""
    for candidate in (folder / FOLDER, folder, *sorted(p for p in folder.iterdir() if p.is_dir())):
        if (candidate / LIST_FILE).is_file():
            return candidate
    return None


def check_space(archive: Path, dest: Path, zf: zipfile.ZipFile | None = None) -> int:
    """The uncompressed size the central directory declares, refused when it does
    not fit beside dest; reads no member, so it runs before the CRC test."""
    if zf is None:
        try:
            with zipfile.ZipFile(archive) as opened:
                return check_space(archive, dest, opened)
        except (zipfile.BadZipFile, OSError):
            return 0  # test_archive says what is wrong with it
    need = sum(m.file_size for m in zf.infolist())
    if need > http.free_bytes(dest.parent) - (64 << 20):
        raise FetchError(
            f"not enough disk space in {dest.parent} to extract {archive.name}: needs "
            f"{_mb(need)}, {_mb(http.free_bytes(dest.parent))} free"
        )
    return need


def _member_problem(m: zipfile.ZipInfo, seen: set[str]) -> str | None:
    """Why a member may not be extracted: a name leaving the folder, a name twice, or
    a symlink / special file (its Unix mode, which zipfile would write as a plain file)."""
    p = PurePosixPath(m.filename)
    kind = stat.S_IFMT(m.external_attr >> 16)
    if p.is_absolute() or ".." in p.parts or "\\" in m.filename or "\0" in m.filename:
        return f"unsafe member name {m.filename!r}"
    if m.filename.rstrip("/") in seen:
        return f"member {m.filename!r} appears twice"
    seen.add(m.filename.rstrip("/"))
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        what = "a symlink" if kind == stat.S_IFLNK else "a special file"
        return f"member {m.filename!r} is {what} (accepted: plain files and folders only)"
    return None


def _write_members(zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], work: Path) -> None:
    """Each member as a file created afresh in work: never through a link, never over another."""
    for m in members:
        target = work / m.filename
        if m.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        with zf.open(m) as src, os.fdopen(fd, "wb") as out:  # CRC checked on the way
            shutil.copyfileobj(src, out, 1 << 20)


def _links_in(tree: Path) -> Path | None:
    for folder, dirs, files in os.walk(tree):
        for name in (*dirs, *files):
            if os.path.islink(os.path.join(folder, name)):
                return Path(folder, name)
    return None


def extract(archive: Path, dest: Path) -> None:
    """Extract into a hidden folder beside dest, then rename the dataset into dest."""
    with zipfile.ZipFile(archive) as zf:
        members, seen = zf.infolist(), set[str]()
        bad = next((why for m in members if (why := _member_problem(m, seen))), None)
        if bad:
            raise FetchError(
                f"{archive}: {bad}; refused, nothing extracted; moved to {_set_aside(archive, 'refused').name}"
            )
        need = check_space(archive, dest, zf)
        work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extracting", dir=dest.parent))
        try:
            log(f"extracting {archive.name} ({len(members)} files, {_mb(need)})")
            try:
                _write_members(zf, members, work)
            except (OSError, zipfile.BadZipFile) as exc:
                full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
                what = "disk full" if full else (getattr(exc, "strerror", None) or str(exc))
                raise FetchError(f"extracting {archive} failed: {what}; nothing was left behind") from None
            root, link = _dataset_root(work), _links_in(work)
            if link is not None or root is None or not is_dataset(root):
                why = (
                    f"holds a link ({link.relative_to(work)})"
                    if link is not None
                    else f"has no {LIST_FILE} with sequences/ or input/ + target/ folders"
                )
                raise FetchError(
                    f"{archive} {why}: not the Vimeo-90K triplet test set; moved to "
                    f"{_set_aside(archive, 'refused').name} so that the next run fetches it anew"
                )
            os.replace(root, dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _set_aside(archive: Path, why: str) -> Path:
    """A refused archive must not be refused again on every rerun: the next run
    fetches anew (a mirror may have been fixed, or the URL changed)."""
    aside = archive.with_name(f"{archive.name}.{why}")
    os.replace(archive, aside)
    return aside


def is_dataset(folder: Path) -> bool:
    return (folder / LIST_FILE).is_file() and (
        (folder / "sequences").is_dir() or ((folder / "input").is_dir() and (folder / "target").is_dir())
    )


def get(directory: Path, url: str = URL) -> Path:
    """Make sure DIR/vimeo_interp_test is there; return it (or DIR itself when it
    already is a triplet test folder)."""
    directory = directory.resolve()
    for ready in (directory / FOLDER, directory):
        if is_dataset(ready):
            log(f"{ready} is already there; nothing to do")
            return ready
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot create {directory}: {exc.strerror or exc}") from None
    dest, archive = directory / FOLDER, directory / ARCHIVE
    if dest.is_symlink():
        raise UsageError(
            f"{str(dest)!r} is a symlink to {os.readlink(dest)!r} that is not a triplet test folder (accepted: "
            "the dataset folder, or none; nothing is extracted through a link); move it away and run again"
        )
    if dest.exists():
        raise FetchError(
            f"{dest} exists but is not a triplet test folder (no {LIST_FILE} with sequences/ or "
            f"input/ + target/); move it away and run {AGAIN} again"
        )
    if archive.exists():
        log(f"{archive} is already there; not downloading it again")
    else:
        log(f"downloading {url} to {archive}")
        download(url, archive)
    check_space(archive, dest)  # the CRC test of 1.7 GB takes a while; fail before it
    log(f"testing {archive.name}")
    test_archive(archive)
    extract(archive, dest)
    log(f"ready: {dest} (use --data {dest} or DATASET_DIR={dest}; the archive can be deleted)")
    return dest


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message}\n")


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog=PROG, allow_abbrev=False, description="Download and extract the Vimeo-90K triplet test set.")
    p.add_argument("--version", action="version", version=f"rifebench {__version__}")
    p.add_argument(
        "--dir",
        type=Path,
        help="where the archive and the folder go (default: $DATASET_DIR, else the current directory)",
    )
    p.add_argument("--url", help=f"archive address (default: $RIFEBENCH_VIMEO_URL, else {URL})")
    args = p.parse_args(argv)
    directory = args.dir or Path(os.environ.get("DATASET_DIR") or ".")
    url = args.url or os.environ.get("RIFEBENCH_VIMEO_URL") or URL
    try:
        path = get(directory, url)
    except UsageError as exc:  # a planted link: the user's to clear, not a failed download
        print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except FetchError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:  # the .part stays for resuming; extraction cleans up in its finally
        print(f"{PROG}: interrupted; run {AGAIN} again to resume", file=sys.stderr, flush=True)
        return 130
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
