"""FLOP counts against the published figures (docs/models.md, "Conv FLOPs (2 x MAC,
convs only)"), the peak table, the measured matmul ceiling and achieved()."""

from __future__ import annotations

import pytest
import torch

from rifebench.measure import flops
from rifebench.models import versions, zoo
from rifebench.models.nets.ifnet_paper import build_paper
from rifebench.models.nets.ifnet_v4 import build_v40, build_v46


def close(value, expected, rel=0.01):
    return abs(value - expected) <= rel * expected


def test_v46_matches_published_figures():
    # 4.6 pads 1280x720 to 1280x736 (modulus 32); the published 77.4 is per 1280x720
    # frame, i.e. the padded count scaled to the 720 real rows.
    padded = flops.count_gflop(build_v46, 736, 1280)
    assert padded["height"] == 736 and padded["width"] == 1280 and padded["batch"] == 1
    assert close(padded["gflop"] * 720 / 736, 77.4), padded
    assert "fake" in padded["basis"] and "grid_sample" in padded["basis"]
    assert close(flops.count_gflop(build_v46, 1088, 1920)["gflop"], 175.0)


@pytest.mark.slow
def test_paper_matches_published_figures():
    assert close(flops.count_gflop(build_paper, 720, 1280, arbitrary_timestep=False)["gflop"], 233.7)
    assert close(flops.count_gflop(build_paper, 256, 448, arbitrary_timestep=False)["gflop"], 29.1)


def conv_macs(cin: int, cout: int, k: int, pixels: float, groups: int = 1) -> float:
    """Multiply-accumulates of a (transposed) conv over `pixels` positions: the output
    positions of a conv, the input positions of a transposed conv (as torch counts)."""
    return cin * cout * k * k / groups * pixels


def expected_gflop(arch, h: int, w: int) -> float:
    """Conv FLOPs (2 x MAC) of one pair from a release's facts alone: each block at
    1/scale, its two stride-2 convs, the eight convs and the head; the encoder on both
    frames. An independent check of the counter on every path of the family."""
    macs = 0.0
    for i, (c, s) in enumerate(zip(arch.widths, arch.scales, strict=True)):
        half, quarter = h * w / (2 * s) ** 2, h * w / (4 * s) ** 2
        macs += conv_macs(arch.block_inputs(i), c // 2, 3, half) + conv_macs(c // 2, c, 3, quarter)
        macs += 8 * conv_macs(c, c, 3, quarter, arch.groups)
        macs += conv_macs(c, arch.head_channels * (4 if arch.head == "shuffle" else 1), 4, quarter)
    if arch.encoder is not None:
        e, half = arch.encoder_width, h * w / 4
        hidden = 0 if arch.encoder == "conv-deconv" else 2 * conv_macs(e, e, 3, half)
        macs += 2 * (conv_macs(3, e, 3, half) + hidden + conv_macs(e, arch.encode_channels, 4, half))
    return 2 * macs / 1e9


@pytest.mark.parametrize("name", [n for n in versions.VERSIONS if not versions.get(n).large_motion])
def test_every_release_counts_its_convs(name):
    """Counted on fake tensors at 720p padded to the modulus, equal to the count from the facts."""
    spec = zoo.get(name)
    h, w = spec.padded_size(720, 1280)
    got = flops.count_gflop(spec.build(), h, w, modulus=spec.modulus)
    assert "fake" in got["basis"]
    assert got["gflop"] == pytest.approx(expected_gflop(versions.get(name), h, w), rel=1e-9)


@pytest.mark.slow
def test_the_large_motion_releases_count_without_their_rerun():
    for name in ("4.0", "4.1"):
        got = flops.count_gflop(zoo.get(name).build(), 256, 384, modulus=64)
        assert "branches off" in got["basis"]
        assert got["gflop"] == pytest.approx(expected_gflop(versions.get(name), 256, 384), rel=1e-9)


def test_batch_two_counts_twice_batch_one():
    one = flops.count_gflop(build_paper, 256, 448, batch=1, arbitrary_timestep=False)["gflop"]
    two = flops.count_gflop(build_paper, 256, 448, batch=2, arbitrary_timestep=False)
    assert two["batch"] == 2 and two["gflop"] == pytest.approx(2 * one)


def test_4k_costs_nothing_and_is_cached():
    first = flops.count_gflop(build_v46, 2176, 3840)
    assert close(first["gflop"], 175.0 * (2176 * 3840) / (1088 * 1920), rel=0.02)
    first["gflop"] = -1.0  # the caller's copy: the cache must not change
    assert flops.count_gflop(build_v46, 2176, 3840)["gflop"] > 0


def test_unpadded_size_is_an_error_not_a_fallback():
    with pytest.raises(RuntimeError):
        flops.count_gflop(build_v46, 720, 1280)


@pytest.mark.slow
def test_v40_data_dependent_branch_falls_back_to_cpu(monkeypatch):
    direct = flops.count_gflop(build_v40, 256, 384)
    assert direct["gflop"] > 0
    assert "counted on the CPU with zero inputs at 384x256" in direct["basis"]
    assert "branches off" in direct["basis"]
    # Above the CPU limit: a count at a smaller size (a multiple of the modulus), scaled.
    monkeypatch.setattr(flops, "CPU_COUNT_MAX_PIXELS", 128 * 192)
    scaled = flops.count_gflop(build_v40, 256, 384, timestep=0.25, modulus=64)
    assert "at 192x128 and scaled by the pixel ratio to 384x256" in scaled["basis"], scaled["basis"]
    assert close(scaled["gflop"], direct["gflop"], rel=0.05)


@pytest.mark.parametrize(
    "name, precision, tf32, expected",
    [
        ("NVIDIA H200", "fp16", False, 989.5),
        ("NVIDIA H200", "bf16", False, 989.5),
        ("NVIDIA H100 80GB HBM3", "fp32", False, 67.0),
        ("NVIDIA H100 80GB HBM3", "fp32", True, 494.5),
        ("NVIDIA H100 PCIe", "fp16", False, 756.5),
        ("NVIDIA A100-SXM4-80GB", "tf32", False, 156.0),
        ("NVIDIA A10", "fp16", False, 125.0),
        ("NVIDIA L4", "bf16", False, 121.0),
        ("NVIDIA GeForce RTX 4090", "fp16", False, 165.2),
        ("NVIDIA GeForce RTX 3090 Ti", "fp32", False, 40.0),
        ("Tesla V100-SXM2-16GB", "fp32", True, 15.7),
        ("Tesla V100S-PCIE-32GB", "fp16", False, 130.0),
        ("Intel(R) Data Center GPU Max 1550", "bf16", False, 838.9),
        ("Intel(R) Data Center GPU Flex 170", "float16", False, 128.0),
    ],
)
def test_peak_table_lookup(name, precision, tf32, expected):
    assert flops.peak_tflops(name, precision, tf32=tf32) == expected


def test_peak_unknown_device_cpu_or_precision():
    assert flops.peak_tflops("NVIDIA Quantum Widget 9000", "fp16") is None
    assert flops.peak_tflops("Intel(R) Xeon(R) Platinum 8480+", "bf16") is None
    assert flops.peak_tflops("cpu", "fp32") is None
    assert flops.peak_tflops("Tesla V100-SXM2-16GB", "bf16") is None  # no BF16 tensor cores
    with pytest.raises(ValueError, match="precision must be one of fp32, tf32, fp16, bf16, got 'int8'"):
        flops.peak_tflops("NVIDIA H200", "int8")


def test_measured_matmul_on_cpu_is_positive():
    assert flops.measured_matmul_tflops("cpu", torch.float32, seconds=0.05, size=128) > 0
    assert flops.measured_matmul_tflops("cpu", "fp32", seconds=0.01, size=64) > 0
    with pytest.raises(ValueError, match="dtype must be"):
        flops.measured_matmul_tflops("cpu", "int4", seconds=0.01, size=8)


def test_achieved_arithmetic():
    out = flops.achieved(100.0, 50.0, 10.0)  # 100 GFLOP x 50 /s = 5 TFLOP/s of 10
    assert out["tflops"] == pytest.approx(5.0) and out["peak_tflops"] == 10.0
    assert out["share_of_peak_pct"] == pytest.approx(50.0)
    assert flops.achieved(100.0, 50.0, None) == {
        "tflops": pytest.approx(5.0),
        "peak_tflops": None,
        "share_of_peak_pct": None,
    }
    assert flops.achieved(None, 50.0, 10.0)["tflops"] is None
    assert flops.achieved(100.0, None, 10.0)["share_of_peak_pct"] is None
