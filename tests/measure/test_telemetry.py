"""Telemetry: the collector socket against a local listener, in-process sampling
of real processes, and the GPU summary from a stand-in source (the GPU sources
themselves are tested in test_gpu.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from helpers import clean_env, run_harness
from rifebench.measure import gpu as gpumon
from rifebench.measure import telemetry
from rifebench.measure.telemetry import Telemetry


class Listener:
    """A collector stand-in: records what each connection sent, and when."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rb-sock-", dir="/tmp")  # AF_UNIX paths are short
        self.path = os.path.join(self.dir, "collector.sock")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(8)
        self.got: list[tuple[bytes, float]] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while chunk := conn.recv(1024):
                    data += chunk
                if data:  # check_socket's probe connects and sends nothing
                    self.got.append((data, time.monotonic()))

    def words(self, n, timeout=5.0):
        until = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < until:
            time.sleep(0.02)
        return [w for w, _ in self.got]

    def close(self):
        self.server.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


def test_start_and_stop_words_one_connection_each(listener):
    logged = []
    tel = Telemetry("cpu", [], listener.path, log=logged.append, interval=0.1)
    tel.stopped(1.0)  # before the start: nothing to stop
    tel.started(time.monotonic())
    tel.stopped(time.monotonic())
    tel.stopped(time.monotonic())  # once only
    tel.close()
    assert listener.words(2) == [b"start", b"stop"]
    assert tel.summary(0)["socket"] == {"path": listener.path, "sent": ["start", "stop"], "errors": []}
    assert logged == []


def test_a_dead_collector_is_a_recorded_warning(tmp_path):
    logged = []
    tel = Telemetry("cpu", [], str(tmp_path / "gone.sock"), log=logged.append, interval=0.1)
    tel.started(time.monotonic())
    tel.stopped(time.monotonic())
    tel.close()
    sock = tel.summary(0)["socket"]
    assert sock["sent"] == [] and len(sock["errors"]) == 2 and "start:" in sock["errors"][0]
    warned = tel.summary(0)["warnings"]
    assert [w["code"] for w in warned] == ["SOCKET_SEND_FAILED"] * 2
    assert "could not send 'start'" in warned[0]["message"]


def test_check_socket(tmp_path, listener):
    (tmp_path / "file").write_text("x")
    assert telemetry.check_socket(listener.path) is None
    assert telemetry.check_socket(str(tmp_path / "file")) == "not a Unix socket"
    assert "No such file" in telemetry.check_socket(str(tmp_path / "none"))


def test_sampling_a_busy_process():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        tel = Telemetry("cpu", [], None, interval=0.1)
        tel.add_stream(0, busy.pid, sorted(os.sched_getaffinity(0))[:1], 1)
        tel.started(time.monotonic())
        time.sleep(1.0)
        tel.stopped(time.monotonic())
        tel.close()
    finally:
        busy.kill()
        busy.wait()
    s = tel.summary(10)
    st = s["streams"][0]
    assert st["cpu_pct_of_share"]["count"] >= 5
    assert st["cpu_pct_of_share"]["mean"] > 20  # one spinning thread on a shared machine
    assert st["rss_bytes"]["min"] > 1e6
    assert 0 <= st["cpus_busy_pct"]["mean"] <= 100
    assert 0.9 < s["window_s"] < 2.0 and s["energy_per_image_j"] is None
    assert all(tel.marks["start"] < r["t"] <= tel.marks["stop"] for r in s["samples"])


class FakeGpu:
    name = "fake"

    def __init__(self, counter=True):
        self.calls, self.counter = 0, counter

    def sample(self):
        self.calls += 1
        return {
            0: {
                "util_pct": 90.0 + self.calls % 2,
                "mem_used_bytes": 2**30,
                "power_w": 200.0,
                "sm_clock_mhz": 1800.0,
                "mem_clock_mhz": 9000.0,
                "throttle": ["sw_power_cap"] if self.calls % 2 else [],
            }
        }

    def energy_j(self):
        return {0: 1000.0 + 150.0 * self.calls} if self.counter else {}

    def close(self):
        pass


@pytest.mark.parametrize("counter", [True, False])
def test_gpu_summary_and_energy_per_image(monkeypatch, counter):
    monkeypatch.setattr(gpumon, "open_gpu_source", lambda platform, gpus: (FakeGpu(counter), None))
    tel = Telemetry("cuda", [{"index": 0}], None, interval=60)
    tel.started(100.0)
    tel.sample()
    tel.sample()
    for r in tel.samples:
        r["t"] = 100.5  # inside the window
    tel.samples[0]["t"] = 99.0  # the priming sample, outside
    tel.floor = 99.0
    tel.stopped(102.0)
    tel.samples[-1]["t"] = 102.0
    tel.close()
    s = tel.summary(images=30)
    g = s["gpus"][0]
    assert g["power_w"]["mean"] == 200.0 and g["util_pct"]["count"] == 3
    assert g["throttle_reasons"] == {"sw_power_cap": 1}  # samples 2, 3, 4: only 3 throttled
    if counter:  # counter read at the start (after 1 sample) and at the stop (after 4)
        assert g["energy_method"] == "energy counter" and g["energy_j"] == pytest.approx(450.0)
    else:
        assert g["energy_method"] == "mean power x duration" and g["energy_j"] == pytest.approx(400.0)
    assert s["energy_per_image_j"] == pytest.approx(g["energy_j"] / 30)


@pytest.mark.slow
def test_socket_start_stop_against_a_run(listener, tmp_path, weights_40):
    """start once every stream has passed the barrier, stop once the last one ended."""
    proc = run_harness(
        [
            "--dummy",
            "--model",
            "4.0",
            "--pretrained-weights",
            weights_40,
            "--data-height",
            "32",
            "--data-width",
            "32",
            "--num-inputs",
            "15",
            "--warmup",
            "1",
            "--precision",
            "fp32",
            "--streams",
            "2",
            "--output-dir",
            tmp_path,
        ],
        env=clean_env(SOCKET=listener.path),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert listener.words(2) == [b"start", b"stop"]
    (_, t_start), (_, t_stop) = listener.got
    doc = json.loads(Path(tmp_path / "results.json").read_text())
    window = doc["metrics"]["window"]
    assert window["first_start"] <= t_start < window["first_start"] + 5
    assert t_stop >= max(s["end"] for s in doc["streams"]) == window["last_end"]
    assert doc["telemetry"]["socket"]["sent"] == ["start", "stop"]


@pytest.mark.slow
def test_socket_that_is_not_a_socket_is_refused_before_anything(tmp_path):
    proc = run_harness(["--dummy", "--output-dir", tmp_path], env=clean_env(SOCKET=str(tmp_path / "none.sock")))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "--socket/SOCKET" in proc.stderr and "none.sock" in proc.stderr


def test_cpu_use_by_other_processes_is_only_judged_on_exclusive_cpus():
    tel = Telemetry("cpu", [], None, interval=60)
    for sid, cpus in ((0, [0]), (1, [1]), (2, [1])):  # streams 1 and 2 share CPU 1
        tel.add_stream(sid, os.getpid(), cpus, 1)
    tel.started(10.0)
    tel.floor = 10.0
    tel.samples = [
        {
            "t": 11.0,
            "gpus": {},
            "streams": {sid: {"cpu_pct_of_share": 40.0, "rss_bytes": 1, "cpus_busy_pct": 100.0} for sid in (0, 1, 2)},
        }
    ]
    tel.marks["stop"] = 12.0
    tel.close()
    others = [s["others_pct_of_cpus"] for s in tel.summary(0)["streams"]]
    assert others == [pytest.approx(60.0), None, None]


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
