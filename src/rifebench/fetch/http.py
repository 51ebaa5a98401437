"""The one HTTP downloader of get_model.sh (fetch/weights.py) and get_dataset.sh (fetch/vimeo.py).

Why requests with urllib3's Retry rather than raw urllib: both are well kept and widely used,
and they bring, ready-made and tested, what a long download needs and urllib lacks: retries
with exponential backoff on connection errors and on 429/500/502/503/504, Retry-After
honoured, connection pooling, and a Session whose cookie jar carries Google Drive's
confirmation cookie from one request to the next.

download(url, dest) writes DEST.part and renames it to DEST only once the whole file is
there and passes the size and sha256 given. With resume=True a .part left by an earlier
call is continued with an HTTP Range request: 206 appends, 200 (a server that ignores
Range) starts over, 416 means the .part is either whole already or not this file (then it
starts over). A .part that is a symlink, a hard link or not a plain file is refused, never
written through (fetch/partfile.py). An HTML page where a file was expected is one clear error (or handed to
on_html, for Google Drive's confirmation page). Every failure is a one-line FetchError
naming the URL; fetch/pages.py writes that line and recognises HTML pages.

Environment: RIFEBENCH_FETCH_TIMEOUT, seconds to connect and to wait for each read (15).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError
from urllib3.util.retry import Retry

from rifebench.errors import RifebenchError
from rifebench.fetch import partfile
from rifebench.fetch.pages import failure_reason, html_refusal, looks_like_html, retries_of, size_text, status_text
from rifebench.fsutil import sha256_file

USER_AGENT = "Mozilla/5.0 (rifebench fetcher)"
CHUNK = 1 << 20
PROGRESS_EVERY_S = 3.0
RETRIES = 4  # per request; sleeps between tries: 0, then 2, 4, 8 x BACKOFF_S (0, 1, 2, 4 s)
BACKOFF_S = 0.5
RETRY_AFTER_MAX_S = 60  # a Retry-After longer than this is cut to it
RETRY_STATUSES = (429, 500, 502, 503, 504)
RESERVE_BYTES = 64 << 20  # left free on the disk after a download
PAGE_LIMIT = 1 << 20  # how much of an HTML page is read to explain it
MAX_PAGES = 3  # HTML pages followed through on_html before giving up

OnHtml = Callable[[str, str], "str | None"]


class FetchError(RifebenchError, RuntimeError):
    """One line: what went wrong, after the URL when there is one. ``reason`` is the
    part without the URL; ``resumable``: the .part was kept and a later call resumes it."""

    def __init__(self, reason: str, url: str | None = None, *, resumable: bool = False):
        super().__init__(f"{url}: {reason}" if url else reason)
        self.reason, self.url, self.resumable = reason, url, resumable


class _Retry(Retry):
    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), RETRY_AFTER_MAX_S)


def default_timeout() -> float:
    raw = os.environ.get("RIFEBENCH_FETCH_TIMEOUT") or "15"
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise FetchError(f"RIFEBENCH_FETCH_TIMEOUT: {raw!r} is not accepted (a number of seconds > 0)")
    return value


def make_session(retries: int | None = None, backoff_s: float | None = None) -> requests.Session:
    """A Session that retries connection errors, read timeouts and RETRY_STATUSES with
    exponential backoff (0, 2, 4, ... times backoff_s) and honours Retry-After."""
    n = RETRIES if retries is None else retries
    retry = _Retry(
        total=n,
        connect=n,
        read=n,
        status=n,
        other=0,
        backoff_factor=BACKOFF_S if backoff_s is None else backoff_s,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # identity: byte counts, Range offsets and Content-Length must all mean the same bytes
    session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    return session


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def check_sha256(path: Path, expected: str, name: str = "sha256") -> None:
    got = sha256_file(path)
    if got != expected:
        raise FetchError(f"{name} mismatch: got {got}, expected {expected}")


@dataclass
class _Job:
    session: requests.Session
    part: Path
    name: str
    timeout: float
    resume: bool
    what: str
    on_html: OnHtml | None
    log: Callable[[str], object]


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    size: int | None = None,
    sha256: str | None = None,
    resume: bool = True,
    what: str = "the file",
    on_html: OnHtml | None = None,
    session: requests.Session | None = None,
    timeout: float | None = None,
    log: Callable[[str], object] | None = None,
) -> Path:
    """Download url to dest through dest.part; see the module docstring.

    on_html(page, page_url) may return the next URL to try when an HTML page comes
    instead of the file (or raise FetchError); None makes the page an error.
    log gets notes and progress lines (default: stderr)."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    own = session is None
    job = _Job(
        session or make_session(),
        part,
        dest.name,
        default_timeout() if timeout is None else timeout,
        resume,
        what,
        on_html,
        log or (lambda msg: print(msg, file=sys.stderr, flush=True)),
    )
    partfile.size_of(part)  # a planted link is refused before anything, and left as it is
    try:
        if not resume:
            part.unlink(missing_ok=True)
        for _ in range(MAX_PAGES + 1):
            following = _attempt(job, url)
            if following is None:
                break
            url = following
        else:
            raise FetchError(f"still an HTML page after {MAX_PAGES} pages followed", url)
        if size is not None and part.stat().st_size != size:
            raise FetchError(f"size mismatch: got {part.stat().st_size} bytes, expected {size}", url)
        if sha256:
            try:
                check_sha256(part, sha256)
            except FetchError as exc:
                raise FetchError(exc.reason, url) from None
        os.replace(part, dest)
    except BaseException as exc:
        if isinstance(exc, partfile.LinkRefused):
            raise
        if not (resume and (getattr(exc, "resumable", False) or isinstance(exc, KeyboardInterrupt))):
            part.unlink(missing_ok=True)
        raise
    finally:
        if own:
            job.session.close()
    return dest


def _attempt(job: _Job, url: str) -> str | None:
    """One GET into job.part; returns the URL to follow after an HTML page, else None."""
    have = partfile.size_of(job.part)
    resp = _get(job, url, {"Range": f"bytes={have}-"} if have else {})
    with resp:
        status, total = resp.status_code, _total(resp)
        if status == 416 and have:
            if total == have:
                return None  # the .part was whole already
            return _start_over(
                job,
                url,
                f"the server cannot resume {job.part.name} ({have} bytes, the file "
                f"has {total if total is not None else 'an unknown size'})",
            )
        if status >= 300:
            raise FetchError(status_text(resp), url)
        if status == 206 and _range_start(resp) != have:
            return _start_over(
                job, url, f"the server answered {resp.headers.get('Content-Range')!r} to a request from byte {have}"
            )
        if status == 206 and have:
            job.log(f"resuming {job.part.name} at {size_text(have)}")
        elif have:
            job.log(f"the server does not resume; downloading {job.part.name} from the start")
            have = 0
        if resp.headers.get("Content-Type", "").split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
            return _page(job, url, resp, b"")
        _check_space(job, url, total, have)
        return _stream(job, url, resp, have, total)


def _start_over(job: _Job, url: str, why: str) -> str | None:
    job.log(f"{why}; downloading from the start")
    job.part.unlink()
    return _attempt(job, url)  # no Range now, so this cannot come back here


def _get(job: _Job, url: str, headers: dict[str, str]) -> requests.Response:
    try:
        return job.session.get(url, headers=headers, stream=True, timeout=(job.timeout, job.timeout))
    except requests.RequestException as exc:
        raise FetchError(failure_reason(exc, job.timeout, retries_of(job.session, url)), url) from None


def _page(job: _Job, url: str, resp: requests.Response, head: bytes) -> str | None:
    """An HTML page came instead of the file: hand it to on_html or refuse it."""
    body = bytearray(head)
    try:
        while len(body) < PAGE_LIMIT and (piece := resp.raw.read1(PAGE_LIMIT)):
            body += piece
    except (HTTPError, OSError):
        pass  # what arrived is enough to explain the page
    page = body.decode(resp.encoding or "utf-8", "replace")
    job.part.unlink(missing_ok=True)
    following = job.on_html(page, resp.url) if job.on_html else None
    if following is None:
        raise FetchError(html_refusal(page, what=job.what), url)
    return following


def _check_space(job: _Job, url: str, total: int | None, have: int) -> None:
    free = free_bytes(job.part.parent)
    if total is not None and total - have > free - RESERVE_BYTES:
        raise FetchError(
            f"not enough disk space in {job.part.parent}: {size_text(total - have)} still to "
            f"download, {size_text(free)} free",
            url,
        )


def _stream(job: _Job, url: str, resp: requests.Response, done: int, total: int | None) -> str | None:
    start = last = time.monotonic()
    first = done
    kept = f"; {job.part.name} kept" if job.resume else ""
    try:
        with partfile.open_for_writing(job.part, append=bool(done)) as out:
            chunks = _pieces(resp)
            while True:
                try:
                    chunk = next(chunks, b"")
                except (HTTPError, OSError) as exc:
                    raise FetchError(
                        f"transfer broke off after {size_text(done, total)} ({failure_reason(exc, job.timeout)}){kept}",
                        url,
                        resumable=True,
                    ) from None
                if not chunk:
                    break
                if done == 0 and looks_like_html(chunk):
                    out.close()
                    return _page(job, url, resp, chunk)
                out.write(chunk)
                done += len(chunk)
                if time.monotonic() - last >= PROGRESS_EVERY_S:
                    last = time.monotonic()
                    _progress(job, done, first, total, last - start)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        why = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise FetchError(
            f"cannot write {job.part}: {why} ({size_text(done)} written){kept}", url, resumable=True
        ) from None
    if total is not None and done < total:
        raise FetchError(f"connection closed after {size_text(done, total)}{kept}", url, resumable=True)
    if done == 0:
        raise FetchError("empty response", url)
    if last > start:
        _progress(job, done, first, total, time.monotonic() - start)
    return None


def _pieces(resp: requests.Response):
    """The body as it arrives (read1: a connection cut keeps every byte that came); the
    first piece holds at least 512 bytes when the body has them, to tell an HTML page."""
    head = b""
    while len(head) < 512 and (piece := resp.raw.read1(CHUNK)):
        head += piece
    if head:
        yield head
        while piece := resp.raw.read1(CHUNK):
            yield piece


def _progress(job: _Job, done: int, first: int, total: int | None, elapsed: float) -> None:
    of = f" / {total / 1e6:.1f} MB ({100 * done / total:.0f}%)" if total else " MB"
    job.log(f"{job.name}: {done / 1e6:.1f}{of}, {(done - first) / 1e6 / max(elapsed, 1e-9):.1f} MB/s")


# --- reading responses -----------------------------------------------------------------


def _total(resp: requests.Response) -> int | None:
    """The whole file's length: from Content-Range ("bytes 0-9/10", "bytes */10" with a
    416), else Content-Length."""
    m = re.match(r"bytes\s+(?:\d+-\d+|\*)/(\d+)", resp.headers.get("Content-Range", ""))
    if m:
        return int(m.group(1))
    length = resp.headers.get("Content-Length", "")
    return int(length) if length.isdigit() and resp.status_code in (200, 203) else None


def _range_start(resp: requests.Response) -> int | None:
    m = re.match(r"bytes\s+(\d+)-", resp.headers.get("Content-Range", ""))
    return int(m.group(1)) if m else None
