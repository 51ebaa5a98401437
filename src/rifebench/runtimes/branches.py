"""Model 4.0's large-motion branch taken on the host: three graphs in place of one with an ONNX `If`.

The exported 4.0 graph holds its large-motion re-run as an `If` (models/export.py). A runtime
runs an `If` as an opaque subgraph: OpenVINO's per-layer report shows one "If" line for most of
the time, and NNCF cannot quantize inside it ("Could not find a node ... in NNCFGraph"). So the
network is exported as three graphs, each without control flow:

- head: blocks 0 and 1 of the first pass -> flow, mask, and block 1's updates (df, dm);
- keep: the rest of the network from those tensors (the branch not taken);
- rerun: the whole network at doubled scales (the branch taken).

The host runs head, applies the network's own test to df (IFNetV4._is_large: the same
comparison on the same float32 values, so the same branch), then keep or rerun. Every graph
computes exactly what IFNetV4.forward computes (checked in torch, bit for bit); a runtime's
fusions across the new graph boundaries may round differently in the last bit (ONNX Runtime with
its optimisations off gives the If graph's outputs bit for bit; tests/runtimes/test_branches.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from rifebench.models import export as onnx_export
from rifebench.models.nets.ifnet_v4 import IFNetV4, timestep_map

PARTS = ("head", "keep", "rerun")
IMAGES = ("img0", "img1", "timestep")
CARRIED = ("flow", "mask", "df", "dm")  # what head hands to keep
INPUTS = {"head": IMAGES, "keep": IMAGES + CARRIED, "rerun": IMAGES}
OUTPUTS = {"head": CARRIED, "keep": ("frame",), "rerun": ("frame",)}


def splits(net: nn.Module) -> bool:
    """Whether `net` branches on its own output (4.0), so that it runs as three graphs."""
    arch = getattr(net, "arch", None)
    return isinstance(net, IFNetV4) and bool(arch and arch.large_motion)


class _Part(nn.Module):
    """The pieces of IFNetV4.forward that the three graphs are made of, in its order."""

    def __init__(self, net: IFNetV4, scale: float):
        super().__init__()
        if net.arch.encoder is not None or net.arch.block_features:
            raise ValueError(f"model {net.arch.name}: only a network without features splits into three graphs")
        self.net = net
        self.scales = [s / scale for s in net.arch.scales]

    def first_pass(self, img0, img1, t, scales, ensemble: bool):
        n = self.net
        flow, mask, handed = n.first(img0, img1, t, None, scales[0], ensemble)
        df, dm, _ = n.step(1, img0, img1, t, None, flow, mask, handed, scales[1])
        return flow, mask, df, dm

    def rest(self, img0, img1, t, flow, mask, df, dm, scales):
        return onnx_export.rest_of_blocks(self.net, img0, img1, t, flow, mask, df, dm, scales)


class Head(_Part):
    def forward(self, img0, img1, timestep):
        return self.first_pass(img0, img1, timestep_map(timestep, img0), self.scales, self.net.ensemble)


class Keep(_Part):
    def forward(self, img0, img1, timestep, flow, mask, df, dm):
        return self.rest(img0, img1, timestep_map(timestep, img0), flow, mask, df, dm, self.scales)


class Rerun(_Part):
    def forward(self, img0, img1, timestep):
        t = timestep_map(timestep, img0)
        doubled = [s * 2 for s in self.scales]
        # As the official 4.0: the re-run of block 0 has no ensemble pass.
        flow, mask, df, dm = self.first_pass(img0, img1, t, doubled, False)
        return self.rest(img0, img1, t, flow, mask, df, dm, doubled)


MODULES = {"head": Head, "keep": Keep, "rerun": Rerun}


def is_large(net: Any, df: Any) -> bool:
    """The network's own test on block 1's flow update (a numpy array or a tensor)."""
    return bool(net._is_large(torch.as_tensor(df)))


@dataclass(frozen=True)
class PartKey(onnx_export.ExportKey):
    """An export key for one of the three graphs: its own file and key in the ONNX cache."""

    part: str = "whole"

    def file_name(self) -> str:
        return super().file_name().removesuffix(".onnx") + f"-{self.part}.onnx"


def part_key(key: onnx_export.ExportKey, part: str) -> PartKey:
    return PartKey(**{**key.__dict__, "part": part})


def example_inputs(net: IFNetV4, key: onnx_export.ExportKey, part: str) -> tuple:
    """Inputs of the key's shape for the exporter (their values do not matter: no graph branches)."""
    img = torch.rand(key.batch, 3, key.height, key.width, generator=torch.Generator().manual_seed(0))
    images = (img, img.flip(3), torch.full((1,), 0.5))
    if part != "keep":
        return images
    with torch.no_grad():
        return images + tuple(Head(net, key.scale)(*images))


def part_bytes(net: IFNetV4, key: onnx_export.ExportKey, part: str) -> bytes:
    module = MODULES[part](net, key.scale).eval()
    return onnx_export.module_bytes(module, example_inputs(net, key, part), INPUTS[part], OUTPUTS[part], key.opset)


def cached_parts(net: Any, spec: Any, key: onnx_export.ExportKey, folders: Any) -> tuple[dict, list[dict]]:
    """The three graphs from the ONNX cache (exported first where absent): {part: path}, and
    the cache's record of each."""
    paths, infos = {}, []
    for part in PARTS:

        def make(part: str = part) -> bytes:
            return part_bytes(net, key, part)

        paths[part], info = onnx_export.cached_export(net, spec, part_key(key, part), folders, make=make)
        infos.append(info | {"part": part})
    return paths, infos
