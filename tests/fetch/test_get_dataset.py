"""get_dataset.sh against a small archive served on 127.0.0.1 (never the real 1.7 GB
one): download and extraction, skipping what is there, resuming an interrupted
download, refusing a corrupt archive, and failing cleanly on network and disk errors."""

from __future__ import annotations

import http.server
import io
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO, env_with_src
from rifebench.fetch import http as http_mod
from rifebench.fetch import vimeo as vimeo_fetch

ENTRIES = ["00001/0389", "00001/0402"]


def make_archive(with_list: bool = True, top: str = "vimeo_interp_test") -> bytes:
    """A vimeo_interp_test.zip in miniature: input/ (im1, im3), target/ (im2), the list.
    Noise PNGs, stored uncompressed, so the archive is a few hundred kB."""
    import cv2

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        if with_list:
            zf.writestr(f"{top}/tri_testlist.txt", "\n".join(ENTRIES) + "\n")
        for entry in ENTRIES:
            for part, name in (("input", "im1.png"), ("target", "im2.png"), ("input", "im3.png")):
                _, png = cv2.imencode(".png", rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
                zf.writestr(f"{top}/{part}/{entry}/{name}", png.tobytes())
    return buf.getvalue()


ARCHIVE = make_archive()


class Server(http.server.ThreadingHTTPServer):
    """Serves `payload` at /vimeo_interp_test.zip with HTTP Range support.
    cut_after: the first response stops after this many bytes (an interrupted download);
    ranges=False: Range headers are ignored (a server that cannot resume)."""

    def __init__(self, payload: bytes, cut_after: int | None = None, ranges: bool = True):
        super().__init__(("127.0.0.1", 0), Handler)
        self.payload, self.cut_after, self.ranges = payload, cut_after, ranges
        self.requests: list[str | None] = []  # the Range header of each request

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/vimeo_interp_test.zip"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        srv = self.server
        if self.path != "/vimeo_interp_test.zip":
            self.send_error(404, "Not Found")
            return
        rng = self.headers.get("Range")
        srv.requests.append(rng)
        data, start = srv.payload, 0
        if rng and srv.ranges:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut_after is not None and len(srv.requests) == 1:
            self.wfile.write(body[: srv.cut_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    servers = []

    def start(payload=ARCHIVE, **kw) -> Server:
        srv = Server(payload, **kw)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def get_dataset(*args, env=None):
    e = {k: v for k, v in os.environ.items() if k not in ("DATASET_DIR", "RIFEBENCH_VIMEO_URL")}
    e["RIFEBENCH_FETCH_TIMEOUT"] = "5"
    e.update(env or {})
    return subprocess.run(
        ["./get_dataset.sh", *map(str, args)], cwd=REPO, env=e, capture_output=True, text=True, timeout=120
    )


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def assert_ready(folder: Path) -> None:
    assert (folder / "tri_testlist.txt").read_text().split() == ENTRIES
    for entry in ENTRIES:
        assert (folder / "input" / entry / "im1.png").is_file()
        assert (folder / "target" / entry / "im2.png").is_file()


def test_download_test_extract_then_skip(tmp_path, serve):
    srv = serve()
    proc = get_dataset("--dir", tmp_path, env={"RIFEBENCH_VIMEO_URL": srv.url})
    assert proc.returncode == 0, proc.stderr
    dest = tmp_path / "vimeo_interp_test"
    assert proc.stdout.strip() == str(dest)  # the folder to pass as --data
    assert_ready(dest)
    assert listing(tmp_path) == ["vimeo_interp_test", "vimeo_interp_test.zip"]  # no .part, no temp folder
    assert (tmp_path / "vimeo_interp_test.zip").read_bytes() == ARCHIVE
    again = get_dataset(env={"RIFEBENCH_VIMEO_URL": srv.url, "DATASET_DIR": str(tmp_path)})
    assert again.returncode == 0 and "already there" in again.stderr
    assert len(srv.requests) == 1  # nothing downloaded the second time
    # DATASET_DIR may also name the dataset folder itself, as run_model.sh reads it
    third = get_dataset(env={"RIFEBENCH_VIMEO_URL": srv.url, "DATASET_DIR": str(dest)})
    assert third.returncode == 0 and third.stdout.strip() == str(dest) and len(srv.requests) == 1


def test_interrupted_download_resumes(tmp_path, serve):
    cut = len(ARCHIVE) // 3
    srv = serve(cut_after=cut)
    first = get_dataset("--dir", tmp_path, "--url", srv.url)
    assert first.returncode == 1
    assert "get_dataset.sh: error:" in first.stderr and "again to resume" in first.stderr
    assert listing(tmp_path) == ["vimeo_interp_test.zip.part"]  # nothing that looks complete
    assert (tmp_path / "vimeo_interp_test.zip.part").stat().st_size == cut
    second = get_dataset("--dir", tmp_path, "--url", srv.url)
    assert second.returncode == 0, second.stderr
    assert srv.requests == [None, f"bytes={cut}-"]
    assert "resuming" in second.stderr
    assert (tmp_path / "vimeo_interp_test.zip").read_bytes() == ARCHIVE
    assert_ready(tmp_path / "vimeo_interp_test")


def test_server_without_ranges_restarts_from_scratch(tmp_path, serve):
    srv = serve(ranges=False)
    (tmp_path / "vimeo_interp_test.zip.part").write_bytes(b"stale bytes of another file")
    proc = get_dataset("--dir", tmp_path, "--url", srv.url)
    assert proc.returncode == 0, proc.stderr
    assert "from the start" in proc.stderr
    assert (tmp_path / "vimeo_interp_test.zip").read_bytes() == ARCHIVE


def test_whole_part_file_is_finished_on_416(tmp_path, serve):
    srv = serve()
    (tmp_path / "vimeo_interp_test.zip.part").write_bytes(ARCHIVE)
    proc = get_dataset("--dir", tmp_path, "--url", srv.url)
    assert proc.returncode == 0, proc.stderr
    assert srv.requests == [f"bytes={len(ARCHIVE)}-"]
    assert_ready(tmp_path / "vimeo_interp_test")


def test_corrupt_archive_is_refused(tmp_path, serve):
    bad = bytearray(ARCHIVE)
    bad[len(bad) // 2] ^= 0xFF  # inside a stored PNG: the sizes are right, the CRC is not
    srv = serve(bytes(bad))
    proc = get_dataset("--dir", tmp_path, "--url", srv.url)
    assert proc.returncode == 1
    assert "is corrupt" in proc.stderr and "CRC" in proc.stderr and "nothing extracted" in proc.stderr
    assert listing(tmp_path) == ["vimeo_interp_test.zip.corrupt"]  # set aside; no folder, no temp
    good = serve()
    proc = get_dataset("--dir", tmp_path, "--url", good.url)  # the next run fetches it anew
    assert proc.returncode == 0, proc.stderr
    assert_ready(tmp_path / "vimeo_interp_test")


def test_existing_archive_is_not_downloaded_again(tmp_path):
    (tmp_path / "vimeo_interp_test.zip").write_bytes(ARCHIVE)
    proc = get_dataset("--dir", tmp_path, "--url", "http://127.0.0.1:9/never-asked")
    assert proc.returncode == 0, proc.stderr
    assert "not downloading it again" in proc.stderr
    assert_ready(tmp_path / "vimeo_interp_test")


def test_not_a_dataset_archive_leaves_nothing(tmp_path, serve):
    srv = serve(make_archive(with_list=False))
    proc = get_dataset("--dir", tmp_path, "--url", srv.url)
    assert proc.returncode == 1 and "no tri_testlist.txt" in proc.stderr
    # Set aside, not kept under its name: the rerun fetches anew instead of refusing it again.
    assert listing(tmp_path) == ["vimeo_interp_test.zip.refused"] and "fetches it anew" in proc.stderr
    srv2 = serve(make_archive(with_list=True))
    proc = get_dataset("--dir", tmp_path, "--url", srv2.url)
    assert proc.returncode == 0, proc.stderr
    assert "vimeo_interp_test" in listing(tmp_path)


@pytest.mark.slow
def test_network_errors_are_one_clear_line(tmp_path, serve):
    srv = serve()
    proc = get_dataset("--dir", tmp_path, "--url", srv.url.replace("vimeo_interp_test.zip", "gone.zip"))
    assert proc.returncode == 1 and "HTTP 404" in proc.stderr
    with __import__("socket").socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = get_dataset("--dir", tmp_path, "--url", f"http://127.0.0.1:{port}/x.zip")
    assert proc.returncode == 1 and "cannot reach" in proc.stderr
    assert listing(tmp_path) == []


def test_disk_space_is_checked_before_writing(tmp_path, serve, monkeypatch):
    srv = serve()
    monkeypatch.setattr(http_mod, "free_bytes", lambda path: 1000)
    with pytest.raises(vimeo_fetch.FetchError, match="not enough disk space"):
        vimeo_fetch.get(tmp_path, srv.url)
    assert not (tmp_path / "vimeo_interp_test").exists()
    (tmp_path / "vimeo_interp_test.zip").write_bytes(ARCHIVE)  # the extraction is checked too
    with pytest.raises(vimeo_fetch.FetchError, match="to extract"):
        vimeo_fetch.get(tmp_path, srv.url)
    assert listing(tmp_path) == ["vimeo_interp_test.zip"]


def test_free_space_is_checked_before_the_crc_test(tmp_path, monkeypatch):
    with zipfile.ZipFile(tmp_path / "vimeo_interp_test.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("vimeo_interp_test/tri_testlist.txt", "00001/0389\n" * 20000)  # 220 kB, compresses to 1 kB
    tested = []
    monkeypatch.setattr(zipfile.ZipFile, "testzip", lambda self: tested.append(1))
    monkeypatch.setattr(http_mod, "free_bytes", lambda path: (64 << 20) + 100_000)
    with pytest.raises(vimeo_fetch.FetchError, match=r"to extract vimeo_interp_test.zip: needs 0\.2 MB"):
        vimeo_fetch.get(tmp_path, "http://127.0.0.1:9/unused")
    assert tested == []  # refused from the central directory, before decompressing anything
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vimeo_interp_test.zip"]


def test_failed_extraction_leaves_no_folder(tmp_path, monkeypatch):
    (tmp_path / "vimeo_interp_test.zip").write_bytes(ARCHIVE)

    def disk_full(src, dst, length=0):
        dst.write(src.read(100))  # a file half-written, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(vimeo_fetch.shutil, "copyfileobj", disk_full)
    with pytest.raises(vimeo_fetch.FetchError, match="disk full"):
        vimeo_fetch.get(tmp_path, "http://127.0.0.1:9/unused")
    assert listing(tmp_path) == ["vimeo_interp_test.zip"]


def test_help_and_setup_do_not_download():
    proc = subprocess.run(["./get_dataset.sh", "--help"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0 and "--dir DIR" in proc.stdout and vimeo_fetch.URL in proc.stdout
    lines = [ln.strip() for ln in (REPO / "setup.sh").read_text().splitlines() if ln.strip()]
    calls = [i for i, ln in enumerate(lines) if "get_dataset.sh" in ln and not ln.startswith("#")]
    assert calls  # setup.sh --with-dataset runs it, and only then:
    assert all(lines[i - 1].startswith("if") and "with_dataset" in lines[i - 1] for i in calls)


class Stall(http.server.BaseHTTPRequestHandler):
    """Promises a large archive, sends 256 kB of it, then waits."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(10 << 20))
        self.end_headers()
        self.wfile.write(b"PK\x03\x04" + b"\0" * ((256 << 10) - 4))
        self.wfile.flush()
        time.sleep(30)

    def log_message(self, *args):
        pass


def test_get_dataset_ctrl_c_is_one_line_and_130(tmp_path):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stall)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/vimeo_interp_test.zip"
        proc = subprocess.Popen(
            [sys.executable, "-m", "rifebench.fetch.vimeo", "--dir", str(tmp_path), "--url", url],
            env=env_with_src(RIFEBENCH_FETCH_TIMEOUT="60"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        part = tmp_path / "vimeo_interp_test.zip.part"
        until = time.monotonic() + 30
        while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < until:
            time.sleep(0.05)
        assert part.exists(), "the download did not start"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        srv.shutdown()
        srv.server_close()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and out == ""
    assert err.splitlines()[-1] == "get_dataset.sh: interrupted; run ./get_dataset.sh again to resume"
    assert part.exists()  # kept for resuming


# --- nothing followed, nothing extracted but plain files (issue 21, items 3 and 28) ---------

SECRET = b"the victim's own bytes, which no download may touch\n"


def plant(tmp_path, name="vimeo_interp_test.zip.part"):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(SECRET)
    link = tmp_path / "d" / name
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(victim)
    return victim, link


@pytest.mark.parametrize("ranges", [True, False], ids=["appended", "replaced"])
def test_get_dataset_refuses_a_planted_part_link(tmp_path, serve, ranges):
    srv = serve(ranges=ranges)
    victim, link = plant(tmp_path)
    proc = get_dataset("--dir", link.parent, "--url", srv.url)
    assert proc.returncode == 2, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if "error" in ln]  # one line, after "downloading ..."
    assert line.startswith(f"get_dataset.sh: error: {str(link)!r} is a symlink to {str(victim)!r} (accepted: ")
    assert victim.read_bytes() == SECRET and link.is_symlink()  # nothing followed, nothing lost
    assert srv.requests == [] and listing(link.parent) == [link.name]


def archive_with(tmp_path, extra) -> None:
    """The good archive plus `extra(zf)`, at DIR/vimeo_interp_test.zip."""
    with zipfile.ZipFile(tmp_path / "vimeo_interp_test.zip", "w") as zf:
        zf.writestr("vimeo_interp_test/tri_testlist.txt", "\n".join(ENTRIES) + "\n")
        extra(zf)


def symlink_member(zf, name="vimeo_interp_test/sequences", target="/etc"):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    zf.writestr(info, target)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (symlink_member, "member 'vimeo_interp_test/sequences' is a symlink (accepted: plain files and folders only)"),
        (lambda zf: zf.writestr("vimeo_interp_test/sequences", "/etc"), "has no tri_testlist.txt with sequences/"),
        (lambda zf: zf.writestr("vimeo_interp_test/../../escaped.txt", "x"), "unsafe member name"),
        (lambda zf: zf.writestr("/abs/escaped.txt", "x"), "unsafe member name"),
        (lambda zf: zf.writestr("vimeo_interp_test/tri_testlist.txt", "again"), "appears twice"),
    ],
    ids=["symlink-member", "sequences-a-file", "dotdot", "absolute", "twice"],
)
def test_get_dataset_refuses_a_bad_archive_before_ready(tmp_path, extra, message):
    with warnings.catch_warnings():  # zipfile warns about the duplicate name it is told to write
        warnings.simplefilter("ignore")
        archive_with(tmp_path, extra)
    proc = get_dataset("--dir", tmp_path, "--url", "http://127.0.0.1:9/never-asked")
    assert proc.returncode == 1, proc.stderr
    (line,) = proc.stderr.splitlines()[-1:]
    assert message in line and "ready:" not in proc.stderr and "Traceback" not in proc.stderr
    assert listing(tmp_path) == ["vimeo_interp_test.zip.refused"]  # no folder, no temporary folder
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_get_dataset_refuses_a_dataset_folder_link(tmp_path):
    (tmp_path / "vimeo_interp_test.zip").write_bytes(ARCHIVE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "vimeo_interp_test").symlink_to(elsewhere)
    proc = get_dataset("--dir", tmp_path, "--url", "http://127.0.0.1:9/never-asked")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "is a symlink to" in proc.stderr and list(elsewhere.iterdir()) == []


def test_a_good_archive_is_still_ready(tmp_path):
    (tmp_path / "vimeo_interp_test.zip").write_bytes(make_archive())
    proc = get_dataset("--dir", tmp_path, "--url", "http://127.0.0.1:9/never-asked")
    assert proc.returncode == 0, proc.stderr
    dest = tmp_path / "vimeo_interp_test"
    assert "ready:" in proc.stderr and not any(p.is_symlink() for p in dest.rglob("*"))
