"""Parallel streams as a user runs them: pinning read back from inside each
stream, honest aggregation, and failures or signals that end the run in
seconds, record why, exit non-zero and leave nothing running. Orchestration
only, so the streams run the null model (a known host cost, no weights)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from helpers import REPO, clean_env, run_harness

CPUS = sorted(os.sched_getaffinity(0))
needs_two_cpus = pytest.mark.skipif(len(CPUS) < 2, reason="needs at least 2 usable CPUs")


@pytest.fixture
def args():
    def make(out, *extra):
        return [
            "--dummy",
            "--model",
            "null",
            "--null-ms",
            "2",
            "--data-height",
            "32",
            "--data-width",
            "32",
            "--warmup",
            "1",
            "--precision",
            "fp32",
            "--output-dir",
            out,
            *extra,
        ]

    return make


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


class Runner:
    """The harness in its own process group, its output collected as it comes."""

    def __init__(self, argv, env):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rifebench", *map(str, argv)],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    def wait_for(self, text: str, timeout: float = 120.0) -> None:
        until = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, "".join(self.lines)
            assert time.monotonic() < until, f"no {text!r} in:\n" + "".join(self.lines)
            time.sleep(0.05)

    def wait_for_progress(self, timeout: float = 120.0) -> None:
        """Until the launcher reports timed pairs (its progress line, every 5 s from the start)."""
        until = time.monotonic() + timeout
        while not any(re.match(r"progress: [1-9]\d* pairs", line) for line in self.lines):
            assert self.proc.poll() is None, self.output
            assert time.monotonic() < until, "no progress in:\n" + self.output
            time.sleep(0.05)

    def wait_for_workers(self, n: int, timeout: float = 60.0) -> dict[int, psutil.Process]:
        """The stream processes, once all n have started."""
        until = time.monotonic() + timeout
        while len(found := self.workers()) < n:
            assert self.proc.poll() is None, self.output
            assert time.monotonic() < until, f"{len(found)} of {n} stream processes started:\n" + self.output
            time.sleep(0.05)
        return found

    def workers(self) -> dict[int, psutil.Process]:
        out = {}
        for p in psutil.Process(self.proc.pid).children(recursive=True):
            cmd = p.cmdline()
            if "rifebench.run.worker" in cmd:
                out[int(cmd[cmd.index("--stream") + 1])] = p
        return out

    def finish(self, timeout: float) -> tuple[int, float]:
        t0 = time.monotonic()
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise AssertionError("the run did not end in time:\n" + "".join(self.lines)) from None
        return code, time.monotonic() - t0

    @property
    def output(self) -> str:
        return "".join(self.lines)


def assert_all_gone(pids) -> None:
    until = time.monotonic() + 5
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
        assert time.monotonic() < until, f"stream processes left running: {pids}"
        time.sleep(0.05)


def numactl_usable() -> bool:
    exe = shutil.which("numactl")
    return exe is not None and subprocess.run([exe, f"--physcpubind={CPUS[0]}", "true"]).returncode == 0


@pytest.mark.slow
@needs_two_cpus
@pytest.mark.parametrize("pin", ["numactl", "affinity"])
def test_two_streams_on_two_cpus(tmp_path, args, pin):
    if pin == "numactl" and not numactl_usable():
        pytest.skip("numactl is not installed or not permitted here")
    proc = run_harness(args(tmp_path, "--num-inputs", "12"), env=clean_env(STREAMS=2, PIN=pin))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "results.yaml").exists()
    doc = results(tmp_path)
    assert doc["pinning"]["method"] == pin and f"pinning by {pin}" in proc.stdout
    a, b = doc["streams"]
    # Read back inside each worker: disjoint, equal shares, threads = share.
    assert a["cpus"] and b["cpus"] and not set(a["cpus"]) & set(b["cpus"])
    assert set(a["cpus"]) | set(b["cpus"]) <= set(CPUS) and len(a["cpus"]) == len(b["cpus"])
    assert a["threads"] == len(a["cpus"]) and b["device"]["threads"] == len(b["cpus"])
    assert a["pinned_by"] == pin
    if pin == "numactl":
        assert a["mempolicy"]["policy"] == "bind" and a["mempolicy"]["physcpubind"].split() == list(map(str, a["cpus"]))
    # One clock, one start, honest sum.
    m = doc["metrics"]
    assert a["start_offset_s"] == b["start_offset_s"] == 0.0
    assert m["throughput_img_s"] <= a["throughput"] + b["throughput"] + 1e-9
    assert m["throughput_img_s"] == pytest.approx(m["images"] / m["duration_s"])
    assert m["latency_ms"]["count"] == m["frames"] == 24
    assert 0 < m["window"]["overlap_pct"] <= 100
    assert doc["telemetry"]["streams"][0]["id"] == 0


@needs_two_cpus
@pytest.mark.slow
def test_killed_stream_ends_the_run_in_seconds(tmp_path, args):
    run = Runner(args(tmp_path, "--num-inputs", "5", "--min-test-duration", "300"), clean_env(STREAMS=2))
    run.wait_for_progress()  # timed pairs, not a guess at how long they take
    workers = run.workers()
    assert sorted(workers) == [0, 1]
    workers[1].send_signal(signal.SIGKILL)
    code, took = run.finish(timeout=60)
    assert code == 1, run.output
    assert took < 20  # the 10 s grace is the most a stopped stream gets
    doc = results(tmp_path)
    assert doc["status"] == "failed" and doc["exit_code"] == 1
    assert doc["failures"] == [{"stream": 1, "reason": "killed by signal SIGKILL"}]
    survivor = [s for s in doc["streams"] if s["id"] == 0]
    assert survivor and survivor[0]["status"] == "interrupted" and survivor[0]["frames"] > 0
    assert not (tmp_path / "results.yaml").exists()
    assert_all_gone([p.pid for p in workers.values()])


@pytest.mark.parametrize(
    "fault,given_by,reason",
    [
        ("1:3", "flag", "RuntimeError: FAULT: stream 1 fails after 3 pairs"),
        pytest.param("1:3:exit", "variable", "exited with status 3 without a result", marks=pytest.mark.slow),
    ],
)
@pytest.mark.slow  # over 2 s on 2 cores: kept out of the fast tier
def test_stream_that_raises_or_exits_fails_the_run(tmp_path, args, fault, given_by, reason):
    extra = ["--fault", fault] if given_by == "flag" else []
    env = clean_env(STREAMS=2, **({"FAULT": fault} if given_by == "variable" else {}))
    t0 = time.monotonic()
    proc = run_harness(args(tmp_path, "--num-inputs", "5", "--min-test-duration", "300", *extra), env=env, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert time.monotonic() - t0 < 60
    doc = results(tmp_path)
    assert doc["status"] == "failed"
    assert [f["stream"] for f in doc["failures"]] == [1] and doc["failures"][0]["reason"].startswith(reason)
    assert f"error: stream 1 failed: {reason}" in proc.stdout
    assert not (tmp_path / "results.yaml").exists()
    assert doc["config"]["fault"] == fault


@pytest.mark.slow
def test_ctrl_c_stops_every_stream_and_keeps_what_was_measured(tmp_path, args):
    run = Runner(args(tmp_path, "--num-inputs", "5", "--min-test-duration", "300"), clean_env(STREAMS=2))
    run.wait_for_progress()
    workers = run.workers()
    assert sorted(workers) == [0, 1]
    os.killpg(run.proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    code, took = run.finish(timeout=60)
    assert code == 130, run.output
    assert took < 15
    doc = results(tmp_path)
    assert doc["status"] == "interrupted" and doc["failures"] == []
    assert {s["status"] for s in doc["streams"]} == {"interrupted"} and len(doc["streams"]) == 2
    assert doc["metrics"]["frames"] > 0 and doc["metrics"]["throughput_img_s"] > 0
    assert not (tmp_path / "results.yaml").exists()
    assert "received SIGINT" in (tmp_path / "output.log").read_text()
    assert_all_gone([p.pid for p in workers.values()])


@pytest.mark.slow
def test_sigterm_during_warm_up_stops_at_once(tmp_path, args):
    # FAULT=1:hold keeps stream 1 from ever saying ready: the run is before its start when the signal comes.
    run = Runner(args(tmp_path, "--num-inputs", "5", "--fault", "1:hold"), clean_env(STREAMS=2))
    run.wait_for("launching 2 stream(s)")
    workers = run.wait_for_workers(2)
    assert sorted(workers) == [0, 1] and all(p.is_running() for p in workers.values())
    run.proc.send_signal(signal.SIGTERM)
    code, took = run.finish(timeout=60)
    assert code == 130, run.output
    assert took < 10
    assert "passed the start barrier" not in run.output and "stream 1 ready" not in run.output
    doc = results(tmp_path)
    assert doc["status"] == "interrupted" and doc["failures"] == [] and doc["metrics"]["frames"] == 0
    assert_all_gone([p.pid for p in workers.values()])


@pytest.mark.slow
def test_barrier_timeout_fails_the_run(tmp_path, args):
    # FAULT=1:hold: stream 1 never says ready, however fast the machine.
    t0 = time.monotonic()
    proc = run_harness(
        args(tmp_path, "--num-inputs", "5", "--fault", "1:hold"), env=clean_env(STREAMS=2, BARRIER_TIMEOUT=1)
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert time.monotonic() - t0 < 60
    doc = results(tmp_path)
    assert doc["status"] == "failed" and "passed the start barrier" not in proc.stdout
    reason = doc["failures"][0]["reason"]
    assert "not ready after --barrier-timeout 1 s" in reason
    assert re.search(r"\(streams not ready: \[(0, )?1\]\)$", reason), reason  # the held one among them
    assert not (tmp_path / "results.yaml").exists()


@pytest.mark.slow
def test_more_streams_than_cpus_share_them_with_a_warning(tmp_path, args):
    n = len(CPUS) + 1
    proc = run_harness(args(tmp_path, "--num-inputs", "3"), env=clean_env(STREAMS=n, PIN="affinity"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = results(tmp_path)
    assert any(
        w["code"] == "STREAMS_OVERSUBSCRIBED" and "share CPUs round-robin" in w["message"] for w in doc["warnings"]
    )
    assert "warning [STREAMS_OVERSUBSCRIBED]:" in proc.stdout and "share CPUs" in proc.stdout
    cpus = [s["cpus"] for s in doc["streams"]]
    assert all(len(c) == 1 for c in cpus) and cpus[n - 1] == cpus[0]


def fake_numactl_dir(tmp_path) -> Path:
    """A numactl that refuses as it does in a container without SYS_NICE."""
    d = tmp_path / "bin"
    d.mkdir()
    exe = d / "numactl"
    exe.write_text('#!/bin/sh\necho "set_mempolicy: Operation not permitted" >&2\nexit 1\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return d


@pytest.mark.slow
def test_numactl_not_permitted(tmp_path, args):
    path = f"{fake_numactl_dir(tmp_path)}{os.pathsep}{os.environ.get('PATH', '')}"
    out = tmp_path / "out"
    proc = run_harness(args(out, "--num-inputs", "2"), env=clean_env(PIN="numactl", PATH=path))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--pin/PIN: 'numactl' is not usable here" in proc.stderr
    assert "Operation not permitted" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_harness(args(out, "--num-inputs", "2"), env=clean_env(PIN="auto", PATH=path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = results(out)
    assert doc["pinning"]["method"] == "affinity" and doc["streams"][0]["pinned_by"] == "affinity"
    w = doc["warnings"][0]
    assert w["code"] == "PIN_FALLBACK" and "pinning by CPU affinity instead" in w["message"]
    assert "SYS_NICE" in w["remedy"]


@pytest.mark.slow
def test_streams_die_with_a_killed_launcher(tmp_path, args):
    run = Runner(args(tmp_path, "--num-inputs", "5", "--min-test-duration", "300"), clean_env(STREAMS=2))
    run.wait_for("passed the start barrier")
    workers = run.workers()
    assert len(workers) == 2
    run.proc.send_signal(signal.SIGKILL)  # no handler runs: the streams must notice by themselves
    run.finish(timeout=10)
    assert_all_gone([p.pid for p in workers.values()])
    assert results(tmp_path)["status"] == "running"  # what a crashed launcher leaves: never a pass
    assert not (tmp_path / "results.yaml").exists()
