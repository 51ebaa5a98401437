"""compare reads like an answer (issue 22 item 10) and tells videos apart (issue 21
item 11): an output difference that a changed option explains is said and not
counted, sizes are written WxH, a benchmark against a single run says what each
side is and compares the run with its row, and two different videos are two
workloads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import sibling_module

gen = sibling_module("compare", "test_compare")
make_run, make_bench, line, DUMMY = gen.make_run, gen.make_bench, gen.line, gen.DUMMY
VIDEO = {"width": 72, "height": 40, "frames": 30, "fingerprint": "6bcd7539e047fb35", "codec": "ffv1"}


def make_video_run(folder: Path, video: dict | None = None, **kw) -> Path:
    """A video-mode results.json: its `video` section records the input as the run read it."""
    cfg = DUMMY | {"dummy": False, "dataset_dir": f"/somewhere/{folder.name}.mkv", "video_gt": "drop"}
    make_run(folder, config=cfg | kw.pop("config", {}), quality=gen.quality(30.0, n=14), **kw)
    path = folder / "results.json"
    doc = json.loads(path.read_text())
    doc["mode"] = "video"
    doc["video"] = {"input": VIDEO | (video or {}), "video_gt": "drop", "pairs_per_stream": 14}
    path.write_text(json.dumps(doc))
    return folder


# --- two videos are two workloads ----------------------------------------------------------


@pytest.mark.parametrize(
    "change, named",
    [
        ({"fingerprint": "0123456789abcdef"}, "video first frames '6bcd7539e047fb35' -> '0123456789abcdef'"),
        ({"frames": 48}, "video frames 30 -> 48"),
        ({"width": 1280, "height": 720}, "video size '72x40' -> '1280x720'"),
    ],
)
def test_two_different_videos_are_refused_as_two_workloads(compare_cli, tmp_path, change, named):
    a = make_video_run(tmp_path / "a")
    rc, out, err = compare_cli(a, make_video_run(tmp_path / "b", change))
    assert rc == 2 and out == "" and err.startswith("compare: error: different workloads: ") and named in err
    rc, out, _ = compare_cli(a, tmp_path / "b", "--force")
    assert f"workload differs (compared anyway: --force): {named}" in out
    # The same video elsewhere (another path, another machine) is the same workload.
    rc, out, err = compare_cli(a, make_video_run(tmp_path / "same"))
    assert rc == 0 and "different workloads" not in err + out, out + err


# --- an expected output difference ---------------------------------------------------------


@pytest.mark.parametrize(
    "config_b, knob",
    [({"precision": "bf16"}, "PRECISION"), ({"scale": 0.5}, "SCALE"), ({"runtime": "onnxruntime"}, "RUNTIME")],
)
def test_an_output_difference_a_changed_option_explains_is_no_verdict(compare_cli, tmp_path, config_b, knob):
    frame = np.random.default_rng(0).random((32, 48, 3), dtype=np.float32)
    other = np.clip(frame + np.random.default_rng(1).normal(0, 0.02, frame.shape).astype(np.float32), 0, 1)
    a = make_run(tmp_path / "a", fingerprint=frame, config={"runtime": "torch", "scale": 1.0})
    b = make_run(tmp_path / "b", fingerprint=other, config={"runtime": "torch", "scale": 1.0} | config_b, seed=1)
    rc, out, _ = compare_cli(a, b)
    assert rc == 0, out
    fp = line(out, "output fingerprint")
    assert f"(more than one 8-bit level, expected: {knob} differs)" in fp and "DIFFERENT" not in fp
    assert line(out, "verdict:").startswith(
        f"verdict: no difference beyond the noise; outputs differ as expected ({knob} differs)"
    )
    # The same configuration: the same difference is one.
    c = make_run(tmp_path / "c", fingerprint=other, config={"runtime": "torch", "scale": 1.0}, seed=1)
    rc, out, _ = compare_cli(a, c)
    assert rc == 1 and "<-- DIFFERENT (more than one 8-bit level)" in line(out, "output fingerprint")


def test_a_different_model_forced_expects_different_outputs(compare_cli, tmp_path):
    frame = np.random.default_rng(0).random((32, 48, 3), dtype=np.float32)
    a = make_run(tmp_path / "a", fingerprint=frame)
    b = make_run(tmp_path / "b", fingerprint=frame[::-1].copy(), config={"model": "4.6"})
    assert compare_cli(a, b)[0] == 2
    rc, out, _ = compare_cli(a, b, "--force")
    assert rc == 0 and "expected: MODEL differs" in line(out, "output fingerprint")


def test_sizes_are_width_by_height(compare_cli, tmp_path):
    a = make_run(tmp_path / "a", fingerprint=np.zeros((32, 48, 3), np.float32))
    b = make_run(tmp_path / "b", fingerprint=np.zeros((32, 64, 3), np.float32), config={"data_width": 640})
    rc, out, _ = compare_cli(a, b, "--force")
    assert rc == 1 and "data size '448x256' -> '640x256'" in out
    assert "fingerprints differ in size 48x32 vs 64x32" in line(out, "output fingerprint")


# --- a benchmark against a single run ------------------------------------------------------


def test_a_benchmark_against_a_single_run_says_what_each_side_is(compare_cli, tmp_path):
    bench = make_bench(
        tmp_path / "bench",
        [
            ({"PRECISION": "fp32"}, {"reps": [40.0, 40.4, 39.6], "seed": 1}),
            ({"PRECISION": "bf16"}, {"reps": [30.0, 30.3, 29.7], "seed": 2, "config": {"precision": "bf16"}}),
        ],
    )
    run = make_run(tmp_path / "run", reps=[30.0, 30.3, 29.7], seed=3, config={"precision": "bf16"})
    rc, out, _ = compare_cli(bench, run)
    assert rc == 0, out
    assert line(out, "A: ").endswith(": a benchmark of 2 row(s) (row 1: PRECISION=fp32; row 2: PRECISION=bf16)")
    assert line(out, "B: ").endswith(": a single run (dummy mode, model 4.0, bf16 on cpu, 448x256)")
    assert "== A row 2 vs B run ==" in out and "same within noise" in line(out, "throughput img/s")
    assert line(out, "not compared: ") == (
        "not compared: A row 1 (PRECISION=fp32): the other side is a single run, compared with A row 2 only "
        "(the row closest to its configuration)"
    )
    assert "unmatched" not in out and "all defaults" not in out
    rc, out, _ = compare_cli(run, bench)  # the other way round
    assert rc == 0 and "== A run vs B row 2 ==" in out and "not compared: B row 1 (PRECISION=fp32)" in out
    # No row ran the run's workload: refused, naming the pair.
    other = make_run(tmp_path / "other", config={"batch_size": 8})
    rc, out, err = compare_cli(bench, other)
    assert rc == 2 and "different workloads (A row 1 vs B run): batch_size 1 -> 8" in err
