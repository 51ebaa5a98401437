"""One line per benchmark row: summary.csv and summary.md. Knows files, not models.

A row's figures come from its results.json; a row that crashed, was refused or
was interrupted shows its status and reason and no figures, so a failed row can
never pass for a measured one. Speed-up and the output-fingerprint comparison
(PSNR / SSIM / max error of images/dummy_0.npy) are against the first row.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from rifebench.fsutil import atomic_write_text
from rifebench.status import Exit, Status

FINGERPRINT = Path("images") / "dummy_0.npy"
METRICS = ("throughput_img_s", "latency_mean_ms", "latency_p50_ms", "latency_p99_ms", "accuracy_pct",
           "peak_mem_mib", "speedup", "psnr_db", "ssim", "max_abs_err", "gpu_util_pct", "gpu_power_w",
           "gpu_mem_used_mib", "duration_s")


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
    rec = {"row": row.number, "cells": dict(row.cells), "status": status, "exit_code": exit_code,
           "reason": reason, "dir": Path(test_dir).name, "wall_s": wall_s}
    if doc and doc.get("config"):
        cfg = doc["config"]
        rec.update(platform=cfg.get("platform"), precision=cfg.get("precision"), streams=cfg.get("streams"),
                   mode=doc.get("mode"))
    measured = doc and doc.get("metrics") and not doc.get("failures") and doc.get("status") in ("passed", "failed")
    if measured:
        m = doc["metrics"]
        lat = m.get("latency_ms") or {}
        rec.update(throughput_img_s=m.get("throughput_img_s"), latency_mean_ms=lat.get("mean"),
                   latency_p50_ms=lat.get("p50"), latency_p99_ms=lat.get("p99"),
                   accuracy_pct=m.get("accuracy_pct"), duration_s=m.get("duration_s"),
                   latency_basis=m.get("latency_basis"), peak_mem_mib=_peak_mem_mib(doc))
        rec.update(gpu_figures(doc.get("telemetry")))
    return rec


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
    return max(peaks) / 2 ** 20 if peaks else None


def add_reference(records: list[dict], bench_dir: Path) -> None:
    """Speed-up and fingerprint comparison of every measured row against row 1."""
    if not records or records[0].get("throughput_img_s") is None:
        return
    ref = records[0]
    ref_fp = Path(bench_dir) / ref["dir"] / FINGERPRINT
    for rec in records:
        if rec.get("throughput_img_s") is None:
            continue
        rec["speedup"] = rec["throughput_img_s"] / ref["throughput_img_s"] if ref["throughput_img_s"] else None
        fp = Path(bench_dir) / rec["dir"] / FINGERPRINT
        if ref_fp.exists() and fp.exists():
            diff = fingerprint_diff(ref_fp, fp)
            rec.update({k: diff.get(k) for k in ("psnr_db", "ssim", "max_abs_err")})
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
    return {"gpu_util_pct": math.fsum(util) / len(util) if util else None,
            "gpu_power_w": math.fsum(power) if power and len(power) == len(gpus) else None,
            "gpu_mem_used_mib": max(mem) / 2 ** 20 if mem else None, "telemetry_tool": tel.get("gpu_source")}


# --- the files ----------------------------------------------------------------------------

def csv_text(header: list[str], records: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", *header, "status", "exit_code", *METRICS, "reason"])
    for r in records:
        w.writerow([r["row"], *(r["cells"].get(h, "") for h in header), r["status"],
                    "" if r.get("exit_code") is None else r["exit_code"],
                    *(_csv_num(r.get(k)) for k in METRICS), r.get("reason") or ""])
    return buf.getvalue()


def _csv_num(x) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return "inf" if math.isinf(x) else f"{x:.6g}"
    return str(x)


def _fmt(x, spec=".2f") -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞ (identical)"
    return format(x, spec)


MD_COLUMNS = (("throughput_img_s", "throughput img/s", ".2f"), ("latency_p50_ms", "latency p50 ms", ".1f"),
              ("latency_p99_ms", "latency p99 ms", ".1f"), ("accuracy_pct", "accuracy %", ".2f"),
              ("peak_mem_mib", "peak mem MiB", ".0f"), ("speedup", "speed-up vs row 1", ".2f"),
              ("psnr_db", "PSNR vs row 1 dB", ".2f"), ("ssim", "SSIM vs row 1", ".4f"),
              ("max_abs_err", "max error vs row 1", ".2e"), ("gpu_util_pct", "GPU util %", ".0f"),
              ("gpu_power_w", "GPU power W", ".0f"), ("gpu_mem_used_mib", "GPU mem MiB", ".0f"))


def markdown(meta: dict, system: dict, header: list[str], records: list[dict], plots: list[str]) -> str:
    counts = {s: sum(r["status"] == s for r in records) for s in ("passed", "failed", "interrupted", "not run")}
    varying = [h for h in header if len({r["cells"].get(h, "") for r in records}) > 1]
    constant = [h for h in header if h not in varying and records and records[0]["cells"].get(h)]
    shown = [c for c in MD_COLUMNS if any(r.get(c[0]) is not None for r in records)]
    out = [f"# Benchmark: {Path(meta['profile']).name}", ""]
    out.append(f"- **Result: {counts['passed']} of {len(records)} rows passed**"
               + "".join(f", {n} {s}" for s, n in counts.items() if n and s != "passed"))
    out.append(f"- Profile `{meta['profile']}`, run {meta['mode']}"
               + (f" in image `{meta['image']['name']}` ({meta['image'].get('digest') or meta['image'].get('id')})"
                  if meta.get("image") else "") + f", {meta['started']} to {meta.get('finished', '…')}")
    out.append(f"- Machine: {machine_line(system)}")
    if constant:
        out.append("- Same in every row: " + ", ".join(f"`{h}={records[0]['cells'][h]}`" for h in constant))
    out += ["", "| row | " + " | ".join(varying) + (" | " if varying else "") + "status | "
            + " | ".join(c[1] for c in shown) + " |",
            "|---|" + "---|" * len(varying) + "---|" + "---:|" * len(shown)]
    for r in records:
        cells = [r["cells"].get(h, "") for h in varying]
        out.append(f"| [{r['row']}]({r['dir']}/) | " + " | ".join(cells) + (" | " if cells else "")
                   + f"{'**' + r['status'] + '**' if r['status'] != 'passed' else 'passed'} | "
                   + " | ".join(_fmt(r.get(k), spec) for k, _, spec in shown) + " |")
    problems = [r for r in records if r["status"] != "passed" or r.get("fingerprint_note")]
    if problems:
        out += ["", "## Rows that did not pass", ""]
        out += [f"- row {r['row']} ({r['status']}): {r.get('reason') or r.get('fingerprint_note')}" for r in problems]
    if plots:
        out += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    out += ["", "## How to read this", ""] + _notes(records, shown)
    return "\n".join(out) + "\n"


def machine_line(system: dict) -> str:
    gib = (system.get("memory_bytes") or 0) / 2 ** 30
    numa = len(system.get("numa_nodes") or []) or "?"
    pk = system.get("packages") or {}
    gpus = [g.get("name") or g.get("device_name") for g in system.get("gpus") or [] if "error" not in g]
    return (f"{system.get('cpu_model')} ({system.get('sockets') or '?'} socket(s), {system.get('cpu_physical')} "
            f"cores, {system.get('cpu_logical')} CPUs, {numa} NUMA node(s)), {gib:.1f} GiB, "
            f"{system.get('os')}, kernel {system.get('kernel')}, Python {system.get('python')}, "
            f"torch {pk.get('torch')}" + (f", IPEX {pk['ipex']}" if pk.get("ipex") else "")
            + (f"; GPU: {', '.join(str(g) for g in gpus)}" if gpus else "; no GPU")
            + (" (in a container)" if system.get("in_container") else ""))


def _notes(records: list[dict], shown) -> list[str]:
    keys = {k for k, _, _ in shown}
    basis = next((r.get("latency_basis") for r in records if r.get("latency_basis")), None)
    notes = ["- Throughput: interpolated images over the wall time from the first stream's start to the last "
             "stream's end, all streams on one clock (per row in `test_<n>/results.json`).",
             f"- Latency p50 / p99: percentiles of every pair's own timing over all streams ({basis or 'see results.json'})."]
    if any(r.get("mode") == "dummy" for r in records):
        notes.append("- Accuracy is 0 in dummy (performance) mode: no quality verdict is made there.")
    if any(r.get("mode") == "dataset" for r in records):
        notes.append("- Accuracy (dataset rows): % of interpolated frames at or above the PSNR threshold.")
    if "peak_mem_mib" in keys:
        notes.append("- Peak memory: the device's peak allocation where it reports one, else the stream process's "
                     "peak resident memory; the largest over streams.")
    if "speedup" in keys:
        notes.append("- Speed-up: the row's throughput over row 1's, measured in this one benchmark.")
    if "psnr_db" in keys:
        notes.append("- PSNR / SSIM / max error: the row's output fingerprint (`images/dummy_0.npy`, the frame "
                     "interpolated from the seeded dummy pair) against row 1's: PSNR and max error on the float output in "
                     "[0, 1], SSIM on 8-bit frames as the RIFE evaluation computes it.")
    if "gpu_util_pct" in keys:
        notes.append("- GPU telemetry: sampled about once a second in the timed window only (the `telemetry` "
                     "section of `test_<n>/results.json`), each GPU found by its PCI bus id; mean utilisation, "
                     "mean power summed over the GPUs, peak memory used.")
    return notes


def write(bench_dir: Path, meta: dict, system: dict, header: list[str], records: list[dict],
          plots: list[str] | None = None) -> None:
    atomic_write_text(Path(bench_dir) / "summary.csv", csv_text(header, records))
    atomic_write_text(Path(bench_dir) / "summary.md", markdown(meta, system, header, records, plots or []))
