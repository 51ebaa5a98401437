"""Can the figures of a run be trusted? The one rule book: fixed, documented
rules over the run's measurements, every limit in `ValiditySettings` (recorded
in results.json `validity.settings`, as LoadGen's test settings hold its limits).
A run is valid when no rule fires; each rule that fires is a warning of the
registry (warning_codes.py), raised here and nowhere else, and its remedy is
a recommendation on the console's validity line.

- TOO_FEW_SAMPLES: a stream timed fewer than min_samples submissions;
- CPU_CONTENTION: other processes used more than noisy_pct of a stream's CPUs
  in the timed window (the telemetry sampler's figure per stream);
- HOST_BOUND: a GPU ran kernels less than host_bound_pct of the window (its
  monitor's utilisation), or, with no monitor, even the submissions' event
  spans cover less than that (never on a CPU);
- THROTTLED: the GPU's clocks were held down for heat or power;
- WINDOWS_MISALIGNED: the streams' timed windows overlap less than overlap_min_pct;
- NO_STEADY_STATE: the median latency of the first tenth of a stream's
  submissions differs from the last tenth's by more than drift_max_pct
  (checked from drift_min_samples submissions on).

Every warning a rule raises states the figure measured and the bar it missed,
and its remedy fits the mode: in quality and video mode the dataset or the clip
sets the number of samples, and NUM_INPUTS only up to it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from rifebench.measure.records import StreamResult
from rifebench.options import BY_NAME
from rifebench.report.schema import Check, Validity, Window
from rifebench.warning_codes import REGISTRY, warning

# Clock limits that mean the device ran slower than it can; idle, application
# clocks and sync boost are not.
THROTTLING = ("sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown")
MIN_SAMPLES: int = BY_NAME["min_samples"].default  # MIN_SAMPLES's default


@dataclass(frozen=True)
class ValiditySettings:
    """Every limit of the validity rules."""

    min_samples: int = MIN_SAMPLES  # timed submissions per stream (MIN_SAMPLES)
    noisy_pct: float = 25.0  # CPU use by other processes on a stream's own CPUs
    host_bound_pct: float = 70.0  # kernel-busy (or event-span) share of the window
    overlap_min_pct: float = 95.0  # overlap of the streams' windows, % of the whole window
    drift_max_pct: float = 10.0  # first tenth's median latency vs the last tenth's
    drift_min_samples: int = 20  # below this a stream's drift is not judged
    throttling_reasons: tuple[str, ...] = THROTTLING

    @classmethod
    def from_config(cls, cfg: Any) -> ValiditySettings:
        return cls(min_samples=cfg.min_samples)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"throttling_reasons": list(self.throttling_reasons)}


@dataclass
class Measurements:
    """What the rules look at, from one repetition."""

    platform: str
    streams: list[StreamResult]  # those with a timed window
    window: Window | None = None  # the streams' common window (report.results.aggregate)
    telemetry: dict[str, Any] | None = None  # the sampler's summary: others_pct_of_cpus per stream, GPU clocks
    device: dict[str, Any] | None = None  # results.json device_time: kernel busy per GPU, spans per stream
    mode: str = "dummy"  # dummy | dataset | video: what sets the number of samples (the remedies)
    num_inputs: int | None = None  # NUM_INPUTS
    batch_size: int = 1  # BATCH_SIZE: pairs per submission


Rule = Callable[[ValiditySettings, Measurements], tuple[Check, dict[str, Any] | None]]


def _fired(check: Check) -> tuple[Check, dict[str, Any] | None]:
    """A rule whose warning is its check's detail."""
    return check, warning(check.code, detail=check.detail) if check.triggered else None


def too_few(s: ValiditySettings, m: Measurements) -> tuple[Check, dict[str, Any] | None]:
    counts = [len(r.latency_ms) for r in m.streams]
    fewest = min(counts) if counts else 0
    detail = f"timed submissions per stream: {counts} (needs >= {s.min_samples} each, MIN_SAMPLES)"
    check = Check("TOO_FEW_SAMPLES", fewest < s.min_samples, fewest, s.min_samples, detail)
    return check, warning(check.code, detail=detail, how=more_samples(m)) if check.triggered else None


def more_samples(m: Measurements) -> str:
    """What gives a stream more timed submissions in this mode (TOO_FEW_SAMPLES's remedy)."""
    smaller_batch = " or a smaller BATCH_SIZE (one submission is one sample)" if m.batch_size > 1 else ""
    if m.mode == "dummy":
        return f"raise NUM_INPUTS or MIN_TEST_DURATION{smaller_batch}"
    source, unit = ("a longer clip", "pairs in the video") if m.mode == "video" else ("more triplets", "list size")
    capped = m.num_inputs is not None and any(r.frames >= m.num_inputs for r in m.streams)
    if capped:  # NUM_INPUTS stopped the stream before the data ran out
        return f"raise NUM_INPUTS (a stream runs min(NUM_INPUTS, {unit})){smaller_batch}"
    what = "a longer clip (more frames)" if m.mode == "video" else "more triplets (a longer dataset list)"
    return (
        f"{what}: every one was used, so NUM_INPUTS cannot add any, and MIN_TEST_DURATION applies to "
        f"dummy mode only{smaller_batch}; {source} is the only way to more samples per window"
    )


def contention(s: ValiditySettings, m: Measurements) -> tuple[Check, dict[str, Any] | None]:
    """value: the largest share of a stream's CPUs other processes used."""
    shares = [(t["id"], t["others_pct_of_cpus"]) for t in (m.telemetry or {}).get("streams", [])]
    measured = [(i, p) for i, p in shares if p is not None]
    noisy = [(i, p) for i, p in measured if p > s.noisy_pct]
    worst = max((p for _, p in measured), default=None)
    if not noisy:
        return Check("CPU_CONTENTION", False, worst, s.noisy_pct, "other processes stayed off the streams' CPUs"), None
    found = warning("CPU_CONTENTION", pct=max(p for _, p in noisy), streams=[i for i, _ in noisy], limit=s.noisy_pct)
    return Check("CPU_CONTENTION", True, worst, s.noisy_pct, "see the CPU_CONTENTION warning"), found


def host_bound(s: ValiditySettings, m: Measurements) -> tuple[Check, dict[str, Any] | None]:
    """value: the lowest busy share measured (kernel busy per GPU, else event spans per stream)."""
    quiet = "the device, not the host, set the pace (or a CPU run)"
    if m.platform == "cpu":
        return Check("HOST_BOUND", False, None, s.host_bound_pct, quiet), None
    dev = m.device or {}
    if dev.get("gpus"):
        shares = [(g["index"], g["kernel_busy_pct"]) for g in dev["gpus"]]
        what = "GPU(s) {} ran kernels"
    else:
        shares = [
            (x["stream"], x["device_span_pct"]) for x in dev.get("streams", []) if x["device_span_pct"] is not None
        ]
        what = "stream(s) {} kept the device busy (event spans)"
    low = [(i, p) for i, p in shares if p < s.host_bound_pct]
    lowest = min((p for _, p in shares), default=None)
    if not low:
        return Check("HOST_BOUND", False, lowest, s.host_bound_pct, quiet), None
    found = warning(
        "HOST_BOUND", busy_pct=max(p for _, p in low), what=what.format([i for i, _ in low]), limit=s.host_bound_pct
    )
    return Check("HOST_BOUND", True, lowest, s.host_bound_pct, "see the HOST_BOUND warning"), found


def throttled(s: ValiditySettings, m: Measurements) -> tuple[Check, dict[str, Any] | None]:
    gpus = (m.telemetry or {}).get("gpus", [])
    seen = sorted(
        {n for g in gpus for n, c in (g.get("throttle_reasons") or {}).items() if c and n in s.throttling_reasons}
    )
    return _fired(Check("THROTTLED", bool(seen), None, None, ", ".join(seen) or "no thermal or power limit seen"))


def misaligned(s: ValiditySettings, m: Measurements) -> tuple[Check, dict[str, Any] | None]:
    pct = m.window.overlap_pct if m.window else None
    if len(m.streams) < 2 or pct is None:
        return _fired(Check("WINDOWS_MISALIGNED", False, pct, s.overlap_min_pct, "one stream: nothing to align"))
    detail = f"they overlap for {pct:.1f}% of the whole window (needs >= {s.overlap_min_pct:g}%)"
    return _fired(Check("WINDOWS_MISALIGNED", pct < s.overlap_min_pct, pct, s.overlap_min_pct, detail))


def drift(s: ValiditySettings, m: Measurements) -> tuple[Check, dict[str, Any] | None]:
    worst, where = 0.0, None
    for r in m.streams:
        lat = r.latency_ms
        if len(lat) < s.drift_min_samples:
            continue
        k = max(2, len(lat) // 10)
        first, last = statistics.median(lat[:k]), statistics.median(lat[-k:])
        change = 100.0 * abs(last - first) / first if first > 0 else 0.0
        if change >= worst:
            worst, where = change, (r.id, first, last)
    if where is None:
        detail = f"not checked: fewer than {s.drift_min_samples} submissions per stream"
        return _fired(Check("NO_STEADY_STATE", False, None, s.drift_max_pct, detail))
    detail = (
        f"stream {where[0]}: median latency {where[1]:.3g} ms in the first tenth, {where[2]:.3g} ms in the last: "
        f"{worst:.1f}% apart (allowed <= {s.drift_max_pct:g}%)"
    )
    return _fired(Check("NO_STEADY_STATE", worst > s.drift_max_pct, worst, s.drift_max_pct, detail))


RULES: tuple[Rule, ...] = (too_few, contention, host_bound, throttled, misaligned, drift)


def verdict(settings: ValiditySettings, m: Measurements) -> tuple[Validity, list[dict[str, Any]]]:
    """results.json `validity` and the warnings of the rules that fired."""
    outcomes = [rule(settings, m) for rule in RULES]
    checks = [c for c, _ in outcomes]
    reasons = [c.code for c in checks if c.triggered]
    validity = Validity(valid=not reasons, reasons=reasons, checks=checks, settings=settings.to_dict())
    return validity, [w for _, w in outcomes if w is not None]


def recommendations(validity: Validity, warnings: list[dict[str, Any]] | None = None) -> list[str]:
    """The remedies of the rules that fired, in the rules' order: as the run's
    warnings give them (filled in for its mode), else the registry's."""
    given = {w.get("code"): w.get("remedy") for w in warnings or []}
    return [given.get(code) or REGISTRY[code].remedy for code in validity.reasons if code in REGISTRY]


def line(validity: Validity, warnings: list[dict[str, Any]] | None = None) -> str:
    """The console's verdict: one line, then a recommendation per rule that fired."""
    if validity.valid:
        return "validity: valid (no rule fired: enough samples, quiet CPUs, steady, aligned, not throttled)"
    head = (
        f"validity: INVALID ({', '.join(validity.reasons)}): these figures do not measure what the machine "
        "can do; see the warnings above"
    )
    return "\n".join([head, *(f"  recommendation: {r}" for r in recommendations(validity, warnings))])
