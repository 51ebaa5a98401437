"""Backward warp shared by every RIFE network, always computed in float32.

The base grid, the flow normalisation and grid_sample all run in float32 even when
the network runs in fp16/bf16 or under autocast: a reduced-precision grid misplaces
pixels (0.3 px at 1280 wide in fp16, several px in bf16), and on x86 CPUs fp16/bf16
grid_sample returns NaN for inputs larger than about 128x128. Only the result is cast
back to the caller's dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def base_grid(height: int, width: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """The x and y sample positions of an identity warp, in grid_sample's [-1, 1]
    coordinates, shaped to broadcast against (N, H, W). Built per call on the given
    device: it costs two linspaces, far less than one convolution."""
    gx = torch.linspace(-1.0, 1.0, width, dtype=torch.float32, device=device).view(1, 1, width)
    gy = torch.linspace(-1.0, 1.0, height, dtype=torch.float32, device=device).view(1, height, 1)
    return gx, gy


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample img (N, C, H, W) at positions displaced by flow (N, 2, H, W; x then y,
    in pixels), bilinear, border padding, align_corners=True."""
    out_dtype = img.dtype
    with torch.autocast(device_type=img.device.type, enabled=False):
        img32 = img.float()
        flow32 = flow.float()
        h, w = img32.shape[2], img32.shape[3]
        gx, gy = base_grid(h, w, img32.device)
        # A 1-pixel-wide map (the deepest context level of a tiny frame) would divide by
        # zero; with align_corners=True any coordinate there samples the single pixel.
        half_w = max(w - 1, 1) / 2.0
        half_h = max(h - 1, 1) / 2.0
        grid = torch.stack((gx + flow32[:, 0] / half_w, gy + flow32[:, 1] / half_h), dim=-1)
        out = F.grid_sample(img32, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.to(out_dtype)
