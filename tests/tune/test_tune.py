"""`rifebench tune`: the search space, the verdicts and the answer (pure), and the tuner end
to end on the null model (a host busy-wait of a known cost per pair: fast and honest)."""

from __future__ import annotations

import json
import shlex

import pytest

from helpers import clean_env, run_harness
from rifebench.tune import report
from rifebench.tune.measure import Measured
from rifebench.tune.space import REFERENCE, Candidate, candidates, runnable


def test_the_space_puts_the_reference_first_and_tries_only_what_each_runtime_takes():
    space = candidates(["torch", "onnxruntime", "openvino"], ["fp32", "fp16", "int8"], [1, 2], [1, 2], "cpu")
    assert space[0] == REFERENCE == Candidate("torch", "fp32") and len(set(space)) == len(space)
    assert not [c for c in space if c.precision == "fp16"]  # slow on a CPU: not searched there
    assert {c.runtime for c in space if c.precision == "int8"} == {"openvino"}
    throughput = [c for c in space if "--ov-hint" in c.knobs]
    assert throughput and all(c.batch >= 2 for c in throughput)  # a lane runs one pair: batches only
    assert Candidate("torch", "fp32", ("--channels-last", "yes"), 2, 1).name == "torch-fp32-cl-s2-b1"
    c = Candidate("openvino", "int8", (), 2, 1)
    assert c.group == ("openvino", "int8", ()) == Candidate("openvino", "int8", (), 1, 4).group
    assert c.flags() == ["--runtime", "openvino", "--precision", "int8", "--batch-size", "1"]


def test_what_cannot_run_here_is_left_out_with_its_reason():
    kept, left_out = runnable([REFERENCE, Candidate("openvino", "fp32")], ["--model", "null", "--platform", "cpu"])
    assert kept == [REFERENCE]
    assert "the null model is a host busy-wait, not a network" in left_out["openvino-fp32-s1-b1"]


def measured(c, ms):
    return Measured(c, rounds_ms=[[ms, ms * 1.01], [ms * 0.99, ms]], cpu_ms=[ms] * 4)


def test_the_fastest_within_the_floor_wins_with_its_interval_and_command():
    fast_bad, fast_ok, ref = Candidate("torch", "bf16"), Candidate("torch", "fp32", (), 2, 1), REFERENCE
    scores = {ref.group: {"psnr_db": 30.0}, fast_bad.group: {"psnr_db": 29.5}}
    tbl = report.rows([ref, fast_ok, fast_bad], scores, [measured(ref, 10.0), measured(fast_ok, 6.0)], 0.1)
    assert [r.verdict for r in tbl] == ["meets the floor", "meets the floor", "below the floor"]
    assert tbl[2].drop_db == pytest.approx(0.5) and not tbl[2].figures  # never timed
    win = report.best(tbl)
    assert win is not None and win.candidate == fast_ok and win.figures["speedup"] == pytest.approx(10 / 6)
    lo, hi = win.figures["fps_ci95"]
    assert lo <= win.figures["fps"] <= hi
    cmd = report.command(win, ["--model", "4.0", "--platform", "cpu"], (448, 256))
    assert cmd.startswith("./run_model.sh --dummy --model 4.0") and "--streams 2" in cmd
    assert "--data-width 448 --data-height 256" in cmd
    text = "\n".join(report.answer(win, ["--model", "4.0"], (448, 256), 0.1))
    assert "torch-fp32-s2-b1" in text and "[" in text and "reproduce: ./run_model.sh" in text
    assert report.best(report.rows([ref], {ref.group: {"error": "boom"}}, [], 0.1)) is None


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--size", "448"], "--size: invalid value '448' (accepted: WIDTHxHEIGHT"),
        (["--runtimes", "tflite"], "--runtimes: invalid value 'tflite' (accepted: torch, onnxruntime"),
        (["--data", "/no/such"], "--data: '/no/such' its tri_testlist.txt does not exist"),
        (["--streams", "0"], "--streams: invalid value '0'"),
    ],
)
def test_bad_arguments_are_exit_2_with_one_line(flags, needle, tmp_path):
    proc = run_harness(
        ["tune", "--model", "null", *flags, "--output-dir", tmp_path / "o"], env=clean_env(), timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # a dozen worker processes timed in rounds (about two minutes)
def test_the_tuner_finds_and_prints_a_configuration_on_the_null_model(shared_data, tmp_path):
    out = tmp_path / "t"
    proc = run_harness(
        ["tune", "--model", "null", "--size", "64x64", "--data", shared_data / "ucf101_256x256",
         "--quality-pairs", "3", "--runtimes", "torch,openvino", "--precisions", "fp32,bf16",
         "--streams", "1,2", "--batches", "1,2", "--rounds", "3", "--min-psnr-drop", "0.005", "--output-dir", out],
        env=clean_env(),
        timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((out / "tune.json").read_text())
    rows = {r["name"]: r for r in doc["rows"]}
    # bf16 moves the null model's blend by about 0.01 dB: below a 0.005 dB floor, so never timed.
    assert {r["verdict"] for n, r in rows.items() if "bf16" in n} == {"below the floor"}
    assert not [r for n, r in rows.items() if "bf16" in n and r.get("fps")]
    timed = {n: r for n, r in rows.items() if r.get("fps")}
    assert len(timed) == 8 and rows["torch-fp32-s1-b1"]["speedup"] == pytest.approx(1.0, abs=0.05)
    # Pair times are per pair whatever BATCH_SIZE (the null model costs the same per pair).
    assert timed["torch-fp32-s1-b2"]["ms_p50"] < 1.5 * timed["torch-fp32-s1-b1"]["ms_p50"]
    assert "the null model is a host busy-wait" in json.dumps(doc["left_out"])
    best = doc["best"]
    assert best["name"] == max(timed, key=lambda n: timed[n]["fps"]) and best["fps_ci95"]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("reproduce: ")]
    assert line.removeprefix("reproduce: ") == doc["reproduce"]
    argv = shlex.split(doc["reproduce"])[1:]  # the command resolves as the harness's own configuration
    from rifebench.config import resolve

    cfg = resolve(argv, env={})
    assert (cfg.streams, cfg.batch_size, cfg.data_width) == (best["streams"], best["batch"], 64)
    assert f"fastest within 0.005 dB of the reference's PSNR: {best['name']}" in proc.stdout
    assert (out / "tune.md").read_text().count("| torch-fp32") == 8


def test_a_study_worker_submits_batch_size_pairs_and_times_each_pair():
    """The tuner's batch dimension: BATCH_SIZE pairs a submission, pair times per pair."""
    from rifebench.study.worker import _Model

    model = _Model(["--model", "null", "--null-ms", "20", "--batch-size", "2"], (32, 32), 0)
    assert model.step().shape[0] == 2  # two pairs computed, not one padded or dropped
    (ms,), _ = model.time(1)
    assert 15.0 < ms < 40.0  # 2 x 20 ms a submission, 20 ms a pair
