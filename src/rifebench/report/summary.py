"""One line per benchmark row: summary.csv and summary.md. Knows files, not models.

A row's figures come from its results.json; a row that crashed, was refused or
was interrupted shows its status and reason and no figures, so a failed row can
never pass for a measured one. A measured row carries its validity verdict and
warning codes beside its figures: a speed-up computed from an invalid row (row
1 measured while another process took the cores) is marked, never bare.
PSNR / SSIM are the quality figures of dataset rows (against the ground truth)
and, for dummy rows, the output fingerprint (images/dummy_0.npy) against row 1's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from rifebench.fsutil import atomic_write_text
from rifebench.report.summary_md import markdown
from rifebench.report.table import csv_text
from rifebench.status import Exit, Status

FINGERPRINT = Path("images") / "dummy_0.npy"
VS_TRUTH, VS_ROW1 = "ground truth", "row 1 output"


# --- the output fingerprint -----------------------------------------------------------


def fingerprint_diff(ref_path: Path, other_path: Path) -> dict:
    """PSNR (dB, on the float output; inf when identical), SSIM (8-bit) and max
    absolute error of two fingerprints, or a note saying why they cannot be compared."""
    import numpy as np

    try:
        ref, other = np.load(ref_path), np.load(other_path)
    except (OSError, ValueError) as exc:
        return {"note": f"cannot read a fingerprint: {exc}"}
    if ref.shape != other.shape:
        return {"note": f"fingerprints differ in shape {ref.shape} vs {other.shape}"}
    from rifebench.measure.quality import output_diff

    return output_diff(ref, other)


# --- one row ------------------------------------------------------------------------------


def load_results(test_dir: Path) -> dict | None:
    try:
        return json.loads((Path(test_dir) / "results.json").read_text())
    except (OSError, ValueError):
        return None


def _last_error(test_dir: Path) -> str | None:
    try:
        lines = [ln.strip() for ln in (Path(test_dir) / "console.log").read_text(errors="replace").splitlines()]
    except OSError:
        return None
    lines = [ln for ln in lines if ln]
    flagged = [ln for ln in lines if "error" in ln.lower()]
    return (flagged or lines or [None])[-1]


def row_record(row, test_dir: Path, exit_code: int | None, wall_s: float) -> dict:
    doc = load_results(test_dir)
    status, reason = _status(doc, exit_code, test_dir)
    rec = {
        "row": row.number,
        "cells": dict(row.cells),
        "status": status,
        "exit_code": exit_code,
        "reason": reason,
        "dir": Path(test_dir).name,
        "wall_s": wall_s,
    }
    if doc and doc.get("config"):
        rec.update(context(doc))
    if doc:
        rec.update(
            warnings=[w.get("code") for w in doc.get("warnings") or []],
            warning_details=[w for w in doc.get("warnings") or [] if w.get("code")],
        )
    measured = doc and doc.get("metrics") and not doc.get("failures") and doc.get("status") in ("passed", "failed")
    if measured:
        rec.update(measured_figures(doc))
        rec.update(gpu_figures(doc.get("telemetry")))
    return rec


def context(doc: dict) -> dict:
    """What a row ran: model, frame size, platform and the device's name."""
    cfg = doc["config"]
    size = (
        f"{cfg.get('data_width')}x{cfg.get('data_height')}"
        if doc.get("mode") not in ("dataset", "video")
        else f"{doc['mode']} {Path(str(cfg.get('dataset_dir') or '?')).name}"
    )
    return {
        "platform": cfg.get("platform"),
        "precision": cfg.get("precision"),
        "streams": cfg.get("streams"),
        "mode": doc.get("mode"),
        "model": (doc.get("model") or {}).get("name") or cfg.get("model"),
        "size": size,
        "device": device_name(doc),
    }


def device_name(doc: dict) -> str | None:
    """The device the streams ran on: their own description first; the machine's
    GPUs for a GPU run that lacks one."""
    names = [(s.get("device") or {}).get("name") for s in doc.get("streams") or []]
    names = sorted({n for n in names if n})
    if names:
        return " + ".join(names)
    system = doc.get("system") or {}
    if (doc.get("config") or {}).get("platform") == "cpu":
        return system.get("cpu_model")
    gpus = sorted({g.get("name") for g in system.get("gpus") or [] if g.get("name")})
    return " + ".join(gpus) or None


def measured_figures(doc: dict) -> dict:
    m = doc["metrics"]
    lat = m.get("latency_ms") or {}
    ci = (m.get("ci95") or {}).get("throughput_img_s") or [None, None]
    validity = doc.get("validity") or {}
    out = {
        "throughput_img_s": m.get("throughput_img_s"),
        "throughput_ci_low": ci[0],
        "throughput_ci_high": ci[1],
        "latency_mean_ms": lat.get("mean"),
        "latency_p50_ms": lat.get("p50"),
        "latency_p99_ms": lat.get("p99"),
        "accuracy_pct": m.get("accuracy_pct"),
        "duration_s": m.get("duration_s"),
        "latency_basis": m.get("latency_basis"),
        "peak_mem_mib": _peak_mem_mib(doc),
        "repeat": doc.get("repeat"),
        "valid": validity.get("valid"),
        "validity_reasons": list(validity.get("reasons") or []),
        "validity_checks": [c for c in validity.get("checks") or [] if c.get("triggered")],
    }
    q = doc.get("quality") or {}
    if q.get("psnr_mean") is not None:
        out.update(psnr_db=q["psnr_mean"], ssim=q.get("ssim_mean"), quality_basis=VS_TRUTH)
    return out


def _status(doc, exit_code, test_dir) -> tuple[str, str | None]:
    if exit_code == Exit.INTERRUPTED or (doc or {}).get("status") == Status.INTERRUPTED:
        return str(Status.INTERRUPTED), "interrupted (Ctrl-C or SIGTERM)"
    if exit_code == Exit.PASS and doc and doc.get("status") == Status.PASSED:
        return str(Status.PASSED), None
    failed = str(Status.FAILED)
    if doc and doc.get("failures"):
        f = doc["failures"][0]
        return failed, f"stream {f.get('stream')}: {f.get('reason')}"
    q = (doc or {}).get("quality") or {}
    if q.get("verdict") == "fail":
        return failed, f"quality verdict: {q.get('pass_pct'):.2f}% of frames >= {q.get('threshold_db')} dB"
    if exit_code == Exit.PASS:
        return failed, "exit status 0 but no passing results.json: not counted as a pass"
    return failed, f"exit status {exit_code}: {_last_error(test_dir) or 'no output'}"


def _peak_mem_mib(doc) -> float | None:
    """Device memory when the device reports it, else the process's peak RSS."""
    peaks = []
    for s in doc.get("streams", []):
        mem = s.get("memory") or {}
        v = mem.get("peak_allocated_bytes") or mem.get("peak_rss_bytes")
        if v:
            peaks.append(v)
    return max(peaks) / 2**20 if peaks else None


def add_reference(records: list[dict], bench_dir: Path) -> None:
    """Speed-up and fingerprint comparison of every measured row against row 1;
    a speed-up is marked when either row's measurement is invalid."""
    if not records or records[0].get("throughput_img_s") is None:
        return
    ref = records[0]
    ref_fp = Path(bench_dir) / ref["dir"] / FINGERPRINT
    for rec in records:
        if rec.get("throughput_img_s") is None:
            continue
        rec["speedup"] = rec["throughput_img_s"] / ref["throughput_img_s"] if ref["throughput_img_s"] else None
        rec["speedup_invalid"] = rec.get("valid") is False or ref.get("valid") is False
        fp = Path(bench_dir) / rec["dir"] / FINGERPRINT
        if rec.get("quality_basis") != VS_TRUTH and ref_fp.exists() and fp.exists():
            diff = fingerprint_diff(ref_fp, fp)
            rec.update({k: diff.get(k) for k in ("psnr_db", "ssim", "max_abs_err")})
            rec["quality_basis"] = VS_ROW1 if "note" not in diff else None
            if "note" in diff:
                rec["fingerprint_note"] = diff["note"]


def gpu_figures(tel: dict | None) -> dict:
    """The row's GPU columns from the run's telemetry, which covers the timed
    window only: mean utilisation over the GPUs, their mean powers summed (they
    draw together; unknown unless every GPU reports power), peak memory used."""
    gpus = (tel or {}).get("gpus") or []
    if not gpus:
        return {}
    util = [g["util_pct"]["mean"] for g in gpus if g.get("util_pct")]
    power = [g["power_w"]["mean"] for g in gpus if g.get("power_w")]
    mem = [g["mem_used_bytes"]["max"] for g in gpus if g.get("mem_used_bytes")]
    return {
        "gpu_util_pct": math.fsum(util) / len(util) if util else None,
        "gpu_power_w": math.fsum(power) if power and len(power) == len(gpus) else None,
        "gpu_mem_used_mib": max(mem) / 2**20 if mem else None,
        "telemetry_tool": tel.get("gpu_source"),
    }


def write(
    bench_dir: Path, meta: dict, system: dict, header: list[str], records: list[dict], plots: list[str] | None = None
) -> None:
    atomic_write_text(Path(bench_dir) / "summary.csv", csv_text(header, records))
    atomic_write_text(Path(bench_dir) / "summary.md", markdown(meta, system, header, records, plots or []))
