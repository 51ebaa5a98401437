"""Compare two result folders, each a run (results.json) or a benchmark
(test_<n>/ folders), and flag the differences larger than the noise the
folders themselves measured.

    python -m rifebench.report.compare A B [--min-diff PCT] [--sigmas K]

Noise, per metric and folder, is the larger of:
- within the run: the relative standard error of the metric over 8 consecutive
  blocks of every stream's raw per-pair latencies (batch means; consecutive
  pairs are correlated, so resampling single pairs would understate it);
- between runs: when a benchmark repeats a row (identical cells), the relative
  standard deviation of that row's results across the repeats.
A difference is flagged when |B - A| / A > max(--min-diff, K * sqrt(noise_A^2 +
noise_B^2)). The floor is there because noise within one run understates the
noise between runs (clocks, placement, other load).
Benchmark rows are matched by their cells (the same row of the same profile).

Exit status: 0 no difference beyond the noise, 1 some, 2 bad input.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rifebench.measure.metrics import percentile
from rifebench.report.summary import FINGERPRINT, fingerprint_diff

BLOCKS = 8
METRICS = (("throughput_img_s", "throughput img/s", +1), ("latency_p50_ms", "latency p50 ms", -1),
           ("latency_p99_ms", "latency p99 ms", -1))


class CompareError(ValueError):
    pass


@dataclass
class Result:
    label: str
    key: tuple
    folder: Path
    status: str
    config: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)  # metric -> value
    noise: dict = field(default_factory=dict)  # metric -> relative noise, or None


def block_noise(streams: list[list[float]], blocks: int = BLOCKS) -> dict:
    """Relative standard error of each metric from batch means over blocks."""
    streams = [s for s in streams if s]
    n = min((len(s) for s in streams), default=0)
    b = min(blocks, n // 3)
    if b < 3:
        return {k: None for k, _, _ in METRICS}
    per = {k: [] for k, _, _ in METRICS}
    for i in range(b):
        chunks = [s[i * len(s) // b:(i + 1) * len(s) // b] for s in streams]
        per["throughput_img_s"].append(sum(len(c) / sum(c) for c in chunks))  # pairs per ms, all streams
        pooled = sorted(x for c in chunks for x in c)
        per["latency_p50_ms"].append(percentile(pooled, 50))
        per["latency_p99_ms"].append(percentile(pooled, 99))
    return {k: _rel_sd(v) / math.sqrt(b) for k, v in per.items()}


def _rel_sd(values: list[float]) -> float:
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean else math.inf


def load_result(folder: Path, label: str, key: tuple) -> Result:
    try:
        doc = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError):
        return Result(label, key, folder, "failed (no readable results.json)")
    m = doc.get("metrics") or {}
    lat = m.get("latency_ms") or {}
    measured = doc.get("status") in ("passed", "failed") and not doc.get("failures")
    values = {"throughput_img_s": m.get("throughput_img_s"), "latency_p50_ms": lat.get("p50"),
              "latency_p99_ms": lat.get("p99")} if measured else {}
    streams = [s.get("latency_samples_ms") or [] for s in doc.get("streams", [])]
    return Result(label, key, folder, doc.get("status", "unknown"), doc.get("config") or {}, values,
                  block_noise(streams) if measured else {})


def load(folder: str | Path) -> tuple[str, list[Result]]:
    folder = Path(folder)
    if (folder / "results.json").exists():
        return "run", [load_result(folder, "run", ())]
    tests = sorted((p for p in folder.glob("test_*") if p.is_dir() and p.name[5:].isdigit()),
                   key=lambda p: int(p.name[5:]))
    if not tests:
        raise CompareError(f"{str(folder)!r} holds neither results.json nor test_<n>/ folders "
                           "(accepted: the OUTPUT_DIR of a run or of a benchmark)")
    out = []
    for t in tests:
        try:
            cells = json.loads((t / "row.json").read_text()).get("cells", {})
        except (OSError, ValueError):
            cells = {}
        out.append(load_result(t, f"row {t.name[5:]}", tuple(sorted(cells.items()))))
    _apply_repeat_noise(out)
    return "benchmark", out


def _apply_repeat_noise(results: list[Result]) -> None:
    groups: dict[tuple, list[Result]] = {}
    for r in results:
        if r.values:
            groups.setdefault(r.key, []).append(r)
    for reps in groups.values():
        if len(reps) < 2:
            continue
        for k, _, _ in METRICS:
            vals = [r.values[k] for r in reps if r.values.get(k)]
            if len(vals) >= 2:
                sd = _rel_sd(vals)
                for r in reps:
                    r.noise[k] = max(r.noise.get(k) or 0.0, sd)


def match(a: list[Result], b: list[Result]) -> tuple[list[tuple[Result, Result]], list[Result]]:
    """Pairs by key, in order (repeats pair up one by one); the unmatched rest."""
    if len(a) == 1 and len(b) == 1:
        return [(a[0], b[0])], []
    pool = list(b)
    pairs, alone = [], []
    for r in a:
        other = next((x for x in pool if x.key == r.key), None)
        if other is None:
            alone.append(r)
        else:
            pool.remove(other)
            pairs.append((r, other))
    return pairs, alone + pool


def compare_pair(a: Result, b: Result, min_diff: float, sigmas: float) -> tuple[list[str], bool]:
    what = " ".join(f"{k}={v}" for k, v in a.key) if a.key == b.key else None
    head = a.label if a.label == b.label else f"A {a.label} vs B {b.label}"
    lines = [f"== {head}" + (f" ({what})" if what else "") + " =="]
    flagged = False
    changed = {k: (a.config.get(k), b.config.get(k)) for k in sorted(set(a.config) | set(b.config))
               if k not in ("output_dir", "origin") and a.config.get(k) != b.config.get(k)}
    if changed:
        lines.append("configuration differs: " + ", ".join(f"{k} {x!r} -> {y!r}" for k, (x, y) in changed.items()))
    if a.status != b.status:
        lines.append(f"status: A {a.status}, B {b.status}  <-- DIFFERENT")
        flagged = True
    if not (a.values and b.values):
        if a.status == b.status:
            lines.append(f"status: both {a.status}; no figures to compare")
        return lines, flagged
    lines.append(f"{'metric':<18}{'A':>12}{'B':>12}{'change':>10}{'noise':>10}  verdict")
    for k, name, sign in METRICS:
        va, vb = a.values.get(k), b.values.get(k)
        if va is None or vb is None or va == 0:
            lines.append(f"{name:<18}{_f(va):>12}{_f(vb):>12}  (not comparable)")
            continue
        change = (vb - va) / va
        na, nb = a.noise.get(k), b.noise.get(k)
        noise = math.hypot(na, nb) if na is not None and nb is not None else None
        limit = max(min_diff, sigmas * noise) if noise is not None else min_diff
        if abs(change) > limit:
            verdict = ("BETTER" if change * sign > 0 else "WORSE") + " (beyond noise)"
            flagged = True
        else:
            verdict = "same within noise"
        shown_noise = f"±{100 * noise:.1f}%" if noise is not None else "n/a"
        lines.append(f"{name:<18}{_f(va):>12}{_f(vb):>12}{100 * change:>+9.1f}%{shown_noise:>10}  {verdict}")
    fa, fb = a.folder / FINGERPRINT, b.folder / FINGERPRINT
    if fa.exists() and fb.exists():
        d = fingerprint_diff(fa, fb)
        if "note" in d:
            lines.append(f"output fingerprint: {d['note']}  <-- DIFFERENT")
            flagged = True
        elif d["max_abs_err"] == 0:
            lines.append("output fingerprint: identical")
        else:
            visible = d["max_abs_err"] > 1 / 255
            lines.append(f"output fingerprint: PSNR {d['psnr_db']:.2f} dB, SSIM {d['ssim']:.5f}, max error "
                         f"{d['max_abs_err']:.2e}" + ("  <-- DIFFERENT (more than one 8-bit level)" if visible else ""))
            flagged |= visible
    return lines, flagged


def _f(x) -> str:
    return "–" if x is None else f"{x:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rifebench.report.compare", description=__doc__.split("\n\n")[0],
                                epilog="Exit status: 0 no difference beyond the noise, 1 some, 2 bad input.")
    p.add_argument("a", metavar="A", help="reference folder (a run's or a benchmark's OUTPUT_DIR)")
    p.add_argument("b", metavar="B", help="folder compared with A")
    p.add_argument("--min-diff", type=float, default=2.0, metavar="PCT",
                   help="smallest relative change ever flagged, in percent (default 2)")
    p.add_argument("--sigmas", type=float, default=3.0, metavar="K",
                   help="how many combined noise standard errors a change must exceed (default 3)")
    args = p.parse_args(argv)
    try:
        if args.min_diff < 0 or args.sigmas < 0:
            raise CompareError("--min-diff and --sigmas must be >= 0")
        kind_a, ra = load(args.a)
        kind_b, rb = load(args.b)
    except CompareError as exc:
        print(f"compare: error: {exc}", file=sys.stderr)
        return 2
    print(f"A: {args.a} ({kind_a}, {len(ra)} result(s))\nB: {args.b} ({kind_b}, {len(rb)} result(s))")
    pairs, alone = match(ra, rb)
    flagged = False
    for a, b in pairs:
        lines, f = compare_pair(a, b, args.min_diff / 100, args.sigmas)
        print("\n".join(lines))
        flagged |= f
    for r in alone:
        cells = " ".join(f"{k}={v}" for k, v in r.key)
        print(f"unmatched: {r.label} ({cells or 'all defaults'}) of {r.folder.parent} has no counterpart  <-- DIFFERENT")
        flagged = True
    print("verdict: " + ("differences beyond the noise (flagged above)" if flagged else
                         "no difference beyond the noise"))
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
