"""Practical-RIFE 4.x IFNet: one implementation for every release in models/versions.py.

The releases share the coarse-to-fine loop: block 0 estimates flow and mask from
the two frames (and the timestep map), every later block refines them from the
frames warped by the current flow. What differs is data (IFNetArch): block count,
widths and scales, activation, conv stack, head, a per-frame feature encoder,
features handed between blocks, how the mask combines, 4.0's large-motion re-run.
Module names follow the official checkpoints so their state dicts load unchanged.
Frames are in [0, 1] by the Interpolator's contract, so the release code's input
clamps are identities and are left out.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rifebench.models import versions
from rifebench.models.nets.warp import warp
from rifebench.models.versions import IFNetArch

# 4.0 re-runs blocks 0-1 at doubled scales when block 1 still finds more than this
# many pixels of motion in both directions.
LARGE_MOTION_PX = 32

V40 = versions.get("4.0")

Features = tuple[torch.Tensor, torch.Tensor] | None  # the encoder's output for img0 and img1


def resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    # Bilinear at factor 1 with align_corners=False is the identity: skip the copy.
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def conv_act(cin: int, cout: int, stride: int = 1, prelu: bool = True) -> nn.Sequential:
    act = nn.PReLU(cout) if prelu else nn.LeakyReLU(0.2, inplace=True)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), act)


class ResConv(nn.Module):
    def __init__(self, c: int, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1, groups=groups)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x) * self.beta + x, 0.2)


class IFBlock(nn.Module):
    """Estimates a flow (4 ch) and mask (1 ch) update, and any features for the next
    block, at 1/scale resolution."""

    def __init__(self, cin: int, c: int, arch: IFNetArch = V40):
        super().__init__()
        p = arch.activation == "prelu"
        self.conv0 = nn.Sequential(conv_act(cin, c // 2, 2, p), conv_act(c // 2, c, 2, p))
        if arch.stack == "resconv":
            self.convblock = nn.Sequential(*(ResConv(c, arch.groups) for _ in range(8)))
        else:
            self.convblock = nn.Sequential(*(conv_act(c, c, 1, p) for _ in range(8)))
        self.outer_residual = arch.stack == "residual"
        self.features = arch.block_features
        self.lastconv: nn.Module
        if arch.head == "shuffle":
            self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * arch.head_channels, 4, 2, 1), nn.PixelShuffle(2))
            self.head_up = 1  # the head already returns to the block's input resolution
        else:
            self.lastconv = nn.ConvTranspose2d(c, arch.head_channels, 4, 2, 1)
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
        handed = tmp[:, 5 : 5 + self.features] if self.features else None
        return tmp[:, :4] * up, tmp[:, 4:5], handed


class NamedEncoder(nn.Module):
    """The per-frame feature head whose checkpoint keys name its layers cnn0..cnn3."""

    def __init__(self, width: int, out: int):
        super().__init__()
        self.cnn0 = nn.Conv2d(3, width, 3, 2, 1)
        self.cnn1 = nn.Conv2d(width, width, 3, 1, 1)
        self.cnn2 = nn.Conv2d(width, width, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(width, out, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in (self.cnn0, self.cnn1, self.cnn2):
            x = F.leaky_relu(layer(x), 0.2)
        return self.cnn3(x)


def build_encoder(arch: IFNetArch) -> nn.Module:
    w, e = arch.encoder_width, arch.encode_channels
    if arch.encoder == "named":
        return NamedEncoder(w, e)
    if arch.encoder == "conv-deconv":
        return nn.Sequential(nn.Conv2d(3, w, 3, 2, 1), nn.ConvTranspose2d(w, e, 4, 2, 1))
    if arch.encoder == "sequential":  # keys by index: activations sit between the convs
        layers: list[nn.Module] = [nn.Conv2d(3, w, 3, 2, 1)]
        for _ in range(2):
            layers += [nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(w, w, 3, 1, 1)]
        return nn.Sequential(*layers, nn.LeakyReLU(0.2, inplace=True), nn.ConvTranspose2d(w, e, 4, 2, 1))
    raise ValueError(f"model {arch.name}: unknown encoder layout {arch.encoder!r}")


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


def warp_pair(a: torch.Tensor, b: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return warp(a, flow[:, :2]), warp(b, flow[:, 2:4])


class IFNetV4(nn.Module):
    def __init__(self, arch: IFNetArch, ensemble: bool = False):
        super().__init__()
        if ensemble and not arch.ensemble:
            raise ValueError(f"model {arch.name} has no ensemble mode (its blocks hand features on)")
        self.arch = arch
        self.variant = arch  # the name backends/knobs.py reads to say which model branches
        self.ensemble = ensemble
        for i, c in enumerate(arch.widths):
            self.add_module(f"block{i}", IFBlock(arch.block_inputs(i), c, arch))
        if arch.encoder is not None:
            self.encode = build_encoder(arch)
        # How often 4.0's large-motion branch fired; it makes timing content-dependent,
        # so the benchmark can report it.
        self.large_motion_count = 0
        # The branch reads a flow magnitude back to the host: torch.compile breaks its
        # graph there and a CUDA graph cannot capture it.
        self.data_dependent = arch.large_motion

    @property
    def blocks(self) -> tuple[IFBlock, ...]:
        return tuple(getattr(self, f"block{i}") for i in range(self.arch.blocks))

    def features(self, img0: torch.Tensor, img1: torch.Tensor) -> Features:
        if self.arch.encoder is None:
            return None
        return self.encode(img0), self.encode(img1)

    def first(self, img0, img1, t, feats: Features, scale: float, ensemble: bool):
        """Block 0 on the frames themselves: (flow, mask, handed-on features)."""
        extra, block0 = feats or (), self.blocks[0]
        flow, mask, handed = block0(torch.cat((img0, img1, *extra, t), 1), None, scale)
        if ensemble:
            rev = tuple(reversed(extra))
            f1, m1, _ = block0(torch.cat((img1, img0, *rev, 1 - t), 1), None, scale)
            flow = (flow + swap_halves(f1)) / 2
            mask = (mask - m1) / 2
        return flow, mask, handed

    def _warped(self, img0, img1, feats: Features, flow) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """What block i > 0 sees of the two frames, in the forward and the reversed order."""
        w0, w1 = warp_pair(img0, img1, flow)
        fwd, rev = [w0, w1], [w1, w0]
        if feats is not None:
            wf0, wf1 = warp_pair(*feats, flow)
            fwd, rev = [*fwd, wf0, wf1], [*rev, wf1, wf0]
        return fwd, rev

    def step(self, i: int, img0, img1, t, feats: Features, flow, mask, handed, scale: float):
        """Block i's forward pass: (flow update, mask, handed-on features)."""
        fwd, _ = self._warped(img0, img1, feats, flow)
        extra = (handed,) if handed is not None else ()
        return self.blocks[i](torch.cat((*fwd, t, mask, *extra), 1), flow, scale)

    def reversed_step(self, i: int, img0, img1, t, feats: Features, flow, mask, df, dm, scale: float):
        """The ensemble: block i on the reversed pair, averaged with its forward pass."""
        _, rev = self._warped(img0, img1, feats, flow)
        f1, m1, _ = self.blocks[i](torch.cat((*rev, 1 - t, -mask), 1), swap_halves(flow), scale)
        return (df + swap_halves(f1)) / 2, (dm - m1) / 2

    def combine(self, flow, mask, df, dm):
        return flow + df, (mask + dm) if self.arch.mask_sum else dm

    def merge(self, img0, img1, flow, mask) -> torch.Tensor:
        w0, w1 = warp_pair(img0, img1, flow)
        m = torch.sigmoid(mask)
        return w0 * m + w1 * (1 - m)

    # A host read-back: torch.compile splits its graph here anyway; marking the split
    # keeps it from warning about the data-dependent branch on every compiled run.
    @torch.compiler.disable
    def _is_large(self, f: torch.Tensor) -> bool:
        return bool(f[:, :2].abs().max() > LARGE_MOTION_PX) and bool(f[:, 2:4].abs().max() > LARGE_MOTION_PX)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, timestep=0.5, scale: float = 1.0) -> torch.Tensor:
        """img0, img1: N,3,H,W padded to the modulus; timestep: a float or N values in
        (0, 1). Returns the merged frame at timestep (not clamped)."""
        t = timestep_map(timestep, img0)
        feats = self.features(img0, img1)
        scales = [s / scale for s in self.arch.scales]
        flow, mask, handed = self.first(img0, img1, t, feats, scales[0], self.ensemble)
        for i in range(1, self.arch.blocks):
            df, dm, passed = self.step(i, img0, img1, t, feats, flow, mask, handed, scales[i])
            if i == 1 and self.arch.large_motion and self._is_large(df):
                self.large_motion_count += 1
                scales = [s * 2 for s in scales]
                # The official 4.0 re-runs block 0 without its ensemble pass; kept so
                # that outputs match the published model.
                flow, mask, handed = self.first(img0, img1, t, feats, scales[0], False)
                df, dm, passed = self.step(i, img0, img1, t, feats, flow, mask, handed, scales[i])
            if self.ensemble:
                df, dm = self.reversed_step(i, img0, img1, t, feats, flow, mask, df, dm, scales[i])
            flow, mask = self.combine(flow, mask, df, dm)
            handed = passed
        return self.merge(img0, img1, flow, mask)


def build_version(name: str, ensemble: bool = False) -> IFNetV4:
    """The network of release `name` (a key of models/versions.py), random init."""
    return IFNetV4(versions.get(name), ensemble)


def build_v40(ensemble: bool = False) -> IFNetV4:
    return build_version("4.0", ensemble)


def build_v46(ensemble: bool = False) -> IFNetV4:
    return build_version("4.6", ensemble)
