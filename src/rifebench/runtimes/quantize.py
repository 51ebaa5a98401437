"""PRECISION=int8 in OpenVINO: NNCF post-training quantization of the exported graph(s), cached.

Each graph (model 4.0's three, runtimes/branches.py; one for the others) is read by OpenVINO
and quantized by `nncf.quantize` on the calibration samples (runtimes/calibration.py; model
4.0's `keep` on what the fp32 `head` computes from them). The result, an OpenVINO IR (xml and
weights), is kept in the ONNX cache as one sha256-checked entry (a stored zip of the two files)
whose key adds to the export's the calibration set's fingerprint, NNCF's and OpenVINO's
versions and the quantization settings: a change to any of them quantizes again.

What stays in float (never quantized: NNCF's ignored scope): every operation on a path from the
last convolutions to a warp's sampling grid or to the graph's outputs: the GridSample nodes,
the grid (flow normalisation and the base grid), the flow and mask accumulation, the final
blend. 8-bit steps on the flow would misplace pixels, as a reduced-precision grid does
(docs/models.md). The convolutions, the last (transposed) ones included, are quantized.

Decided by measurement (model 4.0, official weights, 448x256, calibrated on 24 of the 48 bundled
mixed_448x256 triplets, scored on all 48; mean PSNR against the fp32 output / drop of the mean
PSNR against the ground truth):
  performance preset, last convolutions quantized:  37.47 dB / 0.489 dB
  performance preset, last convolutions in float:   37.69 dB / 0.464 dB
  mixed preset,       last convolutions quantized:  38.35 dB / 0.433 dB
  mixed preset,       last convolutions in float:   38.44 dB / 0.434 dB
so the last convolutions stay quantized (in float they buy at most 0.03 dB against the ground
truth) and the mixed preset (asymmetric activations: PReLU outputs are not symmetric) is used.
The worst pair (a DAVIS triplet with large motion) is 17 dB against fp32 in every variant, and
keeping 4.0's `head` (the branch decision) in float did not change it: naive INT8 costs this
network about 0.4 dB on that set.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rifebench.runtimes.branches import PartKey

# Where a walk back from a grid or an output stops: quantized operations (and graph inputs).
WEIGHTED = {"Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData", "MatMul"}
LAST_CONV = {"ConvolutionBackpropData", "GroupConvolutionBackpropData"}
SETTINGS: dict[str, Any] = {
    "preset": "mixed",  # asymmetric activations (measured above)
    "target_device": "CPU",
    "fast_bias_correction": True,
    "float_region": "grid and outputs, back to the last convolutions",
    "float_last_conv": False,
}


@dataclass(frozen=True)
class Int8Key(PartKey):
    """The export's key, the graph part, and what the quantization depends on."""

    calibration: str = ""  # sha256 of the calibration frames (calibration.fingerprint)
    calibration_pairs: int = 0
    nncf: str = ""
    openvino: str = ""
    settings: str = ""  # json of SETTINGS

    def file_name(self) -> str:
        digest = hashlib.sha256(
            json.dumps([self.calibration, self.calibration_pairs, self.nncf, self.openvino, self.settings]).encode()
        ).hexdigest()[:16]
        return super().file_name().removesuffix(".onnx") + f"-int8-{digest}.ovzip"


def versions() -> dict[str, str]:
    import nncf
    import openvino as ov

    return {"nncf": nncf.__version__, "openvino": ov.get_version().split("-")[0]}


def int8_key(part_key: PartKey, fingerprint: str, pairs: int, settings: dict[str, Any] | None = None) -> Int8Key:
    v = versions()
    fields = dict(part_key.__dict__)
    return Int8Key(
        **fields,
        calibration=fingerprint,
        calibration_pairs=pairs,
        nncf=v["nncf"],
        openvino=v["openvino"],
        settings=json.dumps(settings or SETTINGS, sort_keys=True),
    )


def float_region(model: Any, float_last_conv: bool = False) -> list[str]:
    """Names of the operations that stay in float: walking back from every GridSample and every
    graph output to the convolutions (which are quantized, unless `float_last_conv` keeps the
    transposed ones in float too) and the graph's inputs and constants."""
    todo = [op for op in model.get_ordered_ops() if op.get_type_name() in ("GridSample", "Result")]
    seen, region = set(), []
    while todo:
        op = todo.pop()
        name, kind = op.get_friendly_name(), op.get_type_name()
        if name in seen or kind in ("Parameter", "Constant"):
            continue
        seen.add(name)
        if kind in WEIGHTED and not (float_last_conv and kind in LAST_CONV):
            continue
        if kind != "Result":
            region.append(name)
        if kind not in WEIGHTED:
            todo += [op.input_value(i).get_node() for i in range(op.get_input_size())]
    return sorted(region)


def quantize(model: Any, data: list[dict[str, np.ndarray]], settings: dict[str, Any] | None = None) -> Any:
    """The NNCF-quantized copy of `model` (an ov.Model) calibrated on `data` (graph inputs by name)."""
    import nncf

    settings = settings or SETTINGS
    names = {i.get_any_name() for i in model.inputs}
    dataset = nncf.Dataset(data, lambda sample: {k: v for k, v in sample.items() if k in names})
    preset = {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}
    with _quiet(nncf):
        return nncf.quantize(
            model,
            dataset,
            preset=preset[settings["preset"]],
            target_device=nncf.TargetDevice[settings["target_device"]],
            subset_size=len(data),
            fast_bias_correction=settings["fast_bias_correction"],
            ignored_scope=nncf.IgnoredScope(names=float_region(model, settings["float_last_conv"]), validate=False),
        )


@contextlib.contextmanager
def _quiet(nncf):
    """NNCF's notes (one line per operation it leaves alone) and progress bars are not the
    run's output: errors still raise with their own message."""
    level = logging.getLogger("nncf").level
    nncf.set_log_level(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        nncf.set_log_level(level)


def ir_bytes(model: Any) -> bytes:
    """The IR of `model` (xml and weights) as one stored zip, for one cache entry. Written
    through a private temporary folder (OpenVINO saves to paths only)."""
    import openvino as ov

    with tempfile.TemporaryDirectory(prefix="rifebench-int8-") as tmp:
        xml = Path(tmp) / "model.xml"
        ov.save_model(model, str(xml), compress_to_fp16=False)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
            z.writestr("model.xml", xml.read_bytes())
            z.writestr("model.bin", xml.with_suffix(".bin").read_bytes())
    return buffer.getvalue()


def ir_of(path: Path) -> tuple[bytes, bytes]:
    """(xml, weights) of a cached INT8 entry (whose sha256 the cache has checked)."""
    with zipfile.ZipFile(path) as z:
        return z.read("model.xml"), z.read("model.bin")
