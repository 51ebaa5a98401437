"""The runner as a user meets it: bad input is refused in one line with exit 2,
and a small dummy run writes the reference outputs. Runs that test the harness
use the null model; the real 4.0 model where its weights are what is tested."""

import json
import pickle
import subprocess

import pytest
import yaml

from helpers import REPO, clean_env, run_harness

BASE = [
    "--dummy",
    "--data-height",
    "64",
    "--data-width",
    "64",
    "--num-inputs",
    "3",
    "--warmup",
    "1",
    "--precision",
    "fp32",
]
SMALL = [*BASE, "--model", "null", "--null-ms", "1"]
REAL = [*BASE, "--model", "4.0"]


def assert_usage_error(proc, *needles, out=None):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # one line, no traceback
    assert lines[0].startswith("run_model.sh: error: ")
    for n in needles:
        assert n in lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    if out is not None:
        assert not (out / "results.yaml").exists()


@pytest.mark.parametrize(
    "env,needles",
    [
        ({"PLATFORM": "tpu"}, ["PLATFORM", "'tpu'", "cpu, cuda, xpu"]),
        ({"PRECISION": "int4"}, ["PRECISION", "'int4'", "fp16, bf16, fp32"]),
        ({"MODEL": "5.0"}, ["MODEL", "'5.0'", "(accepted: 4.0, ", " 4.6, ", " paper, "]),
        ({"IPEX": "sometimes"}, ["IPEX", "'sometimes'", "yes, no"]),
        ({"NUM_INPUTS": "0"}, ["NUM_INPUTS", "'0'", ">= 1"]),
        ({"STREAMS": "two"}, ["STREAMS", "'two'", "integer"]),
        ({"WARMUP": "-3"}, ["WARMUP", "'-3'"]),
        ({"ASYNC": "x"}, ["ASYNC", "'x'"]),
        ({"INTERPOLATION": "0"}, ["INTERPOLATION", "'0'"]),
        ({"DATA_HEIGHT": "0"}, ["DATA_HEIGHT", "'0'"]),
        ({"MIN_PSNR_DB": "high"}, ["MIN_PSNR_DB", "'high'"]),
        ({"MIN_PASS_PCT": "120"}, ["MIN_PASS_PCT", "'120'", "<= 100"]),
        ({"MIN_TEST_DURATION": "9", "MAX_TEST_DURATION": "3"}, ["MIN_TEST_DURATION", "MAX_TEST_DURATION"]),
        ({"NULL_MS": "-1"}, ["NULL_MS", "'-1'", ">= 0"]),
        ({"FAULT": "1:x"}, ["--fault/FAULT", "'1:x'", "STREAM:PAIR or STREAM:PAIR:exit"]),
        ({"FAULT": "0:2:crash"}, ["--fault/FAULT", "'0:2:crash'", "STREAM:PAIR:exit"]),
        ({"FAULT": "2:1", "STREAMS": "2"}, ["--fault/FAULT", "'2:1'", "below STREAMS=2"]),
    ],
)
def test_bad_variables(tmp_path, env, needles):
    proc = run_harness(["--dummy", "--output-dir", tmp_path], env=clean_env(**env))
    assert_usage_error(proc, *needles, out=tmp_path)


def test_bad_flags(tmp_path):
    assert_usage_error(run_harness(["--dummy", "--data", tmp_path]), "--dummy", "--data")
    assert_usage_error(run_harness(["--data", tmp_path / "missing"]), "does not exist")
    assert_usage_error(run_harness(["--dummy", "--bogus"]), "--bogus")
    assert_usage_error(run_harness(["--dummy", "--num-inputs"]), "--num-inputs")


@pytest.mark.slow
def test_unavailable_platform(tmp_path):
    proc = run_harness([*SMALL, "--platform", "cuda", "--output-dir", tmp_path])
    assert_usage_error(proc, "--platform/PLATFORM", "'cuda' is not available", out=tmp_path)
    proc = run_harness([*SMALL, "--platform", "max", "--output-dir", tmp_path])
    assert_usage_error(proc, "'xpu' is not available", out=tmp_path)


@pytest.mark.slow  # over 2 s on 2 cores: kept out of the fast tier
def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_harness([*SMALL, "--output-dir", blocker / "out"])
    assert_usage_error(proc, "--output-dir/OUTPUT_DIR", "not writable")


class Evil:
    """A pickle that runs a command when loaded: it would create `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, ("touch " + str(self.marker),))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["missing", "truncated", "foreign", "malicious", "empty"])
def test_bad_weights(tmp_path, kind, weights_40):
    path = tmp_path / "w.pkl"
    marker = tmp_path / "pwned"
    if kind == "truncated":
        path.write_bytes(weights_40.read_bytes()[:100_000])
    elif kind == "foreign":
        import torch

        torch.save({"conv.weight": torch.zeros(3, 3)}, path)
    elif kind == "malicious":
        path.write_bytes(pickle.dumps(Evil(marker)))
    elif kind == "empty":
        path.write_bytes(b"")
    proc = run_harness([*REAL, "--pretrained-weights", path, "--output-dir", tmp_path / "out"])
    assert_usage_error(proc, "LOAD_PATH", str(path) if kind != "missing" else "does not exist")
    assert not marker.exists(), "a malicious pickle ran code"
    if kind == "foreign":
        assert "4.0" in proc.stderr
    assert not (tmp_path / "out" / "results.yaml").exists()


def test_help_lists_every_option_with_default():
    proc = run_harness(["--help"])
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())  # undo line wrapping
    assert "[NUM_INPUTS]" in text and "default: 100" in text
    assert "durations are ignored" in text


@pytest.mark.parametrize("model", ["null", pytest.param("4.0", marks=pytest.mark.slow)])
def test_dummy_run_writes_reference_outputs(tmp_path, request, model):
    out = tmp_path / "out"
    weights = ["--pretrained-weights", request.getfixturevalue("weights_40")] if model == "4.0" else []
    proc = run_harness([*BASE, "--model", model, "--output-dir", out, *weights])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = yaml.safe_load((out / "results.yaml").read_text())
    keys = [(r["key"], r["unit"]) for r in doc["results"]]
    assert keys == [("throughput", "img/s"), ("latency", "ms"), ("accuracy", "percents")]
    assert doc["results"][0]["value"] > 0 and doc["results"][2]["value"] == 0
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "passed" and res["exit_code"] == 0
    assert res["config"]["num_inputs"] == 3 and res["config"]["precision"] == "fp32"
    if model == "4.0":
        assert res["model"]["sha256"] == "b234ad8d0acfcb6d9eaf2791eb7ddebdaab58bd862b229c703f8073e56d99c29"
    else:
        assert res["model"]["weights"] == "null model: no weights" and res["config"]["null_ms"] == 5.0
    m = res["metrics"]
    assert m["frames"] == 3 and m["warmup_pairs"] == 1
    assert m["latency_ms"]["count"] == 3
    assert m["latency_ms"]["min"] <= m["latency_ms"]["p50"] <= m["latency_ms"]["max"]
    # 3 samples make no p90 or p99: null, with the reason (and the run is not valid)
    assert m["latency_ms"]["p99"] is None and "p99 needs >= 100 samples" in m["latency_ms"]["percentile_note"]
    assert res["validity"]["valid"] is False and "TOO_FEW_SAMPLES" in res["validity"]["reasons"]
    assert "validity: INVALID (TOO_FEW_SAMPLES" in proc.stdout
    # A collector reading results.yaml alone, and the last line, see that the pass is not to be trusted.
    assert doc["status"] == "passed" and doc["validity"] == {"valid": False, "reasons": res["validity"]["reasons"]}
    assert proc.stdout.splitlines()[-1].startswith("status: passed, but INVALID: TOO_FEW_SAMPLES")
    s = res["streams"][0]
    assert s["id"] == 0 and s["frames"] == 3 and s["cpus"] and len(s["latency_samples_ms"]) == 3
    assert s["end"] > s["start"]
    assert res["system"]["cpu_model"] and res["system"]["packages"]["torch"].startswith("2.")
    log = (out / "output.log").read_text()
    assert "throughput:" in log and "status: passed" in log and "stream 0 ready" in log
    # durations: throughput is frames over the timed window
    assert m["throughput_img_s"] == pytest.approx(m["images"] / m["duration_s"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "num_inputs,duration_flag,check",
    [
        # MIN_TEST_DURATION overrides a small count: more pairs than asked, at least that long.
        (1, ["--min-test-duration", "2"], lambda m: m["duration_s"] >= 2 and m["frames"] > 1),
        # MAX_TEST_DURATION stops before a count that would take hours.
        (100000, ["--max-test-duration", "1"], lambda m: 1.0 <= m["duration_s"] < 5.0 and m["frames"] < 100000),
    ],
    ids=["min-overrides-count", "max-stops-before-count"],
)
def test_durations_override_the_count(tmp_path, num_inputs, duration_flag, check):
    out = tmp_path / "out"
    args = [
        "--dummy",
        "--model",
        "null",
        "--null-ms",
        "1",
        "--num-inputs",
        num_inputs,
        "--warmup",
        "0",
        *duration_flag,
        "--output-dir",
        out,
    ]
    proc = run_harness(args)
    assert proc.returncode == 0, proc.stderr
    m = json.loads((out / "results.json").read_text())["metrics"]
    assert check(m), m


@pytest.mark.slow
def test_stale_results_are_set_aside(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.yaml").write_text("stale")
    proc = run_harness([*REAL, "--output-dir", out, "--pretrained-weights", tmp_path / "nope.pkl"])
    assert proc.returncode == 2
    assert (out / "results.yaml").read_text() == "stale"  # refused before anything: nothing touched
    (out / "images").mkdir()
    (out / "images" / "old.png").write_text("stale")
    proc = run_harness([*SMALL, "--output-dir", out])
    assert proc.returncode == 0
    # The whole earlier set moved aside together, into one folder for that run.
    [earlier] = (out / "previous").iterdir()
    assert (earlier / "results.yaml").read_text() == "stale"
    assert (earlier / "images" / "old.png").read_text() == "stale"
    assert (out / "results.yaml").read_text() != "stale" and not (out / "images").exists()
    assert not list(out.glob("*.prev"))
    first = json.loads((out / "results.json").read_text())
    assert run_harness([*SMALL, "--output-dir", out]).returncode == 0  # and this run's set, log included
    [moved] = [p for p in (out / "previous").iterdir() if p != earlier]
    assert json.loads((moved / "results.json").read_text()) == first
    assert "status: passed" in (moved / "output.log").read_text()


@pytest.mark.slow
def test_run_model_sh_entrypoint(tmp_path):
    proc = subprocess.run(
        ["./run_model.sh", *SMALL, "--output-dir", str(tmp_path)],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "results.yaml").exists()
    proc = subprocess.run(
        ["./run_model.sh", "--dummy", "--precision", "nope"], cwd=REPO, env=clean_env(), capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1


# --- strict numbers and flags, stdout closed or cut short (their imports are local) -------

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
    import argparse
    import importlib

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


@pytest.mark.slow
def test_closed_stdout_runs_and_keeps_its_status(tmp_path):
    import sys

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
    import sys

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
    import sys

    from helpers import env_with_src

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
