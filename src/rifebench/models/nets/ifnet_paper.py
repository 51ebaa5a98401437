"""The ECCV2022 RIFE paper model: a 3-block IFNet plus ContextNet/U-Net refinement.

Its IFBlocks are the 4.0 kind (conv + PReLU, outer residual, 5-channel deconv head),
so they come from ifnet_v4. It predicts t = 0.5 only. Module names follow the
official checkpoint; the training-only teacher block (block_tea) is not built.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from rifebench.models.nets.ifnet_v4 import V40, IFBlock, conv_act, resize
from rifebench.models.nets.warp import warp

SCALES = (4.0, 2.0, 1.0)


class Conv2(nn.Module):
    """Two conv+PReLU; the first one strided (a down-sampling stage)."""

    def __init__(self, cin: int, cout: int, stride: int = 2):
        super().__init__()
        self.conv1 = conv_act(cin, cout, stride)
        self.conv2 = conv_act(cout, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


def deconv_act(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.PReLU(cout))


class Contextnet(nn.Module):
    """Features of one frame at 1/2 .. 1/16 resolution, each warped towards t."""

    def __init__(self, c: int = 16):
        super().__init__()
        self.conv1 = Conv2(3, c)
        self.conv2 = Conv2(c, 2 * c)
        self.conv3 = Conv2(2 * c, 4 * c)
        self.conv4 = Conv2(4 * c, 8 * c)

    def forward(self, x: torch.Tensor, flow: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = stage(x)
            # The flow follows the features: half the size, half the displacement.
            flow = resize(flow, 0.5) * 0.5
            feats.append(warp(x, flow))
        return feats


class Unet(nn.Module):
    """Predicts a residual correction of the merged frame."""

    def __init__(self, c: int = 16):
        super().__init__()
        self.down0 = Conv2(17, 2 * c)
        self.down1 = Conv2(4 * c, 4 * c)
        self.down2 = Conv2(8 * c, 8 * c)
        self.down3 = Conv2(16 * c, 16 * c)
        self.up0 = deconv_act(32 * c, 8 * c)
        self.up1 = deconv_act(16 * c, 4 * c)
        self.up2 = deconv_act(8 * c, 2 * c)
        self.up3 = deconv_act(4 * c, c)
        self.conv = nn.Conv2d(c, 3, 3, 1, 1)

    def forward(self, img0, img1, w0, w1, mask, flow, c0, c1) -> torch.Tensor:
        s0 = self.down0(torch.cat((img0, img1, w0, w1, mask, flow), 1))
        s1 = self.down1(torch.cat((s0, c0[0], c1[0]), 1))
        s2 = self.down2(torch.cat((s1, c0[1], c1[1]), 1))
        s3 = self.down3(torch.cat((s2, c0[2], c1[2]), 1))
        x = self.up0(torch.cat((s3, c0[3], c1[3]), 1))
        x = self.up1(torch.cat((x, s2), 1))
        x = self.up2(torch.cat((x, s1), 1))
        x = self.up3(torch.cat((x, s0), 1))
        return torch.sigmoid(self.conv(x))


class IFNetPaper(nn.Module):
    def __init__(self):
        super().__init__()
        self.block0 = IFBlock(6, 240, V40)
        self.block1 = IFBlock(13 + 4, 150, V40)
        self.block2 = IFBlock(13 + 4, 90, V40)
        self.contextnet = Contextnet()
        self.unet = Unet()

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """The frame at t = 0.5 of two N,3,H,W frames padded to the modulus, in [0, 1]."""
        scales = [s / scale for s in SCALES]
        flow, mask, _ = self.block0(torch.cat((img0, img1), 1), None, scales[0])
        w0, w1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        for block, s in ((self.block1, scales[1]), (self.block2, scales[2])):
            df, dm, _ = block(torch.cat((img0, img1, w0, w1, mask), 1), flow, s)
            flow = flow + df
            mask = mask + dm
            w0, w1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        m = torch.sigmoid(mask)
        merged = w0 * m + w1 * (1 - m)
        c0 = self.contextnet(img0, flow[:, :2])
        c1 = self.contextnet(img1, flow[:, 2:4])
        res = self.unet(img0, img1, w0, w1, mask, flow, c0, c1)[:, :3] * 2 - 1
        return torch.clamp(merged + res, 0, 1)


def build_paper() -> IFNetPaper:
    return IFNetPaper()
