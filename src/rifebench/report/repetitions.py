"""One or more repetitions of the timed measurement, and what they add up to.

REPEAT=N runs the whole timed measurement N times in fresh stream processes
(warm-up each time), as hyperfine and pyperf repeat a benchmark: the spread
between repetitions is the run-to-run noise a single window cannot show. The
headline figures are the repetitions' medians with 95% bootstrap intervals;
with one repetition, latency intervals come from a block bootstrap of its
per-submission samples and throughput has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from rifebench.console import log
from rifebench.measure.metrics import MIN_SAMPLES_FOR
from rifebench.measure.records import StreamResult
from rifebench.measure.stats import MAX_RESAMPLED, RESAMPLES, Percentile, block_bootstrap_cis, bootstrap_ci, summary
from rifebench.report.aggregate import Combined, aggregate
from rifebench.report.device import device_section
from rifebench.report.schema import Repetition, Validity
from rifebench.report.validity import Measurements, ValiditySettings, verdict
from rifebench.status import Status
from rifebench.warning_codes import warning


class Outcome(Protocol):
    """What the launcher hands over for one repetition (run.launcher.Outcome)."""

    status: Status
    streams: list[StreamResult]
    failures: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    pinning: dict[str, Any]
    telemetry: dict[str, Any] | None


@dataclass
class Analysis:
    """Everything one repetition measured, judged."""

    outcome: Outcome
    streams: list[StreamResult]
    combined: Combined
    quality: dict[str, Any] | None
    status: Status
    failures: list[dict[str, Any]]
    device: dict[str, Any]
    knobs: dict[str, Any] | None
    warnings: list[dict[str, Any]]
    validity: Validity
    telemetry: dict[str, Any] | None


def analyse(
    cfg: Any,
    outcome: Outcome,
    model_info: dict[str, Any],
    peak: dict[str, Any] | None,
    quality_of: Callable[[Any, list[StreamResult]], dict[str, Any] | None],
    knobs_of: Callable[[list[StreamResult]], dict[str, Any] | None],
) -> Analysis:
    """Status, quality, device time, warnings and validity of one repetition."""
    streams = outcome.streams
    combined = aggregate(streams, cfg.interpolation)
    quality = quality_of(cfg, streams)
    failures = outcome.failures + [
        {"stream": r.id, "reason": r.error, "partial_result": True} for r in streams if r.status == "failed" and r.error
    ]
    status = Status(outcome.status)
    if status == Status.COMPLETED:
        status = Status.FAILED if failures or (quality and quality.get("verdict") != "pass") else Status.PASSED
    settings = ValiditySettings.from_config(cfg)
    device = device_section(streams, combined.throughput_pairs_s, model_info, peak, outcome.telemetry, settings)
    knobs = knobs_of(streams)
    timed = [r for r in streams if r.timed]
    measured = Measurements(
        cfg.platform, timed, combined.window, outcome.telemetry, device, cfg.mode, cfg.num_inputs, cfg.batch_size
    )
    validity, fired = verdict(settings, measured)
    warnings = (
        list(outcome.warnings) + [warning("KNOB_FALLBACK", **f) for f in (knobs or {}).get("fallbacks", [])] + fired
    )
    return Analysis(
        outcome, streams, combined, quality, status, failures, device, knobs, warnings, validity, outcome.telemetry
    )


def representative(reps: list[Analysis]) -> Analysis:
    """The repetition whose throughput is the median one (the first that did not
    pass, when one did not: its failure is the run's)."""
    bad = [r for r in reps if r.status != Status.PASSED and not _quality_only(r)]
    if bad:
        return bad[0]
    ranked = sorted(reps, key=lambda r: r.combined.throughput or 0.0)
    return ranked[(len(ranked) - 1) // 2]


def _quality_only(rep: Analysis) -> bool:
    """Failed on the quality verdict alone: the measurement itself is complete."""
    return rep.status == Status.FAILED and not rep.failures and rep.quality is not None


def merged_warnings(reps: list[Analysis]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for r in reps:
        for w in r.warnings:
            key = (w["code"], w["message"])
            if key not in seen:
                seen.add(key)
                out.append(w)
    return out


def overall_validity(reps: list[Analysis]) -> Validity:
    if len(reps) == 1:
        one = reps[0].validity
        out = Validity(one.valid, list(one.reasons), one.checks, one.settings)
    else:
        reasons = sorted({c for r in reps for c in r.validity.reasons})
        checks = [c for r in reps for c in r.validity.checks or [] if c.triggered]
        out = Validity(valid=not reasons, reasons=reasons, checks=checks, settings=reps[-1].validity.settings)
    out.repetitions_valid = [r.validity.valid for r in reps]
    return out


def record(i: int, rep: Analysis) -> Repetition:
    c = rep.combined
    return Repetition(
        index=i,
        status=str(rep.status),
        throughput_img_s=c.throughput,
        latency_ms=c.latency_ms,
        frames=c.frames,
        duration_s=c.duration_s,
        validity=Validity(rep.validity.valid, rep.validity.reasons),
    )


def ci95(reps: list[Analysis]) -> dict[str, Any]:
    """95% intervals of the headline figures."""
    tps = [r.combined.throughput for r in reps]
    if len(reps) >= 2:
        p50 = [r.combined.latency_ms.p50 for r in reps]
        p99 = [r.combined.latency_ms.p99 for r in reps]
        return {
            "throughput_img_s": _l(bootstrap_ci(tps)),
            "latency_p50_ms": _l(bootstrap_ci(p50)),
            "latency_p99_ms": _l(bootstrap_ci(p99)),
            "n": len(reps),
            "method": f"percentile bootstrap of the median over {len(reps)} repetitions",
            "throughput_summary": summary(tps),
        }
    samples = [s for r in reps[0].streams for s in r.latency_ms]
    if len(samples) > MAX_RESAMPLED:  # a second or so: say what the wait is for
        log(
            f"computing the latency intervals: moving-block bootstrap of {len(samples):,} samples "
            f"({RESAMPLES} resamples of {MAX_RESAMPLED:,}, m out of n)"
        )
    ci50, ci99 = block_bootstrap_cis(samples, [Percentile(50), Percentile(99)])
    return {
        "throughput_img_s": None,
        "n": 1,
        "latency_p50_ms": _l(ci50),
        "latency_p99_ms": _l(ci99) if len(samples) >= MIN_SAMPLES_FOR["p99"] else None,
        "method": "one repetition: latency from a moving-block bootstrap of the per-submission samples; "
        "throughput has no interval (REPEAT >= 2 gives one)",
    }


def _l(ci: tuple[float, float] | None) -> list[float] | None:
    return list(ci) if ci else None
