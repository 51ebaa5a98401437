"""What does the harness cost? Alternates `run_model.sh --dummy` with a bare
loop of the same model on the same input, so drift hits both alike, and
reports the median throughput of each and their ratio.

    .venv/bin/python benchmarks/harness_overhead.py --rounds 3 --pairs 30
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def bare_loop(height: int, width: int, pairs: int, warmup: int) -> float:
    """The least a benchmark can do: load, prepare once, call the model in a loop."""
    import torch

    from rifebench import zoo
    from rifebench.interp import Interpolator
    from rifebench.sources import dummy_frames
    from rifebench.weights import load_model

    spec = zoo.get("4.0")
    net = load_model(spec, REPO / "model" / "rife-4.0" / "flownet.pkl")
    interp = Interpolator(net, spec, torch.device("cpu"), torch.float32)
    f0, f1 = dummy_frames(height, width, 0)
    a, b = interp.prepare(f0), interp.prepare(f1)
    for _ in range(warmup):
        interp.interpolate(a, b, 1)
    t0 = time.monotonic()
    for _ in range(pairs):
        interp.interpolate(a, b, 1)
    return pairs / (time.monotonic() - t0)


def harness(height: int, width: int, pairs: int, warmup: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        cmd = [str(REPO / "run_model.sh"), "--dummy", "--model", "4.0", "--precision", "fp32",
               "--data-height", str(height), "--data-width", str(width), "--num-inputs", str(pairs),
               "--warmup", str(warmup), "--output-dir", out]
        subprocess.run(cmd, check=True, capture_output=True)
        return json.loads((Path(out) / "results.json").read_text())["metrics"]["throughput_img_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=448)
    args = ap.parse_args()
    h, b = [], []
    for r in range(args.rounds):
        # The bare loop runs in a fresh process too, so both start cold alike.
        code = (f"import sys; sys.path.insert(0, {str(REPO / 'benchmarks')!r}); import harness_overhead as m; "
                f"print(m.bare_loop({args.height}, {args.width}, {args.pairs}, {args.warmup}))")
        b.append(float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                      text=True).stdout.strip().splitlines()[-1]))
        h.append(harness(args.height, args.width, args.pairs, args.warmup))
        print(f"round {r + 1}: harness {h[-1]:.3f} pairs/s, bare loop {b[-1]:.3f} pairs/s", flush=True)
    mh, mb = statistics.median(h), statistics.median(b)
    print(f"median: harness {mh:.3f} pairs/s, bare loop {mb:.3f} pairs/s, ratio {mh / mb:.3f} "
          f"(harness cost {100 * (1 - mh / mb):+.1f}%)")


if __name__ == "__main__":
    main()
