"""The inference contract between the stream runner and a RIFE network.

An Interpolator owns device, precision, padding and timestep policy; the network
only sees padded frames in its input dtype. Data loading and scoring stay outside.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .zoo import ModelSpec

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise ValueError(f"Interpolator: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")


def timesteps(n: int) -> list[float]:
    """The n evenly spaced timesteps strictly between two frames: i / (n + 1)."""
    return [i / (n + 1) for i in range(1, n + 1)]


def _is_bisection_count(n: int) -> bool:
    # n = 2^k - 1  <=>  n + 1 is a power of two
    return n >= 1 and (n + 1) & n == 0


def validate_interpolation(spec: ModelSpec, n) -> str | None:
    """Why n frames per pair cannot be produced by spec's model, or None if it can."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        return f"the number of interpolated frames must be an integer >= 1, got {n!r}"
    if not spec.arbitrary_timestep and not _is_bisection_count(n):
        return (
            f"model {spec.name} predicts only t=0.5 and makes more frames by recursive "
            f"bisection, so the number of interpolated frames must be 2^k - 1 "
            f"(1, 3, 7, 15, ...), got {n}"
        )
    return None


class Interpolator:
    """Runs net on padded frame pairs at a given device, precision and scale.

    amp=False: the weights are cast to dtype and inputs are given in dtype.
    amp=True: the weights stay float32, inputs are float32, and the forward runs under
    torch.autocast(dtype) (a no-op for float32). Outputs are always in dtype. The
    networks' warp runs in float32 in every case.
    """

    def __init__(self, net: nn.Module, spec: ModelSpec, device, dtype, amp: bool = False,
                 scale: float = 1.0, channels_last: bool = False):
        self.spec = spec
        self.device = torch.device(device)
        self.dtype = resolve_dtype(dtype)
        self.amp = bool(amp)
        self.scale = float(scale)
        if self.scale <= 0:
            raise ValueError(f"Interpolator: scale must be > 0, got {scale!r}")
        self.channels_last = channels_last
        self.modulus = spec.modulus_for(self.scale)
        self.input_dtype = torch.float32 if self.amp else self.dtype
        net = net.to(device=self.device, dtype=self.input_dtype)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net.eval()
        self.orig_hw: tuple[int, int] | None = None

    def padded_hw(self, h: int, w: int) -> tuple[int, int]:
        m = self.modulus
        return (h + m - 1) // m * m, (w + m - 1) // m * m

    def prepare(self, frame: torch.Tensor) -> torch.Tensor:
        """N,3,H,W in [0,1] -> on the device, in the input dtype, zero-padded right and
        bottom to the modulus. Remembers H, W to crop the outputs back."""
        if frame.dim() != 4 or frame.shape[1] != 3:
            raise ValueError(f"Interpolator.prepare: expected an N,3,H,W tensor, got shape {tuple(frame.shape)}")
        h, w = frame.shape[2], frame.shape[3]
        ph, pw = self.padded_hw(h, w)
        x = frame.to(device=self.device, dtype=self.input_dtype, non_blocking=True)
        if (ph, pw) != (h, w):
            x = F.pad(x, (0, pw - w, 0, ph - h))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        self.orig_hw = (h, w)
        return x

    def _forward(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
        if self.spec.arbitrary_timestep:
            return self.net(img0, img1, t, scale=self.scale)
        return self.net(img0, img1, scale=self.scale)

    def _bisect(self, img0: torch.Tensor, img1: torch.Tensor, depth: int) -> list[torch.Tensor]:
        # Intermediate frames stay padded and uncropped: they are the next inputs.
        mid = self._forward(img0, img1, 0.5)
        if depth == 1:
            return [mid]
        return self._bisect(img0, mid, depth - 1) + [mid] + self._bisect(mid, img1, depth - 1)

    def interpolate(self, img0: torch.Tensor, img1: torch.Tensor, n: int = 1) -> list[torch.Tensor]:
        """n frames at t = i/(n+1), cropped to the prepared size, clamped to [0,1],
        in dtype, on the device."""
        error = validate_interpolation(self.spec, n)
        if error:
            raise ValueError(f"Interpolator.interpolate: {error}")
        if self.orig_hw is None:
            raise RuntimeError("Interpolator.interpolate: call prepare() on the frames first")
        h, w = self.orig_hw
        if tuple(img0.shape[2:]) != self.padded_hw(h, w) or img0.shape != img1.shape:
            raise ValueError(
                f"Interpolator.interpolate: frames of shape {tuple(img0.shape)} and {tuple(img1.shape)} "
                f"do not match the last prepare()d size {h}x{w}"
            )
        use_autocast = self.amp and self.dtype != torch.float32
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.dtype, enabled=use_autocast):
            if self.spec.arbitrary_timestep:
                frames = [self._forward(img0, img1, t) for t in timesteps(n)]
            else:
                frames = self._bisect(img0, img1, n.bit_length())
            return [f[:, :, :h, :w].clamp(0, 1).to(self.dtype) for f in frames]
