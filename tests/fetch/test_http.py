"""fetch/http.py, the one downloader, against a scripted HTTP server on 127.0.0.1: resume,
retries with backoff and Retry-After, servers that ignore Range or answer 416, HTML pages,
size and sha256 checks, timeouts and one-line errors."""

from __future__ import annotations

import hashlib
import http.server
import os
import random
import socket
import threading
import time
import zipfile
from pathlib import Path

import pytest

from rifebench.fetch import http as http_mod
from rifebench.fetch import pages, partfile
from rifebench.fetch.http import FetchError, download, make_session
from rifebench.fetch.pypi import extract_member

PAYLOAD = random.Random(1).randbytes(200_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()
PAGE = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>log in first</body></html>"


class Server(http.server.ThreadingHTTPServer):
    """Answers each GET with ``script(handler, n)`` (n: 0 for the first request);
    ``requests`` holds the Range header of each request."""

    daemon_threads = True

    def __init__(self, script):
        super().__init__(("127.0.0.1", 0), Handler)
        self.script, self.requests = script, []
        self.release = threading.Event()

    def url(self, path: str = "/file.bin") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append(self.headers.get("Range"))
        self.server.script(self, len(self.server.requests) - 1)

    def log_message(self, *args):
        pass

    def reply(
        self,
        body: bytes,
        status: int = 200,
        ctype: str = "application/octet-stream",
        headers: dict | None = None,
        cut: int | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body if cut is None else body[:cut])  # cut: promise more, then hang up

    def file(self, data: bytes = PAYLOAD, ranges: bool = True, cut: int | None = None) -> None:
        """data with Range support (206, or 416 past the end) unless ranges=False."""
        rng = self.headers.get("Range")
        if not (rng and ranges):
            return self.reply(data, cut=cut)
        start = int(rng.split("=")[1].split("-")[0])
        if start >= len(data):
            return self.reply(b"", 416, headers={"Content-Range": f"bytes */{len(data)}"})
        self.reply(data[start:], 206, headers={"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}, cut=cut)


@pytest.fixture
def serve():
    servers = []

    def start(script) -> Server:
        srv = Server(script)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.release.set()
        srv.shutdown()
        srv.server_close()


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setenv("RIFEBENCH_FETCH_TIMEOUT", "3")
    monkeypatch.setattr(http_mod, "BACKOFF_S", 0.0)


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def fast(retries: int = 3):
    return make_session(retries=retries, backoff_s=0.01)


# --- resume ---------------------------------------------------------------------------


def test_interrupted_transfer_resumes_with_range(serve, tmp_path):
    half = len(PAYLOAD) // 2
    srv = serve(lambda h, n: h.file(cut=half if n == 0 else None))
    dest = tmp_path / "file.bin"
    with pytest.raises(FetchError) as err:
        download(srv.url(), dest, sha256=SHA, log=lambda m: None)
    assert err.value.resumable and err.value.url == srv.url()
    assert str(err.value) == (
        f"{srv.url()}: transfer broke off after {half} of {len(PAYLOAD)} bytes "
        "(connection closed early); file.bin.part kept"
    )
    assert files(tmp_path) == ["file.bin.part"] and (tmp_path / "file.bin.part").stat().st_size == half
    logs = []
    assert download(srv.url(), dest, sha256=SHA, log=logs.append) == dest
    assert srv.requests == [None, f"bytes={half}-"]
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == SHA
    assert files(tmp_path) == ["file.bin"]
    assert any("resuming file.bin.part at" in m for m in logs)


def test_without_resume_an_interrupted_part_is_removed(serve, tmp_path):
    srv = serve(lambda h, n: h.file(cut=1000))
    with pytest.raises(FetchError, match="broke off after 1000 of 200000 bytes"):
        download(srv.url(), tmp_path / "file.bin", resume=False, log=lambda m: None)
    assert files(tmp_path) == []


def test_server_ignoring_range_restarts_cleanly(serve, tmp_path):
    srv = serve(lambda h, n: h.file(ranges=False))
    (tmp_path / "file.bin.part").write_bytes(b"stale bytes of another file")
    logs = []
    download(srv.url(), tmp_path / "file.bin", sha256=SHA, log=logs.append)
    assert srv.requests == ["bytes=27-"]
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD
    assert any("does not resume" in m and "from the start" in m for m in logs)
    assert files(tmp_path) == ["file.bin"]


def test_416_on_a_whole_part_finishes_without_a_body(serve, tmp_path):
    srv = serve(lambda h, n: h.file())
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)
    download(srv.url(), tmp_path / "file.bin", sha256=SHA, log=lambda m: None)
    assert srv.requests == [f"bytes={len(PAYLOAD)}-"]
    assert files(tmp_path) == ["file.bin"]


def test_416_on_a_longer_part_starts_over(serve, tmp_path):
    srv = serve(lambda h, n: h.file())
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD + b"junk")
    logs = []
    download(srv.url(), tmp_path / "file.bin", sha256=SHA, log=logs.append)
    assert srv.requests == [f"bytes={len(PAYLOAD) + 4}-", None]
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD
    assert any("cannot resume" in m for m in logs)


def test_206_from_the_wrong_offset_starts_over(serve, tmp_path):
    def wrong(h, n):
        if n == 0:
            return h.reply(PAYLOAD, 206, headers={"Content-Range": f"bytes 0-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"})
        h.file()

    srv = serve(wrong)
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:10])
    download(srv.url(), tmp_path / "file.bin", sha256=SHA, log=lambda m: None)
    assert srv.requests == ["bytes=10-", None]
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD


# --- retries ----------------------------------------------------------------------------


def test_503_is_retried_with_backoff_then_succeeds(serve, tmp_path):
    srv = serve(lambda h, n: h.reply(b"busy", 503, "text/plain") if n < 2 else h.file())
    download(srv.url(), tmp_path / "file.bin", sha256=SHA, session=fast(), log=lambda m: None)
    assert len(srv.requests) == 3
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD


def test_retries_run_out_with_one_line(serve, tmp_path):
    srv = serve(lambda h, n: h.reply(b"oops", 502, "text/plain"))
    with pytest.raises(FetchError) as err:
        download(srv.url(), tmp_path / "file.bin", session=fast(retries=2), log=lambda m: None)
    assert str(err.value) == f"{srv.url()}: HTTP 502 Bad Gateway (after 2 retries)"
    assert len(srv.requests) == 3 and files(tmp_path) == []


def test_retry_after_is_honoured(serve, tmp_path):
    srv = serve(lambda h, n: h.reply(b"slow down", 429, "text/plain", {"Retry-After": "1"}) if n == 0 else h.file())
    start = time.monotonic()
    download(srv.url(), tmp_path / "file.bin", session=make_session(retries=2, backoff_s=0), log=lambda m: None)
    assert time.monotonic() - start >= 0.9
    assert len(srv.requests) == 2


def test_404_is_not_retried(serve, tmp_path):
    srv = serve(lambda h, n: h.send_error(404, "Not Found"))
    with pytest.raises(FetchError) as err:
        download(srv.url(), tmp_path / "file.bin", session=fast(), log=lambda m: None)
    assert str(err.value) == f"{srv.url()}: HTTP 404 Not Found"
    assert err.value.reason == "HTTP 404 Not Found" and not err.value.resumable
    assert len(srv.requests) == 1 and files(tmp_path) == []


def test_connection_refused_names_the_url(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/file.bin"  # nobody listening once closed
    with pytest.raises(FetchError) as err:
        download(url, tmp_path / "file.bin", session=fast(retries=1), log=lambda m: None)
    assert str(err.value) == f"{url}: cannot reach the server (Connection refused) (2 tries)"
    assert files(tmp_path) == []


def test_read_timeout(serve, tmp_path):
    srv = serve(lambda h, n: srv.release.wait(10))
    with pytest.raises(FetchError) as err:
        download(srv.url(), tmp_path / "file.bin", session=fast(retries=0), timeout=0.3, log=lambda m: None)
    assert str(err.value) == f"{srv.url()}: no data for 0.3 s"


# --- HTML pages, checks -----------------------------------------------------------------


@pytest.mark.parametrize("ctype", ["text/html; charset=utf-8", "application/octet-stream"])
def test_html_page_instead_of_a_binary(serve, tmp_path, ctype):
    srv = serve(lambda h, n: h.reply(PAGE, ctype=ctype))
    with pytest.raises(FetchError) as err:
        download(srv.url(), tmp_path / "file.bin", what="the archive", log=lambda m: None)
    assert str(err.value).startswith(
        f"{srv.url()}: the server returned an HTML page instead of the archive ('Sign in'): "
    )
    assert "\n" not in str(err.value) and files(tmp_path) == []


def test_on_html_can_follow_a_page(serve, tmp_path):
    srv = serve(lambda h, n: h.reply(PAGE, ctype="text/html") if n == 0 else h.file())
    seen = []
    download(
        srv.url("/page"),
        tmp_path / "file.bin",
        log=lambda m: None,
        on_html=lambda page, url: seen.append((page, url)) or srv.url(),
    )
    assert seen == [(PAGE.decode(), srv.url("/page"))]
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD


def test_sha256_mismatch_leaves_nothing(serve, tmp_path):
    srv = serve(lambda h, n: h.file())
    with pytest.raises(FetchError) as err:
        download(srv.url(), tmp_path / "file.bin", sha256="0" * 64, log=lambda m: None)
    assert str(err.value) == f"{srv.url()}: sha256 mismatch: got {SHA}, expected {'0' * 64}"
    assert files(tmp_path) == []


def test_size_mismatch_leaves_nothing(serve, tmp_path):
    srv = serve(lambda h, n: h.file())
    with pytest.raises(FetchError) as err:
        download(srv.url(), tmp_path / "file.bin", size=len(PAYLOAD) + 1, log=lambda m: None)
    assert str(err.value) == f"{srv.url()}: size mismatch: got {len(PAYLOAD)} bytes, expected {len(PAYLOAD) + 1}"
    assert files(tmp_path) == []


def test_disk_space_checked_before_writing(serve, tmp_path, monkeypatch):
    srv = serve(lambda h, n: h.file())
    monkeypatch.setattr(http_mod, "free_bytes", lambda folder: 1000)
    with pytest.raises(FetchError, match=r"not enough disk space in .*: 200000 bytes still to download"):
        download(srv.url(), tmp_path / "file.bin", log=lambda m: None)
    assert files(tmp_path) == []


def test_progress_line(serve, tmp_path, monkeypatch):
    monkeypatch.setattr(http_mod, "PROGRESS_EVERY_S", 0.0)
    srv = serve(lambda h, n: h.file())
    logs = []
    download(srv.url(), tmp_path / "file.bin", log=logs.append)
    assert logs[-1].startswith("file.bin: 0.2 / 0.2 MB (100%), ")


def test_bad_timeout_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("RIFEBENCH_FETCH_TIMEOUT", "soon")
    with pytest.raises(FetchError, match=r"RIFEBENCH_FETCH_TIMEOUT: 'soon' is not accepted \(a number"):
        download("http://127.0.0.1:9/x", tmp_path / "x")


def test_stall_in_the_body_keeps_the_part(serve, tmp_path):
    def stall(h, n):
        h.reply(PAYLOAD, cut=5000)
        h.wfile.flush()
        srv.release.wait(10)

    srv = serve(stall)
    with pytest.raises(FetchError) as err:
        download(srv.url(), tmp_path / "file.bin", session=fast(retries=0), timeout=0.3, log=lambda m: None)
    assert err.value.reason == "transfer broke off after 5000 of 200000 bytes (no data for 0.3 s); file.bin.part kept"
    assert files(tmp_path) == ["file.bin.part"]


def test_connect_timeout_reason():
    from requests import ConnectTimeout
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

    exc = ConnectTimeout(MaxRetryError(None, "http://x/", ConnectTimeoutError("timed out")))
    assert pages.failure_reason(exc, 2.0, retries=4) == "no connection within 2 s (5 tries)"


# --- no link is ever written through (issue 21, item 3) ------------------------------------

SECRET = b"the victim's own bytes, which no download may touch\n"


def plant(tmp_path, name="vimeo_interp_test.zip.part"):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(SECRET)
    link = tmp_path / "d" / name
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(victim)
    return victim, link


def test_download_refuses_a_part_link_and_a_fifo(tmp_path):
    victim, link = plant(tmp_path, "file.bin.part")
    for resume in (True, False):
        with pytest.raises(partfile.LinkRefused, match="is a symlink to"):
            download("http://127.0.0.1:9/never-asked", link.parent / "file.bin", resume=resume, log=print)
    assert victim.read_bytes() == SECRET and link.is_symlink()
    link.unlink()
    os.mkfifo(link)
    with pytest.raises(partfile.LinkRefused, match="is not a plain file"):
        download("http://127.0.0.1:9/never-asked", link.parent / "file.bin", log=print)


def test_open_for_writing_never_follows_a_link_planted_after_the_check(tmp_path):
    victim, link = plant(tmp_path, "x.part")
    for append in (True, False):
        with pytest.raises(partfile.LinkRefused):
            partfile.open_for_writing(link, append)
    assert victim.read_bytes() == SECRET
    fifo = tmp_path / "fifo.part"
    os.mkfifo(fifo)
    with pytest.raises(partfile.LinkRefused):  # refused at once, not blocked waiting for a reader
        partfile.open_for_writing(fifo, append=False)
    with partfile.open_for_writing(tmp_path / "new.part", append=False) as out:
        out.write(b"ok")
    assert (tmp_path / "new.part").read_bytes() == b"ok"


def test_a_weights_member_is_never_written_through_a_link(tmp_path):
    archive = tmp_path / "w.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg/flownet.pkl", b"\x80weights")
    victim, link = plant(tmp_path, "flownet.pkl")
    with pytest.raises(partfile.LinkRefused):
        extract_member(archive, "flownet.pkl", link)
    assert victim.read_bytes() == SECRET


def test_a_hard_linked_part_is_refused_and_never_emptied(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(SECRET)
    part = tmp_path / "file.bin.part"
    os.link(victim, part)
    with pytest.raises(partfile.LinkRefused, match=r"is a file with 1 other name\(s\) \(hard links\)"):
        download("http://127.0.0.1:9/never-asked", tmp_path / "file.bin", log=print)
    for append in (True, False):
        with pytest.raises(partfile.LinkRefused):
            partfile.open_for_writing(part, append)
    assert victim.read_bytes() == SECRET
