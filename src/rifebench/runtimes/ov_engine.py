"""OpenVINO: one graph, or model 4.0's three (runtimes/branches.py), compiled with the stream's CPUs.

OV_HINT=latency (the default): one infer request on one OpenVINO stream with all the stream's
threads; our STREAMS are the parallelism. OV_HINT=throughput: OpenVINO's THROUGHPUT hint splits
the stream's threads over streams of its own, one infer request ("lane") each, and the pairs of
a submission are spread over the lanes (the graph is then exported for one pair: a lane runs
one pair at a time, so BATCH_SIZE should be at least the number of lanes).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from rifebench.runtimes.branches import CARRIED

# int8: the operations NNCF leaves in float (the warp and its grid among them) run in f32.
OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}
HINTS = ("latency", "throughput")
SETTINGS = (
    "PERFORMANCE_HINT",
    "NUM_STREAMS",
    "INFERENCE_PRECISION_HINT",
    "INFERENCE_NUM_THREADS",
    "ENABLE_CPU_PINNING",
    "ENABLE_HYPER_THREADING",
    "OPTIMAL_NUMBER_OF_INFER_REQUESTS",
)


def ov_device(platform: str, device_index: int) -> str:
    return "CPU" if platform == "cpu" else f"GPU.{device_index}"


def ov_config(platform: str, precision: str, threads: int, hint: str = "latency") -> dict[str, str | int]:
    """Latency: one request on one stream, latency-first: our processes are the streams, so
    OpenVINO must not add its own (NUM_STREAMS 1) or split the CPU share differently from
    torch's. Throughput: OpenVINO's own streams over the same CPU share."""
    config: dict[str, str | int] = {
        "PERFORMANCE_HINT": hint.upper(),
        "INFERENCE_PRECISION_HINT": OV_PRECISION[precision],
    }
    if hint == "latency":
        config["NUM_STREAMS"] = "1"
    if platform == "cpu":
        config["INFERENCE_NUM_THREADS"] = max(1, threads)
    return config


def read_model(core: Any, source: Any) -> Any:
    """An ov.Model from an ONNX file's path, or from an IR held in memory ((xml, bin) bytes)."""
    import openvino as ov

    if isinstance(source, tuple):
        xml, weights = source
        return core.read_model(xml, ov.Tensor(np.frombuffer(weights, np.uint8)))
    return core.read_model(str(source))


class Lane:
    """One infer request per graph: runs one submission at a time."""

    def __init__(self, compiled: dict[str, Any]):
        self.requests = {part: c.create_infer_request() for part, c in compiled.items()}
        self.inputs = {part: {i.get_any_name() for i in c.inputs} for part, c in compiled.items()}
        self.outputs = {part: len(c.outputs) for part, c in compiled.items()}
        self.reruns = 0  # 4.0's large-motion branch taken (a count per lane: lanes run in threads)

    def infer(self, part: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        request = self.requests[part]
        request.infer({k: v for k, v in feeds.items() if k in self.inputs[part]})
        # The request's output buffers are reused by its next call: copy them out.
        return [np.array(request.get_output_tensor(i).data, copy=True) for i in range(self.outputs[part])]


class OvEngine:
    """`sources`: {"whole": graph} or {"head", "keep", "rerun": graph} (a path or (xml, bin)
    bytes); `decide(df)` is the network's large-motion test for the three-graph form."""

    build_s: float

    def __init__(self, sources: dict[str, Any], platform: str, device_index: int, precision: str, threads: int,
                 hint: str = "latency", decide=None, perf_count: bool = False):  # fmt: skip
        import openvino as ov

        core = ov.Core()
        self.device = ov_device(platform, device_index)
        config: dict[str, Any] = ov_config(platform, precision, threads, hint)
        if perf_count:  # OpenVINO's per-layer timings (layer_report); off for timed runs
            config["PERF_COUNT"] = True
        compiled = {
            part: core.compile_model(read_model(core, src), self.device, config) for part, src in sources.items()
        }
        first = next(iter(compiled.values()))
        count = 1 if hint == "latency" else max(1, int(first.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.lanes = [Lane(compiled) for _ in range(count)]
        self.pool = ThreadPoolExecutor(count, thread_name_prefix="ov-lane") if count > 1 else None
        self.decide, self.split = decide, "head" in sources
        # Under a throughput hint the graph takes one pair (runtimes/net.py exports it at batch 1):
        # a batch is always submitted pair by pair, over however many requests OpenVINO chose.
        self.per_pair = hint != "latency"
        self.settings: dict[str, Any] = {
            "device": self.device,
            "hint": hint,
            "infer_requests": count,
            "graphs": sorted(sources),
        }
        for key in SETTINGS:
            try:
                value = first.get_property(key)
                self.settings[key] = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
            except Exception:  # noqa: BLE001 - a property this device does not have
                continue

    @property
    def large_motion_count(self) -> int | None:
        """Re-runs taken on the host (three graphs); None where the graph's `If` took them unseen."""
        return sum(lane.reruns for lane in self.lanes) if self.split else None

    def run(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
        feeds = {
            "img0": img0.contiguous().numpy(),
            "img1": img1.contiguous().numpy(),
            "timestep": np.array([t], dtype=np.float32),
        }
        if not self.per_pair:
            return torch.from_numpy(self._submission(self.lanes[0], feeds))
        # One pair per request, spread over the lanes: lane k runs pairs k, k + L, ...
        n, lanes = img0.shape[0], len(self.lanes)

        def lane_pairs(k: int) -> list[tuple[int, np.ndarray]]:
            return [(i, self._submission(self.lanes[k], _pair(feeds, i))) for i in range(k, n, lanes)]

        # One request (e.g. one CPU for this stream) has no pool: its lane runs the pairs in turn.
        parts = self.pool.map(lane_pairs, range(min(lanes, n))) if self.pool else [lane_pairs(0)]
        done = dict(pair for part in parts for pair in part)
        return torch.from_numpy(np.concatenate([done[i] for i in range(n)]))

    def layer_report(self) -> list[dict[str, Any]]:
        """OpenVINO's own per-layer report of each graph's last inference (with perf_count):
        per graph, layer type and kernel, the milliseconds and the count of layers."""
        rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        for part, request in self.lanes[0].requests.items():
            for p in request.profiling_info:
                key = (part, p.node_type, p.exec_type)
                row = rows.setdefault(
                    key, {"graph": part, "type": p.node_type, "kernel": p.exec_type, "ms": 0.0, "layers": 0}
                )
                row["ms"] += p.real_time.total_seconds() * 1000.0
                row["layers"] += 1
        return sorted(rows.values(), key=lambda r: -r["ms"])

    def _submission(self, lane: Lane, feeds: dict[str, np.ndarray]) -> np.ndarray:
        if not self.split:
            return lane.infer("whole", feeds)[0]
        carried = dict(zip(CARRIED, lane.infer("head", feeds), strict=True))
        if self.decide(carried["df"]):
            lane.reruns += 1
            return lane.infer("rerun", feeds)[0]
        return lane.infer("keep", feeds | carried)[0]


def _pair(feeds: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    return {k: (v if k == "timestep" else v[i : i + 1]) for k, v in feeds.items()}
