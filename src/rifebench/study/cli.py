"""The optimisation study: every configuration's speed-up against its cost in
quality, measured in one run.

    python -m rifebench study [--sizes 448x256,1280x720] [--configs baseline,...]
                              [--output-dir DIR]

(Two runs' output fingerprints are compared by `python -m rifebench compare A B`.)

Each configuration is a list of run_model.sh flags resolved by the harness's own
option table and knobs (so a row measures exactly what a run would), and lives in
its own process: torch's global switches (threads, cuDNN, denormals), compiled
code and peak memory stay its own. Workers warm up one after the other (compile
time is reported apart), then time their pairs in turn, round after round, in a
rotating order, so that drift and other load hit every configuration alike.
The workers and the rounds live in study_worker.py.

A timed pair is what a stream times (run.timer.PairTimer): the model call on
prepared frames, synchronised. Speed: one statistic, the median pair time over
all rounds, gives both FPS and speed-up, each with a 95% bootstrap interval over
the rounds (the speed-up's from ratios within a round, which the rotation
exposed to the same load). Quality: outputs against the reference's; equal
outputs are "identical", never a capped or infinite PSNR.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

from rifebench import __version__
from rifebench.measure.quality import output_diff
from rifebench.measure.stats import bootstrap_ci
from rifebench.study.worker import run_size, study_precision
from rifebench.warning_codes import line, warning

CONFIGS = {
    "baseline": [],
    "channels_last": ["--channels-last", "yes"],
    "compile": ["--compile", "default"],
    "bf16": ["--precision", "bf16"],
    "fp16": ["--precision", "fp16"],
    "amp_bf16": ["--precision", "bf16", "--amp"],
    "reuse_frames": ["--reuse-frames", "yes"],
    "preallocate": ["--preallocate", "yes"],
    "optimized": ["--optimize", "optimized"],
    "optimized_bf16": ["--optimize", "optimized", "--precision", "bf16"],
    "optimized_fp16": ["--optimize", "optimized", "--precision", "fp16"],
}
DEFAULT_CONFIGS = "baseline,channels_last,compile,bf16,optimized"
SPREAD_LIMIT_PCT = 20.0  # (p90 - p10) / median of a configuration's pair times
STATISTIC = (
    "FPS = 1000 / median ms per pair; speed-up = reference median / configuration median; "
    "[95% CI]: percentile bootstrap over the rounds (speed-up: ratios paired by round)"
)


# ------------------------------------------------------------------- scoring


def spread_pct(samples: list[float]) -> float | None:
    """(p90 - p10) / median in percent; None below 2 samples."""
    if len(samples) < 2:
        return None
    deciles = statistics.quantiles(samples, n=10, method="inclusive")
    return 100.0 * (deciles[-1] - deciles[0]) / statistics.median(samples)


def speed(rounds_ms: list[list[float]], ref_rounds_ms: list[list[float]] | None) -> dict:
    """FPS and speed-up of one configuration from the same statistic (the median
    pair time over all rounds), each with its 95% CI from the per-round figures.
    `ref_rounds_ms` is the reference's pair times by round (None: no reference)."""
    rounds = [r for r in rounds_ms if r]
    pooled = [x for r in rounds for x in r]
    ms = statistics.median(pooled)
    ci = bootstrap_ci([1000.0 / statistics.median(r) for r in rounds])
    out = {
        "ms_p50": ms,
        "ms_min": min(pooled),
        "fps": 1000.0 / ms,
        "fps_ci95": list(ci) if ci else None,
        "rounds": len(rounds),
        "pairs": len(pooled),
        "spread_pct": spread_pct(pooled),
        "speedup": None,
        "speedup_ci95": None,
    }
    ref_pooled = [x for r in ref_rounds_ms or [] for x in r]
    if ref_pooled:
        ratios = [statistics.median(b) / statistics.median(a) for a, b in zip(rounds_ms, ref_rounds_ms) if a and b]
        ci = bootstrap_ci(ratios)
        out.update(speedup=statistics.median(ref_pooled) / ms, speedup_ci95=list(ci) if ci else None)
    return out


def quality(ref_outputs: list, outputs: list) -> dict:
    """Outputs against the reference's; `identical` (and psnr_db null: JSON has
    no infinity) when every pair's output is equal."""
    scores = [output_diff(a, b) for a, b in zip(ref_outputs, outputs)]
    psnr = min(s["psnr_db"] for s in scores)
    return {
        "identical": math.isinf(psnr),
        "psnr_db": None if math.isinf(psnr) else psnr,
        "ssim": min(s["ssim"] for s in scores),
        "max_abs_err": max(s["max_abs_err"] for s in scores),
        "pairs": len(scores),
    }


def score(row: dict, base: dict) -> dict:
    """Speed, quality and warnings of one row against the first (the reference)."""
    if not row.get("rounds_ms") or not any(row["rounds_ms"]) or row.get("error"):
        return row
    ok = base.get("rounds_ms") and any(base["rounds_ms"]) and not base.get("error")
    row.update(speed(row["rounds_ms"], base["rounds_ms"] if ok else None))
    row["warnings"] = []
    if row["spread_pct"] is not None and row["spread_pct"] > SPREAD_LIMIT_PCT:
        row["warnings"].append(
            warning(
                "DISPERSION",
                config=f"{row['config']} at {row['size']}",
                spread_pct=row["spread_pct"],
                pairs=row["pairs"],
            )
        )
    # CPU platform: process CPU time per pair, insensitive to time slicing by other
    # processes (not to cache or memory-bandwidth sharing).
    if ok and row.get("platform") == "cpu" and row.get("cpu_ms") and base.get("cpu_ms"):
        row["speedup_cpu_time"] = statistics.median(base["cpu_ms"]) / statistics.median(row["cpu_ms"])
    if base.get("outputs") and row.get("outputs"):
        row["quality"] = quality(base["outputs"], row["outputs"])
    mem = row.get("memory") or {}
    # GPUs: the allocator's peak. CPUs: the process's peak RSS, and how much of it
    # the run added to the loaded model (torch alone is a few hundred MiB).
    row["peak_mem_bytes"] = mem.get("peak_allocated_bytes") or mem.get("peak_rss_bytes")
    if mem.get("peak_allocated_bytes") is None and mem.get("peak_rss_bytes") and row.get("rss_after_load_bytes"):
        row["peak_mem_added_bytes"] = mem["peak_rss_bytes"] - row["rss_after_load_bytes"]
    row["fallbacks"] = [f"{f['knob']}: {f['reason']}" for f in (row.get("knobs") or {}).get("fallbacks", [])]
    return row


# ------------------------------------------------------------------- report


def _f(x, spec):
    return "n/a" if x is None else format(x, spec)


def _with_ci(x, ci, spec, unit=""):
    return "n/a" if x is None else f"{x:{spec}}{unit}" + (f" [{ci[0]:{spec}}, {ci[1]:{spec}}]" if ci else "")


def table(rows: list[dict]) -> str:
    out = [
        "| size | config | FPS [95% CI] | ms/pair median (min) | speed-up [95% CI] | CPU-time speed-up "
        "| PSNR dB vs reference | SSIM | max abs | peak mem MiB (added) | warm-up s | fell back |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        q = r.get("quality") or {}
        if r.get("error"):
            out.append(f"| {r['size']} | {r['config']} | failed: {r['error']} |||||||||| |")
            continue
        mem, added = r.get("peak_mem_bytes"), r.get("peak_mem_added_bytes")
        psnr = "identical" if q.get("identical") else _f(q.get("psnr_db"), ".1f")
        out.append(
            f"| {r['size']} | {r['config']} ({r.get('precision')}) | "
            f"{_with_ci(r.get('fps'), r.get('fps_ci95'), '.2f')} | "
            f"{_f(r.get('ms_p50'), '.0f')} ({_f(r.get('ms_min'), '.0f')}) | "
            f"{_with_ci(r.get('speedup'), r.get('speedup_ci95'), '.2f', 'x')} | "
            f"{_f(r.get('speedup_cpu_time'), '.2f')}{'x' if r.get('speedup_cpu_time') else ''} | "
            f"{psnr} | {_f(q.get('ssim'), '.5f')} | {_f(q.get('max_abs_err'), '.2e')} | "
            f"{_f(mem / 2**20 if mem else None, '.0f')}"
            f"{'' if added is None else f' (+{added / 2**20:.0f})'} | {_f(r.get('warmup_s'), '.1f')} | "
            f"{'; '.join(r.get('fallbacks') or []) or '-'} |"
        )
    return "\n".join(out)


def notes(rows: list[dict]) -> list[str]:
    """The lines under the table: how the figures were computed, then every warning."""
    return [STATISTIC + "."] + [line(w) for r in rows for w in r.get("warnings") or []]


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    if not (w.isdigit() and h.isdigit() and int(w) >= 16 and int(h) >= 16):
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (accepted: WIDTHxHEIGHT, e.g. 448x256)")
    return int(w), int(h)


def parse(argv):
    p = argparse.ArgumentParser(
        prog="python -m rifebench study",
        allow_abbrev=False,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Predefined configurations (run_model.sh flags): "
        + "; ".join(f"{k} = {' '.join(v) or '(none)'}" for k, v in CONFIGS.items())
        + ". Add your own with --config NAME='FLAGS'. The first configuration is "
        "the reference of speed-up and quality.",
    )
    p.add_argument("--version", action="version", version=f"rifebench {__version__}")
    p.add_argument("--sizes", default="448x256,1280x720", help="WxH list (default: %(default)s)")
    p.add_argument("--configs", default=DEFAULT_CONFIGS, help="names, first = reference (default: %(default)s)")
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME=FLAGS",
        help="define a configuration, e.g. cl_bf16='--channels-last yes --precision bf16'",
    )
    p.add_argument("--model", default="4.0")
    p.add_argument("--platform", default="cpu")
    p.add_argument("--pretrained-weights", default=None)
    p.add_argument(
        "--rounds", type=int, default=8, help="timed rounds, configurations in rotating order (default: %(default)s)"
    )
    p.add_argument(
        "--pairs",
        type=int,
        default=1,
        help="timed pairs per configuration and round; few pairs and "
        "many rounds spread other load over every configuration (default: %(default)s)",
    )
    p.add_argument("--warmup", type=int, default=1, help="extra untimed pairs after the first ones")
    p.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="torch threads of each worker (default: the CPUs this process may use, %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--output-dir",
        default=None,
        metavar="DIR",
        help="folder for study.json and study.md (default: ./output/study-<UTC timestamp>; a new or empty folder)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty --output-dir (its study.json and study.md are replaced)",
    )
    args = p.parse_args(argv)
    flags_of = dict(CONFIGS)
    for spec in args.config:
        name, sep, flags = spec.partition("=")
        if not sep or not name:
            p.error(f"--config: invalid value {spec!r} (accepted: NAME='run_model.sh flags')")
        flags_of[name] = flags.split()
    args.names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in args.names if n not in flags_of]
    if unknown or len(set(args.names)) != len(args.names) or not args.names:
        p.error(f"--configs: invalid value {args.configs!r} (accepted: distinct names among {', '.join(flags_of)})")
    try:
        args.sizes = [_size(s) for s in args.sizes.split(",")]
    except argparse.ArgumentTypeError as exc:
        p.error(f"--sizes: {exc}")
    for name in ("rounds", "pairs", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name}: must be >= 1, got {getattr(args, name)}")
    args.common = ["--model", args.model, "--platform", args.platform]  # a configuration's own flags win
    if args.pretrained_weights:
        args.common += ["--pretrained-weights", os.path.abspath(args.pretrained_weights)]
    args.flags_of = flags_of
    return args


def check_configs(args) -> None:
    """Every configuration resolves (flags, knobs) before any worker starts."""
    from rifebench.backends.knobs import KnobError, preflight
    from rifebench.config import resolve
    from rifebench.errors import UsageError
    from rifebench.options import flag_of

    for n in args.names:
        try:
            cfg = resolve(["--dummy", *args.common, *args.flags_of[n]], env={})
            preflight(cfg.replace(precision=study_precision(cfg)))
        except UsageError as exc:
            raise SystemExit(f"study: configuration {n!r}: {exc}") from None
        except KnobError as exc:
            raise SystemExit(f"study: configuration {n!r}: {flag_of(exc.knob)}: {exc}") from None
        if not os.path.isfile(cfg.load_path):
            raise SystemExit(
                f"study: weights {cfg.load_path} not found (accepted: an existing file; "
                f"./get_model.sh --model {args.model} fetches it)"
            )


def prepare_output(requested: str | None, force: bool) -> Path:
    """A new or empty folder (a non-empty one with --force), checked writable
    before any worker starts: a bad path fails in a second, not after the study."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    from rifebench.fsutil import OutputDirError, prepare_dir

    if requested is not None and not requested.strip():
        raise SystemExit(
            "study: --output-dir: '' is empty (accepted: a folder path, or none for ./output/study-<UTC timestamp>)"
        )
    out = Path(requested or f"output/study-{stamp}").expanduser().resolve()
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SystemExit(
            f"study: --output-dir: {str(out)!r} is not empty (accepted: a new or empty folder, "
            "or --force to replace its study.json and study.md)"
        )
    try:
        return prepare_dir(out, files=("study.json", "study.md"))
    except OutputDirError as exc:
        raise SystemExit(f"study: --output-dir: {exc}") from None


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


def write(out: Path, doc: dict) -> None:
    """study.json and study.md, atomically, after every size: a later failure loses nothing."""
    from rifebench.fsutil import atomic_write_text

    atomic_write_text(out / "study.json", json.dumps(doc, indent=2, default=str, allow_nan=False) + "\n")
    md = [
        f"# Optimisation study ({doc['started']} to {doc['finished']})",
        "",
        f"`{doc['command']}`",
        "",
        f"{doc['cpu']}, model {doc['model']}, {doc['threads']} threads, {doc['rounds']} rounds of "
        f"{doc['pairs']} pair(s){'' if doc['complete'] else ' (incomplete)'}",
        "",
        table(doc["rows"]),
        "",
    ]
    md += [f"- {n}" for n in notes(doc["rows"])]
    atomic_write_text(out / "study.md", "\n".join(md) + "\n")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    check_configs(args)
    out = prepare_output(args.output_dir, args.force)
    from rifebench.measure.topology import cpu_model

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    started, rows = time.time(), []
    for size in args.sizes:
        log(f"{size[0]}x{size[1]}: {', '.join(args.names)}")
        raw = run_size(size, args.names, args.flags_of, args, log)
        rows += [score(r, raw[0]) for r in raw]
        for r in raw:
            r.pop("outputs", None)
        finished = time.time()
        doc = {
            "command": "python -m rifebench study " + " ".join(argv),
            "cpu": cpu_model(),
            "threads": args.threads,
            "model": args.model,
            "rounds": args.rounds,
            "pairs": args.pairs,
            "started": _iso(started),
            "finished": _iso(finished),
            "duration_s": finished - started,
            "statistic": STATISTIC,
            "spread_limit_pct": SPREAD_LIMIT_PCT,
            "warnings": [w for r in rows for w in r.get("warnings") or []],
            "rows": rows,
            "complete": size == args.sizes[-1],
        }
        write(out, doc)
    print(table(rows))
    print("\n".join(notes(rows)))
    log(f"study: results in {out}")
    failed = [r["config"] for r in rows if r.get("error") or not r.get("fps")]
    if failed:
        log(f"study: failed configurations: {', '.join(sorted(set(failed)))}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
