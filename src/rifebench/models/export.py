"""The network (not the padding, cropping or scoring around it) as an ONNX graph,
exported once and cached beside the weights (or in the user's cache folder when
the weights' folder cannot be written: onnx_cache.py).

One file per (model, weights sha256, padded size, batch, precision, scale,
opset, exporter version): the shapes are static so that the runtimes can plan
for them. The warp stays float32 in the graph (GridSample, opset 16 or later),
as in the eager networks. Model 4.0's large-motion branch is exported
faithfully, as an ONNX `If` (torch.cond in an export-only forward that gives
bit-identical outputs in torch), never as a silently different network. Every
other release of the family, 3.6 and the paper model export as they are.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from rifebench.console import log
from rifebench.fsutil import atomic_write_bytes, sha256_file
from rifebench.models import onnx_cache
from rifebench.models.nets.ifnet_v4 import LARGE_MOTION_PX, IFNetV4, timestep_map

OPSET = 18  # GridSample arrived in 16; 18 is what the dynamo exporter writes natively
CACHE_DIR = onnx_cache.CACHE_DIR
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


def rest_of_blocks(n: IFNetV4, img0, img1, t, flow, mask, df, dm, scales):
    """4.0's blocks after block 1's step (df, dm), then the merge: what both branches
    of the large-motion test run (with the scales as given or doubled)."""
    for i in range(1, n.arch.blocks):
        if i > 1:
            df, dm, _ = n.step(i, img0, img1, t, None, flow, mask, None, scales[i])
        if n.ensemble:
            df, dm = n.reversed_step(i, img0, img1, t, None, flow, mask, df, dm, scales[i])
        flow, mask = n.combine(flow, mask, df, dm)
    return n.merge(img0, img1, flow, mask)


class ExportNet40(nn.Module):
    """IFNetV4 with its large-motion branch (4.0, 4.1) as torch.cond: both branches
    run the rest of the network (the later blocks use the doubled scales too), so
    that the graph holds one If and the eager outputs equal IFNetV4.forward's."""

    def __init__(self, net: IFNetV4, scale: float):
        super().__init__()
        self.net, self.scale = net, scale

    def _rest(self, img0, img1, t, flow, mask, df, dm, scales):
        return rest_of_blocks(self.net, img0, img1, t, flow, mask, df, dm, scales)

    def _block1(self, img0, img1, t, scales, ensemble):
        flow, mask, _ = self.net.first(img0, img1, t, None, scales[0], ensemble)
        df, dm, _ = self.net.step(1, img0, img1, t, None, flow, mask, None, scales[1])
        return flow, mask, df, dm

    def forward(self, img0, img1, timestep):
        t = timestep_map(timestep, img0)
        scales = [s / self.scale for s in self.net.arch.scales]
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
    if isinstance(net, IFNetV4) and net.arch.large_motion:
        return ExportNet40(net, scale).eval()
    return ExportNet(net, spec.arbitrary_timestep, scale).eval()


def graph_bytes(net: nn.Module, spec, key: ExportKey) -> bytes:
    """The ONNX graph of `net` (already in the key's precision), serialised in
    memory: the exporter never opens a path, so a link planted at one is never
    written through."""
    dtype = torch.float16 if key.precision == "fp16" else torch.float32
    img = torch.rand(key.batch, 3, key.height, key.width, generator=torch.Generator().manual_seed(0))
    args = (img.to(dtype), img.flip(3).to(dtype), torch.full((1,), 0.5))
    return module_bytes(export_module(net, spec, key.scale), args, INPUTS, ("frame",), key.opset)


def module_bytes(module: nn.Module, args: tuple, inputs: Sequence[str], outputs: Sequence[str], opset: int) -> bytes:
    """Any module's ONNX graph with these input and output names, serialised in
    memory (graph_bytes's exporter settings; runtimes/branches.py exports 4.0's
    parts through it)."""
    with torch.no_grad(), _quiet():
        program = torch.onnx.export(
            module,
            args,
            None,
            dynamo=True,
            opset_version=opset,
            input_names=list(inputs),
            output_names=list(outputs),
            verbose=False,
        )
    assert program is not None, "the dynamo exporter returns its program"
    return program.model_proto.SerializeToString()


def export(net: nn.Module, spec, key: ExportKey, path: Path) -> None:
    """Write the ONNX graph of `net` to path, atomically (a fresh file renamed into place)."""
    atomic_write_bytes(path, graph_bytes(net, spec, key))


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


def cache_folder(weights_path: str) -> Path:
    """The cache folder beside the weights (the first of cache_folders)."""
    return onnx_cache.folders(weights_path)[0]


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


def cache_folders(weights_path: str) -> list[Path]:
    """Where cached_export looks and writes, in order (onnx_cache.folders)."""
    return onnx_cache.folders(weights_path)


def cached_export(
    net: nn.Module, spec, key: ExportKey, folders: Sequence[Path], make: Callable[[], bytes] | None = None
) -> tuple[Path, dict]:
    """The cached graph for key, exported first if absent or not matching its
    sha256. The first folder that holds a valid entry is used; else the first
    that can be written. Returns its path and what happened ({"cached": bool,
    "export_s": seconds or None, "folder", "beside_weights", "fallback_reason", ...}).
    `make` writes another entry's bytes in place of the export (a key whose
    file_name differs: runtimes/ keeps 4.0's parts and INT8 models here)."""
    wanted = asdict(key)
    passed_over: list[str] = []  # why each earlier folder could not take the export
    for folder in folders:
        onnx_cache.refuse_link(folder)
        path = folder / key.file_name()
        if onnx_cache.entry_problem(path, wanted) is None:
            return path, _info(key, path, folders, passed_over, None)
        why = onnx_cache.unwritable(folder)
        if why is None:
            return _export_into(net, spec, key, path, folders, passed_over, make)
        passed_over.append(why)
    raise onnx_cache.CacheError(
        f"ONNX cache: no folder can take the export: {'; '.join(passed_over)} (accepted: a weights folder, "
        "or $XDG_CACHE_HOME (else ~/.cache), that this user can write)"
    )


def _export_into(
    net, spec, key: ExportKey, path: Path, folders, passed_over: list[str], make=None
) -> tuple[Path, dict]:
    with onnx_cache.locked(path.parent):
        problem = onnx_cache.entry_problem(path, asdict(key))  # another stream may have written it meanwhile
        if problem is None:
            return path, _info(key, path, folders, passed_over, None)
        if problem != onnx_cache.ABSENT:
            log(f"ONNX cache: {path}: {problem}; exporting it again")
        elif passed_over:
            log(f"ONNX cache: {passed_over[0]}; exporting into {path.parent}")
        t0 = time.monotonic()
        data = make() if make is not None else graph_bytes(net, spec, key)
        seconds = time.monotonic() - t0
        onnx_cache.write_entry(path, asdict(key), data, seconds, time.time())
    return path, _info(key, path, folders, passed_over, seconds)


def _info(key: ExportKey, path: Path, folders, passed_over: list[str], export_s: float | None) -> dict[str, Any]:
    beside = path.parent == folders[0]
    return {
        "path": str(path),
        "cached": export_s is None,
        "export_s": export_s,
        "key": asdict(key),
        "folder": str(path.parent),
        "beside_weights": beside,
        "fallback_reason": None if beside else (passed_over[0] if passed_over else None),
    }
