"""A runtime-backed network in place of the eager one, and the parity gate.

RuntimeNet is called as the networks are (img0, img1, timestep, scale=...) by
the same Interpolator, so padding, cropping, timesteps, the stream loop, the
clocks and the scoring stay the harness's own. It builds one engine per padded
input shape (an export, or the cached graph, then the runtime's compilation);
a batch smaller than the exported one (a dataset's last) is padded with zeros.
"""

from __future__ import annotations

import copy
import time
from functools import partial

import torch
import torch.nn as nn

from rifebench.errors import UsageError
from rifebench.models import export as onnx_export
from rifebench.models import onnx_cache
from rifebench.runtimes import branches, calibration, engines
from rifebench.runtimes.ov_engine import OvEngine
from rifebench.runtimes.parity import PARITY_DB, ParityFailed, parity
from rifebench.runtimes.registry import ort_providers, tensorrt_route

__all__ = ["PARITY_DB", "ParityFailed", "RuntimeNet", "adopt", "parity"]  # the gate lives in parity.py


def graph_precision(runtime: str, precision: str) -> str:
    """The exported graph's dtype: OpenVINO lowers an fp32 graph itself
    (INFERENCE_PRECISION_HINT); ONNX Runtime and TensorRT get an fp16 graph
    for fp16 (its warp still float32)."""
    return "fp16" if precision == "fp16" and runtime in ("onnxruntime", "tensorrt") else "fp32"


class RuntimeNet(nn.Module):
    ref: nn.Module  # in __dict__, not a submodule (see __init__)

    def __init__(self, ref: nn.Module, spec, opts: dict):
        super().__init__()
        # The fp32 eager network: the parity reference and the source of every export. Kept out
        # of the module tree so that the Interpolator's .to(device, dtype) leaves it fp32.
        self.__dict__["ref"] = ref.float().eval()
        self.spec, self.opts = spec, opts
        self.graph_precision = graph_precision(opts["runtime"], opts["precision"])
        self.io_dtype = torch.float16 if self.graph_precision == "fp16" else torch.float32
        self.engines: dict[tuple[int, ...], engines.Engine] = {}
        self.exports: list[dict] = []
        self.int8: dict | None = None  # PRECISION=int8: the calibration and the quantized entries
        # The If runs inside the runtime (or, for OpenVINO, the host decides between graphs
        # that the runtime compiled): nothing for a torch knob to capture or fall back on.
        self.data_dependent = False

    @property
    def large_motion_count(self) -> int | None:
        """4.0's re-runs, where the host took the branch (OpenVINO); None where the runtime's If did."""
        counts = [getattr(e, "large_motion_count", None) for e in self.engines.values()]
        return sum(c for c in counts if c is not None) if any(c is not None for c in counts) else None

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, timestep=0.5, scale: float = 1.0) -> torch.Tensor:
        n, batch = img0.shape[0], self.opts["batch"]
        # One graph for every submission: pad a short last batch, drop its rows after (OpenVINO's
        # lanes, OV_HINT=throughput, take any number of pairs).
        if n < batch and self.opts["ov_hint"] != "throughput":
            pad = img0.new_zeros((batch - n, *img0.shape[1:]))
            img0, img1 = torch.cat((img0, pad)), torch.cat((img1, pad))
        engine = self.engine(tuple(img0.shape[2:]), img0.device)
        return engine.run(img0, img1, float(timestep))[:n]

    def engine(self, hw: tuple[int, ...], device) -> engines.Engine:
        if hw not in self.engines:
            self.engines[hw] = self._make_engine(hw, device)
        return self.engines[hw]

    def _export(self, hw):
        o = self.opts
        net = self.ref if self.graph_precision == "fp32" else copy.deepcopy(self.ref).half()
        key = onnx_export.make_key(self.spec, o["weights"], o["batch"], hw, self.graph_precision, o["scale"])
        path, info = onnx_export.cached_export(net, self.spec, key, onnx_export.cache_folders(o["weights"]))
        self.exports.append(info)
        return path, net

    def ov_sources(self, hw) -> tuple[dict, object]:
        """OpenVINO's graphs for this size: one, with 4.0's large-motion branch as its `If`;
        for PRECISION=int8, INT8 versions of them (runtimes/int8.py), 4.0 then as three graphs
        (runtimes/branches.py), the form NNCF can quantize. In fp32 and bf16 the `If` graph is
        the faster (benchmarks/ov_profile.py --compare-if: bf16 59 against 71 ms at 448x256)."""
        from rifebench.runtimes import int8

        o = self.opts
        batch = 1 if o["ov_hint"] == "throughput" else o["batch"]  # a lane runs one pair
        key = onnx_export.make_key(self.spec, o["weights"], batch, hw, "fp32", o["scale"])
        decide = None
        if o["precision"] == "int8" and branches.splits(self.ref):
            graphs, infos = branches.cached_parts(self.ref, self.spec, key, onnx_export.cache_folders(o["weights"]))
            self.exports += infos
            decide = partial(branches.is_large, self.ref)
        else:
            path, info = onnx_export.cached_export(self.ref, self.spec, key, onnx_export.cache_folders(o["weights"]))
            self.exports.append(info)
            graphs = {"whole": path}
        if o["precision"] != "int8":
            return graphs, decide
        keys = {part: branches.part_key(key, part) for part in graphs}
        sources, self.int8 = int8.quantized_sources(self.ref, self.spec, keys, graphs, o)
        return sources, decide

    def _make_engine(self, hw, device):
        o = self.opts
        t0 = time.monotonic()
        fp16 = self.graph_precision == "fp16"
        engine: engines.Engine
        if o["runtime"] == "tensorrt" and tensorrt_route() == "torch_tensorrt":
            net = copy.deepcopy(self.ref).to(device, self.io_dtype)
            img = torch.zeros(o["batch"], 3, *hw, dtype=self.io_dtype, device=device)
            example = (img, img, torch.full((1,), 0.5, device=device))
            engine = engines.TorchTrtEngine(onnx_export.export_module(net, self.spec, o["scale"]), example, fp16)
        elif o["runtime"] == "openvino":
            sources, decide = self.ov_sources(hw)
            engine = OvEngine(
                sources, o["platform"], o["device_index"], o["precision"], o["threads"], o["ov_hint"], decide
            )
        else:
            path, _ = self._export(hw)
            trt = ""  # ONNX Runtime's TensorRT engine cache: beside the graph, or where it can be written
            if o["runtime"] == "tensorrt":
                trt = str(onnx_cache.subfolder([path.parent, *onnx_export.cache_folders(o["weights"])], "trt"))
            providers = engines.ort_providers(
                o["runtime"], o["platform"], ort_providers(), o["device_index"], fp16, trt
            )
            engine = engines.OrtEngine(path, providers, o["threads"], torch.device(device))
        engine.build_s = time.monotonic() - t0
        return engine

    def describe(self) -> dict:
        """For results.json: the runtime, its version, where it ran and its own settings."""
        name = self.opts["runtime"]
        first = next(iter(self.engines.values()), None)
        return {
            "name": name,
            "version": runtime_version(name),
            "graph_precision": self.graph_precision,
            "precision": self.opts["precision"],
            "settings": getattr(first, "settings", None),
            "engines": [{"padded_hw": list(hw), "build_s": e.build_s} for hw, e in self.engines.items()],
            "exports": self.exports,
            "cache": cache_record(self.exports),
            "int8": self.int8,
        }


def cache_record(exports: list[dict]) -> dict | None:
    """Which ONNX cache folder this stream used, and why not the one beside the weights."""
    if not exports:
        return None  # torch-tensorrt compiles from the module: no ONNX file
    last = exports[-1]
    return {k: last[k] for k in ("folder", "beside_weights", "fallback_reason")}


def runtime_version(name: str) -> str | None:
    if name == "tensorrt":
        module = "onnxruntime" if tensorrt_route() == "ort" else "torch_tensorrt"
    else:
        module = {"onnxruntime": "onnxruntime", "openvino": "openvino"}[name]
    try:
        return __import__(module).__version__
    except Exception:  # noqa: BLE001 - recorded as unknown, never fatal
        return None


# Knobs of the eager path that an exported graph does not have.
EAGER_ONLY = {"channels_last": False, "compile": "none", "cuda_graphs": False, "ipex": False}


def adopt(net: nn.Module, cfg, knobs, device_index: int) -> RuntimeNet:
    """The runtime-backed network for this stream; the eager-only knobs the
    preset wanted fall back (recorded), explicit ones were refused by config."""
    for knob, off in EAGER_ONLY.items():
        if knobs.values.get(knob) not in (off, None):
            knobs.fall_back(knob, knobs.values[knob], off, f"RUNTIME={cfg.runtime} runs its own graph")
    opts = {
        "runtime": cfg.runtime,
        "precision": cfg.precision,
        "platform": cfg.platform,
        "batch": cfg.batch_size,
        "scale": cfg.scale,
        "weights": cfg.load_path,
        "device_index": device_index,
        "threads": torch.get_num_threads(),
        "ov_hint": cfg.ov_hint,
        "interpolation": cfg.interpolation,
        "calibration": calibration.source_of(cfg.calibration, cfg.dataset_dir, calibration.bundled_set()).to_dict(),
    }
    if cfg.precision == "int8" and cfg.platform != "cpu":
        raise UsageError(
            f"--precision/PRECISION int8 runs on the CPU only, and PLATFORM resolved to {cfg.platform} "
            "(accepted: --platform cpu)"
        )
    return RuntimeNet(net, cfg.spec, opts)
