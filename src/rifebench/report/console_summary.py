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
    log(validity_line(run.validity))
    log(f"status: {run.status}")


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
            f"quality: {q['passed']}/{q['tested']} frames >= {q['threshold_db']} dB ({f(q['pass_pct'])}%), "
            f"mean PSNR {f(q['psnr_mean'])} dB, SSIM {f(q['ssim_mean'], '.4f')}: verdict {q['verdict']}"
        )
        log(f"quality note: {q['note']}")
    else:
        log(
            video_report.NO_SCORES
            if run.mode == "video"
            else "accuracy: 0 (performance mode (dummy): no quality verdict)"
        )
