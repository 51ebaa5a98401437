"""RIFE 3.6, the "HD" model of the ECCV2022-RIFE README, written from docs/models.md.

It predates the 4.x family: three equal blocks (c = 90) that all start from a flow
and mask (zero for block 0), four two-conv stacks with a residual each, separate
flow and mask heads (two transposed convs each), and an ensemble that is always on
(every block also runs on the reversed pair and the two are averaged). It predicts
t = 0.5 only. Module names follow the official checkpoint; the training-only
teacher block (block_tea) is not built.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from rifebench.models.nets.ifnet_v4 import conv_act, resize, swap_halves, warp_pair

SCALES = (4.0, 2.0, 1.0)
WIDTH = 90
INPUTS = 3 + 3 + 1 + 4  # both frames (warped), the mask, the flow


def upsampling_head(c: int, out: int) -> nn.Sequential:
    """Two stride-2 transposed convs: from 1/4 of the block input's size back to it."""
    return nn.Sequential(
        nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.PReLU(c // 2), nn.ConvTranspose2d(c // 2, out, 4, 2, 1)
    )


class IFBlock36(nn.Module):
    def __init__(self, cin: int = INPUTS, c: int = WIDTH):
        super().__init__()
        self.conv0 = nn.Sequential(conv_act(cin, c // 2, 2), conv_act(c // 2, c, 2))
        for i in range(4):
            self.add_module(f"convblock{i}", nn.Sequential(conv_act(c, c), conv_act(c, c)))
        self.conv1 = upsampling_head(c, 4)  # flow
        self.conv2 = upsampling_head(c, 1)  # mask

    def forward(self, x: torch.Tensor, flow: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        x = resize(x, 1.0 / scale)
        feat = self.conv0(torch.cat((x, resize(flow, 1.0 / scale) / scale), 1))
        for i in range(4):
            feat = getattr(self, f"convblock{i}")(feat) + feat
        return resize(self.conv1(feat), scale) * scale, resize(self.conv2(feat), scale)


class IFNet36(nn.Module):
    def __init__(self):
        super().__init__()
        self.block0 = IFBlock36()
        self.block1 = IFBlock36()
        self.block2 = IFBlock36()

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """The frame at t = 0.5 of two N,3,H,W frames padded to the modulus, in [0, 1]."""
        n, _, h, w = img0.shape
        flow = img0.new_zeros((n, 4, h, w))
        mask = img0.new_zeros((n, 1, h, w))
        w0, w1 = img0, img1
        for block, s in zip((self.block0, self.block1, self.block2), SCALES, strict=True):
            f0, m0 = block(torch.cat((w0, w1, mask), 1), flow, s / scale)
            f1, m1 = block(torch.cat((w1, w0, -mask), 1), swap_halves(flow), s / scale)
            flow = flow + (f0 + swap_halves(f1)) / 2
            mask = mask + (m0 - m1) / 2
            w0, w1 = warp_pair(img0, img1, flow)
        m = torch.sigmoid(mask)
        return w0 * m + w1 * (1 - m)


def build_36() -> IFNet36:
    return IFNet36()
