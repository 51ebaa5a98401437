"""The table of gpu_check.sh: one markdown row per step, from each step's
results.json (or harness_overhead.py's overhead.json), in step order.

    python3 benchmarks/gpu_table.py WORK OUT.md [--ref-psnr 34.640]

WORK holds header.md (written by the script), steps.tsv (one line per step:
id, run folder, exit status or "skip", seconds, kind, the step's flags, tab
separated) and the run folders. Plain Python: no torch, so it runs in a blink.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

COLUMNS = ("step", "command flags", "img/s", "latency p50 ms (device)", "host submit p50 ms", "event span %",
           "TFLOP/s", "% of peak", "GPU util %", "warnings", "status")
TIMEOUT_CODES = ("124", "137")
SHORT_KNOBS = {"channels_last": "CL", "cudnn_benchmark": "cudnn-bm", "tf32": "tf32", "cuda_graphs": "graphs",
               "preallocate": "prealloc", "reuse_frames": "reuse", "ipex": "ipex"}


def num(x, digits: int = 2) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f}" if abs(x) < 1000 else f"{x:.0f}"


def nums(values, digits: int = 0) -> str:
    """Per-stream or per-GPU figures, slash-separated; "-" when none is known."""
    values = [v for v in values if v is not None]
    return "/".join(num(v, digits) for v in values) if values else "-"


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def knobs(doc: dict) -> str:
    """The knobs that were on, and where a knob fell back, what it wanted."""
    k = doc.get("knobs") or {}
    eff = k.get("effective") or {}
    on = [SHORT_KNOBS[n] for n in SHORT_KNOBS if eff.get(n)]
    if eff.get("compile") not in (None, "none"):
        on.insert(0, f"compile={eff['compile']}")
    text = "effective: " + (", ".join(on) if on else "eager")
    falls = [f"{f.get('knob')} {f.get('wanted')}->{f.get('effective')}" for f in k.get("fallbacks") or []]
    return text + (f"; FELL BACK: {', '.join(falls)}" if falls else "")


def last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no console output"
    return (lines[-1] if lines else "no console output")[:160]


def status(doc: dict, ref_psnr: float) -> str:
    quality = doc.get("quality")
    failures = doc.get("failures") or []
    if failures:
        first = failures[0] if isinstance(failures[0], dict) else {"reason": failures[0]}
        return f"FAILED: stream {first.get('stream')}: {str(first.get('reason'))[:160]}"
    text = str(doc.get("status"))
    if quality:
        psnr = quality.get("psnr_mean")
        text += f" (verdict {quality.get('verdict')}, {num(quality.get('pass_pct'), 1)}% pass)"
        if psnr is not None:
            text += f"; PSNR {psnr:.3f} dB vs CPU {ref_psnr:.3f} ({psnr - ref_psnr:+.3f})"
    return text


def metrics_cells(doc: dict) -> list[str]:
    m = doc.get("metrics") or {}
    dt = doc.get("device_time") or {}
    tel = doc.get("telemetry") or {}
    submit = m.get("host_submit_ms") or {}
    codes = sorted({w.get("code", "?") for w in doc.get("warnings") or [] if isinstance(w, dict)})
    # Submission spans from device events (an upper bound of the busy share); the
    # kernel-busy share is the GPU monitor's utilisation (the "GPU util %" column).
    busy = [s.get("device_span_pct", s.get("device_busy_pct")) for s in dt.get("streams") or []]
    util = [(g.get("util_pct") or {}).get("mean") for g in tel.get("gpus") or []]
    return [num(m.get("throughput_img_s")), num((m.get("latency_ms") or {}).get("p50")), num(submit.get("p50"), 3),
            nums(busy), num(dt.get("achieved_tflops")), num(dt.get("share_of_peak_pct"), 1), nums(util),
            ", ".join(codes) or "-"]


def load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def overhead_doc(run: Path) -> tuple[dict | None, dict | None]:
    """(overhead.json, the last harness round's results.json) of an overhead step."""
    rounds = sorted(run.glob("harness_round_*/results.json"), key=lambda p: int(p.parent.name.rsplit("_", 1)[1]))
    return load(run / "overhead.json"), load(rounds[-1]) if rounds else None


def row(work: Path, fields: list[str], ref_psnr: float) -> list[str]:
    sid, rundir, rc, secs, kind, flags = (fields + [""] * 6)[:6]
    run = work / rundir
    empty = ["-"] * 8
    if rc == "skip":
        return [sid, flags, *empty, "SKIPPED: out of time budget"]
    timed_out = rc in TIMEOUT_CODES
    if kind == "overhead":
        summary, doc = overhead_doc(run)
        if summary is None:
            why = "TIMEOUT" if timed_out else f"FAILED (exit {rc})"
            return [sid, flags, *empty, f"{why} after {secs} s: {last_line(run / 'console.log')}"]
        cells = metrics_cells(doc) if doc else list(empty)
        cells[0] = num(summary["harness_median_pairs_s"])
        return [sid, flags, *cells, f"ratio harness/bare {summary['ratio']:.3f} (harness "
                f"{summary['harness_median_pairs_s']:.2f}, bare loop {summary['bare_median_pairs_s']:.2f} pairs/s, "
                f"medians of {len(summary['harness_pairs_s'])} rounds)"]
    doc = load(run / "results.json")
    if doc is None:
        why = f"TIMEOUT after {secs} s" if timed_out else f"FAILED (exit {rc})"
        return [sid, flags, *empty, f"{why}: {last_line(run / 'console.log')}"]
    text = status(doc, ref_psnr)
    if timed_out:
        text = f"TIMEOUT after {secs} s, partial results: {text}"
    if kind.startswith("same as"):
        text += f" ({kind}: the same run)"
    return [sid, f"{flags} ({knobs(doc)})", *metrics_cells(doc), text]


def render(work: Path, ref_psnr: float) -> str:
    header = (work / "header.md").read_text() if (work / "header.md").is_file() else "# gpu_check\n"
    lines = [ln.split("\t") for ln in (work / "steps.tsv").read_text().splitlines() if ln.strip()]
    rows = sorted((row(work, f, ref_psnr) for f in lines), key=lambda r: int(r[0]) if r[0].isdigit() else 0)
    table = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    table += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return header.rstrip("\n") + "\n\n" + "\n".join(table) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work", type=Path, help="the script's work folder (header.md, steps.tsv, runs/)")
    ap.add_argument("out", type=Path, help="the markdown file to write")
    ap.add_argument("--ref-psnr", type=float, default=34.640, help="the CPU's mean PSNR in dB (default 34.640)")
    args = ap.parse_args()
    if not (args.work / "steps.tsv").is_file():
        ap.error(f"WORK: {args.work} has no steps.tsv (expected the folder gpu_check.sh works in)")
    text = render(args.work, args.ref_psnr)
    tmp = args.out.with_name(args.out.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, args.out)  # a reader never sees half a table


if __name__ == "__main__":
    main()
