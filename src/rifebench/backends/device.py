"""Device backends: which device, how to synchronise it, what it is, and the
device-specific parts of the optimisation knobs (cuDNN/TF32 switches, the
Intel extension's optimiser, CUDA graph capture).

Nothing here touches a device at import time; a platform is probed only when
asked for, so `--platform cuda` on a machine without CUDA fails with a clear
message instead of a traceback deep inside a stream.

XPU: IPEX=yes uses Intel Extension for PyTorch (ipex.optimize on the model),
IPEX=no PyTorch's own torch.xpu. CPU: fp32, bf16 (fast where the CPU has
AVX512-BF16/AMX) and fp16 (correct but ~60x slower than fp32 in torch 2.13's
CPU convolutions); the warp always runs in fp32 (nets/warp.py).
"""

from __future__ import annotations

import os
import resource
import sys
from dataclasses import dataclass
from typing import Any

from rifebench.errors import RifebenchError, UsageError
from rifebench.measure.topology import cpu_model

PLATFORMS = ("cpu", "cuda", "xpu")


class BackendUnavailable(RifebenchError, RuntimeError):
    """The platform asked for cannot be used here; the message says why."""


def import_ipex():
    """Import Intel Extension for PyTorch, or return (None, why).

    A version mismatch with torch raises AttributeError (and sometimes
    OSError/RuntimeError from its native library) rather than ImportError, so a
    bare `except ImportError` lets the run crash.
    """
    try:
        import intel_extension_for_pytorch as ipex

        return ipex, None
    except ModuleNotFoundError as exc:
        if exc.name != "intel_extension_for_pytorch":  # installed, but one of its dependencies is not
            return None, f"{type(exc).__name__}: {exc}".splitlines()[0]
        return None, "not installed"
    except (ImportError, AttributeError, OSError, RuntimeError) as exc:
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]


def probe(platform: str) -> str | None:
    """None when `platform` is usable, else the reason it is not."""
    import torch

    if platform == "cpu":
        return None
    if platform == "cuda":
        if not torch.cuda.is_available():
            built = torch.version.cuda
            return (
                "this torch build has no CUDA support (torch " + torch.__version__ + ")"
                if not built
                else "no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES)"
            )
        return None
    if platform == "xpu":
        xpu = getattr(torch, "xpu", None)
        if xpu is not None and xpu.is_available():
            return None
        ipex, why = import_ipex()
        if ipex is not None and getattr(torch, "xpu", None) is not None and torch.xpu.is_available():
            return None
        return "no Intel GPU (XPU) is visible to torch" + (f"; Intel Extension for PyTorch: {why}" if why else "")
    return f"unknown platform {platform!r}"


def resolve_platform(requested: str) -> str:
    """auto -> xpu if usable, else cuda, else cpu; an explicit platform must be usable."""
    if requested == "auto":
        for candidate in ("xpu", "cuda"):
            if probe(candidate) is None:
                return candidate
        return "cpu"
    why = probe(requested)
    if why is not None:
        raise BackendUnavailable(
            f"--platform/PLATFORM: {requested!r} is not available here: {why} "
            f"(accepted here: {', '.join(p for p in PLATFORMS if probe(p) is None)})"
        )
    return requested


def device_count(platform: str) -> int:
    import torch

    if platform == "cuda":
        return torch.cuda.device_count()
    if platform == "xpu":
        return torch.xpu.device_count()
    return 1


@dataclass
class Backend:
    """One device: selection, knobs that are global to the process, the
    extension's optimiser, synchronisation, memory statistics, description."""

    platform: str
    index: int = 0

    def __post_init__(self):
        import torch

        if self.platform not in PLATFORMS:
            raise BackendUnavailable(f"Backend: platform must be one of {', '.join(PLATFORMS)}, got {self.platform!r}")
        why = probe(self.platform)
        if why is not None:
            raise BackendUnavailable(f"Backend: platform {self.platform!r} is not available here: {why}")
        self.torch = torch
        self.ipex = None  # the extension's module when the knobs use it
        self.knobs: dict = {}
        self.device = torch.device(self.platform if self.platform == "cpu" else f"{self.platform}:{self.index}")
        if self.platform != "cpu":
            getattr(torch, self.platform).set_device(self.index)

    def configure(self, knobs: dict) -> None:
        """Apply the process-wide knobs (effective values from knobs.resolve).
        Both ways, explicitly: torch's own defaults are not the baseline
        (cuDNN allows TF32 by default)."""
        torch = self.torch
        self.knobs = dict(knobs)
        if self.platform == "cuda":
            torch.backends.cudnn.benchmark = bool(knobs.get("cudnn_benchmark"))
            tf32 = bool(knobs.get("tf32"))
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        if knobs.get("ipex"):
            ipex, why = import_ipex()
            if ipex is None:  # knobs.resolve saw it import; a second import cannot differ
                raise BackendUnavailable(f"Intel Extension for PyTorch cannot be imported: {why}")
            self.ipex = ipex

    def optimizer(self) -> Any:
        """A function (net, dtype) -> net applying ipex.optimize, or None."""
        if self.ipex is None:
            return None
        ipex = self.ipex

        def optimize(net, dtype):
            # dtype tells ipex which low-precision kernels to prepare; fp32 needs none.
            low = dtype if dtype != self.torch.float32 else None
            return ipex.optimize(net.eval(), dtype=low, inplace=True)

        return optimize

    def sync(self) -> None:
        if self.platform != "cpu":
            getattr(self.torch, self.platform).synchronize(self.device)

    def event(self):
        """A timing event on this device's current stream, or None where the device
        has none (the CPU runs synchronously: the host clock is its clock)."""
        if self.platform == "cpu":
            return None
        cls = getattr(getattr(self.torch, self.platform), "Event", None)
        return cls(enable_timing=True) if cls is not None else None

    def reset_peak_memory(self) -> None:
        mod: Any = getattr(self.torch, self.platform, None)
        if self.platform != "cpu" and hasattr(mod, "reset_peak_memory_stats"):
            mod.reset_peak_memory_stats(self.device)

    def memory(self) -> dict:
        # ru_maxrss is in KiB on Linux: the process's peak resident memory.
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if self.platform == "cpu":
            return {"peak_allocated_bytes": None, "peak_reserved_bytes": None, "peak_rss_bytes": rss}
        mod = getattr(self.torch, self.platform)

        def stat(name):
            fn = getattr(mod, name, None)  # older torch.xpu builds lack the allocator statistics
            return int(fn(self.device)) if fn is not None else None

        return {
            "peak_allocated_bytes": stat("max_memory_allocated"),
            "peak_reserved_bytes": stat("max_memory_reserved"),
            "peak_rss_bytes": rss,
        }

    def describe(self) -> dict:
        torch = self.torch
        info = {"platform": self.platform, "device": str(self.device), "torch": torch.__version__}
        if self.platform == "cpu":
            info.update(name=cpu_model(), threads=torch.get_num_threads(), isa=torch.backends.cpu.get_cpu_capability())
        elif self.platform == "cuda":
            props = torch.cuda.get_device_properties(self.device)
            info.update(
                name=props.name,
                total_memory_bytes=int(props.total_memory),
                capability=f"{props.major}.{props.minor}",
                cuda=torch.version.cuda,
                cudnn=torch.backends.cudnn.version(),
                driver=_nvidia_driver(),
                sm_clock_mhz=_optional(lambda: torch.cuda.clock_rate(self.device)),
            )
        else:
            props = torch.xpu.get_device_properties(self.index)
            info.update(
                name=getattr(props, "name", None) or torch.xpu.get_device_name(self.index),
                driver=getattr(props, "driver_version", None),
                total_memory_bytes=getattr(props, "total_memory", None),
                compute_units=getattr(props, "max_compute_units", None),
            )
        if self.platform != "cuda":
            info["runtime"] = (
                f"intel_extension_for_pytorch {getattr(self.ipex, '__version__', '?')}"
                if self.ipex is not None
                else "torch"
                if self.platform == "cpu"
                else "torch.xpu"
            )
            if self.ipex is None and self.platform == "xpu" and "intel_extension_for_pytorch" in sys.modules:
                # probe() had to import it: this torch only reaches the GPU through the extension.
                info["runtime"] += " (extension loaded, ipex.optimize not applied)"
        return info


def _optional(fn):
    """A detail that needs an optional package (pynvml) or driver support: None if absent."""
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a missing detail must never fail a run
        return None


class CudaGraphs:
    """CUDA_GRAPHS: one graph per call signature, captured after warm-up and
    replayed from static input buffers.

    Capture follows the CUDA rules: warm-up iterations on a side stream (lazy
    initialisation, cuDNN autotuning and allocator growth must not happen
    inside the capture), then capture into a pool shared by all graphs. A
    replay copies the inputs into the static buffers (skipped when the caller
    passes them back) and returns a clone of the static output, which the next
    replay overwrites (bisection feeds one output back as an input).
    """

    def __init__(self, device, warmup: int = 3):
        import torch

        if torch.device(device).type != "cuda":
            raise BackendUnavailable(f"CUDA graphs need a CUDA device, got {torch.device(device).type}")
        self.torch, self.device, self.warmup = torch, torch.device(device), warmup
        self.pool = torch.cuda.graph_pool_handle()
        self.graphs: dict = {}
        self.replays = 0

    def run(self, key, fn, inputs: tuple):
        entry = self.graphs.get(key)
        if entry is None:
            entry = self.graphs[key] = self._capture(fn, inputs)
        static_in, graph, static_out = entry
        for buf, x in zip(static_in, inputs, strict=True):
            if buf.data_ptr() != x.data_ptr():
                buf.copy_(x)
        graph.replay()
        self.replays += 1
        return static_out.clone()

    def _capture(self, fn, inputs: tuple):
        torch = self.torch
        static_in = tuple(x.clone() for x in inputs)  # clone keeps the memory format
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                fn(*static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            static_out = fn(*static_in)
        return static_in, graph, static_out


def _nvidia_driver() -> str | None:
    try:
        with open("/proc/driver/nvidia/version") as f:
            return f.readline().strip()
    except OSError:
        return os.environ.get("NVIDIA_DRIVER_VERSION")


PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}  # PRECISION -> torch dtype name


def torch_dtype(precision: Any) -> Any:
    """PRECISION (fp32/fp16/bf16) or a torch float dtype -> the torch dtype."""
    import torch

    if isinstance(precision, torch.dtype) and precision in {getattr(torch, n) for n in PRECISIONS.values()}:
        return precision
    if isinstance(precision, str) and precision in PRECISIONS:
        return getattr(torch, PRECISIONS[precision])
    raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def gpu_identities(platform: str, wanted: list[int] | None) -> list[dict]:
    """Identity (index, PCI bus id, NUMA node, name) of each device the streams
    may use: the launcher's pinning and the GPU monitor key on these."""
    if platform == "cpu":
        return []
    from rifebench.measure.topology import gpu_identity

    count = device_count(platform)
    bad = [i for i in wanted or [] if i >= count]
    if bad:
        raise UsageError(
            f"--devices/DEVICES: device {bad[0]} is not visible ({count} {platform} device(s)) "
            f"(accepted: indices 0 to {count - 1}, comma-separated)"
        )
    return [gpu_identity(platform, i) for i in (wanted or range(count))]
