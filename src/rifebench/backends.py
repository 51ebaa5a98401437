"""Device backends: which device, how to synchronise it, what it is.

Nothing here touches a device at import time; a platform is probed only when
asked for, so `--platform cuda` on a machine without CUDA fails with a clear
message instead of a traceback deep inside a stream.
"""
from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field

PLATFORMS = ("cpu", "cuda", "xpu")


class BackendUnavailable(RuntimeError):
    """The platform asked for cannot be used here; the message says why."""


def import_ipex():
    """Import Intel Extension for PyTorch, or return (None, why).

    A version mismatch with torch raises AttributeError (and sometimes
    OSError/RuntimeError from its native library) rather than ImportError, so a
    bare `except ImportError` lets the run crash.
    """
    try:
        import intel_extension_for_pytorch as ipex  # noqa: F401

        return ipex, None
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
            return ("this torch build has no CUDA support (torch " + torch.__version__ + ")" if not built
                    else "no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES)")
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
        raise BackendUnavailable(f"--platform/PLATFORM: {requested!r} is not available here: {why} "
                                 f"(accepted here: {', '.join(p for p in PLATFORMS if probe(p) is None)})")
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
    platform: str
    index: int = 0
    notes: list = field(default_factory=list)

    def __post_init__(self):
        import torch

        self.torch = torch
        self.device = torch.device(self.platform if self.platform == "cpu" else f"{self.platform}:{self.index}")
        if self.platform != "cpu":
            getattr(torch, self.platform).set_device(self.index)

    def sync(self) -> None:
        if self.platform != "cpu":
            getattr(self.torch, self.platform).synchronize(self.device)

    def reset_peak_memory(self) -> None:
        if self.platform != "cpu":
            getattr(self.torch, self.platform).reset_peak_memory_stats(self.device)

    def memory(self) -> dict:
        if self.platform == "cpu":
            # ru_maxrss is in KiB on Linux: the process's peak resident memory.
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            return {"peak_allocated_bytes": None, "peak_reserved_bytes": None, "peak_rss_bytes": peak}
        mod = getattr(self.torch, self.platform)
        return {
            "peak_allocated_bytes": int(mod.max_memory_allocated(self.device)),
            "peak_reserved_bytes": int(mod.max_memory_reserved(self.device)),
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }

    def describe(self) -> dict:
        torch = self.torch
        info = {"platform": self.platform, "device": str(self.device), "torch": torch.__version__}
        if self.platform == "cpu":
            info["name"] = cpu_model()
            info["threads"] = torch.get_num_threads()
        elif self.platform == "cuda":
            props = torch.cuda.get_device_properties(self.device)
            info.update(name=props.name, total_memory_bytes=int(props.total_memory),
                        capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda,
                        cudnn=torch.backends.cudnn.version(), driver=_nvidia_driver())
        else:
            info.update(name=torch.xpu.get_device_name(self.index))
        return info


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _nvidia_driver() -> str | None:
    try:
        with open("/proc/driver/nvidia/version") as f:
            return f.readline().strip()
    except OSError:
        return os.environ.get("NVIDIA_DRIVER_VERSION")


DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def torch_dtype(precision: str):
    import torch

    return getattr(torch, DTYPES[precision])
