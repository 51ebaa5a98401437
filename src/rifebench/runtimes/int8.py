"""PRECISION=int8: the quantized graphs of one padded size, from the cache or quantized now.

The calibration pairs are read first (runtimes/calibration.py): their fingerprint is part of
every INT8 cache key, so an entry is reused only for the same frames, timesteps, graph,
NNCF and OpenVINO versions and quantization settings (runtimes/quantize.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rifebench.models import export as onnx_export
from rifebench.runtimes import branches, calibration, quantize


def timesteps(interpolation: int, arbitrary: bool) -> list[float]:
    """The timesteps the run asks for: i / (N + 1), or 0.5 for a model that has no timestep input."""
    return [i / (interpolation + 1) for i in range(1, interpolation + 1)] if arbitrary else [0.5]


def keep_inputs(ref: Any, scale: float, data: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """4.0's `keep` graph is calibrated on what `head` hands it: the fp32 network's own tensors."""
    head, out = branches.Head(ref, scale).eval(), []
    with torch.no_grad():
        for sample in data:
            carried = head(*(torch.from_numpy(sample[k]) for k in branches.IMAGES))
            out.append(sample | {k: v.numpy() for k, v in zip(branches.CARRIED, carried, strict=True)})
    return out


def quantized_sources(
    ref: Any, spec: Any, part_keys: dict[str, branches.PartKey], graphs: dict[str, Path], opts: dict[str, Any]
) -> tuple[dict[str, tuple[bytes, bytes]], dict[str, Any]]:
    """{part: (xml, weights)} of the INT8 graphs, and the record results.json keeps."""
    import openvino as ov

    first = next(iter(part_keys.values()))
    hw = (first.height, first.width)
    source = calibration.CalibrationSource.from_dict(opts["calibration"])
    steps = timesteps(opts["interpolation"], spec.arbitrary_timestep)
    t0 = time.monotonic()
    pairs = calibration.read_pairs(source, hw, opts["interpolation"] + 1)
    fingerprint = calibration.fingerprint(pairs, steps)
    data = calibration.samples(pairs, hw, first.batch, steps)
    read_s = time.monotonic() - t0
    folders = onnx_export.cache_folders(opts["weights"])
    sources, entries = {}, []
    for part, pkey in part_keys.items():
        key = quantize.int8_key(pkey, fingerprint, len(pairs))

        def make(part: str = part) -> bytes:
            model = ov.Core().read_model(str(graphs[part]))
            inputs = keep_inputs(ref, first.scale, data) if part == "keep" else data
            return quantize.ir_bytes(quantize.quantize(model, inputs))

        path, info = onnx_export.cached_export(ref, spec, key, folders, make=make)
        sources[part] = quantize.ir_of(path)
        entries.append({"part": part, "path": info["path"], "cached": info["cached"], "quantize_s": info["export_s"]})
    record = {
        "calibration": source.to_dict() | {"pairs": len(pairs), "fingerprint": fingerprint, "timesteps": steps},
        "calibration_read_s": read_s,
        "settings": dict(quantize.SETTINGS),
        **quantize.versions(),
        "entries": entries,
    }
    return sources, record
