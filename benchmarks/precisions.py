"""Throughput of each precision on this CPU and the quality cost of each,
measured in one run (configurations alternated, medians reported).

    .venv/bin/python benchmarks/precisions.py --height 256 --width 448 --rounds 3 --pairs 10

Quality: PSNR of each configuration's output against the fp32 output on a real
triplet (../shared/data/mixed_448x256, first entry) when present, else on the
seeded dummy pair.
"""
from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

CONFIGS = [("fp32", False), ("bf16", False), ("bf16", True), ("fp16", False), ("fp16", True)]


def load_pair(height, width):
    import torch

    from rifebench.data.dummy import dummy_frames
    from rifebench.data.images import read_image

    data = REPO.parent / "shared" / "data" / "mixed_448x256"
    if data.is_dir():
        entry = (data / "tri_testlist.txt").read_text().split()[0]
        frames = [read_image(str(data / "sequences" / entry / f"im{i}.png")) for i in (1, 3)]
        t = [torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255 for f in frames]
        return t[0], t[1], f"real triplet mixed_448x256/{entry}"
    f0, f1 = dummy_frames(height, width, 0)
    return f0, f1, "seeded dummy pair"


def main() -> None:
    import torch

    from rifebench.data.dummy import dummy_frames
    from rifebench.measure.quality import float_psnr
    from rifebench.models import zoo
    from rifebench.models.interp import Interpolator, resolve_dtype
    from rifebench.models.weights import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=448)
    args = ap.parse_args()
    spec = zoo.get("4.0")
    net = load_model(spec, REPO / "model" / "rife-4.0" / "flownet.pkl")
    interps = {c: Interpolator(copy.deepcopy(net), spec, torch.device("cpu"), resolve_dtype(c[0]), amp=c[1])
               for c in CONFIGS}
    f0, f1 = dummy_frames(args.height, args.width, 0)
    q0, q1, what = load_pair(args.height, args.width)
    outputs, rates = {}, {c: [] for c in CONFIGS}
    for c, it in interps.items():
        outputs[c] = it.interpolate(it.prepare(q0), it.prepare(q1), 1)[0].float()
    for _ in range(args.rounds):
        for c, it in interps.items():
            a, b = it.prepare(f0), it.prepare(f1)
            it.interpolate(a, b, 1)  # warm-up
            t0 = time.monotonic()
            for _ in range(args.pairs):
                it.interpolate(a, b, 1)
            rates[c].append(args.pairs / (time.monotonic() - t0))
    ref = outputs[("fp32", False)]
    base = statistics.median(rates[("fp32", False)])
    print(f"{args.width}x{args.height}, {args.rounds} rounds x {args.pairs} pairs, quality on {what}")
    print("| precision | AMP | pairs/s (median) | ms/pair | speed-up vs fp32 | PSNR vs fp32 (dB) |")
    print("|---|---|---|---|---|---|")
    for c in CONFIGS:
        r = statistics.median(rates[c])
        psnr = float_psnr(ref.numpy(), outputs[c].clamp(0, 1).numpy())
        print(f"| {c[0]} | {'yes' if c[1] else 'no'} | {r:.3f} | {1000 / r:.1f} | {r / base:.2f}x | "
              f"{'identical' if math.isinf(psnr) else f'{psnr:.1f}'} |")


if __name__ == "__main__":
    main()
