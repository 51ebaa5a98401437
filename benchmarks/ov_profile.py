"""Where OpenVINO spends a pair: its own per-layer report (PERF_COUNT) of the graphs the harness
runs (the same cached exports and INT8 models as a run), per precision, as a markdown table.

    python3 benchmarks/ov_profile.py --weights model/rife-4.0/flownet.pkl --model 4.0 --size 448x256 \
        --precisions fp32,bf16,int8 [--pairs 5] [--threads 2] [--top 12]

For 4.0 in fp32 and bf16 the report is of its three host-branched parts, not of the `If` graph
a run uses: OpenVINO reports that `If` as one opaque row, and the layers inside are the same.
Layers are summed by graph, type and kernel over the last of `--pairs` timed pairs of the dummy
pair (after one untimed); the share is of that pair's summed layer time.

--compare-if (4.0): the exported graph with its `If` against the three graphs with the branch taken
on the host, both in OpenVINO with the same settings, timed alternately (median ms per pair, and
the largest difference between their outputs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def _prepared(weights: str, model: str, size: tuple[int, int], precision: str, threads: int):
    """The network a run builds for OpenVINO at this size and its dummy pair, prepared."""
    import torch

    from rifebench.config import resolve
    from rifebench.data.dummy import dummy_frames
    from rifebench.run.stream import build

    torch.set_num_threads(threads)
    cfg = resolve(["--dummy", "--model", model, "--pretrained-weights", weights, "--platform", "cpu",
                   "--runtime", "openvino", "--precision", precision], env={})  # fmt: skip
    _, interp = build(cfg)
    a, b = (interp.prepare(f) for f in dummy_frames(size[1], size[0], 0))
    return cfg, interp.net, a, b


def _split(cfg, net, weights: str, hw: tuple[int, int]) -> tuple[dict, object, object]:
    """4.0's graphs both ways from the run's cache: the three host-branched parts (what int8
    runs, and where OpenVINO's per-layer report can see inside the large-motion branch), their
    branch test, and the one graph with its `If` (what fp32 and bf16 run)."""
    from functools import partial

    from rifebench.models import export as onnx_export
    from rifebench.runtimes import branches

    key = onnx_export.make_key(cfg.spec, weights, 1, hw, "fp32", 1.0)
    folders = onnx_export.cache_folders(weights)
    parts, _ = branches.cached_parts(net.ref, cfg.spec, key, folders)
    whole, _ = onnx_export.cached_export(net.ref, cfg.spec, key, folders)
    return parts, partial(branches.is_large, net.ref), whole


def profile(weights: str, model: str, size: tuple[int, int], precision: str, pairs: int, threads: int) -> tuple:
    """The graphs a run uses (quantized for int8); for 4.0 in fp32 and bf16 its three parts
    instead of the `If` graph, whose report is one opaque `If` row (the same layers run)."""
    from rifebench.runtimes import branches
    from rifebench.runtimes.ov_engine import OvEngine

    cfg, net, a, b = _prepared(weights, model, size, precision, threads)
    hw = tuple(a.shape[2:])
    sources, decide = net.ov_sources(hw)
    if precision != "int8" and branches.splits(net.ref):
        sources, decide, _ = _split(cfg, net, weights, hw)
    engine = OvEngine(sources, "cpu", 0, precision, threads, decide=decide, perf_count=True)
    engine.run(a, b, 0.5)
    t0 = time.perf_counter()
    for _ in range(pairs):
        engine.run(a, b, 0.5)
    return (time.perf_counter() - t0) * 1000.0 / pairs, engine.layer_report()


def compare_if(weights: str, model: str, size: tuple[int, int], precision: str, pairs: int, threads: int) -> str:
    import numpy as np

    from rifebench.runtimes.ov_engine import OvEngine

    cfg, net, a, b = _prepared(weights, model, size, precision, threads)
    parts, decide, whole = _split(cfg, net, weights, tuple(a.shape[2:]))
    engines = {"If graph": OvEngine({"whole": whole}, "cpu", 0, precision, threads),
               "three graphs": OvEngine(parts, "cpu", 0, precision, threads, decide=decide)}  # fmt: skip
    outs = {name: e.run(a, b, 0.5).numpy() for name, e in engines.items()}
    times: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(pairs):
        for name, e in engines.items():
            t0 = time.perf_counter()
            e.run(a, b, 0.5)
            times[name].append((time.perf_counter() - t0) * 1000.0)
    diff = float(np.abs(outs["If graph"] - outs["three graphs"]).max())
    return "; ".join(f"{n} {np.median(t):.1f} ms" for n, t in times.items()) + f"; max abs difference {diff:.2e}"


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--model", default="4.0")
    p.add_argument("--size", default="448x256")
    p.add_argument("--precisions", default="fp32,bf16,int8")
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--compare-if", action="store_true", help="4.0: time the If graph against the three graphs")
    args = p.parse_args()
    w, _, h = args.size.partition("x")
    size = (int(w), int(h))
    if args.compare_if:
        print(f"Model {args.model} at {args.size}, {args.threads} threads, {args.pairs} alternated pairs each.\n")
        for precision in args.precisions.split(","):
            print(f"- {precision}: {compare_if(args.weights, args.model, size, precision, args.pairs, args.threads)}")
        return 0
    print(
        f"Model {args.model} at {args.size}, {args.threads} threads, OpenVINO PERF_COUNT, last of {args.pairs} pairs.\n"
    )
    print("| precision | ms/pair (wall) | graph | layer type | kernel | layers | ms | share |")
    print("|---|---|---|---|---|---|---|---|")
    for precision in args.precisions.split(","):
        wall, report = profile(args.weights, args.model, size, precision, args.pairs, args.threads)
        total = sum(r["ms"] for r in report) or 1.0
        for r in report[: args.top]:
            print(f"| {precision} | {wall:.1f} | {r['graph']} | {r['type']} | {r['kernel']} | {r['layers']} | "
                  f"{r['ms']:.2f} | {100 * r['ms'] / total:.1f}% |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
