"""Aggregation and the result files. Knows files, not models.

Combined throughput is total frames over (last end - first start) on the one
monotonic clock all streams share; combined latency percentiles come from all
streams' raw samples. results.yaml keeps the reference's exact shape.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import statistics
import time
from pathlib import Path

import yaml

from rifebench.fsutil import atomic_write_bytes, atomic_write_text
from rifebench.measure.metrics import latency_stats, rate
from rifebench.paths import git_revision
from rifebench.report import repetitions
from rifebench.report import video as video_report
from rifebench.report.validity import line as validity_line
from rifebench.status import Status
from rifebench.warning_codes import line

RESULT_FILES = ("results.yaml", "results.json")
# 2: harness.git_revision, streams' start_iso/end_iso beside the monotonic start/end.
SCHEMA_VERSION = "2"


def _iso(mono: float | None, wall_minus_mono: float) -> str | None:
    """A time.monotonic() reading as UTC wall-clock time (one offset for the whole run)."""
    if mono is None:
        return None
    return dt.datetime.fromtimestamp(mono + wall_minus_mono, dt.UTC).isoformat(timespec="milliseconds")


def stream_summary(r: dict, t0: float, wall_minus_mono: float | None = None) -> dict:
    window = (r["end"] - r["start"]) if r.get("end") is not None else None
    if wall_minus_mono is None:
        wall_minus_mono = time.time() - time.monotonic()
    return {
        "id": r["id"],
        "status": r.get("status"),
        "pid": r.get("pid"),
        "cpus": r.get("cpus"),
        "threads": r.get("threads"),
        "pinned_by": r.get("pinned_by"),
        "mems_allowed": r.get("mems_allowed"),
        "mempolicy": r.get("mempolicy"),
        "device": r.get("device"),
        "runtime": r.get("runtime"),  # RUNTIME's name, version, settings, parity
        "frames": r.get("frames", 0),
        "images": r.get("images", 0),
        "throughput": rate(r.get("images", 0), window),
        "model_throughput": rate(r.get("images", 0), r.get("model_seconds")),
        "latency_ms": latency_stats(r.get("latency_ms", [])),
        "latency_clock": r.get("latency_clock"),
        "batch_sizes": sorted(set(r.get("batch_sizes") or [])),
        "submissions": len(r.get("batch_sizes") or []),
        "large_motion_count": r.get("large_motion_count"),
        "start": r.get("start"),
        "end": r.get("end"),
        "start_iso": _iso(r.get("start"), wall_minus_mono),
        "end_iso": _iso(r.get("end"), wall_minus_mono),
        "start_offset_s": None if r.get("start") is None else r["start"] - t0,
        "end_offset_s": None if r.get("end") is None else r["end"] - t0,
        "warmup": r.get("warmup"),
        "memory": r.get("memory"),
        "latency_samples_ms": r.get("latency_ms", []),
        "host_submit_samples_ms": r.get("host_submit_ms"),
    }


def aggregate(streams: list[dict], interpolation: int) -> dict:
    """Combined metrics over the streams that produced a result."""
    timed = [r for r in streams if r.get("end") is not None]
    if not timed:
        return {
            "frames": 0,
            "images": 0,
            "throughput": None,
            "latency_ms": latency_stats([]),
            "latency_per_pair_ms": latency_stats([]),
            "host_submit_ms": None,
        }
    first_start = min(r["start"] for r in timed)
    last_end = max(r["end"] for r in timed)
    overlap = min(r["end"] for r in timed) - max(r["start"] for r in timed)
    wall = last_end - first_start
    frames = sum(r["frames"] for r in timed)
    images = sum(r["images"] for r in timed)
    samples = [s for r in timed for s in r.get("latency_ms", [])]
    per_pair = [s for r in timed for s in r.get("latency_per_pair_ms") or r.get("latency_ms", [])]
    host = [s for r in timed for s in r.get("host_submit_ms") or []]
    scored_end = max((r.get("scored_end") or r["end"]) for r in timed)
    return {
        "frames": frames,
        "images": images,
        "interpolation": interpolation,
        "duration_s": wall,
        "throughput": rate(images, wall),
        "end_to_end_throughput": rate(images, scored_end - first_start),
        "throughput_pairs_s": rate(frames, wall),
        "latency_ms": latency_stats(samples),
        "latency_per_pair_ms": latency_stats(per_pair),
        "host_submit_ms": latency_stats(host) if host else None,
        "warmup_pairs": sum((r.get("warmup") or {}).get("pairs", 0) for r in timed),
        "warmup_s": max((r.get("warmup") or {}).get("seconds", 0.0) for r in timed),
        "window": {
            "first_start": first_start,
            "last_end": last_end,
            "overlap_s": max(overlap, 0.0),
            "overlap_pct": 100.0 * max(overlap, 0.0) / wall if wall > 0 else None,
        },
    }


def yaml_results(throughput, latency_ms, accuracy_pct) -> str:
    def r2(x):
        return None if x is None else round(float(x), 2)

    doc = {
        "results": [
            {"key": "throughput", "value": r2(throughput), "unit": "img/s"},
            {"key": "latency", "value": r2(latency_ms), "unit": "ms"},
            {"key": "accuracy", "value": r2(accuracy_pct), "unit": "percents"},
        ]
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write_json(output_dir: str, doc: dict) -> None:
    atomic_write_text(Path(output_dir) / "results.json", json.dumps(doc, indent=2, default=str) + "\n")


def write_yaml(output_dir: str, text: str) -> None:
    atomic_write_text(Path(output_dir) / "results.yaml", text)


def begin(cfg, model_info: dict) -> None:
    """Mark this run as running, so a crash of the launcher itself leaves a
    results.json that says so rather than nothing. The earlier run's results
    were set aside (set_aside_previous) before output.log was opened."""
    write_json(
        cfg.output_dir, {"status": "running", "created": now_iso(), "config": cfg.to_dict(), "model": model_info}
    )


def quality_section(cfg, streams: list[dict]) -> dict | None:
    """Dataset mode: merge the streams' per-frame scores and make the verdict."""
    if cfg.mode == "video":  # scored by frame dropping, or not at all (VIDEO_GT)
        return video_report.quality(cfg, streams)
    if cfg.dummy:
        return None
    from rifebench.measure.quality import merge

    return merge(cfg, [r.get("quality") for r in streams])


def finish(cfg, model_info: dict, outcomes: list, started_wall: float, peak: dict | None = None) -> tuple[dict, int]:
    """results.json (and results.yaml when the measurement is complete) from the
    repetitions' outcomes; returns the document and the exit status."""
    from rifebench.measure import sysinfo

    reps = [repetitions.analyse(cfg, o, model_info, peak, aggregate, quality_section, _knobs) for o in outcomes]
    rep = repetitions.representative(reps)
    status, failures = rep["status"], list(rep["failures"])
    validity = repetitions.overall_validity(reps)
    if cfg.validity == "strict" and not validity["valid"] and status == Status.PASSED:
        status = Status.FAILED
        failures.append(
            {"stream": None, "reason": f"VALIDITY=strict: invalid measurement ({', '.join(validity['reasons'])})"}
        )
    quality = rep["quality"]
    accuracy = quality["pass_pct"] if quality and quality["pass_pct"] is not None else 0.0
    t0 = rep["combined"].get("window", {}).get("first_start") or 0.0
    wall_minus_mono = time.time() - time.monotonic()  # taken once: every stream's ISO times agree
    write_fingerprint(cfg, rep["streams"])
    all_warnings = repetitions.merged_warnings(reps)
    metrics = metrics_section(cfg, rep["streams"], rep["combined"], quality, accuracy)
    metrics["throughput_img_s"] = statistics.median(r["combined"].get("throughput") or 0.0 for r in reps)
    metrics["ci95"] = repetitions.ci95(reps)
    doc = {
        "status": str(status),
        "exit_code": int(status.exit),
        "schema_version": SCHEMA_VERSION,
        "harness": {"name": "rifebench", "version": _version(), "git_revision": git_revision()},
        "created": now_iso(),
        "started": dt.datetime.fromtimestamp(started_wall, dt.UTC).isoformat(timespec="seconds"),
        "mode": cfg.mode,
        "mode_name": cfg.mode_name,  # "quality" for mode "dataset", as the console and README say
        "config": cfg.to_dict() | {"origin": cfg.origin},
        "model": model_info,
        "system": sysinfo.collect(),
        "metrics": metrics,
        "validity": validity,
        "repeat": cfg.repeat,
        "repetitions": [repetitions.record(i, r) for i, r in enumerate(reps)],
        "streams_from_repetition": reps.index(rep),
        "device_time": rep["device"],
        "quality": quality,
        "streams": [stream_summary(r, t0, wall_minus_mono) for r in rep["streams"]],
        "failures": failures,
        "warnings": [w for w in all_warnings if w.get("level", "warning") == "warning"],
        "notes": [w for w in all_warnings if w.get("level") == "note"],
        "pinning": rep["outcome"].pinning,
        "telemetry": rep["telemetry"],
        "knobs": rep["knobs"],
        "runtime": next((r["runtime"] for r in rep["streams"] if r.get("runtime")), None),
    }
    video_report.add(doc, cfg, rep["streams"])
    write_json(cfg.output_dir, doc)
    if status == Status.PASSED or (
        status == Status.FAILED
        and not rep["failures"]
        and ((quality and quality.get("verdict") in ("fail", "unchecked")) or not validity["valid"])
    ):
        write_yaml(cfg.output_dir, yaml_results(metrics["throughput_img_s"], metrics["latency_ms"]["mean"], accuracy))
    return doc, int(status.exit)


def metrics_section(cfg, streams: list[dict], combined: dict, quality, accuracy: float) -> dict:
    return {
        "throughput_img_s": combined.get("throughput"),
        "throughput_basis": "images / the timed window (first stream start to last stream end); in quality "
        "mode the predictions are scored and saved after the window",
        "model_throughput_img_s": model_throughput(streams),
        "end_to_end_throughput_img_s": combined.get("end_to_end_throughput"),
        "end_to_end_basis": None
        if cfg.dummy
        else "images / (window + scoring and saving after it); loading runs ahead in a thread during the window",
        "throughput_pairs_s": combined.get("throughput_pairs_s"),
        "latency_ms": combined["latency_ms"],
        "latency_per_pair_ms": combined["latency_per_pair_ms"],
        "host_submit_ms": combined["host_submit_ms"],
        "latency_basis": latency_basis(cfg, streams),
        "batch_size": cfg.batch_size,
        "frames": combined["frames"],
        "images": combined["images"],
        "duration_s": combined.get("duration_s"),
        "warmup_pairs": combined.get("warmup_pairs", 0),
        "warmup_s": combined.get("warmup_s"),
        "accuracy_pct": accuracy,
        "accuracy_note": None if quality else "dummy mode: accuracy is 0 and no quality verdict is made",
        "window": combined.get("window"),
    }


def write_fingerprint(cfg, streams: list[dict]) -> None:
    """--saveimages in dummy mode: the output frame of the dummy pair (t = 1/(N+1))
    that stream 0 returned, as 8-bit PNG and a lossless float copy, so that two
    runs of any configuration can be compared for quality."""
    frame = next((r.pop("fingerprint") for r in streams if r.get("fingerprint") is not None), None)
    for r in streams:
        r.pop("fingerprint", None)
    if frame is None:
        return
    import numpy as np

    from rifebench.data.images import save_png

    folder = Path(cfg.output_dir) / "images"
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, frame)
    atomic_write_bytes(folder / "dummy_0.npy", buf.getvalue())
    save_png(str(folder / "dummy_0.png"), frame)


def model_throughput(streams: list[dict]) -> float | None:
    """Images over the inference time alone (the sum of the timed regions). With
    several streams, the longest stream's inference time: as if the streams had
    only run the model, together from the common start."""
    timed = [r for r in streams if r.get("end") is not None and r.get("model_seconds")]
    if not timed:
        return None
    return rate(sum(r.get("images", 0) for r in timed), max(r["model_seconds"] for r in timed))


def _knobs(streams: list[dict]) -> dict | None:
    from rifebench.backends.knobs import summarize

    return summarize([r.get("knobs") for r in streams])


def latency_basis(cfg, streams: list[dict]) -> str:
    per = "per submission of BATCH_SIZE pairs" if cfg.batch_size > 1 else "per pair"
    if any(r.get("latency_clock") == "device events" for r in streams):
        return (
            f"{per}, device time from events recorded around each submission (read after the timed window); "
            f"host submission times are in host_submit_ms (ASYNC={cfg.async_}: how often the host waited)"
        )
    if cfg.platform == "cpu":
        return f"{per}, host clock; CPU execution is synchronous, so this is the true compute time"
    return f"{per}, host clock (this device has no timing events), device synchronised every {cfg.async_ or 'end'}"


def _version() -> str:
    from rifebench import __version__

    return __version__


def print_summary(doc: dict, log) -> None:
    m = doc["metrics"]
    lat = m["latency_ms"]

    def f(x, spec=".2f"):
        return "n/a" if x is None else format(x, spec)

    ci = (m.get("ci95") or {}).get("throughput_img_s")
    reps = f", median of {doc['repeat']} repetitions, 95% CI {f(ci[0])}-{f(ci[1])}" if ci else ""
    log(
        f"throughput: {f(m['throughput_img_s'])} img/s ({m['images']} images, {m['frames']} pairs in "
        f"{f(m['duration_s'])} s, {len(doc['streams'])} stream(s){reps})"
    )
    if doc["mode"] == "dataset":
        log(f"end to end, with scoring and saving after the window: {f(m.get('end_to_end_throughput_img_s'))} img/s")
    what = "per pair" if m.get("batch_size", 1) == 1 else f"per batch of {m['batch_size']}"
    clock = "device" if (doc.get("streams") or [{}])[0].get("latency_clock") == "device events" else "host"
    log(
        f"latency {what} ({clock} time): mean {f(lat['mean'])} ms, p50 {f(lat['p50'])}, p90 {f(lat['p90'])}, "
        f"p99 {f(lat['p99'])}, max {f(lat['max'])}, stdev {f(lat['stdev'])}"
        + (f" ({lat['percentile_note']})" if lat.get("percentile_note") else "")
    )
    if m.get("host_submit_ms"):
        log(f"host submission time: mean {f(m['host_submit_ms']['mean'])} ms, p50 {f(m['host_submit_ms']['p50'])}")
    dev = doc.get("device_time") or {}
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
        log(
            f"compute: {f(dev['gflop_per_pair'], '.3g')} GFLOP per pair, {f(dev['achieved_tflops'], '.3g')} TFLOP/s{share}"
        )
    video_report.log_lines(doc, log)
    if doc["quality"]:
        q = doc["quality"]
        log(
            f"quality: {q['passed']}/{q['tested']} frames >= {q['threshold_db']} dB ({f(q['pass_pct'])}%), "
            f"mean PSNR {f(q['psnr_mean'])} dB, SSIM {f(q['ssim_mean'], '.4f')}: verdict {q['verdict']}"
        )
        log(f"quality note: {q['note']}")
    else:
        log(
            video_report.NO_SCORES
            if doc["mode"] == "video"
            else "accuracy: 0 (performance mode (dummy): no quality verdict)"
        )
    for fail in doc["failures"]:
        if fail.get("partial_result"):  # the launcher has already printed the others
            log(f"error: stream {fail['stream']} failed: {fail['reason']}")
    if doc.get("knobs"):
        k = doc["knobs"]
        log(
            f"knobs ({k['preset']}): "
            + ", ".join(f"{n}={v}" for n, v in k["effective"].items() if k["source"].get(n) != "n/a")
        )
    for w in doc.get("warnings", []):
        log(line(w))
    log(validity_line(doc["validity"]))
    log(f"status: {doc['status']}")
