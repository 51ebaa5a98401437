"""Issue 12, item 10 (the smaller ones): list files with a BOM or trailing slashes,
strict numbers, no abbreviated flags, 16-bit / RGBA / grayscale images, stdout closed
or piped into `head`, a stale collector socket, MODEL for get_model.sh, stale `.part`
folders, and get_dataset.sh's Ctrl-C and free-space check."""

from __future__ import annotations

import argparse
import http.server
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import REPO, clean_env, run_harness
from rifebench.data import images
from rifebench.data.vimeo import image_name, read_list
from rifebench.errors import UsageError
from rifebench.fetch import http as http_mod
from rifebench.fetch import vimeo as vimeo_fetch
from rifebench.fetch import weights
from rifebench.measure import telemetry
from rifebench.models import zoo
from rifebench.options import OPTIONS

NULL_RUN = [
    "--model",
    "null",
    "--dummy",
    "--num-inputs",
    "5",
    "--warmup",
    "1",
    "--null-ms",
    "1",
    "--data-height",
    "64",
    "--data-width",
    "64",
]


def env_with_src(**extra) -> dict:
    env = clean_env(**extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (env.get("PYTHONPATH"), str(REPO / "src"))))
    return env


# --- the dataset list -------------------------------------------------------------------


def test_list_with_a_bom_reads_its_first_entry(tmp_path):
    (tmp_path / "tri_testlist.txt").write_bytes("\ufeff00001/0389\r\n00001/0402\r\n".encode())
    assert read_list(tmp_path) == [(1, "00001/0389"), (2, "00001/0402")]


def test_trailing_slash_names_the_clip_not_a_hidden_png(tmp_path):
    (tmp_path / "tri_testlist.txt").write_text("00001/0389/\n00001//0402\n")
    assert read_list(tmp_path) == [(1, "00001/0389"), (2, "00001/0402")]
    assert image_name("00001/0389/", 1, 1) == "00001/0389.png"
    assert image_name("00001/0389/", 2, 3) == "00001/0389_2.png"


# --- numbers and flags ------------------------------------------------------------------


def option(env: str):
    return next(o for o in OPTIONS if o.env == env)


@pytest.mark.parametrize(
    "env,raw",
    [
        ("NUM_INPUTS", "1_0"),
        ("NUM_INPUTS", "\uff11\uff10"),
        ("NUM_INPUTS", "1.0"),
        ("NUM_INPUTS", "\u0661\u0660"),
        ("SCALE", "0_5"),
        ("SCALE", "\uff11.5"),
        ("SCALE", "1.5_0"),
        ("MIN_PSNR_DB", "2_5"),
    ],
)
def test_lenient_numbers_are_refused(env, raw):
    with pytest.raises(UsageError) as info:
        option(env).parse(raw, "env")
    message = str(info.value)
    assert message.startswith(f"{env}: invalid value {raw!r}") and "accepted:" in message and "\n" not in message


@pytest.mark.parametrize(
    "env,raw,value",
    [
        ("NUM_INPUTS", " 10 ", 10),
        ("NUM_INPUTS", "+10", 10),
        ("SEED", "007", 7),
        ("SCALE", "0.5", 0.5),
        ("SCALE", ".5", 0.5),
        ("SCALE", "1.", 1.0),
        ("SCALE", "5e-1", 0.5),
        ("SCALE", "+1E0", 1.0),
        ("MAX_TEST_DURATION", "unlimited", None),
    ],
)
def test_plain_numbers_still_parse(env, raw, value):
    assert option(env).parse(raw, "env") == value


def test_lenient_number_on_the_command_line_is_one_line(tmp_path):
    proc = run_harness([*NULL_RUN[:3], "--num-inputs", "1_0", "--output-dir", tmp_path / "o"])
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "run_model.sh: error: --num-inputs: invalid value '1_0' (accepted: an integer >= 1 and <= 1000000000)"
    )


class Parsed(Exception):
    pass


@pytest.mark.parametrize(
    "module",
    [
        "rifebench.config",
        "rifebench.bench.runner",
        "rifebench.compare.cli",
        "rifebench.study.cli",
        "rifebench.fetch.weights",
        "rifebench.fetch.vimeo",
    ],
)
def test_no_parser_takes_abbreviations(module, monkeypatch):
    seen = []

    def spy(self, args=None, namespace=None):
        seen.append((self.prog, self.allow_abbrev))
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", spy)
    mod = importlib.import_module(module)
    with pytest.raises(Parsed):
        mod.build_parser().parse_args([]) if module == "rifebench.config" else mod.main(["x"])
    assert len(seen) == 1 and seen[0][1] is False, seen


def test_abbreviated_option_of_the_run_is_refused(tmp_path):
    proc = run_harness(["--dumm", "--model", "null", "--output-dir", tmp_path / "o"])
    assert proc.returncode == 2 and "unrecognized arguments: --dumm" in proc.stderr
    assert not (tmp_path / "o").exists()


# --- images -----------------------------------------------------------------------------


@pytest.fixture
def fresh_reports(monkeypatch):
    monkeypatch.setattr(images, "_reported", set())


def test_16_bit_png_is_scaled_with_rounding(tmp_path, capsys, fresh_reports):
    values = np.array([0, 128, 255, 257, 32767, 32896, 65406, 65535], dtype=np.uint16)
    frame = np.stack([np.tile(values, (4, 1))] * 3, axis=2)
    path = str(tmp_path / "deep.png")
    assert cv2.imwrite(path, frame)
    got = images.read_image(path)
    assert got.dtype == np.uint8 and got.shape == (4, 8, 3)
    expected = np.round(values / 257.0).astype(np.uint8)  # >> 8 gives 0, 0, 0, 1, 127, 128, 255, 255
    assert got[0, :, 0].tolist() == expected.tolist() == [0, 0, 1, 1, 127, 128, 254, 255]
    err = capsys.readouterr().err
    assert "[IMAGE_CONVERTED]" in err and "16-bit samples scaled to 8 bits" in err and path in err


def test_rgba_and_grayscale_are_converted_with_one_warning_each(tmp_path, capsys, fresh_reports):
    rng = np.random.default_rng(1)
    bgra = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    gray = rng.integers(0, 256, (6, 5), dtype=np.uint8)
    for name, data in (("a.png", bgra), ("b.png", bgra), ("g.png", gray)):
        assert cv2.imwrite(str(tmp_path / name), data)
    assert np.array_equal(images.read_image(str(tmp_path / "a.png")), bgra[:, :, :3])
    assert np.array_equal(images.read_image(str(tmp_path / "b.png")), bgra[:, :, :3])
    assert np.array_equal(images.read_image(str(tmp_path / "g.png")), np.stack([gray] * 3, axis=2))
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2  # once per kind of conversion, not once per image
    assert "alpha channel dropped" in err[0] and "a.png" in err[0]
    assert "grayscale expanded to 3 channels" in err[1] and "g.png" in err[1]
    plain = tmp_path / "plain.png"
    cv2.imwrite(str(plain), bgra[:, :, :3])
    assert np.array_equal(images.read_image(str(plain)), bgra[:, :, :3])
    assert capsys.readouterr().err == ""


# --- stdout closed or cut short ---------------------------------------------------------


@pytest.mark.slow
def test_closed_stdout_runs_and_keeps_its_status(tmp_path):
    out = tmp_path / "o"
    args = " ".join([sys.executable, "-m", "rifebench", *NULL_RUN, "--output-dir", str(out)])
    proc = subprocess.run(
        ["bash", "-c", f"exec {args} >&-"], env=clean_env(), cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads((out / "results.json").read_text())["status"] == "passed"
    assert "model null" in (out / "output.log").read_text()


@pytest.mark.slow
def test_reader_gone_after_the_first_line(tmp_path):
    """`run_model.sh ... | head -1`: the rest goes nowhere, the run finishes with its status."""
    out = tmp_path / "o"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rifebench", *NULL_RUN, "--output-dir", str(out)],
        env=clean_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert first.startswith(b"rifebench ") and "Traceback" not in err and "BrokenPipe" not in err
    assert json.loads((out / "results.json").read_text())["status"] == "passed"


@pytest.mark.parametrize("command", [["--options-markdown"], ["--warnings-markdown"]])
def test_reader_gone_before_the_output(command):
    proc = subprocess.Popen(
        [sys.executable, "-m", "rifebench", *command],
        env=env_with_src(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # a reader that is gone at once: every write fails with EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert err == ""


# --- telemetry socket -------------------------------------------------------------------


def test_stale_socket_file_fails_the_check():
    folder = tempfile.mkdtemp(prefix="rb-stale-", dir="/tmp")  # AF_UNIX paths are short
    path = os.path.join(folder, "collector.sock")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(path)  # the file stays after the collector is gone
        assert Path(path).is_socket()
        assert telemetry.check_socket(path) == "no collector listens on it (a stale socket file?)"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
            os.unlink(path)
            live.bind(path)
            live.listen(1)
            assert telemetry.check_socket(path) is None
    finally:
        Path(path).unlink(missing_ok=True)
        os.rmdir(folder)


# --- get_model.sh -----------------------------------------------------------------------


def test_get_model_reads_model_and_models_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MODEL", "4.6")
    monkeypatch.setenv("MODELS_DIR", str(tmp_path))
    assert weights.main(["--print-path"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "rife-4.6" / "flownet.pkl")
    assert weights.main(["--print-path", "--model", "paper"]) == 0  # the flag wins
    assert capsys.readouterr().out.strip() == str(tmp_path / "rife-paper" / "flownet.pkl")
    monkeypatch.setenv("MODEL", "4.7")
    assert weights.main(["--print-path"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"get_model.sh: MODEL: unknown model '4.7' (accepted: {', '.join(zoo.MODELS)})"
    )
    monkeypatch.delenv("MODEL")
    assert weights.main(["--print-path"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / f"rife-{zoo.DEFAULT_MODEL}" / "flownet.pkl")


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


# --- get_dataset.sh ---------------------------------------------------------------------


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


@pytest.mark.slow
def test_a_run_on_such_a_dataset_says_so_and_saves_visible_images(tmp_path):
    """BOM, trailing slash and 16-bit RGBA frames through a whole (null-model) run."""
    data, out = tmp_path / "data", tmp_path / "out"
    rng = np.random.default_rng(0)
    for part, name in (("input", "im1.png"), ("target", "im2.png"), ("input", "im3.png")):
        (data / part / "00001" / "0001").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(data / part / "00001" / "0001" / name), rng.integers(0, 65536, (32, 32, 4), dtype=np.uint16))
    (data / "tri_testlist.txt").write_bytes("\ufeff00001/0001/\n".encode())
    proc = run_harness(
        ["--model", "null", "--null-ms", "1", "--data", data, "--saveimages", "--warmup", "0", "--output-dir", out]
    )
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr  # 1: noise fails PSNR
    assert [p.name for p in (out / "images" / "00001").iterdir()] == ["0001.png"]
    log = (out / "output.log").read_text()
    assert log.count("[IMAGE_CONVERTED]") == 1 and "16-bit samples scaled to 8 bits; alpha channel dropped" in log
