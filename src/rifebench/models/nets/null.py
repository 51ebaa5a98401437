"""The null model: no network work, a fixed host cost per generated frame.

It measures the harness itself (LoadGen's null SUT): what the launcher, the
stream loop, the timers and the report add around a model whose cost is known.
The cost is a busy-wait on the host clock, not a sleep, because a sleep may
overshoot by a scheduler tick and would hide harness overhead behind it; on a
GPU platform the wait still runs on the host, so it never measures a device.
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn

DEFAULT_COST_MS = 5.0


# No torch.compiler.disable on these: it imports Dynamo, seconds of start-up in
# every stream. Under torch.compile the clock calls are graph breaks (Dynamo
# cannot trace time.perf_counter) and run eagerly, so a compiled net still pays
# the wait on every call.
def deadline(ms: float) -> float:
    return time.perf_counter() + ms / 1000.0


def spin_until(until: float) -> None:
    while time.perf_counter() < until:
        pass


def spin(ms: float) -> None:
    spin_until(deadline(ms))


class NullNet(nn.Module):
    """forward(img0, img1, t) = the average of the two frames, returned
    cost_ms after the call began for each pair in the batch (so the cost per
    output image does not depend on batching; the average itself is inside
    that time). No parameters, any timestep, any size."""

    def __init__(self, cost_ms: float = DEFAULT_COST_MS):
        super().__init__()
        if cost_ms < 0:
            raise ValueError(f"NullNet: cost_ms must be >= 0, got {cost_ms!r}")
        self.cost_ms = float(cost_ms)
        # The wait is host work: a CUDA graph would replay the average without it.
        self.data_dependent = True

    def forward(
        self, img0: torch.Tensor, img1: torch.Tensor, timestep: float = 0.5, scale: float = 1.0
    ) -> torch.Tensor:
        until = deadline(self.cost_ms * img0.shape[0])
        out = (img0 + img1) * 0.5
        spin_until(until)
        return out


def build_null(null_ms: float = DEFAULT_COST_MS) -> NullNet:
    return NullNet(null_ms)
