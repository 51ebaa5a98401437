"""FLOPs of one network call, device peaks, and the share of peak a run achieved.

Measure layer: nothing here knows the model zoo. count_gflop() receives a
zero-argument builder and the padded size; the caller (the harness) knows the
model, its padding and how many calls make one pair.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

# A CPU count (the fallback for data-dependent networks) runs the real network:
# above this many pixels it counts at a smaller size and scales by the pixel ratio.
# Convolution FLOPs are linear in the pixels of a padded size (every stage's
# size divides exactly), so the scaled count is exact: 4.0 at 1280x768, 1920x1088
# and 3840x2176 scaled from about 384x256 give the direct counts to the FLOP,
# and the default run's start-up pays 0.24 s instead of 2.4 s (a real 720p
# forward pass on a 2-core CPU).
CPU_COUNT_MAX_PIXELS = 384 * 256

_COUNTED = (
    "FLOPs from torch.utils.flop_counter.FlopCounterMode: convolutions and transposed "
    "convolutions (and any matmuls) as 2 x MAC; grid_sample, interpolate and elementwise "
    "ops are not counted"
)

NetBuilder = Callable[[], torch.nn.Module]  # a zero-argument builder of the network

_CACHE: dict[tuple[object, ...], dict[str, Any]] = {}


def _builder_key(build_net: Callable[..., Any]) -> object:
    """A stable cache key for a builder: its import name where it has one."""
    if isinstance(build_net, functools.partial):
        return (_builder_key(build_net.func), build_net.args, tuple(sorted(build_net.keywords.items())))
    qualname = getattr(build_net, "__qualname__", "")
    if qualname and "<" not in qualname:
        return f"{getattr(build_net, '__module__', '')}.{qualname}"
    # Lambdas and local functions: the object itself (kept alive by the cache, so
    # its identity is never reused).
    return build_net


def _abstract_mode() -> AbstractContextManager[Any]:
    """A context in which factories make storage-less tensors. Fake tensors carry
    meta storage but report a CPU device, so the networks' warp can still enter
    torch.autocast(device_type=...), which rejects "meta"."""
    try:
        from torch._subclasses.fake_tensor import FakeTensorMode
    except ImportError:  # a torch without fake tensors: plain meta
        return torch.device("meta")
    return FakeTensorMode()


def _forward_flops(
    net: torch.nn.Module, x: torch.Tensor, timestep: float, scale: float, arbitrary_timestep: bool
) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        if arbitrary_timestep:
            net(x, x, timestep, scale=scale)
        else:
            net(x, x, scale=scale)
    return int(counter.get_total_flops())


def _count_abstract(
    build_net: NetBuilder, h: int, w: int, batch: int, timestep: float, scale: float, arbitrary_timestep: bool
) -> int:
    with _abstract_mode():
        net = build_net().eval()
        x = torch.zeros(batch, 3, h, w)
        return _forward_flops(net, x, timestep, scale, arbitrary_timestep)


def _reads_own_output(exc: Exception) -> bool:
    """Whether exc is a host read-back (bool()/item() on a tensor) that storage-less
    tensors cannot answer, rather than a real error such as an unpadded size."""
    names = {"DataDependentOutputException", "DynamicOutputShapeException"}
    text = str(exc)
    return type(exc).__name__ in names or "_local_scalar_dense" in text or "item()" in text


class _DataDependent(Exception):
    pass


def _declared_data_dependent(build_net: NetBuilder) -> str | None:
    """The networks say when they branch on their own output (`data_dependent`,
    which the CUDA-graph knob reads too); built on the meta device, asking costs
    nothing."""
    with torch.device("meta"):
        net = build_net()
    return "the network branches on its own output (data_dependent)" if getattr(net, "data_dependent", False) else None


def _count_cpu(
    build_net: NetBuilder, h: int, w: int, batch: int, timestep: float, scale: float, arbitrary_timestep: bool
) -> tuple[int, bool]:
    """Counts on real zero inputs. Returns (flops, whether a large-motion branch fired)."""
    net = build_net().eval()
    before = getattr(net, "large_motion_count", 0)
    x = torch.zeros(batch, 3, h, w)
    flops = _forward_flops(net, x, timestep, scale, arbitrary_timestep)
    return flops, getattr(net, "large_motion_count", 0) != before


def _smaller_size(h: int, w: int, modulus: int | None) -> tuple[int, int]:
    """A size of about CPU_COUNT_MAX_PIXELS with the shape of (h, w), still a multiple
    of the padding modulus (by default the largest power of two dividing both sides,
    which a padded size always keeps)."""
    step = modulus or min(256, math.gcd(h, w) & -math.gcd(h, w))
    ratio = math.sqrt(CPU_COUNT_MAX_PIXELS / (h * w))
    return max(step, int(h * ratio) // step * step), max(step, int(w * ratio) // step * step)


def count_gflop(
    build_net: NetBuilder,
    height: int,
    width: int,
    batch: int = 1,
    timestep: float = 0.5,
    scale: float = 1.0,
    arbitrary_timestep: bool = True,
    *,
    modulus: int | None = None,
) -> dict[str, Any]:
    """GFLOP of ONE forward call of build_net() on (batch, 3, height, width) frame pairs.

    height, width: the padded size the network sees. Calls net(img0, img1, timestep,
    scale=scale), or net(img0, img1, scale=scale) when arbitrary_timestep is False.
    Counted on storage-less tensors, so any size costs about a second. A network that
    branches on its own output (4.0's large-motion re-run) cannot run without data:
    it is counted on the CPU with zero inputs (which keep the branch off), at a
    smaller size scaled by the pixel ratio above CPU_COUNT_MAX_PIXELS. `basis` says
    what was counted and how.
    """
    key = (_builder_key(build_net), height, width, batch, float(scale), float(timestep), arbitrary_timestep)
    if key in _CACHE:
        return dict(_CACHE[key])
    args = (timestep, scale, arbitrary_timestep)
    why = _declared_data_dependent(build_net)
    flops: float
    try:
        if why:  # a fake-tensor attempt would only fail, after two seconds of tracing
            raise _DataDependent(why)
        flops = _count_abstract(build_net, height, width, batch, *args)
        how = "counted on fake (storage-less) tensors"
    except Exception as exc:
        if not isinstance(exc, _DataDependent) and not _reads_own_output(exc):
            raise
        why = why or f"fake tensors failed ({type(exc).__name__}: the network reads its own output)"
        if height * width <= CPU_COUNT_MAX_PIXELS:
            flops, fired = _count_cpu(build_net, height, width, batch, *args)
            how = f"{why}; counted on the CPU with zero inputs at {width}x{height}"
        else:
            hs, ws = _smaller_size(height, width, modulus)
            small, fired = _count_cpu(build_net, hs, ws, batch, *args)
            flops = small * (height * width) / (hs * ws)
            how = (
                f"{why}; counted on the CPU with zero inputs at {ws}x{hs} and scaled by the "
                f"pixel ratio to {width}x{height}"
            )
        how += (
            "; the large-motion branch FIRED (count includes the re-run)"
            if fired
            else "; data-dependent branches off (no large-motion re-run counted)"
        )
    result = {"gflop": flops / 1e9, "basis": f"{_COUNTED}; {how}", "height": height, "width": width, "batch": batch}
    _CACHE[key] = result
    return dict(result)


# Dense (no sparsity) peak TFLOP/s per device as torch names it: tensor-core (XMX)
# figures for tf32/fp16/bf16, non-tensor (vector) fp32. A missing precision is one
# the device has no fast path for (None). Datasheets print sparse figures with an
# asterisk; the dense value is half of that.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    # H100 SXM5 datasheet: 67 FP32; 989 TF32 / 1,979 FP16/BF16 tensor with sparsity.
    # torch names it "NVIDIA H100 80GB HBM3".
    "h100": {"fp32": 67.0, "tf32": 494.5, "fp16": 989.5, "bf16": 989.5},
    # H100 PCIe datasheet: 51 FP32; 756 TF32 / 1,513 FP16/BF16 tensor with sparsity.
    "h100 pcie": {"fp32": 51.0, "tf32": 378.0, "fp16": 756.5, "bf16": 756.5},
    # H100 NVL datasheet (per GPU): 60 FP32; 835 TF32 / 1,671 FP16/BF16 with sparsity.
    "h100 nvl": {"fp32": 60.0, "tf32": 417.5, "fp16": 835.5, "bf16": 835.5},
    # H200 SXM datasheet: 67 FP32; 989 TF32 / 1,979 FP16/BF16 tensor with sparsity
    # (989 dense FP16/BF16).
    "h200": {"fp32": 67.0, "tf32": 494.5, "fp16": 989.5, "bf16": 989.5},
    # H200 NVL datasheet: 60 FP32; 835 TF32 / 1,671 FP16/BF16 with sparsity.
    "h200 nvl": {"fp32": 60.0, "tf32": 417.5, "fp16": 835.5, "bf16": 835.5},
    # A100 datasheet, identical for SXM4 and PCIe, 40 and 80 GB ("NVIDIA A100-SXM4-80GB",
    # "NVIDIA A100-PCIE-40GB", "NVIDIA A100 80GB PCIe"): 19.5 FP32; 156 TF32; 312 FP16/BF16.
    "a100": {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0},
    # L40S datasheet: 91.6 FP32; 183 TF32; 362.05 FP16/BF16 tensor (dense).
    "l40s": {"fp32": 91.6, "tf32": 183.0, "fp16": 362.05, "bf16": 362.05},
    # L4 datasheet: 30.3 FP32; 120 TF32 / 242 FP16/BF16 tensor with sparsity.
    "l4": {"fp32": 30.3, "tf32": 60.0, "fp16": 121.0, "bf16": 121.0},
    # A10 datasheet: 31.2 FP32; 62.5 TF32; 125 FP16/BF16 tensor (dense).
    "a10": {"fp32": 31.2, "tf32": 62.5, "fp16": 125.0, "bf16": 125.0},
    # Ada (AD102) whitepaper, RTX 4090: 82.6 FP32; 82.6 TF32; 165.2 FP16/BF16 tensor with
    # FP32 accumulate (what PyTorch's GEMMs and convs use; FP16 accumulate is 330.3).
    "rtx 4090": {"fp32": 82.6, "tf32": 82.6, "fp16": 165.2, "bf16": 165.2},
    # Ampere GA102 whitepaper, RTX 3090: 35.6 FP32; 35.6 TF32; 71 FP16/BF16 tensor with
    # FP32 accumulate (142 with FP16 accumulate).
    "rtx 3090": {"fp32": 35.6, "tf32": 35.6, "fp16": 71.0, "bf16": 71.0},
    # RTX 3090 Ti (GA102, 84 SMs at 1.86 GHz boost): 40 FP32; 80 FP16/BF16 tensor with
    # FP32 accumulate. Listed so that its name does not fall back to the 3090's.
    "rtx 3090 ti": {"fp32": 40.0, "tf32": 40.0, "fp16": 80.0, "bf16": 80.0},
    # V100 datasheet: SXM2 15.7 FP32 / 125 FP16 tensor; PCIe 14 / 112; V100S PCIe
    # 16.4 / 130. No TF32 or BF16 tensor cores.
    "v100": {"fp32": 15.7, "fp16": 125.0},
    "v100 pcie": {"fp32": 14.0, "fp16": 112.0},
    "v100s": {"fp32": 16.4, "fp16": 130.0},
    # Intel Data Center GPU Max 1550 product brief / ark: 128 Xe cores at 1.6 GHz; 52
    # TFLOPS FP32 vector; XMX 419 TF32, 839 FP16/BF16 (no sparsity).
    "max 1550": {"fp32": 52.4, "tf32": 419.4, "fp16": 838.9, "bf16": 838.9},
    # Max 1100 (ark: 56 Xe cores at 1.55 GHz): 22.2 FP32 vector; XMX 177.8 TF32,
    # 355.6 FP16/BF16 (the 1550's per-core rates at the 1100's core count and clock).
    "max 1100": {"fp32": 22.2, "tf32": 177.8, "fp16": 355.6, "bf16": 355.6},
    # Flex 170 product brief: 16 TFLOPS FP32, 256 TOPS INT8 XMX; FP16/BF16 XMX at half the
    # INT8 rate. Xe-HPG XMX has no TF32.
    "flex 170": {"fp32": 16.0, "fp16": 128.0, "bf16": 128.0},
    # Flex 140 product brief: 8 TFLOPS FP32, 105 TOPS INT8 per card, which holds two GPUs;
    # torch sees each GPU as a device, so these are per GPU (half the card).
    "flex 140": {"fp32": 4.0, "fp16": 26.25, "bf16": 26.25},
}

PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
_ALIASES = {"float32": "fp32", "float": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16"}


def _words(name: str) -> str:
    return " ".join(re.sub(r"[-_/(),]", " ", name.lower()).split())


def _table_key(device_name: str) -> str | None:
    """The longest table key found in device_name as whole words ("a10" is not in "a100")."""
    name = f" {_words(device_name)} "
    found = [k for k in PEAK_TFLOPS if f" {k} " in name]
    return max(found, key=len) if found else None


def peak_tflops(device_name: str, precision: str, tf32: bool = False) -> float | None:
    """The dense peak TFLOP/s of device_name (as torch names it) at precision
    (fp32, tf32, fp16 or bf16). fp32 with tf32=True reads the TF32 tensor figure, or
    the fp32 one where the device has no TF32. None for unknown devices (CPUs
    included) and for precisions a device has no fast path for."""
    p = _ALIASES.get(str(precision).lower(), str(precision).lower())
    if p not in PRECISIONS:
        raise ValueError(f"peak_tflops: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    key = _table_key(device_name or "")
    if key is None:
        return None
    row = PEAK_TFLOPS[key]
    if p == "fp32" and tf32:
        return row.get("tf32", row["fp32"])
    if p == "tf32":
        return row.get("tf32", row["fp32"])
    return row.get(p)


_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _sync(device: torch.device) -> None:
    if device.type != "cpu":
        getattr(torch, device.type).synchronize(device)


def _timed(device: torch.device, fn: Callable[[], object], n: int) -> float:
    """Seconds for n calls of fn: device events where the backend has them, else the
    host clock around a synchronisation."""
    backend: Any = getattr(torch, device.type, None)
    if device.type != "cpu" and hasattr(backend, "Event"):
        start, end = backend.Event(enable_timing=True), backend.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end)) / 1000.0
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    _sync(device)
    return time.perf_counter() - t0


def measured_matmul_tflops(
    device: torch.device | str, dtype: torch.dtype | str, seconds: float = 1.0, size: int = 8192
) -> float:
    """TFLOP/s of repeated size x size matmuls on device in dtype (a torch dtype or
    fp32/tf32/fp16/bf16), after a warm-up, over about `seconds`: a measured ceiling
    for devices the peak table lacks. fp32 uses TF32 only where the caller has
    enabled it (torch.backends.cuda.matmul.allow_tf32)."""
    dev = torch.device(device)
    if not isinstance(dtype, torch.dtype):
        name = _ALIASES.get(str(dtype).lower(), str(dtype).lower())
        if name not in _DTYPES:
            raise ValueError(
                f"measured_matmul_tflops: dtype must be a torch dtype or one of {', '.join(_DTYPES)}, got {dtype!r}"
            )
        dtype = _DTYPES[name]
    a = torch.randn(size, size, device=dev).to(dtype)
    b = torch.randn(size, size, device=dev).to(dtype)
    out = torch.empty(size, size, device=dev, dtype=dtype)

    def step() -> None:
        torch.matmul(a, b, out=out)

    one = _timed(dev, step, 2) / 2  # also the warm-up (kernel selection, clocks)
    n = max(1, int(seconds / max(one, 1e-9)))
    elapsed = _timed(dev, step, n)
    return 2.0 * size**3 * n / elapsed / 1e12


def achieved(gflop_per_pair: float | None, pairs_per_s: float | None, peak: float | None) -> dict[str, Any]:
    """TFLOP/s achieved at pairs_per_s, and its share of peak (TFLOP/s) in percent;
    None where an input is unknown."""
    tflops = None
    if gflop_per_pair is not None and pairs_per_s is not None:
        tflops = gflop_per_pair * pairs_per_s / 1000.0
    share = 100.0 * tflops / peak if tflops is not None and peak else None
    return {"tflops": tflops, "peak_tflops": peak, "share_of_peak_pct": share}
