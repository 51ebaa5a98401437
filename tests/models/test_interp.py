"""The Interpolator contract: padding and crop, timesteps and bisection, precision
modes on the CPU, the float32 warp, and real quality on UCF101 triplets."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn as nn

from conftest import psnr_vimeo, random_state, read_triplet, synthetic_pair, triplet_dirs
from helpers import SHARED_DATA
from rifebench.models import zoo
from rifebench.models.interp import Interpolator, timesteps, validate_interpolation
from rifebench.models.nets.ifnet_paper import build_paper
from rifebench.models.nets.ifnet_v4 import build_v46
from rifebench.models.nets.warp import warp
from rifebench.models.weights import load_model


class BlendNet(nn.Module):
    """Stand-in with arbitrary timesteps: (1-t) img0 + t img1. Records its calls."""

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1))
        self.calls = []

    def forward(self, img0, img1, timestep=0.5, scale=1.0):
        self.calls.append((tuple(img0.shape), img0.dtype, timestep, scale))
        return (img0 * (1 - timestep) + img1 * timestep) * self.gain


class MidNet(nn.Module):
    """Stand-in for the paper model: the mean of the two frames (t = 0.5 only)."""

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1))
        self.calls = 0

    def forward(self, img0, img1, scale=1.0):
        self.calls += 1
        return (img0 + img1) / 2 * self.gain


def test_timesteps_and_validation():
    assert timesteps(1) == [0.5]
    assert timesteps(3) == [0.25, 0.5, 0.75]
    assert validate_interpolation(zoo.get("4.0"), 2) is None
    assert validate_interpolation(zoo.get("paper"), 7) is None
    assert "2^k - 1" in validate_interpolation(zoo.get("paper"), 2)
    assert "2^k - 1" in validate_interpolation(zoo.get("paper"), 6)
    for bad in (0, -1, 1.5, True, "3"):
        assert ">= 1" in validate_interpolation(zoo.get("4.6"), bad)


@pytest.mark.parametrize(
    "name,scale,hw,padded",
    [
        ("4.6", 1.0, (70, 100), (96, 128)),
        ("4.6", 0.5, (70, 100), (128, 128)),
        ("4.0", 1.0, (388, 584), (448, 640)),  # Middlebury size
        ("paper", 1.0, (388, 584), (400, 592)),
    ],
)
def test_padding_and_crop(name, scale, hw, padded):
    spec = zoo.get(name)
    net = BlendNet() if spec.arbitrary_timestep else MidNet()
    interp = Interpolator(net, spec, "cpu", "fp32", scale=scale)
    f0, f1 = torch.rand(2, 1, 3, *hw, dtype=torch.float64)
    p0, p1 = interp.prepare(f0), interp.prepare(f1)
    assert p0.shape == (1, 3, *padded) and p0.dtype == torch.float32
    assert torch.equal(p0[..., : hw[0], : hw[1]], f0.float())
    assert p0[..., hw[0] :, :].abs().sum() == 0 and p0[..., hw[1] :].abs().sum() == 0
    n = 3 if spec.arbitrary_timestep else 1
    outs = interp.interpolate(p0, p1, n)
    assert len(outs) == n
    for t, out in zip(timesteps(n), outs, strict=True):
        assert out.shape == (1, 3, *hw) and out.dtype == torch.float32
        assert torch.allclose(out, (f0 * (1 - t) + f1 * t).float(), atol=1e-6)
    if spec.arbitrary_timestep:
        assert [c[2:] for c in net.calls] == [(t, scale) for t in timesteps(3)]
        assert all(c[0] == (1, 3, *padded) for c in net.calls)


def test_interpolate_checks_sizes_and_order():
    interp = Interpolator(BlendNet(), zoo.get("4.6"), "cpu", "fp32")
    with pytest.raises(RuntimeError, match="prepare"):
        interp.interpolate(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="N,3,H,W"):
        interp.prepare(torch.zeros(3, 32, 32))
    a = interp.prepare(torch.zeros(1, 3, 40, 40))
    b = interp.prepare(torch.zeros(1, 3, 100, 100))
    with pytest.raises(ValueError, match="do not match"):
        interp.interpolate(a, b)


def test_bisection_for_the_paper_model():
    net = MidNet()
    interp = Interpolator(net, zoo.get("paper"), "cpu", "fp32")
    p0, p1 = interp.prepare(torch.zeros(1, 3, 20, 30)), interp.prepare(torch.ones(1, 3, 20, 30))
    outs = interp.interpolate(p0, p1, 7)
    assert [o.mean().item() for o in outs] == [k / 8 for k in range(1, 8)]
    assert net.calls == 7 and outs[0].shape == (1, 3, 20, 30)
    with pytest.raises(ValueError, match=r"model paper .* 2\^k - 1 .* got 2"):
        interp.interpolate(p0, p1, 2)


def test_real_architectures_on_tiny_frames():
    f0, f1, _ = synthetic_pair(70, 100, shift=4)
    net46 = build_v46()
    net46.load_state_dict(random_state(build_v46, seed=3))
    interp = Interpolator(copy.deepcopy(net46), zoo.get("4.6"), "cpu", "fp32")
    p0, p1 = interp.prepare(f0), interp.prepare(f1)
    outs = interp.interpolate(p0, p1, 3)
    with torch.inference_mode():
        for t, out in zip(timesteps(3), outs, strict=True):
            assert torch.equal(out, net46.eval()(p0, p1, t)[..., :70, :100].clamp(0, 1))

    paper = build_paper()
    paper.load_state_dict(random_state(build_paper, seed=4))
    interp = Interpolator(copy.deepcopy(paper), zoo.get("paper"), "cpu", "fp32")
    p0, p1 = interp.prepare(f0), interp.prepare(f1)
    outs = interp.interpolate(p0, p1, 3)
    with torch.inference_mode():
        mid = paper.eval()(p0, p1)
        expected = [paper(p0, mid), mid, paper(mid, p1)]  # bisection on padded frames
    for out, exp in zip(outs, expected, strict=True):
        assert torch.equal(out, exp[..., :70, :100])


# ----------------------------------------------------------------- float32 warp


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_warp_runs_in_float32(dtype):
    torch.manual_seed(0)
    img = torch.rand(1, 3, 160, 200)  # past the size where CPU fp16/bf16 grid_sample fails
    flow = torch.randn(1, 2, 160, 200) * 5
    low = warp(img.to(dtype), flow.to(dtype))
    assert low.dtype == dtype and torch.isfinite(low).all()
    assert torch.equal(low, warp(img.to(dtype).float(), flow.to(dtype).float()).to(dtype))
    with torch.autocast("cpu", dtype=dtype):
        under_amp = warp(img, flow)
    assert under_amp.dtype == torch.float32 and torch.equal(under_amp, warp(img, flow))


# ------------------------------------------------------- real model, real frames


@pytest.fixture(scope="module")
def net40(weights_40):
    return load_model(zoo.get("4.0"), weights_40)


@pytest.fixture(scope="module")
def real_pair():
    """A 192x192 crop of a real triplet (past the CPU fp16 grid_sample limit), or a
    smooth synthetic pair where ../shared/data is absent."""
    data = SHARED_DATA / "ucf101_256x256"
    if not data.is_dir():
        return synthetic_pair(192, 192, shift=6)[:2]
    f0, _, f1 = read_triplet(triplet_dirs(data)[3])
    return f0[..., 32:224, 32:224], f1[..., 32:224, 32:224]


@pytest.fixture(scope="module")
def fp32_output(net40, real_pair):
    interp = Interpolator(copy.deepcopy(net40), zoo.get("4.0"), "cpu", "fp32")
    return interp.interpolate(*map(interp.prepare, real_pair), 1)[0]


@pytest.mark.parametrize(
    "dtype,amp,channels_last",
    [
        ("fp16", False, False),
        ("bf16", False, False),
        ("fp16", True, False),
        ("bf16", True, False),
        ("fp32", True, False),
        ("fp32", False, True),
    ],
)
def test_precisions_close_to_fp32(net40, real_pair, fp32_output, dtype, amp, channels_last):
    interp = Interpolator(copy.deepcopy(net40), zoo.get("4.0"), "cpu", dtype, amp=amp, channels_last=channels_last)
    weight = interp.net.block0.conv0[0][0].weight
    assert weight.dtype == (torch.float32 if amp else interp.dtype)
    p0, p1 = map(interp.prepare, real_pair)
    assert p0.dtype == interp.input_dtype
    out = interp.interpolate(p0, p1, 1)[0]
    assert out.dtype == interp.dtype and torch.isfinite(out).all()
    mse = ((out.float() - fp32_output) ** 2).mean().item()
    psnr = -10 * math.log10(mse) if mse else math.inf
    print(f"4.0 {dtype} amp={amp} channels_last={channels_last}: {psnr:.1f} dB against fp32")
    assert psnr > 30
    if interp.dtype == torch.float32:  # autocast is a no-op; channels_last only reorders
        assert (out - fp32_output).abs().max() <= 1e-4


@pytest.mark.slow
def test_quality_beats_blend_on_ucf101(net40, shared_data):
    interp = Interpolator(copy.deepcopy(net40), zoo.get("4.0"), "cpu", "fp32")
    model_db, blend_db = [], []
    folders = triplet_dirs(shared_data / "ucf101_256x256")
    assert len(folders) == 50
    for folder in folders:
        f0, gt, f1 = read_triplet(folder)
        pred = interp.interpolate(interp.prepare(f0), interp.prepare(f1), 1)[0]
        model_db.append(psnr_vimeo(pred, gt))
        blend_db.append(psnr_vimeo((f0 + f1) / 2, gt))
    model_mean, blend_mean = sum(model_db) / len(model_db), sum(blend_db) / len(blend_db)
    print(f"ucf101_256x256, 50 triplets: 4.0 {model_mean:.3f} dB, blend {blend_mean:.3f} dB")
    assert model_mean > blend_mean + 1.0
