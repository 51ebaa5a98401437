"""Practical-RIFE 4.x IFNet, one implementation parameterised by release.

4.0 and 4.6 share the block widths, the inputs and the coarse-to-fine loop; they
differ in the activation, the conv stack, the head, and 4.0's large-motion branch.
Module names follow the official checkpoints so their state dicts load unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from rifebench.models.nets.warp import warp

# Block i runs at 1/SCALES[i] of the input resolution (divided by the user scale).
SCALES = (8.0, 4.0, 2.0, 1.0)
# 4.0 re-runs blocks 0-1 at doubled scales when block 1 still finds more than this
# many pixels of motion in both directions.
LARGE_MOTION_PX = 32


@dataclass(frozen=True)
class Variant:
    name: str
    prelu: bool  # conv + PReLU (4.0, paper) or conv + LeakyReLU(0.2) (4.6)
    resconv: bool  # 8 ResConv with learnt beta (4.6) or 8 conv+act with an outer residual
    pixel_shuffle: bool  # 24-ch deconv + PixelShuffle(2) head (4.6) or 5-ch deconv
    large_motion: bool  # 4.0's data-dependent re-run of blocks 0-1


V40 = Variant("4.0", prelu=True, resconv=False, pixel_shuffle=False, large_motion=True)
V46 = Variant("4.6", prelu=False, resconv=True, pixel_shuffle=True, large_motion=False)


def resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    # Bilinear at factor 1 with align_corners=False is the identity: skip the copy.
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def conv_act(cin: int, cout: int, stride: int = 1, prelu: bool = True) -> nn.Sequential:
    act = nn.PReLU(cout) if prelu else nn.LeakyReLU(0.2, inplace=True)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), act)


class ResConv(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x) * self.beta + x, 0.2)


class IFBlock(nn.Module):
    """Estimates a flow (4 ch) and mask (1 ch) update at 1/scale resolution."""

    def __init__(self, cin: int, c: int, variant: Variant = V40):
        super().__init__()
        p = variant.prelu
        self.conv0 = nn.Sequential(conv_act(cin, c // 2, 2, p), conv_act(c // 2, c, 2, p))
        if variant.resconv:
            self.convblock = nn.Sequential(*(ResConv(c) for _ in range(8)))
        else:
            self.convblock = nn.Sequential(*(conv_act(c, c, 1, p) for _ in range(8)))
        self.outer_residual = not variant.resconv
        self.lastconv: nn.Module
        if variant.pixel_shuffle:
            self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 24, 4, 2, 1), nn.PixelShuffle(2))
            self.head_up = 1  # the head already returns to the block's input resolution
        else:
            self.lastconv = nn.ConvTranspose2d(c, 5, 4, 2, 1)
            self.head_up = 2

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float):
        x = resize(x, 1.0 / scale)
        if flow is not None:
            x = torch.cat((x, resize(flow, 1.0 / scale) / scale), 1)
        feat = self.conv0(x)
        out = self.convblock(feat)
        if self.outer_residual:
            out = out + feat
        up = scale * self.head_up
        tmp = resize(self.lastconv(out), up)
        return tmp[:, :4] * up, tmp[:, 4:5]


def swap_halves(flow: torch.Tensor) -> torch.Tensor:
    """Flow of the reversed pair (img1, img0): the two 2-channel halves exchanged."""
    return torch.cat((flow[:, 2:4], flow[:, :2]), 1)


def timestep_map(timestep, like: torch.Tensor) -> torch.Tensor:
    """A (N, 1, H, W) map of the timestep(s) in like's dtype and device."""
    n, _, h, w = like.shape
    if not torch.is_tensor(timestep):
        return torch.full((n, 1, h, w), float(timestep), dtype=like.dtype, device=like.device)
    t = timestep.to(device=like.device, dtype=like.dtype).reshape(-1, 1, 1, 1)
    if t.shape[0] not in (1, n):
        raise ValueError(f"timestep: expected a float or {n} values (one per frame), got {t.shape[0]}")
    return t.expand(n, 1, h, w)


class IFNetV4(nn.Module):
    def __init__(self, variant: Variant, ensemble: bool = False):
        super().__init__()
        self.variant = variant
        self.ensemble = ensemble
        self.block0 = IFBlock(7, 192, variant)
        self.block1 = IFBlock(8 + 4, 128, variant)
        self.block2 = IFBlock(8 + 4, 96, variant)
        self.block3 = IFBlock(8 + 4, 64, variant)
        # How often 4.0's large-motion branch fired; it makes timing content-dependent,
        # so the benchmark can report it.
        self.large_motion_count = 0
        # The branch reads a flow magnitude back to the host: torch.compile breaks its
        # graph there and a CUDA graph cannot capture it.
        self.data_dependent = variant.large_motion

    def _first(self, img0, img1, t, scale, ensemble):
        flow, mask = self.block0(torch.cat((img0, img1, t), 1), None, scale)
        if ensemble:
            f1, m1 = self.block0(torch.cat((img1, img0, 1 - t), 1), None, scale)
            flow = (flow + swap_halves(f1)) / 2
            mask = (mask - m1) / 2
        return flow, mask

    # A host read-back: torch.compile splits its graph here anyway; marking the split
    # keeps it from warning about the data-dependent branch on every compiled run.
    @torch.compiler.disable
    def _is_large(self, f: torch.Tensor) -> bool:
        return bool(f[:, :2].abs().max() > LARGE_MOTION_PX) and bool(f[:, 2:4].abs().max() > LARGE_MOTION_PX)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, timestep=0.5, scale: float = 1.0) -> torch.Tensor:
        """img0, img1: N,3,H,W padded to the modulus; timestep: a float or N values in
        (0, 1). Returns the merged frame at timestep (not clamped)."""
        t = timestep_map(timestep, img0)
        scales = [s / scale for s in SCALES]
        blocks = (self.block0, self.block1, self.block2, self.block3)
        flow, mask = self._first(img0, img1, t, scales[0], self.ensemble)
        w0, w1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        for i in (1, 2, 3):
            f0, m0 = blocks[i](torch.cat((w0, w1, t, mask), 1), flow, scales[i])
            if i == 1 and self.variant.large_motion and self._is_large(f0):
                self.large_motion_count += 1
                scales = [s * 2 for s in scales]
                # The official 4.0 re-runs block 0 without its ensemble pass; kept so
                # that outputs match the published model.
                flow, mask = self._first(img0, img1, t, scales[0], False)
                w0, w1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
                f0, m0 = blocks[i](torch.cat((w0, w1, t, mask), 1), flow, scales[i])
            if self.ensemble:
                x = torch.cat((w1, w0, 1 - t, -mask), 1)
                f1, m1 = blocks[i](x, swap_halves(flow), scales[i])
                f0 = (f0 + swap_halves(f1)) / 2
                m0 = (m0 - m1) / 2
            flow = flow + f0
            mask = mask + m0
            w0, w1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        m = torch.sigmoid(mask)
        return w0 * m + w1 * (1 - m)


def build_v40(ensemble: bool = False) -> IFNetV4:
    return IFNetV4(V40, ensemble)


def build_v46(ensemble: bool = False) -> IFNetV4:
    return IFNetV4(V46, ensemble)
