"""The run's summary on the console, from its RunResult: the same figures as
results.json, in sentences."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rifebench.report import video as video_report
from rifebench.report.schema import RunResult
from rifebench.report.validity import line as validity_line
from rifebench.warning_codes import line

Log = Callable[[str], None]


def f(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def print_summary(run: RunResult, log: Log) -> None:
    _figures(run, log)
    _device(run.device_time or {}, log)
    video_report.log_lines(run, log)
    _quality(run, log)
    if run.runtime:
        log(f"runtime: {runtime_line(run.runtime)}")
    for fail in run.failures:
        if fail.get("partial_result"):  # the launcher has already printed the others
            log(f"error: stream {fail['stream']} failed: {fail['reason']}")
    if run.knobs:
        k = run.knobs
        log(
            f"knobs ({k['preset']}): "
            + ", ".join(f"{n}={v}" for n, v in k["effective"].items() if k["source"].get(n) != "n/a")
        )
    for w in run.warnings:
        log(line(w))
    log(validity_line(run.validity, run.warnings))
    log(status_line(run))


def status_line(run: RunResult) -> str:
    """The last line: the status, and in the same line that a pass is not to be
    trusted when the measurement is invalid."""
    if run.status == "passed" and not run.validity.valid:
        return f"status: passed, but INVALID: {', '.join(run.validity.reasons)} (see the validity line above)"
    return f"status: {run.status}"


def _figures(run: RunResult, log: Log) -> None:
    m, lat = run.metrics, run.metrics.latency_ms
    ci = (m.ci95 or {}).get("throughput_img_s")
    reps = f", median of {run.repeat} repetitions, 95% CI {f(ci[0])}-{f(ci[1])}" if ci else ""
    log(
        f"throughput: {f(m.throughput_img_s)} img/s ({m.images} images, {m.frames} pairs in "
        f"{f(m.duration_s)} s, {len(run.streams)} stream(s){reps})"
    )
    if run.mode == "dataset":
        log(f"end to end, with scoring and saving after the window: {f(m.end_to_end_throughput_img_s)} img/s")
    what = "per pair" if m.batch_size == 1 else f"per batch of {m.batch_size}"
    clock = "device" if run.streams and run.streams[0].latency_clock == "device events" else "host"
    log(
        f"latency {what} ({clock} time): mean {f(lat.mean)} ms, p50 {f(lat.p50)}, p90 {f(lat.p90)}, "
        f"p99 {f(lat.p99)}, max {f(lat.max)}, stdev {f(lat.stdev)}"
        + (f" ({lat.percentile_note})" if lat.percentile_note else "")
    )
    if m.host_submit_ms:
        log(f"host submission time: mean {f(m.host_submit_ms.mean)} ms, p50 {f(m.host_submit_ms.p50)}")


def _device(dev: dict[str, Any], log: Log) -> None:
    busy = [f"GPU {g['index']} {g['kernel_busy_pct']:.0f}%" for g in dev.get("gpus", [])]
    spans = [f"{s['device_span_pct']:.0f}%" for s in dev.get("streams", []) if s["device_span_pct"] is not None]
    if busy or spans:
        log(
            f"device busy (kernels, from the GPU monitor): {', '.join(busy) or 'not monitored'}; "
            f"submission spans (device events): {', '.join(spans) or 'n/a'} of the timed window"
        )
    if dev.get("achieved_tflops"):
        share = (
            f", {f(dev['share_of_peak_pct'], '.1f')}% of {f(dev['peak_tflops'], '.0f')} peak"
            if dev.get("share_of_peak_pct")
            else ""
        )
        gflop, tflops = f(dev["gflop_per_pair"], ".3g"), f(dev["achieved_tflops"], ".3g")
        log(f"compute: {gflop} GFLOP per pair, {tflops} TFLOP/s{share}")


def _quality(run: RunResult, log: Log) -> None:
    q = run.quality
    if q:
        log(
            f"quality: {q['passed']}/{q['tested']} frames >= {q['threshold_db']} dB ({f(q['pass_pct'])}%"
            f"{pass_bar(q)}), mean PSNR {f(q['psnr_mean'])} dB, SSIM {f(q['ssim_mean'], '.4f')}: "
            f"verdict {q['verdict']}"
        )
        log(f"quality note: {q['note']}")
    else:
        log(
            video_report.NO_SCORES
            if run.mode == "video"
            else "accuracy: 0 (performance mode (dummy): no quality verdict)"
        )


def pass_bar(quality: dict[str, Any]) -> str:
    """The verdict's bar beside the pass rate: `, needs >= 95% (MIN_PASS_PCT)`."""
    bar = quality.get("min_pass_pct")
    return "" if bar is None else f", needs >= {bar:g}% (MIN_PASS_PCT)"


def runtime_line(rt: dict[str, Any]) -> str:
    """A runtime stream's own set-up phase and parity gate, in words:
    `onnxruntime 1.30.0 (graph fp32): set-up 47.9 s (export 23.5 s, compile 24.4 s);
    parity 52.30 dB PSNR against PyTorch fp32 (needs >= 50 dB)`."""
    exports = [e for e in rt.get("exports") or [] if e.get("export_s") is not None]
    export_s = sum(e["export_s"] for e in exports)
    build_s = sum(e.get("build_s") or 0.0 for e in rt.get("engines") or [])  # export included
    cached = any(e.get("cached") for e in rt.get("exports") or [])
    parts = [f"export {export_s:.1f} s" if exports else ("cached graph" if cached else "no ONNX export")]
    int8 = rt.get("int8") or {}
    quantized = [e for e in int8.get("entries") or [] if e.get("quantize_s") is not None]
    # reading the calibration frames belongs to quantizing, not to the runtime's compile
    quantize_s = sum(e["quantize_s"] for e in quantized) + (int8.get("calibration_read_s") or 0.0)
    if int8:
        parts.append(f"quantize {quantize_s:.1f} s" if quantized else "cached int8 graph")
    parts.append(f"compile {max(build_s - export_s - quantize_s, 0.0):.1f} s")
    setup = f"set-up {rt['setup_s']:.1f} s ({', '.join(parts)})" if rt.get("setup_s") is not None else ", ".join(parts)
    gate = rt.get("parity") or {}
    db = "identical" if gate.get("identical") else f"{f(gate.get('psnr_db'))} dB PSNR"
    need = gate.get("threshold_db")
    check = gate.get("check_pairs")
    also = f", {f(check.get('psnr_db'))} dB on {check.get('pairs')} check pairs ({check.get('scene')})" if check else ""
    parity = f"parity {db} against {gate.get('against') or 'PyTorch fp32'}{also} (needs >= {f(need, 'g')} dB)"
    name = f"{rt.get('name')} {rt.get('version') or '(version unknown)'} (graph {rt.get('graph_precision')})"
    return f"{name}: {setup}; {parity}"
