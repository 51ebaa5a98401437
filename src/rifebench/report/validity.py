"""Can the figures of a run be trusted? Fixed, documented rules, each a code
of the warning registry; a run is valid when none fires.

- TOO_FEW_SAMPLES: a stream timed fewer than MIN_SAMPLES submissions;
- CPU_CONTENTION: other processes used a stream's CPUs in the timed window;
- HOST_BOUND: the GPU ran kernels less than 70% of the window;
- THROTTLED: the GPU's clocks were held down for heat or power;
- WINDOWS_MISALIGNED: the streams' timed windows overlap less than 95%;
- NO_STEADY_STATE: the median latency of the first tenth of a stream's
  submissions differs from the last tenth's by more than 10% (checked from
  20 submissions on).
"""

from __future__ import annotations

import statistics

from rifebench.warning_codes import warning

OVERLAP_MIN_PCT = 95.0
DRIFT_MAX_PCT = 10.0
DRIFT_MIN_SAMPLES = 20
# Clock limits that mean the device ran slower than it can; idle, application
# clocks and sync boost are not.
THROTTLING = ("sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown")


def _check(code: str, triggered: bool, value=None, threshold=None, detail: str = "") -> dict:
    return {"code": code, "triggered": bool(triggered), "value": value, "threshold": threshold, "detail": detail}


def too_few(cfg, streams: list[dict]) -> dict:
    counts = [len(r.get("latency_ms") or []) for r in streams]
    fewest = min(counts) if counts else 0
    return _check(
        "TOO_FEW_SAMPLES", fewest < cfg.min_samples, fewest, cfg.min_samples, f"timed submissions per stream: {counts}"
    )


def drift(streams: list[dict]) -> dict:
    worst, where = 0.0, None
    for r in streams:
        lat = r.get("latency_ms") or []
        if len(lat) < DRIFT_MIN_SAMPLES:
            continue
        k = max(2, len(lat) // 10)
        first, last = statistics.median(lat[:k]), statistics.median(lat[-k:])
        change = 100.0 * abs(last - first) / first if first > 0 else 0.0
        if change >= worst:
            worst, where = change, (r["id"], first, last)
    if where is None:
        return _check(
            "NO_STEADY_STATE",
            False,
            None,
            DRIFT_MAX_PCT,
            f"not checked: fewer than {DRIFT_MIN_SAMPLES} submissions per stream",
        )
    return _check(
        "NO_STEADY_STATE",
        worst > DRIFT_MAX_PCT,
        worst,
        DRIFT_MAX_PCT,
        f"stream {where[0]}: median latency {where[1]:.3g} ms in the first tenth, {where[2]:.3g} ms in the last",
    )


def throttled(telemetry: dict | None) -> dict:
    seen = sorted(
        {
            n
            for g in (telemetry or {}).get("gpus", [])
            for n, c in (g.get("throttle_reasons") or {}).items()
            if c and n in THROTTLING
        }
    )
    return _check("THROTTLED", bool(seen), None, None, ", ".join(seen) or "no thermal or power limit seen")


def misaligned(streams: list[dict], window: dict | None) -> dict:
    pct = (window or {}).get("overlap_pct")
    if len(streams) < 2 or pct is None:
        return _check("WINDOWS_MISALIGNED", False, pct, OVERLAP_MIN_PCT, "one stream: nothing to align")
    return _check(
        "WINDOWS_MISALIGNED",
        pct < OVERLAP_MIN_PCT,
        pct,
        OVERLAP_MIN_PCT,
        "overlap of the streams' timed windows, % of the whole window",
    )


def verdict(
    cfg, streams: list[dict], combined: dict, telemetry: dict | None, warnings: list[dict]
) -> tuple[dict, list]:
    """results.json `validity` and the warnings to add for rules that fired and
    are not already among `warnings` (contention and HOST_BOUND are raised where
    they are measured)."""
    have = {w["code"] for w in warnings}
    checks = [
        too_few(cfg, streams),
        _check(
            "CPU_CONTENTION",
            "CPU_CONTENTION" in have,
            detail="see the CPU_CONTENTION warning"
            if "CPU_CONTENTION" in have
            else "other processes stayed off the streams' CPUs",
        ),
        _check(
            "HOST_BOUND",
            "HOST_BOUND" in have,
            detail="see the HOST_BOUND warning"
            if "HOST_BOUND" in have
            else "the device, not the host, set the pace (or a CPU run)",
        ),
        throttled(telemetry),
        misaligned(streams, combined.get("window")),
        drift(streams),
    ]
    reasons = [c["code"] for c in checks if c["triggered"]]
    added = [warning(c["code"], detail=c["detail"]) for c in checks if c["triggered"] and c["code"] not in have]
    return {"valid": not reasons, "reasons": reasons, "checks": checks}, added


def line(validity: dict) -> str:
    if validity["valid"]:
        return "validity: valid (no rule fired: enough samples, quiet CPUs, steady, aligned, not throttled)"
    return (
        f"validity: INVALID ({', '.join(validity['reasons'])}): these figures do not measure what the machine "
        "can do; see the warnings above"
    )
