"""How busy the device was, and how much of its peak the run used.

Two measures of "busy", because the obvious one is not enough. The span of a
submission (its start and end device events) includes the time the device
waits, inside the submission, for the host to launch the next kernel: on an
H200, eager RIFE 4.6 at 720p showed spans covering 99% of the window while
NVML saw kernels running only 56% of it (the host was the limit). So:
- `device_span_pct` per stream: the sum of its submission spans over its
  window, an upper bound of the busy share;
- `kernel_busy_pct` per GPU: the monitor's utilisation (NVML, nvidia-smi or
  xpu-smi: the share of time a kernel was running) over the timed window.
The HOST_BOUND rule over these figures is validity.py's (its host_bound_pct).

Achieved TFLOP/s: the model's FLOPs per pair (counted once per run,
convolutions only) times pairs per second, against the device's peak where it
is known (a table of common GPUs, or a short measurement).
"""

from __future__ import annotations

from typing import Any

from rifebench.measure.records import StreamResult
from rifebench.report.validity import ValiditySettings


def span_shares(streams: list[StreamResult]) -> list[dict[str, Any]]:
    out = []
    for r in streams:
        dev = r.device_ms
        window_s = (r.end - r.start) if r.end is not None and r.start is not None else None
        span = 100.0 * sum(dev) / 1000.0 / window_s if dev and window_s and window_s > 0 else None
        out.append(
            {
                "stream": r.id,
                "device_span_pct": span,
                "device_s": sum(dev) / 1000.0 if dev else None,
                "window_s": window_s,
            }
        )
    return out


def kernel_busy(telemetry: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per monitored GPU, the utilisation its monitor sampled in the timed window."""
    out = []
    for g in (telemetry or {}).get("gpus", []):
        util = (g.get("util_pct") or {}).get("mean")
        if util is not None:
            out.append({"index": g.get("index"), "pci_bus_id": g.get("pci_bus_id"), "kernel_busy_pct": util})
    return out


def device_section(
    streams: list[StreamResult],
    pairs_s: float | None,
    model_info: dict[str, Any],
    peak: dict[str, Any] | None,
    telemetry: dict[str, Any] | None = None,
    settings: ValiditySettings | None = None,
) -> dict[str, Any]:
    """results.json `device_time`. `pairs_s`: the combined throughput in pairs per second."""
    spans = span_shares([r for r in streams if r.timed])
    gpus = kernel_busy(telemetry)
    flops = model_info.get("flops") or {}
    gflop_pair = flops.get("gflop_per_pair")
    tflops = gflop_pair * pairs_s / 1000.0 if gflop_pair and pairs_s else None
    peak_tflops = (peak or {}).get("tflops")
    return {
        "streams": spans,
        "gpus": gpus,
        "busy_basis": (
            "kernel_busy_pct: the GPU monitor's utilisation over the timed window; device_span_pct: "
            "submission spans from device events, an upper bound (it includes waiting for the host)"
        ),
        "host_bound_threshold_pct": (settings or ValiditySettings()).host_bound_pct,
        "gflop_per_pair": gflop_pair,
        "flops_basis": flops.get("basis"),
        "achieved_tflops": tflops,
        "peak_tflops": peak_tflops,
        "peak_source": (peak or {}).get("source"),
        "share_of_peak_pct": 100.0 * tflops / peak_tflops if tflops and peak_tflops else None,
    }
