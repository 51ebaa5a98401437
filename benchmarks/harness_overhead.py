"""What does the harness cost? Alternates a dummy run of the harness
(`python -m rifebench --dummy`) with a bare loop (bare_loop.py) of the same
model on the same input, so drift hits both alike, and reports the median
throughput of each and their ratio.

    .venv/bin/python benchmarks/harness_overhead.py --rounds 3 --pairs 30
    python3 benchmarks/harness_overhead.py --model 4.6 --platform cuda --precision fp16 \\
        --weights /tmp/rife-4.6.pkl --height 1080 --width 1920 --rounds 3 --pairs 200

The harness runs with this interpreter and PYTHONPATH=src, so it needs no
.venv (a GPU machine with its own Python). --output-dir keeps each round's
results and a summary, overhead.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bare_loop import add_options  # noqa: E402  (the folder is put on the path above)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    return env


def bare(args) -> float:
    """One bare loop in a fresh process, so that it starts cold like the harness."""
    cmd = [sys.executable, str(REPO / "benchmarks" / "bare_loop.py"), "--model", args.model,
           "--platform", args.platform, "--precision", args.precision, "--height", str(args.height),
           "--width", str(args.width), "--pairs", str(args.pairs), "--warmup", str(args.warmup)]
    if args.weights is not None:
        cmd += ["--weights", str(args.weights)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    if proc.returncode != 0:
        sys.exit(f"harness_overhead: the bare loop failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return float(proc.stdout.strip().splitlines()[-1])


def harness(args, out: Path) -> float:
    cmd = [sys.executable, "-m", "rifebench", "--dummy", "--model", args.model, "--platform", args.platform,
           "--precision", args.precision, "--data-height", str(args.height), "--data-width", str(args.width),
           "--num-inputs", str(args.pairs), "--warmup", str(args.warmup), "--output-dir", str(out)]
    if args.weights is not None:
        cmd += ["--pretrained-weights", str(args.weights)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=REPO)
    results = out / "results.json"
    if proc.returncode != 0 or not results.is_file():
        sys.exit(f"harness_overhead: the harness failed (exit {proc.returncode}): "
                 f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(results.read_text())["metrics"]["throughput_img_s"]


def measure(args, out: Path) -> dict:
    h, b = [], []
    for r in range(args.rounds):
        b.append(bare(args))
        h.append(harness(args, out / f"harness_round_{r + 1}"))
        print(f"round {r + 1}: harness {h[-1]:.3f} pairs/s, bare loop {b[-1]:.3f} pairs/s", flush=True)
    mh, mb = statistics.median(h), statistics.median(b)
    print(f"median: harness {mh:.3f} pairs/s, bare loop {mb:.3f} pairs/s, ratio {mh / mb:.3f} "
          f"(harness cost {100 * (1 - mh / mb):+.1f}%)")
    return {"harness_pairs_s": h, "bare_pairs_s": b, "harness_median_pairs_s": mh, "bare_median_pairs_s": mb,
            "ratio": mh / mb, "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(ap)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--output-dir", type=Path, default=None,
                    help="keep each round's harness output and overhead.json here (default: discarded)")
    args = ap.parse_args()
    if args.rounds < 1 or args.pairs < 1:
        ap.error(f"--rounds and --pairs must be >= 1, got {args.rounds} and {args.pairs}")
    # The harness runs from the repository root; paths given relative to here must still hold.
    args.weights = args.weights.resolve() if args.weights is not None else None
    if args.output_dir is None:
        with tempfile.TemporaryDirectory() as tmp:
            measure(args, Path(tmp))
        return
    args.output_dir = args.output_dir.resolve()
    summary = measure(args, args.output_dir)
    (args.output_dir / "overhead.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
