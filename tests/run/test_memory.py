"""Memory: a run that cannot fit is refused at start, naming what to shrink; a
stream the OOM killer took is reported as out of memory; the dataset read-ahead
is bounded by bytes, not by a count of triplets."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from helpers import clean_env, run_harness
from rifebench.config import resolve
from rifebench.data import vimeo
from rifebench.errors import UsageError
from rifebench.measure import topology
from rifebench.run import memory

GB = 10**9


def config(*extra):
    return resolve(["--dummy", "--model", "4.0", "--platform", "cpu", *map(str, extra)], env={})


def test_refuses_64_streams_at_4k_in_1_gb():
    cfg = config("--streams", 64, "--data-height", 2160, "--data-width", 3840)
    with pytest.raises(UsageError) as err:
        memory.check(cfg, free=(GB, "MemAvailable in /proc/meminfo"))
    msg = str(err.value)
    assert "\n" not in msg
    for name in (
        "STREAMS 64",
        "DATA_HEIGHT",
        "DATA_WIDTH",
        "BATCH_SIZE 1",
        "frames of 2160x3840",
        "1.0 GB is available (MemAvailable in /proc/meminfo)",
    ):
        assert name in msg, msg
    need = float(msg.split("needs about ")[1].split(" GB")[0])
    assert 150 < need < 400  # 64 x (0.4 GB + 3 frames of 4K x the activations' factor)


def test_accepts_small_runs_and_counts_batches_and_streams():
    small = memory.check(config("--streams", 1, "--data-height", 64, "--data-width", 64), free=(GB, "fake"))
    assert small.total_bytes < GB / 2
    one = memory.estimate(config("--data-height", 1024, "--data-width", 1024))
    assert 0.6 * GB < one.total_bytes < 1.1 * GB  # measured: 823 MB peak for one stream of model 4.0
    four = memory.estimate(config("--streams", 4, "--batch-size", 2, "--data-height", 1024, "--data-width", 1024))
    assert four.per_stream_bytes > one.per_stream_bytes and four.total_bytes == 4 * four.per_stream_bytes
    assert memory.check(config("--streams", 64, "--data-height", 2160, "--data-width", 3840), free=(None, "?"))


def test_dataset_mode_counts_the_dataset_frames_and_read_ahead(tmp_path):
    import numpy as np

    from rifebench.data.images import save_png

    clip = tmp_path / "sequences" / "00001" / "0001"
    clip.mkdir(parents=True)
    for name in ("im1.png", "im2.png", "im3.png"):
        save_png(str(clip / name), np.zeros((720, 1280, 3), np.uint8))
    (tmp_path / vimeo.LIST_FILE).write_text("00001/0001\n")
    cfg = resolve(["--model", "4.0", "--platform", "cpu", "--data", str(tmp_path), "--data-height", "64"], env={})
    est = memory.estimate(cfg)
    assert (est.height, est.width) == (720, 1280) and "the dataset's frames (im1.png" in est.source
    dummy = memory.estimate(config("--data-height", 720, "--data-width", 1280))
    assert est.per_stream_bytes > dummy.per_stream_bytes  # plus one decoded triplet and its kept prediction


def fake_machine(tmp_path, monkeypatch, *, meminfo="", cgroup=None, files=None, vmstat=None):
    """/proc/meminfo, /proc/self/cgroup (v2: '0::/run'), the cgroup folder's files and /proc/vmstat,
    in a new folder; returns the cgroup's folder and the fake /proc/vmstat."""
    tmp_path = tmp_path / f"machine{len(list(tmp_path.glob('machine*')))}"
    root = tmp_path / "cgroup"
    (root / "run").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory\n")
    for name, text in (files or {}).items():
        (root / "run" / name).write_text(text)
    (tmp_path / "meminfo").write_text(meminfo)
    (tmp_path / "self_cgroup").write_text(cgroup if cgroup is not None else "0::/run\n")
    monkeypatch.setattr(topology, "CGROUP_ROOT", root)
    monkeypatch.setattr(topology, "PROC_CGROUP", tmp_path / "self_cgroup")
    monkeypatch.setattr(topology, "PROC_MEMINFO", tmp_path / "meminfo")
    monkeypatch.setattr(topology, "PROC_VMSTAT", tmp_path / ("vmstat" if vmstat is not None else "none"))
    if vmstat is not None:
        (tmp_path / "vmstat").write_text(vmstat)
    return root / "run", tmp_path / "vmstat"


def test_available_is_mem_available_capped_by_the_cgroup_limit(tmp_path, monkeypatch):
    fake_machine(tmp_path, monkeypatch, meminfo="MemTotal: 8000000 kB\nMemAvailable: 1000000 kB\n")
    assert memory.available() == (1_024_000_000, "MemAvailable in /proc/meminfo")
    cfg = config("--streams", 64, "--data-height", 2160, "--data-width", 3840)
    with pytest.raises(UsageError, match=r"1\.0 GB is available \(MemAvailable"):
        memory.check(cfg)
    d, _ = fake_machine(
        tmp_path, monkeypatch, meminfo="MemAvailable: 9000000 kB\n", files={"memory.max": "500000000\n"}
    )
    assert memory.available() == (500_000_000, f"the cgroup limit, {d / 'memory.max'}")
    fake_machine(tmp_path, monkeypatch, meminfo="MemAvailable: 9000000 kB\n", files={"memory.max": "max\n"})
    assert memory.available()[0] == 9_216_000_000
    # cgroup v1: "no limit" is a huge number
    d, _ = fake_machine(
        tmp_path,
        monkeypatch,
        meminfo="MemAvailable: 9000000 kB\n",
        cgroup="4:memory:/run\n",
        files={"memory.limit_in_bytes": "9223372036854771712\n"},
    )
    (d.parent / "memory").symlink_to(d.parent)
    assert memory.available()[0] == 9_216_000_000


def test_oom_killed_stream_is_reported_as_out_of_memory(tmp_path, monkeypatch):
    d, _ = fake_machine(
        tmp_path,
        monkeypatch,
        meminfo="MemTotal: 8000000 kB\nMemAvailable: 4000000 kB\n",
        files={"memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n"},
        vmstat="oom_kill 40\n",
    )
    before = memory.oom_kills()
    assert before == 2  # the cgroup's counter wins over the machine's
    assert memory.exit_reason(-9, before) == "killed by signal SIGKILL"  # nobody was OOM-killed since
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 3\n")
    assert memory.exit_reason(-9, before) == "out of memory (killed by the kernel's OOM killer)"
    assert memory.exit_reason(-15, before) == "killed by signal SIGTERM"
    assert memory.exit_reason(3, before) == "exited with status 3 without a result"


def test_oom_without_a_cgroup_counter(tmp_path, monkeypatch):
    _, vmstat = fake_machine(
        tmp_path,
        monkeypatch,
        meminfo="MemTotal: 8000000 kB\nMemAvailable: 4000000 kB\n",
        vmstat="pgfault 1\noom_kill 40\n",
    )
    assert memory.oom_kills() == 40
    vmstat.write_text("oom_kill 41\n")
    assert memory.exit_reason(-9, 40).startswith("out of memory")
    # No counter at all: memory nearly gone at the kill says it.
    fake_machine(tmp_path, monkeypatch, meminfo="MemTotal: 8000000 kB\nMemAvailable: 100000 kB\n")
    assert memory.oom_kills() is None
    assert memory.exit_reason(-9, None).startswith("out of memory")
    fake_machine(tmp_path, monkeypatch, meminfo="MemTotal: 8000000 kB\nMemAvailable: 4000000 kB\n")
    assert memory.exit_reason(-9, None) == "killed by signal SIGKILL"


@pytest.mark.slow  # torch is imported by the start-up checks before this one: ~15 s on 2 busy cores
def test_run_that_cannot_fit_is_refused_before_anything_runs(tmp_path):
    cfg = config("--streams", 64, "--data-height", 2160, "--data-width", 3840)
    free, _ = memory.available()
    if free is None or free > memory.estimate(cfg).total_bytes:
        pytest.skip("this machine has the memory for 64 streams at 4K")
    t0 = time.monotonic()
    proc = run_harness(
        [
            "--dummy",
            "--model",
            "4.0",
            "--data-height",
            2160,
            "--data-width",
            3840,
            "--platform",
            "cpu",
            "--output-dir",
            tmp_path,
        ],
        env=clean_env(STREAMS=64),
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "--streams/STREAMS 64" in proc.stderr and "DATA_HEIGHT" in proc.stderr and "of memory" in proc.stderr
    assert not (tmp_path / "results.json").exists()
    assert time.monotonic() - t0 < 60  # no weights loaded, no stream started


class FakeFrame:
    def __init__(self, nbytes):
        self.nbytes = nbytes


def source(tmp_path, monkeypatch, frame_bytes: int, entries: int = 10):
    root = tmp_path / "data"
    names = [f"00001/{i:04d}" for i in range(entries)]
    for n in names:
        (root / "sequences" / n).mkdir(parents=True)
        for f in ("im1.png", "im2.png", "im3.png"):
            (root / "sequences" / n / f).write_bytes(b"")
    (root / vimeo.LIST_FILE).write_text("\n".join(names) + "\n")
    monkeypatch.setattr(
        vimeo, "_decode", lambda t: (FakeFrame(frame_bytes), FakeFrame(frame_bytes), FakeFrame(frame_bytes // 4))
    )
    cfg = SimpleNamespace(
        dataset_dir=str(root), num_inputs=entries, interpolation=1, saveimages=False, output_dir=str(tmp_path)
    )
    return vimeo.DatasetSource(cfg, interp=None)


def settle(src) -> None:
    until = time.monotonic() + 5
    while not all(f.done() for f in src._loads.values()):
        assert time.monotonic() < until
        time.sleep(0.01)


def test_prefetch_is_bounded_by_bytes_not_count(tmp_path, monkeypatch):
    big = source(tmp_path / "big", monkeypatch, 8000 * 8000 * 3 * 4)  # an 8000x8000 float32 input: 768 MB
    try:
        for index in range(4):
            big._schedule(index)
            settle(big)
            assert sorted(big._loads) == list(range(index, index + 2))  # the one asked for + 1 ahead
    finally:
        big.close()
    small = source(tmp_path / "small", monkeypatch, 3 * 64 * 64 * 4)  # 64x64: PREFETCH ahead, as before
    try:
        small._schedule(0)
        settle(small)
        small._schedule(0)
        assert sorted(small._loads) == list(range(1 + vimeo.PREFETCH))
    finally:
        small.close()
    mid = source(tmp_path / "mid", monkeypatch, 100 * 1024 * 1024)  # 225 MB a triplet: 2 ahead in 512 MB
    try:
        mid._schedule(0)
        settle(mid)
        mid._schedule(0)
        assert sorted(mid._loads) == [0, 1, 2]
    finally:
        mid.close()
