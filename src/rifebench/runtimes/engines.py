"""One engine per runtime: a compiled graph of fixed shapes with run(img0, img1, t).
OpenVINO's is in ov_engine.py.

Engines take and return torch tensors so the Interpolator around them stays the
same for every runtime. On CPUs the tensors are shared with numpy (no copy); on
CUDA, ONNX Runtime binds the device tensors themselves (I/O binding), so frames
stay on the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from rifebench.errors import UsageError

NP_DTYPES = {torch.float32: np.float32, torch.float16: np.float16}


# ----------------------------------------------------------------- ONNX Runtime


def ort_providers(
    runtime: str, platform: str, available: list[str], device_index: int, fp16: bool, cache_dir: str
) -> list:
    """The execution providers, best first, as InferenceSession takes them.
    Pure: `available` is onnxruntime.get_available_providers()."""
    cuda = ("CUDAExecutionProvider", {"device_id": device_index})
    if runtime == "tensorrt":
        if "TensorrtExecutionProvider" not in available:
            raise UsageError(
                "--runtime/RUNTIME tensorrt: ONNX Runtime here has no TensorrtExecutionProvider "
                "(install: pip install onnxruntime-gpu tensorrt)"
            )
        trt = (
            "TensorrtExecutionProvider",
            {
                "device_id": device_index,
                "trt_fp16_enable": fp16,
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": cache_dir,
            },
        )
        return [trt, cuda, "CPUExecutionProvider"]
    if platform == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise UsageError(
                "--runtime/RUNTIME onnxruntime: PLATFORM=cuda but ONNX Runtime here has no "
                "CUDAExecutionProvider (install: pip install onnxruntime-gpu in place of onnxruntime)"
            )
        return [cuda, "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class Engine(Protocol):
    """A compiled graph for one padded input shape. RuntimeNet sets build_s after building it."""

    settings: dict[str, Any]
    build_s: float

    def run(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor: ...


class OrtEngine:
    build_s: float

    def __init__(self, path: Path, providers: list, threads: int, device: torch.device):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, threads)  # the stream's CPU share, as torch gets
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), so, providers=providers)
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.device = device
        self.bind = device.type == "cuda"
        self.settings = {
            "providers": self.session.get_providers(),
            "intra_op_num_threads": so.intra_op_num_threads,
            "inter_op_num_threads": 1,
            "execution_mode": "sequential",
            "graph_optimization_level": "all",
            "io_binding": self.bind,
        }

    def run(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
        if self.bind:
            return self._run_bound(img0, img1, t)
        feeds = {
            "img0": img0.contiguous().numpy(),
            "img1": img1.contiguous().numpy(),
            "timestep": np.array([t], dtype=np.float32),
        }
        out = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})[0]
        return torch.from_numpy(out)

    def _run_bound(self, img0, img1, t):
        index = self.device.index or 0
        binding = self.session.io_binding()
        tt = torch.full((1,), float(t), dtype=torch.float32, device=self.device)
        for name, x in (("img0", img0.contiguous()), ("img1", img1.contiguous()), ("timestep", tt)):
            if name in self.inputs:
                binding.bind_input(name, "cuda", index, NP_DTYPES[x.dtype], list(x.shape), x.data_ptr())
        out = torch.empty_like(img0, memory_format=torch.contiguous_format)
        binding.bind_output("frame", "cuda", index, NP_DTYPES[out.dtype], list(out.shape), out.data_ptr())
        binding.synchronize_inputs()
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return out


# ----------------------------------------------------------------- torch-tensorrt


class TorchTrtEngine:
    """TensorRT through torch-tensorrt, for machines without ONNX Runtime's
    TensorRT provider; compiled from the export module, not the ONNX file."""

    build_s: float

    def __init__(self, module: torch.nn.Module, example: tuple, fp16: bool):
        import torch_tensorrt

        precisions = {torch.float16, torch.float32} if fp16 else {torch.float32}
        self.module = torch_tensorrt.compile(module, ir="dynamo", inputs=list(example), enabled_precisions=precisions)
        self.settings = {
            "route": "torch_tensorrt",
            "version": torch_tensorrt.__version__,
            "enabled_precisions": sorted(str(p) for p in precisions),
        }

    def run(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
        tt = torch.full((1,), float(t), dtype=torch.float32, device=img0.device)
        return self.module(img0, img1, tt)
