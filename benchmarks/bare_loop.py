"""The least a benchmark can do: build the model on the device, prepare one
dummy pair once, call the model `pairs` times and wait for the device once at
the end. harness_overhead.py sets the harness against it.

    python3 benchmarks/bare_loop.py --model 4.6 --platform cuda --precision fp16 \\
        --weights /tmp/rife-4.6.pkl --height 1080 --width 1920 --pairs 200
prints the throughput in pairs/s as its last line.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

PLATFORMS = ("auto", "cpu", "cuda", "xpu")
PRECISIONS = ("auto", "fp16", "bf16", "fp32")


def default_weights(model: str) -> Path | None:
    from rifebench.models import zoo

    return zoo.get(model).weights_path(REPO / "model")


def _device(platform: str) -> str:
    import torch

    if platform == "auto":
        if hasattr(torch, "xpu") and torch.xpu.is_available():
            return "xpu"
        return "cuda" if torch.cuda.is_available() else "cpu"
    return platform


def bare_loop(model: str = "4.0", weights: str | Path | None = None, platform: str = "cpu",
              precision: str = "fp32", height: int = 256, width: int = 448, pairs: int = 30,
              warmup: int = 5) -> float:
    """pairs/s of `pairs` back-to-back interpolations of one prepared dummy pair.
    weights None: the model's default file under model/. precision auto: fp16 on
    a GPU, fp32 on the CPU, as the harness resolves it."""
    import torch

    from rifebench.data.dummy import dummy_frames
    from rifebench.models import zoo
    from rifebench.models.interp import Interpolator
    from rifebench.models.weights import load_model

    if platform not in PLATFORMS:
        raise ValueError(f"bare_loop: platform must be one of {', '.join(PLATFORMS)}, got {platform!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"bare_loop: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = _device(platform)
    if precision == "auto":
        precision = "fp32" if device == "cpu" else "fp16"
    if device == "cuda":
        # The harness's baseline sets both explicitly; torch's own default lets cuDNN use TF32.
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    spec = zoo.get(model)
    net = load_model(spec, weights if weights is not None else default_weights(model))
    interp = Interpolator(net, spec, torch.device(device), precision)
    f0, f1 = dummy_frames(height, width, 0)
    a, b = interp.prepare(f0), interp.prepare(f1)
    sync = getattr(torch, device).synchronize if device != "cpu" else (lambda: None)
    for _ in range(warmup):
        interp.interpolate(a, b, 1)
    sync()
    t0 = time.perf_counter()
    for _ in range(pairs):
        interp.interpolate(a, b, 1)
    sync()  # once: the host queues every call, the device drains them, as the harness's ASYNC=0
    return pairs / (time.perf_counter() - t0)


def add_options(ap: argparse.ArgumentParser) -> None:
    """The options bare_loop.py and harness_overhead.py share."""
    ap.add_argument("--model", default="4.0", help="zoo model (default 4.0)")
    ap.add_argument("--platform", default="cpu", choices=PLATFORMS, help="default cpu")
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS, help="default fp32")
    ap.add_argument("--weights", type=Path, default=None, help="default: model/rife-<model>/flownet.pkl")
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=448)
    ap.add_argument("--pairs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(ap)
    a = ap.parse_args()
    print(bare_loop(a.model, a.weights, a.platform, a.precision, a.height, a.width, a.pairs, a.warmup))


if __name__ == "__main__":
    main()
