"""One or more repetitions of the timed measurement, and what they add up to.

REPEAT=N runs the whole timed measurement N times in fresh stream processes
(warm-up each time), as hyperfine and pyperf repeat a benchmark: the spread
between repetitions is the run-to-run noise a single window cannot show. The
headline figures are the repetitions' medians with 95% bootstrap intervals;
with one repetition, latency intervals come from a block bootstrap of its
per-submission samples and throughput has none.
"""

from __future__ import annotations

from rifebench.measure.metrics import percentile
from rifebench.measure.stats import block_bootstrap_ci, bootstrap_ci, summary
from rifebench.report.device import device_section
from rifebench.report.validity import verdict
from rifebench.status import Status
from rifebench.warning_codes import warning


def analyse(cfg, outcome, model_info: dict, peak: dict | None, aggregate, quality_section, knobs_of) -> dict:
    """Everything one repetition measured, judged: status, quality, device time,
    warnings and validity."""
    streams = outcome.streams
    combined = aggregate(streams, cfg.interpolation)
    quality = quality_section(cfg, streams)
    failures = outcome.failures + [
        {"stream": r["id"], "reason": r["error"], "partial_result": True}
        for r in streams
        if r.get("status") == "failed" and r.get("error")
    ]
    status = Status(outcome.status)
    if status == Status.COMPLETED:
        status = Status.FAILED if failures or (quality and quality.get("verdict") != "pass") else Status.PASSED
    telemetry = getattr(outcome, "telemetry", None)
    device = device_section(cfg, streams, combined, model_info, peak, telemetry)
    knobs = knobs_of(streams)
    warnings = (
        list(outcome.warnings)
        + device.pop("warnings")
        + [warning("KNOB_FALLBACK", **f) for f in (knobs or {}).get("fallbacks", [])]
    )
    validity, added = verdict(cfg, [r for r in streams if r.get("end") is not None], combined, telemetry, warnings)
    return {
        "outcome": outcome,
        "streams": streams,
        "combined": combined,
        "quality": quality,
        "status": status,
        "failures": failures,
        "device": device,
        "knobs": knobs,
        "warnings": warnings + added,
        "validity": validity,
        "telemetry": telemetry,
    }


def representative(reps: list[dict]) -> dict:
    """The repetition whose throughput is the median one (the first that did not
    pass, when one did not: its failure is the run's)."""
    bad = [r for r in reps if r["status"] != Status.PASSED and not _quality_only(r)]
    if bad:
        return bad[0]
    ranked = sorted(reps, key=lambda r: r["combined"].get("throughput") or 0.0)
    return ranked[(len(ranked) - 1) // 2]


def _quality_only(rep: dict) -> bool:
    """Failed on the quality verdict alone: the measurement itself is complete."""
    q = rep["quality"]
    return rep["status"] == Status.FAILED and not rep["failures"] and q is not None


def merged_warnings(reps: list[dict]) -> list[dict]:
    seen, out = set(), []
    for r in reps:
        for w in r["warnings"]:
            key = (w["code"], w["message"])
            if key not in seen:
                seen.add(key)
                out.append(w)
    return out


def overall_validity(reps: list[dict]) -> dict:
    reasons = sorted({c for r in reps for c in r["validity"]["reasons"]})
    out = (
        dict(reps[-1]["validity"])
        if len(reps) == 1
        else {
            "valid": not reasons,
            "reasons": reasons,
            "checks": [c for r in reps for c in r["validity"]["checks"] if c["triggered"]],
        }
    )
    out["repetitions_valid"] = [r["validity"]["valid"] for r in reps]
    return out


def record(i: int, rep: dict) -> dict:
    c = rep["combined"]
    return {
        "index": i,
        "status": str(rep["status"]),
        "throughput_img_s": c.get("throughput"),
        "latency_ms": c["latency_ms"],
        "frames": c["frames"],
        "duration_s": c.get("duration_s"),
        "validity": {k: rep["validity"][k] for k in ("valid", "reasons")},
    }


def ci95(reps: list[dict]) -> dict:
    """95% intervals of the headline figures."""
    tps = [r["combined"].get("throughput") for r in reps]
    if len(reps) >= 2:
        p50 = [r["combined"]["latency_ms"]["p50"] for r in reps]
        p99 = [r["combined"]["latency_ms"]["p99"] for r in reps]
        return {
            "throughput_img_s": _l(bootstrap_ci(tps)),
            "latency_p50_ms": _l(bootstrap_ci(p50)),
            "latency_p99_ms": _l(bootstrap_ci(p99)),
            "n": len(reps),
            "method": f"percentile bootstrap of the median over {len(reps)} repetitions",
            "throughput_summary": summary(tps),
        }
    samples = [s for r in reps[0]["streams"] for s in r.get("latency_ms") or []]
    return {
        "throughput_img_s": None,
        "n": 1,
        "latency_p50_ms": _l(block_bootstrap_ci(samples, lambda v: percentile(sorted(v), 50))),
        "latency_p99_ms": _l(block_bootstrap_ci(samples, lambda v: percentile(sorted(v), 99)))
        if len(samples) >= 100
        else None,
        "method": "one repetition: latency from a moving-block bootstrap of the per-submission samples; "
        "throughput has no interval (REPEAT >= 2 gives one)",
    }


def _l(ci):
    return list(ci) if ci else None
