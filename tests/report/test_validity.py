"""Numbers users can trust: each validity rule triggered on purpose, the strict
mode's exit status, repetitions with their interval, and the bootstrap against
known distributions."""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from helpers import run_harness
from rifebench.measure.records import StreamResult
from rifebench.measure.stats import block_bootstrap_ci, bootstrap_ci, summary
from rifebench.report import validity
from rifebench.report.schema import Window, load_results

SETTINGS = validity.ValiditySettings.from_config(SimpleNamespace(min_samples=30))


def stream(sid, lat, start=0.0, end=10.0):
    return StreamResult(id=sid, latency_ms=lat, start=start, end=end)


def checks(streams, window=None, telemetry=None, device=None, platform="cpu"):
    m = validity.Measurements(platform, streams, Window(**(window or {})), telemetry, device)
    v, added = validity.verdict(SETTINGS, m)
    return v, {c.code: c for c in v.checks}, added


def test_a_clean_run_is_valid():
    v, by, added = checks([stream(0, [10.0] * 100)])
    assert v.valid and v.reasons == [] and not added
    assert set(by) == {
        "TOO_FEW_SAMPLES",
        "CPU_CONTENTION",
        "HOST_BOUND",
        "THROTTLED",
        "WINDOWS_MISALIGNED",
        "NO_STEADY_STATE",
    }
    assert validity.line(v).startswith("validity: valid") and "\n" not in validity.line(v)


def test_the_settings_are_the_one_place_of_every_limit_and_are_recorded():
    s = validity.ValiditySettings()
    assert (s.min_samples, s.noisy_pct, s.host_bound_pct) == (30, 25.0, 70.0)
    assert (s.overlap_min_pct, s.drift_max_pct, s.drift_min_samples) == (95.0, 10.0, 20)
    assert "hw_slowdown" in s.throttling_reasons and "gpu_idle" not in s.throttling_reasons
    v, by, _ = checks([stream(0, [10.0] * 100)])
    assert v.settings == SETTINGS.to_dict() and v.to_dict()["settings"]["throttling_reasons"][0] == "sw_power_cap"
    assert by["TOO_FEW_SAMPLES"].threshold == 30 and by["HOST_BOUND"].threshold == 70.0
    assert list(v.to_dict()) == ["valid", "reasons", "checks", "settings"]


def test_too_few_samples():
    v, by, added = checks([stream(0, [10.0] * 29), stream(1, [10.0] * 40)])
    assert v.reasons == ["TOO_FEW_SAMPLES"] and by["TOO_FEW_SAMPLES"].value == 29
    assert added[0]["code"] == "TOO_FEW_SAMPLES" and "[29, 40]" in added[0]["message"]
    text = validity.line(v, added)
    assert text.startswith("validity: INVALID (TOO_FEW_SAMPLES): these figures do not measure")
    assert text.splitlines()[1] == "  recommendation: " + added[0]["remedy"]
    assert "(needs >= 30 each, MIN_SAMPLES)" in added[0]["message"]


def few(mode, frames, num_inputs=100, batch=1):
    """TOO_FEW_SAMPLES's warning for one stream of 5 submissions in `mode`."""
    m = validity.Measurements(
        "cpu", [StreamResult(id=0, latency_ms=[1.0] * 5, frames=frames)], None, None, None, mode, num_inputs, batch
    )
    return validity.too_few(SETTINGS, m)[1]


def test_too_few_samples_has_the_remedy_of_its_mode():
    dummy = few("dummy", 5)["remedy"]
    assert "NUM_INPUTS or MIN_TEST_DURATION" in dummy
    for mode, more in (("dataset", "more triplets"), ("video", "a longer clip")):
        used_up = few(mode, 5)["remedy"]  # 5 of NUM_INPUTS=100: the data ran out
        assert used_up.startswith(f"more timed submissions per stream: {more}")
        assert "NUM_INPUTS cannot add any" in used_up and "MIN_TEST_DURATION applies to dummy mode only" in used_up
        capped = few(mode, 5, num_inputs=5)["remedy"]  # NUM_INPUTS stopped it: raising it helps
        assert "raise NUM_INPUTS" in capped and "MIN_TEST_DURATION" not in capped
    assert "a smaller BATCH_SIZE" in few("video", 20, batch=4)["remedy"]
    v, _, _ = checks([stream(0, [1.0] * 5)])
    assert "{how}" not in validity.line(v, [few("video", 5)]) and "a longer clip" in validity.line(v, [few("video", 5)])


def test_every_rule_states_its_figure_and_its_bar():
    two = [stream(0, [1.0] * 100), stream(1, [1.0] * 100)]
    _, _, added = checks(two, window={"overlap_pct": 80.0})
    assert added[0]["message"] == (
        "the streams' timed windows did not overlap enough: they overlap for 80.0% of the whole window (needs >= 95%)"
    )
    _, _, added = checks([stream(0, [10.0] * 50 + [11.5] * 50)])
    assert "15.0% apart (allowed <= 10%)" in added[0]["message"]
    busy = {"streams": [{"id": 0, "others_pct_of_cpus": 40.0}]}
    slow = {"gpus": [{"index": 0, "kernel_busy_pct": 55.6}], "streams": []}
    _, _, added = checks([stream(0, [1.0] * 100)], telemetry=busy, device=slow, platform="cuda")
    assert "(allowed <= 25%)" in added[0]["message"] and "(needs >= 70%)" in added[1]["message"]


def test_a_synthetic_drift_has_no_steady_state():
    drifting = [10.0] * 50 + [11.5] * 50  # the last tenth 15% slower than the first
    v, by, _ = checks([stream(0, drifting)])
    assert v.reasons == ["NO_STEADY_STATE"] and by["NO_STEADY_STATE"].value == pytest.approx(15.0)
    v, by, _ = checks([stream(0, [10.0] * 50 + [10.5] * 50)])  # 5%: steady enough
    assert v.valid
    v, by, _ = checks(
        [stream(0, [10.0] * 5 + [20.0] * 5)],
    )  # too short to judge, said so
    assert "not checked" in by["NO_STEADY_STATE"].detail


def test_throttling_and_misaligned_windows():
    hot = {"gpus": [{"index": 0, "throttle_reasons": {"sw_thermal_slowdown": 3, "gpu_idle": 9}}]}
    v, by, _ = checks([stream(0, [1.0] * 100)], telemetry=hot)
    assert v.reasons == ["THROTTLED"] and "sw_thermal_slowdown" in by["THROTTLED"].detail
    idle_only = {"gpus": [{"index": 0, "throttle_reasons": {"gpu_idle": 9}}]}
    assert checks([stream(0, [1.0] * 100)], telemetry=idle_only)[0].valid
    two = [stream(0, [1.0] * 100), stream(1, [1.0] * 100)]
    v, by, _ = checks(two, window={"overlap_pct": 90.0})
    assert v.reasons == ["WINDOWS_MISALIGNED"] and by["WINDOWS_MISALIGNED"].value == 90.0
    assert checks(two, window={"overlap_pct": 99.0})[0].valid


def test_contention_and_host_bound_come_from_their_measurements_and_are_raised_once():
    busy_cpus = {"streams": [{"id": 0, "others_pct_of_cpus": 40.0}, {"id": 1, "others_pct_of_cpus": 3.0}]}
    slow_gpu = {"gpus": [{"index": 0, "kernel_busy_pct": 55.6}], "streams": []}
    v, by, added = checks([stream(0, [1.0] * 100)], telemetry=busy_cpus, device=slow_gpu, platform="cuda")
    assert v.reasons == ["CPU_CONTENTION", "HOST_BOUND"]
    assert [w["code"] for w in added] == ["CPU_CONTENTION", "HOST_BOUND"]  # each raised here, once
    assert added[0]["message"].startswith("other processes used up to 40% of the CPUs of stream(s) [0]")
    assert added[1]["message"].startswith("GPU(s) [0] ran kernels for only 56% of the timed window")
    assert by["CPU_CONTENTION"].value == 40.0 and by["CPU_CONTENTION"].threshold == 25.0
    assert by["CPU_CONTENTION"].detail == "see the CPU_CONTENTION warning"
    assert by["HOST_BOUND"].value == 55.6 and by["HOST_BOUND"].detail == "see the HOST_BOUND warning"
    quiet = {"streams": [{"id": 0, "others_pct_of_cpus": 25.0}, {"id": 1, "others_pct_of_cpus": None}]}
    v, by, added = checks([stream(0, [1.0] * 100)], telemetry=quiet, device=slow_gpu, platform="cpu")
    assert v.valid and not added  # 25% is not above the limit; a CPU run is never host-bound
    assert by["CPU_CONTENTION"].detail == "other processes stayed off the streams' CPUs"


def test_bootstrap_covers_the_true_median_of_a_known_distribution():
    rng = random.Random(1)
    hits = 0
    for trial in range(60):
        sample = [rng.gauss(100.0, 10.0) for _ in range(25)]
        lo, hi = bootstrap_ci(sample, resamples=400, seed=trial)
        hits += lo <= 100.0 <= hi
    assert 0.85 <= hits / 60 <= 1.0  # a 95% interval, give or take the trials
    assert bootstrap_ci([1.0]) is None and summary([3.0, 1.0, 2.0])["median"] == 2.0


def test_block_bootstrap_is_wider_on_correlated_samples():
    rng = random.Random(2)
    x, walk = 0.0, []
    for _ in range(400):  # AR(1), strongly correlated like a drifting clock
        x = 0.95 * x + rng.gauss(0, 1)
        walk.append(100 + x)
    iid = bootstrap_ci(walk, stat=statistics.mean, resamples=400)
    block = block_bootstrap_ci(walk, stat=statistics.mean, resamples=400, block=20)
    assert (block[1] - block[0]) > 1.5 * (iid[1] - iid[0])
    assert block_bootstrap_ci([1.0, 2.0]) is None


def run_null(tmp_path, *extra, name="o"):
    out = tmp_path / name
    proc = run_harness(
        ["--dummy", "--model", "null", "--platform", "cpu", "--warmup", "2", "--output-dir", out, *extra], timeout=240
    )
    doc = json.loads((out / "results.json").read_text())
    return proc, doc, out


@pytest.mark.slow
def test_a_one_second_window_is_too_short_and_strict_fails_it(tmp_path):
    proc, doc, _ = run_null(tmp_path, "--null-ms", "100", "--num-inputs", "1000", "--max-test-duration", "1")
    assert proc.returncode == 0 and doc["status"] == "passed"
    assert doc["validity"]["valid"] is False and "TOO_FEW_SAMPLES" in doc["validity"]["reasons"]
    assert "validity: INVALID (TOO_FEW_SAMPLES" in proc.stdout
    proc, doc, out = run_null(
        tmp_path,
        "--null-ms",
        "100",
        "--num-inputs",
        "1000",
        "--max-test-duration",
        "1",
        "--validity",
        "strict",
        name="strict",
    )
    assert proc.returncode == 1 and doc["status"] == "failed" and doc["exit_code"] == 1
    assert "VALIDITY=strict" in doc["failures"][-1]["reason"]
    assert (out / "results.yaml").exists()  # the measurement is complete: its figures are kept


@pytest.mark.slow
def test_repetitions_give_a_median_and_an_interval(tmp_path):
    proc, doc, out = run_null(tmp_path, "--null-ms", "2", "--num-inputs", "40", "--repeat", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert load_results(out).to_dict() == doc  # the typed record is the whole document
    reps = doc["repetitions"]
    assert doc["repeat"] == 3 and len(reps) == 3 and all(r["frames"] == 40 for r in reps)
    tps = [r["throughput_img_s"] for r in reps]
    assert doc["metrics"]["throughput_img_s"] == pytest.approx(statistics.median(tps))
    lo, hi = doc["metrics"]["ci95"]["throughput_img_s"]
    assert min(tps) <= lo <= hi <= max(tps)
    assert proc.stdout.count("launching 1 stream(s)") == 3 and "median of 3 repetitions" in proc.stdout
    import yaml

    assert yaml.safe_load((out / "results.yaml").read_text())["results"][0]["value"] == round(
        doc["metrics"]["throughput_img_s"], 2
    )


@pytest.mark.slow
def test_a_cpu_burner_on_the_streams_cpus_is_contention(tmp_path):
    """Another process spinning on the stream's own CPUs during the timed window."""
    burner = subprocess.Popen([sys.executable, "-c", "import os; os.sched_setaffinity(0, {0})\nwhile True: pass"])
    try:
        time.sleep(0.5)
        proc, doc, _ = run_null(
            tmp_path, "--null-ms", "5", "--num-inputs", "1", "--min-test-duration", "4", "--pin", "affinity"
        )
    finally:
        burner.kill()
        burner.wait()
    assert doc["validity"]["valid"] is False and "CPU_CONTENTION" in doc["validity"]["reasons"], proc.stdout
    assert any(w["code"] == "CPU_CONTENTION" for w in doc["warnings"])
    assert os.cpu_count() >= 1
