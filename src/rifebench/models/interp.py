"""The inference contract between the stream runner and a RIFE network.

An Interpolator owns device, precision, padding and timestep policy; the network
only sees padded frames in its input dtype. Data loading and scoring stay outside.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from rifebench.backends.device import torch_dtype
from rifebench.backends.knobs import GRAPHING_COMPILE_MODES, KnobError
from rifebench.models.zoo import ModelSpec


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    try:
        return torch_dtype(dtype)
    except ValueError as exc:
        raise ValueError(f"Interpolator: {exc}") from None


def timesteps(n: int) -> list[float]:
    """The n evenly spaced timesteps strictly between two frames: i / (n + 1)."""
    return [i / (n + 1) for i in range(1, n + 1)]


def validate_interpolation(spec: ModelSpec, n) -> str | None:
    """Why n frames per pair cannot be produced by spec's model, or None if it can."""
    return spec.interpolation_error(n)


class CompileFailed(KnobError):
    """torch.compile failed while COMPILE was set explicitly; the message is one line."""


class _Buffers:
    """PREALLOCATE: a ring of padded device buffers, filled in place, and on a
    GPU a pinned host buffer per slot so the copy to the device is
    asynchronous. A prepared frame stays valid for SLOTS - 1 further
    prepare() calls, enough for the pair in use and the next one."""

    SLOTS = 4

    def __init__(self, device: torch.device, dtype: torch.dtype, channels_last: bool):
        self.device, self.dtype = device, dtype
        self.format = torch.channels_last if channels_last else torch.contiguous_format
        self.pinned = device.type in ("cuda", "xpu")
        self.slots: list[dict | None] = [None] * self.SLOTS
        self.next = 0
        self.allocations = 0

    def put(self, frame: torch.Tensor, padded: tuple[int, int]) -> torch.Tensor:
        i = self.next
        self.next = (i + 1) % self.SLOTS
        n, c, h, w = frame.shape
        slot = self.slots[i]
        if slot is None or slot["dev"].shape != (n, c, *padded) or slot["frame_shape"] != frame.shape:
            # Zeroed once: the padding stays zero because only [:h, :w] is ever written.
            dev = torch.zeros((n, c, *padded), dtype=self.dtype, device=self.device).contiguous(
                memory_format=self.format
            )
            host = torch.empty(frame.shape, dtype=self.dtype, pin_memory=True) if self.pinned else None
            slot = self.slots[i] = {"dev": dev, "host": host, "event": None, "frame_shape": frame.shape}
            self.allocations += 1
        dev = slot["dev"]
        if slot["host"] is None:
            dev[:, :, :h, :w].copy_(frame)
            return dev
        if slot["event"] is not None:
            slot["event"].synchronize()  # the previous copy out of this host buffer is done
        slot["host"].copy_(frame)
        dev[:, :, :h, :w].copy_(slot["host"], non_blocking=True)
        slot["event"] = getattr(torch, self.device.type).Event()
        slot["event"].record()
        return dev


class Interpolator:
    """Runs net on padded frame pairs at a given device, precision and scale.

    amp=False: the weights are cast to dtype and inputs are given in dtype.
    amp=True: the weights stay float32, inputs are float32, and the forward runs under
    torch.autocast(dtype) (a no-op for float32). Outputs are always in dtype. The
    networks' warp runs in float32 in every case.

    Optimisation knobs (effective values, see knobs.py): channels_last;
    compile (a torch.compile mode or "none"); cuda_graphs; preallocate (the
    ring of input buffers above); reuse_frames (prepare(frame, key) returns
    the prepared copy of a frame already prepared under the same key: the
    shared frame of consecutive pairs in a video); optimize (a function
    (net, dtype) -> net, e.g. ipex.optimize). What cannot run falls back to
    eager and is reported to on_fallback(knob, wanted, effective, reason),
    unless the knob is in `strict` (set explicitly): then it raises.
    """

    def __init__(
        self,
        net: nn.Module,
        spec: ModelSpec,
        device,
        dtype,
        amp: bool = False,
        scale: float = 1.0,
        channels_last: bool = False,
        *,
        compile: str = "none",
        cuda_graphs: bool = False,
        preallocate: bool = False,
        reuse_frames: bool = False,
        optimize=None,
        strict=(),
        on_fallback=None,
    ):
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
        self.strict = frozenset(strict)
        self.knobs: Any = None  # the resolved knobs (backends.knobs.Knobs), set by run.stream.build
        self.fallbacks: list[dict] = []
        self._on_fallback = on_fallback
        net = net.to(device=self.device, dtype=self.input_dtype)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stub lacks memory_format
        self.net = net.eval()
        if optimize is not None:
            self.net = optimize(self.net, self.dtype)
        self.orig_hw: tuple[int, int] | None = None
        self.compile_mode = compile
        self._compiled = torch.compile(self.net, mode=compile) if compile != "none" else None
        self.compile_first_call_s: float | None = None
        self._graphs = self._make_graphs() if cuda_graphs else None
        self._buffers = _Buffers(self.device, self.input_dtype, channels_last) if preallocate or self._graphs else None
        self.reuse_frames = bool(reuse_frames)
        self._cache: dict = {}  # key -> (prepared tensor, (h, w)); the last pair's frames
        self.reuse = {"hits": 0, "misses": 0, "prepare_s": 0.0}

    # -- knobs ------------------------------------------------------------------------------
    def _fall_back(self, knob: str, wanted, effective, reason: str) -> None:
        record = {"knob": knob, "wanted": wanted, "effective": effective, "reason": reason}
        self.fallbacks.append(record)
        if self._on_fallback is not None:
            self._on_fallback(knob, wanted, effective, reason)

    def _make_graphs(self):
        from rifebench.backends.device import BackendUnavailable, CudaGraphs

        why = None
        if getattr(self.net, "data_dependent", False):
            why = (
                f"model {self.spec.name} branches on its own output (large-motion re-run), which needs a "
                "host sync a CUDA graph cannot capture"
            )
        elif self.compile_mode in GRAPHING_COMPILE_MODES:
            why = f"COMPILE={self.compile_mode} already captures CUDA graphs"
        else:
            try:
                return CudaGraphs(self.device)
            except BackendUnavailable as exc:
                why = str(exc)
        if "cuda_graphs" in self.strict:
            raise KnobError("cuda_graphs", f"'yes' cannot run here: {why} (accepted here: no)")
        self._fall_back("cuda_graphs", True, False, why)
        return None

    @property
    def warmup_needed(self) -> int:
        """Untimed calls needed before timing: compilation and graph capture
        happen on the first call of each input signature."""
        return 1 if self._compiled is not None or self._graphs is not None else 0

    def runtime(self) -> dict:
        """What the knobs did at run time, for results.json."""
        r: dict[str, Any] = dict(self.reuse)
        r["saved_s_est"] = r["hits"] * r["prepare_s"] / r["misses"] if r["misses"] else 0.0
        r["note"] = (
            "a hit skips the copy to the device, the padding and the cast of a frame (saved_s_est: "
            "host time); RIFE 4.x has no per-frame network work to cache (every block sees both "
            "frames). Only sources that name their frames can hit: the dummy source prepares its one "
            "pair once, Vimeo-90K triplets share no frame; the study's video sequence does"
        )
        return {
            "reuse_frames": r if self.reuse_frames else None,
            "compile": {"mode": self.compile_mode, "first_call_s": self.compile_first_call_s}
            if self.compile_mode != "none"
            else None,
            "cuda_graphs": {"captured": len(self._graphs.graphs), "replays": self._graphs.replays}
            if self._graphs is not None
            else None,
            "preallocate": {"buffers_allocated": self._buffers.allocations, "pinned": self._buffers.pinned}
            if self._buffers is not None
            else None,
        }

    # -- frames -----------------------------------------------------------------------------
    def padded_hw(self, h: int, w: int) -> tuple[int, int]:
        return self.spec.padded_size(h, w, self.scale)

    def prepare(self, frame: torch.Tensor, key=None) -> torch.Tensor:
        """N,3,H,W in [0,1] -> on the device, in the input dtype, zero-padded right and
        bottom to the modulus. Remembers H, W to crop the outputs back. With
        reuse_frames, a key (any hashable naming the frame, e.g. its index in a
        video) returns the frame prepared earlier under that key."""
        if frame.dim() != 4 or frame.shape[1] != 3:
            raise ValueError(f"Interpolator.prepare: expected an N,3,H,W tensor, got shape {tuple(frame.shape)}")
        h, w = frame.shape[2], frame.shape[3]
        if self.reuse_frames and key is not None:
            hit = self._cache.get(key)
            if hit is not None and hit[1] == (h, w):
                self.reuse["hits"] += 1
                self.orig_hw = (h, w)
                return hit[0]
        t0 = time.perf_counter()
        x = self._prepare(frame, h, w)
        if self.reuse_frames and key is not None:
            self.reuse["misses"] += 1
            self.reuse["prepare_s"] += time.perf_counter() - t0
            if len(self._cache) >= 2:  # only the previous pair's frames can be shared
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (x, (h, w))
        self.orig_hw = (h, w)
        return x

    def _prepare(self, frame: torch.Tensor, h: int, w: int) -> torch.Tensor:
        ph, pw = self.padded_hw(h, w)
        if self._buffers is not None:
            return self._buffers.put(frame, (ph, pw))
        x = frame.to(device=self.device, dtype=self.input_dtype, non_blocking=True)
        if (ph, pw) != (h, w):
            x = F.pad(x, (0, pw - w, 0, ph - h))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    # -- network ----------------------------------------------------------------------------
    def _call(self, fn, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
        if self.spec.arbitrary_timestep:
            return fn(img0, img1, t, scale=self.scale)
        return fn(img0, img1, scale=self.scale)

    def _net_call(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
        if self._compiled is not None:
            first = self.compile_first_call_s is None
            t0 = time.perf_counter()
            graphed = self.device.type == "cuda" and self.compile_mode in GRAPHING_COMPILE_MODES
            try:
                if graphed:  # cudagraph trees: each call is a new step, whose outputs the next overwrites
                    torch.compiler.cudagraph_mark_step_begin()
                out = self._call(self._compiled, img0, img1, t)
                if graphed:  # n > 1 frames per pair and bisection keep outputs across calls
                    out = out.clone()
            except Exception as exc:
                why = f"torch.compile failed: {type(exc).__name__}: {exc}".splitlines()[0][:300]
                if "compile" in self.strict:
                    raise CompileFailed("compile", f"{self.compile_mode!r}: {why} (accepted: none, eager)") from exc
                self._compiled = None
                self._fall_back("compile", self.compile_mode, "none", why + "; running eager")
            else:
                if first:
                    self.compile_first_call_s = time.perf_counter() - t0
                return out
        return self._call(self.net, img0, img1, t)

    def _forward(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
        if self._graphs is not None:
            key = (t, tuple(img0.shape), img0.dtype, img0.stride())
            return self._graphs.run(key, lambda a, b: self._net_call(a, b, t), (img0, img1))
        return self._net_call(img0, img1, t)

    def _bisect(self, img0: torch.Tensor, img1: torch.Tensor, depth: int) -> list[torch.Tensor]:
        # Intermediate frames stay padded and uncropped: they are the next inputs.
        mid = self._forward(img0, img1, 0.5)
        if depth == 1:
            return [mid]
        return [*self._bisect(img0, mid, depth - 1), mid, *self._bisect(mid, img1, depth - 1)]

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
        # A CUDA graph must not capture autocast's weight cast cache (it would replay stale casts).
        with (
            torch.inference_mode(),
            torch.autocast(
                self.device.type, dtype=self.dtype, enabled=use_autocast, cache_enabled=self._graphs is None
            ),
        ):
            if self.spec.arbitrary_timestep:
                frames = [self._forward(img0, img1, t) for t in timesteps(n)]
            else:
                frames = self._bisect(img0, img1, n.bit_length())
            return [f[:, :, :h, :w].clamp(0, 1).to(self.dtype) for f in frames]
