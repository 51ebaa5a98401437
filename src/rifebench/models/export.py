"""The network (not the padding, cropping or scoring around it) as an ONNX graph,
exported once and cached beside the weights.

One file per (model, weights sha256, padded size, batch, precision, scale,
opset, exporter version): the shapes are static so that the runtimes can plan
for them. The warp stays float32 in the graph (GridSample, opset 16 or later),
as in the eager networks. Model 4.0's large-motion branch is exported
faithfully, as an ONNX `If` (torch.cond in an export-only forward that gives
bit-identical outputs in torch), never as a silently different network.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import logging
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn

from rifebench.fsutil import sha256_file
from rifebench.models.nets.ifnet_v4 import LARGE_MOTION_PX, SCALES, IFNetV4, swap_halves, timestep_map
from rifebench.models.nets.warp import warp

OPSET = 18  # GridSample arrived in 16; 18 is what the dynamo exporter writes natively
CACHE_DIR = "onnx-cache"
INPUTS = ("img0", "img1", "timestep")


@dataclass(frozen=True)
class ExportKey:
    model: str
    weights_sha256: str
    height: int  # padded
    width: int
    batch: int
    precision: str  # the graph's own dtype: fp32 or fp16
    scale: float
    opset: int
    exporter: str  # torch version: the exporter ships with it

    def file_name(self) -> str:
        return (
            f"rife-{self.model}-{self.weights_sha256[:16]}-{self.width}x{self.height}-b{self.batch}-"
            f"{self.precision}-s{self.scale:g}-op{self.opset}-torch{self.exporter}.onnx"
        )


class ExportNet(nn.Module):
    """net(img0, img1, timestep) with the scale baked in; timestep is a (1,) tensor."""

    def __init__(self, net: nn.Module, arbitrary_timestep: bool, scale: float):
        super().__init__()
        self.net, self.arbitrary, self.scale = net, arbitrary_timestep, scale

    def forward(self, img0, img1, timestep):
        if self.arbitrary:
            return self.net(img0, img1, timestep, scale=self.scale)
        return self.net(img0, img1, scale=self.scale)


class ExportNet40(nn.Module):
    """IFNetV4 with its large-motion branch as torch.cond: both branches run the
    rest of the network (blocks 2 and 3 use the doubled scales too), so that the
    graph holds one If and the eager outputs equal IFNetV4.forward's."""

    def __init__(self, net: IFNetV4, scale: float):
        super().__init__()
        self.net, self.scale = net, scale

    def _rest(self, img0, img1, t, flow, mask, f0, m0, scales):
        n = self.net
        blocks = (n.block0, n.block1, n.block2, n.block3)
        w0, w1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        for i in (1, 2, 3):
            if i > 1:
                f0, m0 = blocks[i](torch.cat((w0, w1, t, mask), 1), flow, scales[i])
            if n.ensemble:
                f1, m1 = blocks[i](torch.cat((w1, w0, 1 - t, -mask), 1), swap_halves(flow), scales[i])
                f0, m0 = (f0 + swap_halves(f1)) / 2, (m0 - m1) / 2
            flow, mask = flow + f0, mask + m0
            w0, w1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        m = torch.sigmoid(mask)
        return w0 * m + w1 * (1 - m)

    def _block1(self, img0, img1, t, scales, ensemble):
        flow, mask = self.net._first(img0, img1, t, scales[0], ensemble)
        w0, w1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        f0, m0 = self.net.block1(torch.cat((w0, w1, t, mask), 1), flow, scales[1])
        return flow, mask, f0, m0

    def forward(self, img0, img1, timestep):
        t = timestep_map(timestep, img0)
        scales = [s / self.scale for s in SCALES]
        flow, mask, f0, m0 = self._block1(img0, img1, t, scales, self.net.ensemble)
        large = (f0[:, :2].abs().max() > LARGE_MOTION_PX) & (f0[:, 2:4].abs().max() > LARGE_MOTION_PX)

        def keep(img0, img1, t, flow, mask, f0, m0):
            return self._rest(img0, img1, t, flow, mask, f0, m0, scales)

        def rerun(img0, img1, t, flow, mask, f0, m0):
            doubled = [s * 2 for s in scales]
            # As the official 4.0: the re-run of block 0 has no ensemble pass.
            flow, mask, f0, m0 = self._block1(img0, img1, t, doubled, False)
            return self._rest(img0, img1, t, flow, mask, f0, m0, doubled)

        return torch.cond(large, rerun, keep, (img0, img1, t, flow, mask, f0, m0))


def export_module(net: nn.Module, spec, scale: float) -> nn.Module:
    """The module torch.onnx.export sees for `net`."""
    if isinstance(net, IFNetV4) and net.variant.large_motion:
        return ExportNet40(net, scale).eval()
    return ExportNet(net, spec.arbitrary_timestep, scale).eval()


def export(net: nn.Module, spec, key: ExportKey, path: Path) -> None:
    """Write the ONNX graph of `net` (already in the key's precision) to path, atomically."""
    dtype = torch.float16 if key.precision == "fp16" else torch.float32
    img = torch.rand(key.batch, 3, key.height, key.width, generator=torch.Generator().manual_seed(0))
    args = (img.to(dtype), img.flip(3).to(dtype), torch.full((1,), 0.5))
    module = export_module(net, spec, key.scale)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with torch.no_grad(), _quiet():
            torch.onnx.export(
                module,
                args,
                str(tmp),
                dynamo=True,
                opset_version=key.opset,
                external_data=False,
                input_names=list(INPUTS),
                output_names=["frame"],
                verbose=False,
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _quiet():
    """The exporter's progress lines (stdout), its notes on absent optional
    packages (torchvision) and torch.export's internal messages are not the
    run's: a failed export still raises with its own message."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextlib.contextmanager
def _locked(folder: Path):
    """One exporter at a time per cache folder: streams of one run start together."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cache_folder(weights_path: str) -> Path:
    return Path(weights_path).expanduser().resolve().parent / CACHE_DIR


def make_key(spec, weights_path: str, batch: int, hw: tuple[int, int], precision: str, scale: float) -> ExportKey:
    return ExportKey(
        spec.name,
        sha256_file(weights_path),
        hw[0],
        hw[1],
        batch,
        precision,
        float(scale),
        OPSET,
        torch.__version__.split("+")[0],
    )


def cached_export(net: nn.Module, spec, key: ExportKey, folder: Path) -> tuple[Path, dict]:
    """The cached graph for key, exported first if absent. Returns its path and
    what happened ({"cached": bool, "export_s": seconds or None, ...})."""
    path = folder / key.file_name()
    with _locked(folder):
        if path.is_file():
            return path, {"path": str(path), "cached": True, "export_s": None, "key": asdict(key)}
        t0 = time.monotonic()
        export(net, spec, key, path)
        seconds = time.monotonic() - t0
        meta = {"key": asdict(key), "export_s": seconds, "created": time.time()}
        (folder / (path.name + ".json")).write_text(json.dumps(meta, indent=2) + "\n")
    return path, {"path": str(path), "cached": False, "export_s": seconds, "key": asdict(key)}
