"""SIGINT, SIGTERM and SIGHUP from the first line of `python -m rifebench` to the
last: exit 130 with one line during start-up, `status: interrupted` during and
after the run, no file left claiming "running", no stray temp file; and rows of
benchmark.sh that die with it when it is SIGKILLed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from helpers import REPO, clean_env

SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
NULL = [
    "--dummy",
    "--model",
    "null",
    "--null-ms",
    "5",
    "--data-height",
    "32",
    "--data-width",
    "32",
    "--warmup",
    "1",
    "--precision",
    "fp32",
]


class Proc:
    """A process in its own session, stdout and stderr collected apart as they come."""

    def __init__(self, cmd, env=None):
        self.proc = subprocess.Popen(
            cmd,
            env=env or clean_env(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=lambda s=stream, i=into: i.extend(s), daemon=True).start()

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        until = time.monotonic() + timeout
        while not any(text in line for line in self.out):
            assert self.proc.poll() is None, "".join(self.out + self.err)
            assert time.monotonic() < until, f"no {text!r} in:\n" + "".join(self.out)
            time.sleep(0.02)

    def wait_handling(self, sigs, timeout: float = 10.0) -> None:
        """Until the process has handlers for `sigs` (the caught mask in /proc)."""
        want = sum(1 << (s - 1) for s in sigs)
        until = time.monotonic() + timeout
        while True:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
            caught = int(next(x for x in status.splitlines() if x.startswith("SigCgt:")).split()[1], 16)
            if caught & want == want:
                return
            assert time.monotonic() < until, "the signal handlers were never installed"
            time.sleep(0.005)

    def finish(self, timeout: float = 20.0) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise AssertionError("did not end in time:\n" + "".join(self.out + self.err)) from None
        time.sleep(0.1)  # the reader threads catch up with the last lines
        return code


def temp_files(folder: Path) -> list[str]:
    """What atomic_write_text (.<name>.*.tmp) or a write test leaves behind when cut short."""
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".write-test")]


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_signal_during_start_up_exits_130_with_one_line(tmp_path, sig):
    run = Proc([sys.executable, "-m", "rifebench", *NULL, "--output-dir", tmp_path])
    run.wait_handling([signal.SIGHUP, signal.SIGTERM])  # installed first thing, before torch is imported
    run.proc.send_signal(sig)
    code = run.finish()
    assert code == 130, "".join(run.out + run.err)
    assert run.err == [f"run_model.sh: error: interrupted by {sig.name} during start-up; nothing was measured\n"]
    assert not any("launching" in line for line in run.out)  # it was start-up
    assert not (tmp_path / "results.json").exists()


@pytest.mark.slow
def test_sighup_mid_run_stops_like_sigterm(tmp_path):
    run = Proc(
        [
            sys.executable,
            "-m",
            "rifebench",
            *NULL,
            "--num-inputs",
            "5",
            "--min-test-duration",
            "300",
            "--output-dir",
            tmp_path,
        ]
    )
    run.wait_for("passed the start barrier")
    time.sleep(0.5)
    run.proc.send_signal(signal.SIGHUP)  # a closed terminal
    code = run.finish()
    assert code == 130, "".join(run.out + run.err)
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["status"] == "interrupted" and doc["exit_code"] == 130 and doc["metrics"]["frames"] > 0
    assert "received SIGHUP: stopping all streams" in "".join(run.out)
    assert "Traceback" not in "".join(run.err)


def late_signal_script(out: Path, where: str, sig: signal.Signals) -> str:
    """The harness with a signal sent to itself at `where`: "peak" (the streams have
    ended, the results not begun) or "write" (while results.json is being written)."""
    return textwrap.dedent(f"""
        import os, signal, sys
        import rifebench.__main__ as cli
        from rifebench.report import results
        from rifebench.run import prepare
        if {where!r} == "peak":
            real_peak = prepare.device_peak
            def device_peak(*a):
                os.kill(os.getpid(), {int(sig)})
                return real_peak(*a)
            prepare.device_peak = device_peak
        else:
            real_write = results.atomic_write_text
            def atomic_write_text(path, text):
                if '"running"' not in text:
                    os.kill(os.getpid(), {int(sig)})
                real_write(path, text)
            results.atomic_write_text = atomic_write_text
        sys.argv = ["rifebench", *{[*NULL, "--num-inputs", "3", "--output-dir", str(out)]!r}]
        sys.exit(cli.cli())
    """)


@pytest.mark.slow  # a whole run: about 15 s on 2 cores
@pytest.mark.parametrize("where,sig", [("peak", signal.SIGTERM), ("write", signal.SIGHUP), ("write", signal.SIGINT)])
def test_signal_after_the_streams_end_keeps_the_results_and_says_interrupted(tmp_path, where, sig):
    proc = subprocess.run(
        [sys.executable, "-c", late_signal_script(tmp_path, where, sig)],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["status"] == "interrupted" and doc["exit_code"] == 130
    assert doc["metrics"]["frames"] == 3  # the measurement is kept whole
    assert not (tmp_path / "results.yaml").exists()
    assert temp_files(tmp_path) == []
    if where == "write":
        assert f"received {sig.name} while writing the results: status interrupted" in proc.stdout


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
def test_sigkilled_benchmark_leaves_no_row_running(tmp_path):
    profile = tmp_path / "p.csv"
    profile.write_text(
        "MODEL,NULL_MS,STREAMS,DATA_HEIGHT,DATA_WIDTH,NUM_INPUTS,WARMUP,MIN_TEST_DURATION\nnull,5,1,32,32,5,1,300\n"
    )
    bench = Proc([str(REPO / "benchmark.sh"), "--profile", profile, "--output-dir", tmp_path / "out", "--no-inventory"])
    bench.wait_for("passed the start barrier")
    rows = descendants(bench.proc.pid)
    assert any("rifebench.run.worker" in " ".join(p.cmdline()) for p in rows), [p.cmdline() for p in rows]
    bench.proc.send_signal(signal.SIGKILL)  # no handler runs: the rows must notice by themselves
    bench.finish()
    until = time.monotonic() + 5
    while alive := [p for p in rows if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]:
        assert time.monotonic() < until, f"left running: {[p.cmdline() for p in alive]}"
        time.sleep(0.05)


# --- one rule for every instant (run/interrupts.py) ----------------------------------------


def signal_at_script(out: Path, target: str, when: str, sig: signal.Signals, argv=None) -> str:
    """The harness with a signal sent to itself `when` ("before" or "after") the
    call of `target` ("module:attr" or "module:Class.attr")."""
    module, _, attr = target.partition(":")
    owner, _, name = attr.rpartition(".")
    args = argv if argv is not None else [*NULL, "--num-inputs", "3", "--output-dir", str(out)]
    return textwrap.dedent(f"""
        import importlib, os, sys
        import rifebench.__main__ as cli
        owner = importlib.import_module({module!r})
        if {owner!r}:
            owner = getattr(owner, {owner!r})
        real = getattr(owner, {name!r})
        def patched(*a, **k):
            if {when!r} == "before":
                os.kill(os.getpid(), {int(sig)})
            result = real(*a, **k)
            if {when!r} == "after":
                os.kill(os.getpid(), {int(sig)})
            return result
        setattr(owner, {name!r}, patched)
        sys.argv = ["rifebench", *{args!r}]
        sys.exit(cli.cli())
    """)


def run_script(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=clean_env(), cwd=REPO, timeout=120
    )


@pytest.mark.slow  # a whole run each: about 6 s on 2 cores
@pytest.mark.parametrize(
    "target,when,sig",
    [
        ("rifebench.report.console_summary:print_summary", "after", signal.SIGTERM),  # right after the summary
        ("rifebench.fsutil:OutputLock.release", "before", signal.SIGHUP),  # was "during start-up", exit 130
    ],
    ids=["after-summary", "at-lock-release"],
)
def test_a_signal_after_the_results_leaves_them_standing_and_says_so(tmp_path, target, when, sig):
    proc = run_script(signal_at_script(tmp_path, target, when, sig))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["status"] == "passed" and doc["exit_code"] == 0 and (tmp_path / "results.yaml").exists()
    assert f"received {sig.name} after the run ended: nothing left to interrupt (status passed, exit 0)" in proc.stdout
    assert "nothing was measured" not in proc.stdout + proc.stderr and proc.stderr == ""


@pytest.mark.slow  # a whole run each: about 6 s on 2 cores
@pytest.mark.parametrize(
    "target,when,sig,line",
    [
        # while the launcher reaps the streams: was recorded by its own handler and never looked at (exit 0)
        ("rifebench.run.launcher:_reap", "before", signal.SIGTERM, "after the streams ended: the measurement is kept"),
        # between results.json "running" and the launch: was status interrupted without a word
        ("rifebench.report.results:begin", "after", signal.SIGINT, "before the streams started: status interrupted"),
    ],
    ids=["launcher-tail", "before-the-launch"],
)
def test_a_signal_during_the_run_interrupts_it_with_one_line(tmp_path, target, when, sig, line):
    proc = run_script(signal_at_script(tmp_path, target, when, sig))
    assert proc.returncode == 130, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["status"] == "interrupted" and doc["exit_code"] == 130
    assert not (tmp_path / "results.yaml").exists()
    assert f"received {sig.name} {line}" in proc.stdout
    assert "Traceback" not in proc.stderr and "nothing was measured" not in proc.stderr


@pytest.mark.slow  # torch is imported by the start-up checks first
def test_a_signal_while_earlier_results_are_set_aside_is_start_up(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"status": "passed", "started": "2026-01-02T03:04:05+00:00"}))
    (tmp_path / "output.log").write_text("the earlier run's log")
    proc = run_script(
        signal_at_script(tmp_path, "rifebench.report.previous:set_aside_previous", "after", signal.SIGTERM)
    )
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert proc.stderr == "run_model.sh: error: interrupted by SIGTERM during start-up; nothing was measured\n"
    kept = tmp_path / "previous" / "20260102T030405Z"
    assert sorted(p.name for p in kept.iterdir()) == ["output.log", "results.json"]  # moved whole, not split
    assert not (tmp_path / "results.json").exists()


def test_a_subcommand_cut_short_names_itself_and_what_it_was_doing(tmp_path):
    argv = ["fleet", "report", str(tmp_path)]
    proc = run_script(signal_at_script(tmp_path, "rifebench.fleet.cli:load_plan", "before", signal.SIGTERM, argv))
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert proc.stderr == (
        "rifebench fleet: error: interrupted by SIGTERM while collecting the cells and writing the report "
        "(`rifebench fleet report`); it did not finish: run it again\n"
    )


@pytest.mark.slow  # over 2 s on 2 cores: kept out of the fast tier
def test_run_model_sh_traps_a_signal_before_python_takes_over(tmp_path):
    run = Proc([str(REPO / "run_model.sh"), *NULL, "--output-dir", tmp_path])
    until = time.monotonic() + 20
    while not any("-c" in p.cmdline() for p in descendants(run.proc.pid)):  # the environment check
        assert run.proc.poll() is None and time.monotonic() < until, "".join(run.out + run.err)
        time.sleep(0.005)
    run.proc.send_signal(signal.SIGTERM)  # to the shell only, as a supervisor sends it
    assert run.finish() == 130, "".join(run.out + run.err)  # was 143, without a word
    assert run.err == ["run_model.sh: error: interrupted by SIGTERM during start-up; nothing was measured\n"]
    assert list(tmp_path.iterdir()) == []


def test_benchmark_start_up_cut_short_is_one_line_and_leaves_no_folder(tmp_path):
    profile = tmp_path / "p.csv"
    profile.write_text("MODEL,NULL_MS\nnull,1\n")
    script = textwrap.dedent(f"""
        import os, signal, sys
        from rifebench.bench import profiles, runner
        real = profiles.validate
        def validate(*a, **k):
            os.kill(os.getpid(), signal.SIGTERM)
            return real(*a, **k)
        profiles.validate = validate
        sys.exit(runner.main(["--profile", {str(profile)!r}, "--output-dir", {str(tmp_path / "new" / "b")!r}]))
    """)
    proc = run_script(script)
    assert proc.returncode == 130, proc.stdout + proc.stderr  # was a KeyboardInterrupt traceback
    assert proc.stderr == "benchmark.sh: error: interrupted by SIGTERM during start-up; no row ran\n"
    assert not (tmp_path / "new").exists()
