"""Aggregation and the result files. Knows files, not models.

Combined throughput is total frames over (last end - first start) on the one
monotonic clock all streams share; combined latency percentiles come from all
streams' raw samples. results.yaml keeps the reference's exact shape.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import yaml

from .fsutil import atomic_write_text
from .metrics import latency_stats, rate

RESULT_FILES = ("results.yaml", "results.json")


def set_aside_previous(output_dir: str) -> None:
    """A stale results.yaml from an earlier run must not pass for this run's:
    move old result files to *.prev before anything runs."""
    for name in RESULT_FILES:
        path = Path(output_dir) / name
        if path.exists():
            os.replace(path, path.with_name(name + ".prev"))


def stream_summary(r: dict, t0: float) -> dict:
    window = (r["end"] - r["start"]) if r.get("end") is not None else None
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
        "frames": r.get("frames", 0),
        "images": r.get("images", 0),
        "throughput": rate(r.get("images", 0), window),
        "model_throughput": rate(r.get("images", 0), r.get("model_seconds")),
        "latency_ms": latency_stats(r.get("latency_ms", [])),
        "start": r.get("start"),
        "end": r.get("end"),
        "start_offset_s": None if r.get("start") is None else r["start"] - t0,
        "end_offset_s": None if r.get("end") is None else r["end"] - t0,
        "warmup": r.get("warmup"),
        "memory": r.get("memory"),
        "latency_samples_ms": r.get("latency_ms", []),
    }


def aggregate(streams: list[dict], interpolation: int) -> dict:
    """Combined metrics over the streams that produced a result."""
    timed = [r for r in streams if r.get("end") is not None]
    if not timed:
        return {"frames": 0, "images": 0, "throughput": None, "latency_ms": latency_stats([])}
    first_start = min(r["start"] for r in timed)
    last_end = max(r["end"] for r in timed)
    overlap = min(r["end"] for r in timed) - max(r["start"] for r in timed)
    wall = last_end - first_start
    frames = sum(r["frames"] for r in timed)
    images = sum(r["images"] for r in timed)
    samples = [s for r in timed for s in r.get("latency_ms", [])]
    return {
        "frames": frames,
        "images": images,
        "interpolation": interpolation,
        "duration_s": wall,
        "throughput": rate(images, wall),
        "throughput_pairs_s": rate(frames, wall),
        "latency_ms": latency_stats(samples),
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

    doc = {"results": [
        {"key": "throughput", "value": r2(throughput), "unit": "img/s"},
        {"key": "latency", "value": r2(latency_ms), "unit": "ms"},
        {"key": "accuracy", "value": r2(accuracy_pct), "unit": "percents"},
    ]}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def write_json(output_dir: str, doc: dict) -> None:
    atomic_write_text(Path(output_dir) / "results.json", json.dumps(doc, indent=2, default=str) + "\n")


def write_yaml(output_dir: str, text: str) -> None:
    atomic_write_text(Path(output_dir) / "results.yaml", text)


def begin(cfg, model_info: dict) -> None:
    """Set stale results aside and mark this run as running, so a crash of the
    launcher itself leaves a results.json that says so rather than nothing."""
    set_aside_previous(cfg.output_dir)
    write_json(cfg.output_dir, {"status": "running", "created": now_iso(), "config": cfg.to_dict(),
                                "model": model_info})


def quality_section(cfg, streams: list[dict]) -> dict | None:
    """Dataset mode: merge the streams' per-frame scores and make the verdict."""
    if cfg.dummy:
        return None
    from .quality import merge

    return merge(cfg, [r.get("quality") for r in streams])


def finish(cfg, model_info: dict, outcome, started_wall: float) -> tuple[dict, int]:
    from . import sysinfo

    combined = aggregate(outcome.streams, cfg.interpolation)
    t0 = combined.get("window", {}).get("first_start") or 0.0
    quality = quality_section(cfg, outcome.streams)
    # A stream that failed mid-run (dataset mode) still returns its measured frames.
    failures = outcome.failures + [{"stream": r["id"], "reason": r["error"], "partial_result": True}
                                   for r in outcome.streams if r.get("status") == "failed" and r.get("error")]
    status = outcome.status  # completed | failed | interrupted
    if status == "completed":
        status = "failed" if failures or (quality and quality.get("verdict") != "pass") else "passed"
    exit_code = {"passed": 0, "failed": 1, "interrupted": 130}[status]
    accuracy = quality["pass_pct"] if quality and quality["pass_pct"] is not None else 0.0
    model_tp = model_throughput(outcome.streams)
    headline = combined.get("throughput") if cfg.dummy else model_tp
    doc = {
        "status": status,
        "exit_code": exit_code,
        "harness": {"name": "rifebench", "version": _version()},
        "created": now_iso(),
        "started": dt.datetime.fromtimestamp(started_wall, dt.timezone.utc).isoformat(timespec="seconds"),
        "mode": cfg.mode,
        "config": cfg.to_dict() | {"origin": cfg.origin},
        "model": model_info,
        "system": sysinfo.collect(),
        "metrics": {
            "throughput_img_s": headline,
            "throughput_basis": ("images / wall time of the timed loop" if cfg.dummy else
                                 "model throughput: data loading and scoring are outside the timed region"),
            "model_throughput_img_s": model_tp,
            "end_to_end_throughput_img_s": combined.get("throughput"),
            "throughput_pairs_s": combined.get("throughput_pairs_s"),
            "latency_ms": combined["latency_ms"],
            "latency_basis": latency_basis(cfg),
            "frames": combined["frames"],
            "images": combined["images"],
            "duration_s": combined.get("duration_s"),
            "warmup_pairs": combined.get("warmup_pairs", 0),
            "warmup_s": combined.get("warmup_s"),
            "accuracy_pct": accuracy,
            "accuracy_note": None if quality else "dummy mode: accuracy is 0 and no quality verdict is made",
            "window": combined.get("window"),
        },
        "quality": quality,
        "streams": [stream_summary(r, t0) for r in outcome.streams],
        "failures": failures,
        "warnings": outcome.warnings,
        "pinning": outcome.pinning,
        "telemetry": getattr(outcome, "telemetry", None),
        "knobs": _knobs(outcome.streams),
    }
    write_json(cfg.output_dir, doc)
    if status == "passed" or (status == "failed" and not failures and quality
                              and quality.get("verdict") in ("fail", "unchecked")):
        write_yaml(cfg.output_dir, yaml_results(headline, combined["latency_ms"]["mean"], accuracy))
    return doc, exit_code


def model_throughput(streams: list[dict]) -> float | None:
    """Images over the inference time alone (the sum of the timed regions). With
    several streams, the longest stream's inference time: as if the streams had
    only run the model, together from the common start."""
    timed = [r for r in streams if r.get("end") is not None and r.get("model_seconds")]
    if not timed:
        return None
    return rate(sum(r.get("images", 0) for r in timed), max(r["model_seconds"] for r in timed))


def _knobs(streams: list[dict]) -> dict | None:
    from .knobs import summarize

    return summarize([r.get("knobs") for r in streams])


def latency_basis(cfg) -> str:
    if cfg.platform == "cpu":
        return "per pair, host clock; CPU execution is synchronous, so this is the true compute time"
    if not cfg.dummy or cfg.async_ == 1:
        return "per pair, host clock, device synchronised after every pair"
    if cfg.async_ == 0:
        return ("per pair, host clock, device synchronised only at the end: samples are host submission "
                "times except the last, which includes the queue drain; use ASYNC=1 for device latency")
    return (f"per pair, host clock, device synchronised every {cfg.async_} pairs: the pair at each sync "
            "carries the queued work of its group")


def _version() -> str:
    from . import __version__

    return __version__


def print_summary(doc: dict, log) -> None:
    m = doc["metrics"]
    lat = m["latency_ms"]

    def f(x, spec=".2f"):
        return "n/a" if x is None else format(x, spec)

    if doc["mode"] == "dataset":
        log(f"model throughput: {f(m['throughput_img_s'])} img/s (inference only); end to end, with loading, "
            f"scoring and saving: {f(m.get('end_to_end_throughput_img_s'))} img/s ({m['images']} images, "
            f"{m['frames']} pairs in {f(m['duration_s'])} s, {len(doc['streams'])} stream(s))")
    else:
        log(f"throughput: {f(m['throughput_img_s'])} img/s ({m['images']} images, {m['frames']} pairs in "
            f"{f(m['duration_s'])} s, {len(doc['streams'])} stream(s))")
    log(f"latency per pair: mean {f(lat['mean'])} ms, p50 {f(lat['p50'])}, p90 {f(lat['p90'])}, "
        f"p99 {f(lat['p99'])}, max {f(lat['max'])}, stdev {f(lat['stdev'])}")
    if doc["quality"]:
        q = doc["quality"]
        log(f"quality: {q['passed']}/{q['tested']} frames >= {q['threshold_db']} dB ({f(q['pass_pct'])}%), "
            f"mean PSNR {f(q['psnr_mean'])} dB, SSIM {f(q['ssim_mean'], '.4f')}: verdict {q['verdict']}")
        log(f"quality note: {q['note']}")
    else:
        log("accuracy: 0 (dummy mode: no quality verdict)")
    for fail in doc["failures"]:
        if fail.get("partial_result"):  # the launcher has already printed the others
            log(f"error: stream {fail['stream']} failed: {fail['reason']}")
    if doc.get("knobs"):
        k = doc["knobs"]
        log(f"knobs ({k['preset']}): " + ", ".join(f"{n}={v}" for n, v in k["effective"].items()
                                                  if k["source"].get(n) != "n/a"))
        for f in k["fallbacks"]:
            log(f"knob fallback: {f['knob']} {f['wanted']} -> {f['effective']}: {f['reason']}")
    log(f"status: {doc['status']}")
