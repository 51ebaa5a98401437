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
HOST_BOUND fires when the kernel-busy share is below HOST_BOUND_PCT, or, with
no monitor, when even the span share is.

Achieved TFLOP/s: the model's FLOPs per pair (counted once per run,
convolutions only) times pairs per second, against the device's peak where it
is known (a table of common GPUs, or a short measurement).
"""

from __future__ import annotations

from rifebench.warning_codes import warning

HOST_BOUND_PCT = 70.0


def span_shares(streams: list[dict]) -> list[dict]:
    out = []
    for r in streams:
        dev = r.get("device_ms")
        window_s = (r["end"] - r["start"]) if r.get("end") is not None and r.get("start") is not None else None
        span = 100.0 * sum(dev) / 1000.0 / window_s if dev and window_s and window_s > 0 else None
        out.append(
            {
                "stream": r["id"],
                "device_span_pct": span,
                "device_s": sum(dev) / 1000.0 if dev else None,
                "window_s": window_s,
            }
        )
    return out


def kernel_busy(telemetry: dict | None) -> list[dict]:
    """Per monitored GPU, the utilisation its monitor sampled in the timed window."""
    out = []
    for g in (telemetry or {}).get("gpus", []):
        util = (g.get("util_pct") or {}).get("mean")
        if util is not None:
            out.append({"index": g.get("index"), "pci_bus_id": g.get("pci_bus_id"), "kernel_busy_pct": util})
    return out


def _host_bound(cfg, spans: list[dict], gpus: list[dict]) -> list[dict]:
    if cfg.platform == "cpu":
        return []
    if gpus:
        low = [g for g in gpus if g["kernel_busy_pct"] < HOST_BOUND_PCT]
        if low:
            return [
                warning(
                    "HOST_BOUND",
                    busy_pct=max(g["kernel_busy_pct"] for g in low),
                    what=f"GPU(s) {[g['index'] for g in low]} ran kernels",
                )
            ]
        return []
    low = [s for s in spans if s["device_span_pct"] is not None and s["device_span_pct"] < HOST_BOUND_PCT]
    if low:
        return [
            warning(
                "HOST_BOUND",
                busy_pct=max(s["device_span_pct"] for s in low),
                what=f"stream(s) {[s['stream'] for s in low]} kept the device busy (event spans)",
            )
        ]
    return []


def device_section(
    cfg, streams: list[dict], combined: dict, model_info: dict, peak: dict | None, telemetry: dict | None = None
) -> dict:
    """results.json `device_time`; its `warnings` are taken out by the caller."""
    spans = span_shares([r for r in streams if r.get("end") is not None])
    gpus = kernel_busy(telemetry)
    flops = model_info.get("flops") or {}
    gflop_pair = flops.get("gflop_per_pair")
    pairs_s = combined.get("throughput_pairs_s")
    tflops = gflop_pair * pairs_s / 1000.0 if gflop_pair and pairs_s else None
    peak_tflops = (peak or {}).get("tflops")
    return {
        "streams": spans,
        "gpus": gpus,
        "busy_basis": (
            "kernel_busy_pct: the GPU monitor's utilisation over the timed window; device_span_pct: "
            "submission spans from device events, an upper bound (it includes waiting for the host)"
        ),
        "host_bound_threshold_pct": HOST_BOUND_PCT,
        "gflop_per_pair": gflop_pair,
        "flops_basis": flops.get("basis"),
        "achieved_tflops": tflops,
        "peak_tflops": peak_tflops,
        "peak_source": (peak or {}).get("source"),
        "share_of_peak_pct": 100.0 * tflops / peak_tflops if tflops and peak_tflops else None,
        "warnings": _host_bound(cfg, spans, gpus),
    }
