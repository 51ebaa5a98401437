"""One line per benchmark row: summary.csv and summary.md. Knows files, not models.

A row's figures come from its results.json, read through the schema
(report/schema.py); a row that crashed, was refused or was interrupted shows its
status and reason and no figures, so a failed row can never pass for a measured
one, and a results.json that cannot be read (not JSON, of a schema_version
this rifebench does not read, or holding a figure that is no finite number of
its declared type: report/shape.py) makes a failed row that says so. A measured row
carries its validity verdict and warning codes beside its figures: a speed-up
computed from an invalid row (row 1 measured while another process took the
cores) is marked, never bare. PSNR / SSIM are the quality figures of dataset
rows (against the ground truth) and, for dummy rows, the output fingerprint
(images/dummy_0.npy) against row 1's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rifebench.fsutil import atomic_write_text
from rifebench.report.fingerprint import FINGERPRINT, fingerprint_diff
from rifebench.report.schema import RunNotFinished, RunResult, SchemaError, results_path
from rifebench.report.schema import load_results as load_run
from rifebench.report.summary_md import markdown
from rifebench.report.table import RowRecord, summary_csv
from rifebench.status import Exit, Status

VS_TRUTH, VS_ROW1 = "ground truth", "row 1 output"


# --- one row ------------------------------------------------------------------------------


def load_results(test_dir: Path) -> RunResult | None:
    """A row's results; None when it wrote none (it died before its end). A file
    that is there but not a finished run of a known schema raises SchemaError."""
    if not results_path(test_dir).exists():
        return None
    try:
        return load_run(test_dir)
    except RunNotFinished:  # the document written at the start: the run died before its end
        return None


def _last_error(test_dir: Path) -> str | None:
    """The row's last error, whole: a message of several lines (the weights fetch's
    one line per source tried, indented under "...:") is joined into one."""
    try:
        lines = [ln.rstrip() for ln in (Path(test_dir) / "console.log").read_text(errors="replace").splitlines()]
    except OSError:
        return None
    heads = [i for i, ln in enumerate(lines) if ln and not ln[0].isspace()]
    flagged = [i for i in heads if "error" in lines[i].lower()] or heads
    if not flagged:
        return None
    first = flagged[-1]
    more = []
    for ln in lines[first + 1 :]:
        if not ln or not ln[0].isspace():
            break
        more.append(ln.strip())
    return lines[first].strip() + (" " + "; ".join(more) if more else "")


def row_record(
    number: int,
    cells: Mapping[str, str],
    test_dir: Path,
    exit_code: int | None,
    wall_s: float,
    where: Mapping[str, str] | None = None,
    planned: Mapping[str, Any] | None = None,
) -> RowRecord:
    """`where`: where each option variable's value came from (benchmark.sh knows:
    profile, environment, default); `planned`: the row's configuration as resolved
    before it ran, for a row that wrote no results."""
    try:
        run, problem = load_results(test_dir), None
    except SchemaError as exc:  # unreadable, or another version's: a failed row that says so
        run, problem = None, str(exc)
    rec = record_of(number, cells, test_dir, exit_code, wall_s, run, problem)
    config = run.config if run and run.config else dict(planned or {})
    rec.settings, rec.settings_from = settings_of(config, where)
    return rec


def settings_of(
    config: Mapping[str, Any], where: Mapping[str, str] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """Every option variable's value as the row ran it (results.json `config`, as
    text) and where it came from: `where`'s word (profile, environment, ...; without
    it the run's own: flag, env, default), and what the run settled on this
    machine, from its `config.origin` ("default (auto -> cpu)")."""
    from rifebench.options import OPTIONS

    origin = config.get("origin") or {}
    values, sources = {}, {}
    for o in OPTIONS:
        values[o.env] = setting_text(config.get(o.name.rstrip("_")))
        own = str(origin.get(o.name) or "default")
        settled = re.search(r"\(([^()]*->[^()]*)\)$", own)
        word = where.get(o.env, "default") if where is not None else own.split(" (")[0]
        sources[o.env] = word + (f" ({settled.group(1)})" if settled else "")
    return values, sources


def setting_text(value: Any) -> str:
    """An option's value as a variable would spell it ("" for unset)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def record_of(
    number: int,
    cells: Mapping[str, str],
    test_dir: Path,
    exit_code: int | None,
    wall_s: float,
    run: RunResult | None,
    problem: str | None = None,
) -> RowRecord:
    """The row's record from its loaded results (None: it wrote none); `problem`:
    why its results.json could not be read, which makes the row failed."""
    rec = RowRecord(number, dict(cells), "", exit_code=exit_code, dir=Path(test_dir).name, wall_s=wall_s)
    rec.status, rec.reason = _status(run, exit_code, test_dir)
    if problem is not None and rec.status != Status.INTERRUPTED:
        rec.status, rec.reason = str(Status.FAILED), problem
    if run is None:
        return rec
    if run.config:
        rec.update(context(run))
    rec.warnings = [w.get("code") for w in run.warnings]
    rec.warning_details = [w for w in run.warnings if w.get("code")]
    if not run.failures and run.status in (Status.PASSED, Status.FAILED):
        rec.update(measured_figures(run))
        rec.update(gpu_figures(run.telemetry))
    return rec


def context(run: RunResult) -> dict[str, Any]:
    """What a row ran: model, frame size, platform and the device's name."""
    cfg = run.config
    size = (
        f"{cfg.get('data_width')}x{cfg.get('data_height')}"
        if run.mode not in ("dataset", "video")
        else f"{run.mode} {Path(str(cfg.get('dataset_dir') or '?')).name}"
    )
    return {
        "platform": cfg.get("platform"),
        "precision": cfg.get("precision"),
        "streams": cfg.get("streams"),
        "mode": run.mode,
        "model": (run.model or {}).get("name") or cfg.get("model"),
        "size": size,
        "device": device_name(run),
    }


def device_name(run: RunResult) -> str | None:
    """The device the streams ran on: their own description first; the machine's
    GPUs for a GPU run that lacks one."""
    names = sorted({n for s in run.streams if (n := (s.device or {}).get("name"))})
    if names:
        return " + ".join(names)
    system = run.system or {}
    if run.config.get("platform") == "cpu":
        model: str | None = system.get("cpu_model")
        return model
    gpus = sorted({g.get("name") for g in system.get("gpus") or [] if g.get("name")})
    return " + ".join(gpus) or None


def measured_figures(run: RunResult) -> dict[str, Any]:
    m, validity = run.metrics, run.validity
    ci = (m.ci95 or {}).get("throughput_img_s") or [None, None]
    out = {
        "throughput_img_s": m.throughput_img_s,
        "throughput_ci_low": ci[0],
        "throughput_ci_high": ci[1],
        "latency_mean_ms": m.latency_ms.mean,
        "latency_p50_ms": m.latency_ms.p50,
        "latency_p99_ms": m.latency_ms.p99,
        "accuracy_pct": m.accuracy_pct,
        "duration_s": m.duration_s,
        "latency_basis": m.latency_basis,
        "peak_mem_mib": _peak_mem_mib(run),
        "repeat": run.repeat,
        "valid": validity.valid,
        "validity_reasons": list(validity.reasons),
        "validity_checks": [c.to_dict() for c in validity.checks or [] if c.triggered],
    }
    q = run.quality or {}
    if q.get("psnr_mean") is not None:
        out.update(psnr_db=q["psnr_mean"], ssim=q.get("ssim_mean"), quality_basis=VS_TRUTH)
    return out


def _status(run: RunResult | None, exit_code: int | None, test_dir: Path) -> tuple[str, str | None]:
    if exit_code == Exit.INTERRUPTED or (run and run.status == Status.INTERRUPTED):
        return str(Status.INTERRUPTED), "interrupted (Ctrl-C or SIGTERM)"
    if exit_code == Exit.PASS and run and run.status == Status.PASSED:
        return str(Status.PASSED), None
    failed = str(Status.FAILED)
    if run and run.failures:
        f = run.failures[0]
        return failed, f"stream {f.get('stream')}: {f.get('reason')}"
    q = (run.quality if run else None) or {}
    if q.get("verdict") == "fail":
        pct = q.get("pass_pct")
        bar = q.get("min_pass_pct")
        return (
            failed,
            f"quality verdict: {'?' if pct is None else f'{pct:.2f}'}% of frames >= {q.get('threshold_db')} dB"
            + ("" if bar is None else f" (needs >= {bar:g}%, MIN_PASS_PCT)"),
        )
    if exit_code == Exit.PASS:
        return failed, "exit status 0 but no passing results.json: not counted as a pass"
    return failed, f"exit status {exit_code}: {_last_error(test_dir) or 'no output'}"


def _peak_mem_mib(run: RunResult) -> float | None:
    """Device memory when the device reports it, else the process's peak RSS."""
    peaks = []
    for s in run.streams:
        mem = s.memory or {}
        v = mem.get("peak_allocated_bytes") or mem.get("peak_rss_bytes")
        if v:
            peaks.append(v)
    return max(peaks) / 2**20 if peaks else None


def add_reference(records: Sequence[RowRecord], bench_dir: Path) -> None:
    """Speed-up and fingerprint comparison of every measured row against row 1;
    a speed-up is marked when either row's measurement is invalid."""
    if not records or records[0].throughput_img_s is None:
        return
    ref = records[0]
    ref_tp = ref.throughput_img_s
    ref_fp = Path(bench_dir) / (ref.dir or "") / FINGERPRINT
    for rec in records:
        if rec.throughput_img_s is None:
            continue
        rec.speedup = rec.throughput_img_s / ref_tp if ref_tp else None
        rec.speedup_invalid = rec.valid is False or ref.valid is False
        fp = Path(bench_dir) / (rec.dir or "") / FINGERPRINT
        if rec.quality_basis != VS_TRUTH and ref_fp.exists() and fp.exists():
            diff = fingerprint_diff(ref_fp, fp)
            rec.update({k: diff.get(k) for k in ("psnr_db", "ssim", "max_abs_err")})
            rec.quality_basis = VS_ROW1 if "note" not in diff else None
            if "note" in diff:
                rec.fingerprint_note = diff["note"]


def gpu_figures(tel: dict[str, Any] | None) -> dict[str, Any]:
    """The row's GPU columns from the run's telemetry, which covers the timed
    window only: mean utilisation over the GPUs, their mean powers summed (they
    draw together; unknown unless every GPU reports power), peak memory used."""
    gpus = (tel or {}).get("gpus") or []
    if not gpus:
        return {}
    util = [v for g in gpus if (v := (g.get("util_pct") or {}).get("mean")) is not None]
    power = [v for g in gpus if (v := (g.get("power_w") or {}).get("mean")) is not None]
    mem = [v for g in gpus if (v := (g.get("mem_used_bytes") or {}).get("max")) is not None]
    return {
        "gpu_util_pct": math.fsum(util) / len(util) if util else None,
        "gpu_power_w": math.fsum(power) if power and len(power) == len(gpus) else None,
        "gpu_mem_used_mib": max(mem) / 2**20 if mem else None,
        "telemetry_tool": (tel or {}).get("gpu_source"),
    }


def write(
    bench_dir: Path,
    meta: dict[str, Any],
    system: dict[str, Any],
    header: Sequence[str],
    records: Sequence[RowRecord],
    plots: Sequence[str] = (),
) -> None:
    atomic_write_text(Path(bench_dir) / "summary.csv", summary_csv(header, records))
    atomic_write_text(Path(bench_dir) / "summary.md", markdown(meta, system, header, records, plots))
