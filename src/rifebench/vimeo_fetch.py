"""Download and extract the Vimeo-90K triplet test set (vimeo_interp_test.zip, 1.7 GB).

Into DIR (--dir, else $DATASET_DIR, else the current directory) go the archive
DIR/vimeo_interp_test.zip and the dataset DIR/vimeo_interp_test/, the folder to
pass as --data/DATASET_DIR. Steps, each skipped when its result is already there:

1. download to DIR/vimeo_interp_test.zip.part, resuming a previous .part with an
   HTTP Range request, then rename it to .zip once the server's full length arrived;
2. test the archive (every member's CRC, zipfile.testzip) before extracting; a
   corrupt archive is moved aside to .zip.corrupt so that the next run fetches it anew;
3. extract into a hidden temporary folder and rename it into place only when
   complete, so that a vimeo_interp_test/ folder is never half-extracted.

Environment: RIFEBENCH_VIMEO_URL (the archive's address, for mirrors and tests),
RIFEBENCH_FETCH_TIMEOUT (socket timeout in seconds, 15).
"""
from __future__ import annotations

import argparse
import errno
import http.client
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

URL = "http://data.csail.mit.edu/tofu/testset/vimeo_interp_test.zip"
ARCHIVE = "vimeo_interp_test.zip"
FOLDER = "vimeo_interp_test"
LIST_FILE = "tri_testlist.txt"
CHUNK = 1 << 20
PROGRESS_EVERY_S = 3.0
USER_AGENT = "rifebench dataset fetcher"


class FetchError(RuntimeError):
    """The one-line reason the dataset is not there; what was kept is said in it."""


def log(msg: str) -> None:
    print(f"get_dataset.sh: {msg}", file=sys.stderr, flush=True)


def _timeout() -> float:
    return float(os.environ.get("RIFEBENCH_FETCH_TIMEOUT") or 15)


def _free(path: Path) -> int:
    return shutil.disk_usage(path).free


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


# --- download ---------------------------------------------------------------------------

def _total_from(resp) -> int | None:
    rng = resp.headers.get("Content-Range", "")
    m = re.match(r"bytes\s+(?:\d+-\d+|\*)/(\d+)", rng)  # "bytes 0-9/10", or "bytes */10" with a 416
    if m:
        return int(m.group(1))
    length = resp.headers.get("Content-Length", "")
    return int(length) if length.isdigit() else None


def download(url: str, archive: Path) -> None:
    """Fetch url to archive via archive.part, resuming the .part when there is one."""
    part = archive.with_name(archive.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=_timeout())
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing after `have`: the .part may be whole already
            total = _total_from(exc)
            if total == have:
                os.replace(part, archive)
                return
            part.unlink()
            raise FetchError(f"the server refused to resume {part.name} (HTTP 416); the partial file was "
                             "removed, run ./get_dataset.sh again to start over") from None
        raise FetchError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(f"cannot reach {url}: {_why(exc)}") from None
    with resp:
        if resp.status == 206:
            if not have or _range_start(resp) != have:
                raise FetchError(f"the server sent {resp.headers.get('Content-Range')!r} for a request from "
                                 f"byte {have}; {part.name} kept as it was")
            mode, done = "ab", have
            log(f"resuming {archive.name} at {_mb(have)}")
        else:
            if have:
                log(f"the server does not resume; downloading {archive.name} from the start")
            mode, done = "wb", 0
        total = _total_from(resp)
        if total is not None and total - done > _free(archive.parent) - (64 << 20):
            raise FetchError(f"not enough disk space in {archive.parent}: {_mb(total - done)} still to "
                             f"download, {_mb(_free(archive.parent))} free")
        _stream(resp, part, mode, done, total, url)
    size = part.stat().st_size
    if total is not None and size != total:
        raise FetchError(f"{part} has {size} bytes, the server announced {total}; run ./get_dataset.sh "
                         "again to resume")
    os.replace(part, archive)


def _range_start(resp) -> int | None:
    m = re.match(r"bytes\s+(\d+)-", resp.headers.get("Content-Range", ""))
    return int(m.group(1)) if m else None


def _stream(resp, part: Path, mode: str, done: int, total: int | None, url: str) -> None:
    start = last = time.monotonic()
    first = done
    try:
        with open(part, mode) as out:
            while True:
                try:
                    chunk = resp.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise FetchError(f"download interrupted after {_mb(done)}"
                                     f"{f' of {_mb(total)}' if total else ''} ({_why(exc)}); run "
                                     "./get_dataset.sh again to resume") from None
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                now = time.monotonic()
                if now - last >= PROGRESS_EVERY_S:
                    last = now
                    pct = f" / {_mb(total)} ({100 * done / total:.0f}%)" if total else ""
                    log(f"{part.name}: {_mb(done)}{pct}, {(done - first) / 1e6 / (now - start):.1f} MB/s")
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise FetchError(f"disk full while writing {part} ({_mb(done)} kept; free space and run "
                             "./get_dataset.sh again to resume)") from None
        raise FetchError(f"cannot write {part}: {exc.strerror or exc}") from None
    if total is not None and done < total:
        raise FetchError(f"connection closed after {_mb(done)} of {_mb(total)}; run ./get_dataset.sh "
                         "again to resume")
    log(f"downloaded {part.name}: {_mb(done)} in {time.monotonic() - start:.1f} s")


def _why(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, TimeoutError):
        return f"no data for {_timeout():g} s"
    return str(getattr(exc, "strerror", None) or exc) or type(exc).__name__


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
        raise FetchError(f"{archive} is corrupt: {problem}; moved to {aside.name}, nothing extracted; run "
                         "./get_dataset.sh again to download it anew")


def _dataset_root(folder: Path) -> Path | None:
    """The folder holding the list file: the archive's top folder or the folder itself."""
    for candidate in (folder / FOLDER, folder, *sorted(p for p in folder.iterdir() if p.is_dir())):
        if (candidate / LIST_FILE).is_file():
            return candidate
    return None


def extract(archive: Path, dest: Path) -> None:
    """Extract into a hidden folder beside dest, then rename the dataset into dest."""
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for m in members:
            p = PurePosixPath(m.filename)
            if p.is_absolute() or ".." in p.parts or "\\" in m.filename:
                raise FetchError(f"{archive}: unsafe member name {m.filename!r}; refused")
        need = sum(m.file_size for m in members)
        if need > _free(dest.parent) - (64 << 20):
            raise FetchError(f"not enough disk space in {dest.parent} to extract {archive.name}: needs "
                             f"{_mb(need)}, {_mb(_free(dest.parent))} free")
        work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extracting", dir=dest.parent))
        try:
            log(f"extracting {archive.name} ({len(members)} files, {_mb(need)})")
            try:
                zf.extractall(work)
            except OSError as exc:
                what = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
                raise FetchError(f"extracting {archive} failed: {what}; nothing was left behind") from None
            root = _dataset_root(work)
            if root is None:
                raise FetchError(f"{archive} has no {LIST_FILE}: not the Vimeo-90K triplet test set")
            os.replace(root, dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def is_dataset(folder: Path) -> bool:
    return (folder / LIST_FILE).is_file() and (
        (folder / "sequences").is_dir() or ((folder / "input").is_dir() and (folder / "target").is_dir()))


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
    if dest.exists():
        raise FetchError(f"{dest} exists but is not a triplet test folder (no {LIST_FILE} with sequences/ or "
                         "input/ + target/); move it away and run ./get_dataset.sh again")
    if archive.exists():
        log(f"{archive} is already there; not downloading it again")
    else:
        log(f"downloading {url} to {archive}")
        download(url, archive)
    log(f"testing {archive.name}")
    test_archive(archive)
    extract(archive, dest)
    log(f"ready: {dest} (use --data {dest} or DATASET_DIR={dest}; the archive can be deleted)")
    return dest


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message}\n")


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="get_dataset.sh", description="Download and extract the Vimeo-90K triplet test set.")
    p.add_argument("--dir", type=Path, help="where the archive and the folder go (default: $DATASET_DIR, "
                   "else the current directory)")
    p.add_argument("--url", help=f"archive address (default: $RIFEBENCH_VIMEO_URL, else {URL})")
    args = p.parse_args(argv)
    directory = args.dir or Path(os.environ.get("DATASET_DIR") or ".")
    url = args.url or os.environ.get("RIFEBENCH_VIMEO_URL") or URL
    try:
        path = get(directory, url)
    except FetchError as exc:
        print(f"get_dataset.sh: error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
