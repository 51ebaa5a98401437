"""The result files: results.json (a report.schema.RunResult) and results.yaml
(the reference's exact shape), from the repetitions' outcomes. Knows files,
not models.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from rifebench.console import now_iso
from rifebench.fsutil import atomic_write_bytes, atomic_write_text
from rifebench.measure.records import StreamResult
from rifebench.paths import git_revision
from rifebench.report import repetitions
from rifebench.report import video as video_report
from rifebench.report.aggregate import Combined, model_throughput, stream_summary
from rifebench.report.repetitions import Analysis, Outcome
from rifebench.report.schema import SCHEMA_VERSION, Metrics, RunResult, Validity
from rifebench.status import Status

RESULT_FILES = ("results.yaml", "results.json")


def yaml_results(
    throughput: float | None,
    latency_ms: float | None,
    accuracy_pct: float | None,
    status: str | None = None,
    validity: Validity | None = None,
) -> str:
    """The reference's three `results` entries, unchanged; beside them the run's
    `status` and `validity` (valid, reasons), so a collector reading results.yaml
    alone can leave out an invalid measurement."""

    def r2(x: float | None) -> float | None:
        return None if x is None else round(float(x), 2)

    doc: dict[str, Any] = {
        "results": [
            {"key": "throughput", "value": r2(throughput), "unit": "img/s"},
            {"key": "latency", "value": r2(latency_ms), "unit": "ms"},
            {"key": "accuracy", "value": r2(accuracy_pct), "unit": "percents"},
        ]
    }
    if status is not None:
        doc["status"] = status
    if validity is not None:
        doc["validity"] = {"valid": validity.valid, "reasons": list(validity.reasons)}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def write_json(output_dir: str, doc: dict[str, Any]) -> None:
    atomic_write_text(Path(output_dir) / "results.json", json.dumps(doc, indent=2, default=str) + "\n")


def write_yaml(output_dir: str, text: str) -> None:
    atomic_write_text(Path(output_dir) / "results.yaml", text)


def begin(cfg: Any, model_info: dict[str, Any]) -> None:
    """Mark this run as running, so a crash of the launcher itself leaves a
    results.json that says so rather than nothing (schema.load_results refuses
    it as RunNotFinished). The earlier run's results were set aside
    (set_aside_previous) before output.log was opened."""
    write_json(
        cfg.output_dir, {"status": "running", "created": now_iso(), "config": cfg.to_dict(), "model": model_info}
    )


def quality_section(cfg: Any, streams: list[StreamResult]) -> dict[str, Any] | None:
    """Dataset mode: merge the streams' per-frame scores and make the verdict."""
    if cfg.mode == "video":  # scored by frame dropping, or not at all (VIDEO_GT)
        return video_report.quality(cfg, streams)
    if cfg.dummy:
        return None
    from rifebench.measure.quality import merge

    merged: dict[str, Any] = merge(cfg, [r.quality for r in streams])
    return merged


def _judged(cfg: Any, rep: Analysis, validity: Validity) -> tuple[Status, list[dict[str, Any]]]:
    """The run's status and failures: VALIDITY=strict fails a passing run that is not valid."""
    status, failures = rep.status, list(rep.failures)
    if cfg.validity == "strict" and not validity.valid and status == Status.PASSED:
        status = Status.FAILED
        reason = f"VALIDITY=strict: invalid measurement ({', '.join(validity.reasons)})"
        failures.append({"stream": None, "reason": reason})
    return status, failures


def finish(
    cfg: Any,
    model_info: dict[str, Any],
    outcomes: list[Outcome],
    started_wall: float,
    peak: dict[str, Any] | None = None,
) -> tuple[RunResult, int]:
    """results.json (and results.yaml when the measurement is complete) from the
    repetitions' outcomes; returns the document and the exit status."""
    reps = [repetitions.analyse(cfg, o, model_info, peak, quality_section, _knobs) for o in outcomes]
    rep = repetitions.representative(reps)
    validity = repetitions.overall_validity(reps)
    status, failures = _judged(cfg, rep, validity)
    run = _document(cfg, model_info, reps, rep, started_wall)
    run.status, run.exit_code, run.failures, run.validity = str(status), int(status.exit), failures, validity
    video_report.add(run, cfg, rep.streams)
    write_json(cfg.output_dir, run.to_dict())
    quality = rep.quality
    if status == Status.PASSED or (
        status == Status.FAILED
        and not rep.failures
        and ((quality and quality.get("verdict") in ("fail", "unchecked")) or not validity.valid)
    ):
        m = run.metrics
        write_yaml(
            cfg.output_dir, yaml_results(m.throughput_img_s, m.latency_ms.mean, m.accuracy_pct, run.status, validity)
        )
    return run, int(status.exit)


def _document(
    cfg: Any, model_info: dict[str, Any], reps: list[Analysis], rep: Analysis, started_wall: float
) -> RunResult:
    """The RunResult of the representative repetition; status, failures and
    validity are the caller's."""
    from rifebench.measure import sysinfo

    quality = rep.quality
    accuracy = quality["pass_pct"] if quality and quality["pass_pct"] is not None else 0.0
    t0 = (rep.combined.window.first_start if rep.combined.window else None) or 0.0
    wall_minus_mono = time.time() - time.monotonic()  # taken once: every stream's ISO times agree
    write_fingerprint(cfg, rep.streams)
    all_warnings = repetitions.merged_warnings(reps)
    metrics = metrics_section(cfg, rep.streams, rep.combined, quality, accuracy)
    metrics.throughput_img_s = statistics.median(r.combined.throughput or 0.0 for r in reps)
    metrics.ci95 = repetitions.ci95(reps)
    return RunResult(
        status=str(rep.status),
        exit_code=int(rep.status.exit),
        schema_version=SCHEMA_VERSION,
        harness={"name": "rifebench", "version": _version(), "git_revision": git_revision()},
        created=now_iso(),
        started=dt.datetime.fromtimestamp(started_wall, dt.UTC).isoformat(timespec="seconds"),
        mode=cfg.mode,
        mode_name=cfg.mode_name,  # "quality" for mode "dataset", as the console and README say
        config=cfg.to_dict() | {"origin": cfg.origin},
        model=model_info,
        system=sysinfo.collect(),
        metrics=metrics,
        repeat=cfg.repeat,
        repetitions=[repetitions.record(i, r) for i, r in enumerate(reps)],
        streams_from_repetition=reps.index(rep),
        device_time=rep.device,
        quality=quality,
        streams=[stream_summary(r, t0, wall_minus_mono) for r in rep.streams],
        warnings=[w for w in all_warnings if w.get("level", "warning") == "warning"],
        notes=[w for w in all_warnings if w.get("level") == "note"],
        pinning=rep.outcome.pinning,
        telemetry=rep.telemetry,
        knobs=rep.knobs,
        runtime=next((r.runtime for r in rep.streams if r.runtime), None),
    )


def metrics_section(
    cfg: Any, streams: list[StreamResult], combined: Combined, quality: dict[str, Any] | None, accuracy: float
) -> Metrics:
    return Metrics(
        throughput_img_s=combined.throughput,
        throughput_basis="images / the timed window (first stream start to last stream end); in quality "
        "mode the predictions are scored and saved after the window",
        model_throughput_img_s=model_throughput(streams),
        end_to_end_throughput_img_s=combined.end_to_end_throughput,
        end_to_end_basis=None
        if cfg.dummy
        else "images / (window + scoring and saving after it); loading runs ahead in a thread during the window",
        throughput_pairs_s=combined.throughput_pairs_s,
        latency_ms=combined.latency_ms,
        latency_per_pair_ms=combined.latency_per_pair_ms,
        host_submit_ms=combined.host_submit_ms,
        latency_basis=latency_basis(cfg, streams),
        batch_size=cfg.batch_size,
        frames=combined.frames,
        images=combined.images,
        duration_s=combined.duration_s,
        warmup_pairs=combined.warmup_pairs,
        warmup_s=combined.warmup_s,
        accuracy_pct=accuracy,
        accuracy_note=None if quality else "dummy mode: accuracy is 0 and no quality verdict is made",
        window=combined.window,
    )


def write_fingerprint(cfg: Any, streams: list[StreamResult]) -> None:
    """--saveimages in dummy mode: the output frame of the dummy pair (t = 1/(N+1))
    that stream 0 returned, as 8-bit PNG and a lossless float copy, so that two
    runs of any configuration can be compared for quality."""
    frame = next((r.fingerprint for r in streams if r.fingerprint is not None), None)
    for r in streams:
        r.fingerprint = None  # written once; a large frame need not live on
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


def _knobs(streams: list[StreamResult]) -> dict[str, Any] | None:
    from rifebench.backends.knobs import summarize

    summary: dict[str, Any] | None = summarize([r.knobs for r in streams])
    return summary


def latency_basis(cfg: Any, streams: list[StreamResult]) -> str:
    per = "per submission of BATCH_SIZE pairs" if cfg.batch_size > 1 else "per pair"
    if any(r.latency_clock == "device events" for r in streams):
        return (
            f"{per}, device time from events recorded around each submission (read after the timed window); "
            f"host submission times are in host_submit_ms (ASYNC={cfg.async_}: how often the host waited)"
        )
    if cfg.platform == "cpu":
        return f"{per}, host clock; CPU execution is synchronous, so this is the true compute time"
    return f"{per}, host clock (this device has no timing events), device synchronised every {cfg.async_ or 'end'}"


def _version() -> str:
    from rifebench import __version__

    return str(__version__)
