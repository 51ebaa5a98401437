"""The console's summary says what matters in the line that says it: the
quality verdict with its pass bar, an invalid pass in the last line, and
results.yaml carrying the status and the validity beside the reference's
three entries."""

from __future__ import annotations

import yaml

from rifebench.report.console_summary import print_summary, status_line
from rifebench.report.results import yaml_results
from rifebench.report.schema import SCHEMA_VERSION, RunResult, Validity


def run_of(status="passed", reasons=(), quality=None, mode="dummy") -> RunResult:
    return RunResult.from_dict(
        {
            "status": status,
            "exit_code": 0 if status == "passed" else 1,
            "schema_version": SCHEMA_VERSION,
            "mode": mode,
            "config": {"platform": "cpu"},
            "metrics": {"throughput_img_s": 10.0, "latency_ms": {"mean": 1.0}, "accuracy_pct": 0.0},
            "validity": {"valid": not reasons, "reasons": list(reasons)},
            "quality": quality,
            "streams": [],
            "failures": [],
        }
    )


def lines_of(run: RunResult) -> list[str]:
    said: list[str] = []
    print_summary(run, said.append)
    return [x for text in said for x in text.splitlines()]


def test_the_quality_verdict_states_its_pass_bar():
    quality = {
        "passed": 43,
        "tested": 50,
        "threshold_db": 25.0,
        "pass_pct": 86.0,
        "min_pass_pct": 95.0,
        "psnr_mean": 27.5,
        "ssim_mean": 0.91,
        "verdict": "fail",
        "note": "one frame per pair",
    }
    said = lines_of(run_of("failed", quality=quality, mode="dataset"))
    verdict = next(x for x in said if x.startswith("quality:"))
    assert verdict == (
        "quality: 43/50 frames >= 25.0 dB (86.00%, needs >= 95% (MIN_PASS_PCT)), mean PSNR 27.50 dB, "
        "SSIM 0.9100: verdict fail"
    )


def test_an_invalid_pass_says_so_in_the_last_line():
    said = lines_of(run_of(reasons=("TOO_FEW_SAMPLES", "WINDOWS_MISALIGNED")))
    assert said[-1] == "status: passed, but INVALID: TOO_FEW_SAMPLES, WINDOWS_MISALIGNED (see the validity line above)"
    assert lines_of(run_of())[-1] == "status: passed"
    assert status_line(run_of("failed", reasons=("TOO_FEW_SAMPLES",))) == "status: failed"


def test_results_yaml_carries_status_and_validity_beside_the_reference_entries():
    reference = yaml_results(33.4812, 31.3911, 96.5517)
    text = yaml_results(33.4812, 31.3911, 96.5517, "passed", Validity(False, ["TOO_FEW_SAMPLES"]))
    assert text.startswith(reference)  # the reference's three entries, as they were
    doc = yaml.safe_load(text)
    assert list(doc) == ["results", "status", "validity"]
    assert doc["status"] == "passed" and doc["validity"] == {"valid": False, "reasons": ["TOO_FEW_SAMPLES"]}
