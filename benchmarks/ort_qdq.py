"""Does ONNX Runtime's static INT8 quantization (QDQ) pay on this CPU? The graph a run exports
for ONNX Runtime (the same cached fp32 export), quantized by `onnxruntime.quantization.
quantize_static` in QDQ format, calibrated on the bundled mixed_448x256 triplets (as the
OpenVINO int8 path is), timed against the fp32 graph in alternated rounds in one process, with
the PSNR of its output against the fp32 graph's on the check pairs of the int8 gate.

    python3 benchmarks/ort_qdq.py --weights model/rife-4.0/flownet.pkl --model 4.0 --size 448x256 \
        [--rounds 6] [--pairs 2] [--threads 2] [--calibration-pairs 24] [--per-channel]

It prints one markdown table. This is why the harness refuses int8 with ONNX Runtime: on the
project's 2-core CPU the QDQ graph ran slower than fp32 (docs/figures.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def _exported(weights: str, model: str, size: tuple[int, int], threads: int):
    """The fp32 graph a run exports for ONNX Runtime at this size, and the padded size."""
    import torch

    from rifebench.config import resolve
    from rifebench.data.dummy import dummy_frames
    from rifebench.run.stream import build

    torch.set_num_threads(threads)
    cfg = resolve(["--dummy", "--model", model, "--pretrained-weights", weights, "--platform", "cpu",
                   "--runtime", "onnxruntime", "--precision", "fp32"], env={})  # fmt: skip
    _, interp = build(cfg)
    a = interp.prepare(dummy_frames(size[1], size[0], 0)[0])
    hw = tuple(a.shape[2:])
    path, _ = interp.net._export(hw)
    return Path(path), hw


def _quantize(fp32: Path, out: Path, hw: tuple[int, int], count: int, per_channel: bool) -> float:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from rifebench.runtimes import calibration

    bundled = calibration.bundled_set()
    if bundled is None:
        raise SystemExit("ort_qdq: the bundled triplets (shared data mixed_448x256) are not here")
    pairs = calibration.read_pairs(calibration.CalibrationSource("bundled", str(bundled)), hw, 1)[:count]
    feeds = calibration.samples(pairs, hw, 1, [0.5])

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self):
            return next(self.items, None)

    t0 = time.monotonic()
    quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=per_channel, op_types_to_quantize=["Conv", "ConvTranspose"])  # fmt: skip
    return time.monotonic() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--model", default="4.0")
    p.add_argument("--size", default="448x256", help="WxH")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--pairs", type=int, default=2, help="timed pairs per graph and round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calibration-pairs", type=int, default=24)
    p.add_argument("--per-channel", action="store_true")
    args = p.parse_args()
    w, h = (int(x) for x in args.size.lower().split("x"))

    import numpy as np
    import onnxruntime as ort
    import torch

    from rifebench.measure.quality import float_psnr
    from rifebench.runtimes.calibration import check_pairs

    fp32, hw = _exported(args.weights, args.model, (w, h), args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        qdq = Path(tmp) / "qdq.onnx"
        quantize_s = _quantize(fp32, qdq, hw, args.calibration_pairs, args.per_channel)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
        sessions = {name: ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                    for name, path in (("fp32", fp32), ("int8 QDQ", qdq))}  # fmt: skip
        checks = [(a.numpy(), b.numpy()) for a, b in check_pairs(*hw, 4)]
        t = np.array([0.5], dtype=np.float32)

        def feed(a, b):
            return {"img0": a, "img1": b, "timestep": t}

        outs = {n: [s.run(None, feed(a, b))[0] for a, b in checks] for n, s in sessions.items()}
        psnr = [float_psnr(r, q) for r, q in zip(outs["fp32"], outs["int8 QDQ"], strict=True)]
        times: dict[str, list[float]] = {n: [] for n in sessions}
        a, b = checks[0]
        for r in range(args.rounds):
            order = list(sessions) if r % 2 == 0 else list(sessions)[::-1]
            for n in order:
                for _ in range(args.pairs):
                    t0 = time.perf_counter()
                    sessions[n].run(None, feed(a, b))
                    times[n].append(time.perf_counter() - t0)
    base = statistics.median(times["fp32"])
    print(
        f"ONNX Runtime {ort.__version__}, torch {torch.__version__}, model {args.model}, {w}x{h} (padded "
        f"{hw[1]}x{hw[0]}), {args.threads} threads, {args.rounds} alternated rounds of {args.pairs} pair(s); "
        f"QDQ quantize_static (Conv/ConvTranspose, u8 activations, s8 weights"
        f"{', per channel' if args.per_channel else ''}) on {args.calibration_pairs} bundled pairs in "
        f"{quantize_s:.0f} s\n"
    )
    print("| graph | ms/pair (median) | pairs/s | speed vs fp32 | PSNR vs fp32 on 4 check pairs |")
    print("|---|---|---|---|---|")
    for n, ts in times.items():
        med = statistics.median(ts)
        fid = "reference" if n == "fp32" else f"{min(psnr):.1f} dB worst, {statistics.mean(psnr):.1f} mean"
        print(f"| {n} | {med * 1000:.1f} | {1 / med:.2f} | {base / med:.2f}x | {fid} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
