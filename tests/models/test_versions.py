"""The version table (models/versions.py) and the one family of modules that builds it
(nets/ifnet_v4.py), held to vs-rife 5.7.0's own code: its PyPI wheel is downloaded
by the test into the test cache (never into the project) and its per-version module
files are imported directly (its __init__ imports VapourSynth), its `match model:`
table is read with ast. Outputs are compared in float32 on seeded random weights
saved in the release format (`module.` prefix, feature head under `module.encode.*`)."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import extract_wheel, load_reference_package, random_state, read_triplet, triplet_dirs
from rifebench.models import versions, zoo
from rifebench.models.nets.ifnet_v4 import IFNetV4, build_version
from rifebench.models.weights import WeightsError, load_model

VSRIFE5 = "vsrife==5.7.0"
MIN_PSNR_DB = 60.0
# vs-rife pads 4.0 (and 4.1, the same network) to 32; ours to 64, because at 32 the
# large-motion branch's doubled scales leave a block an odd size (1280x736 crashes).
OWN_MODULUS = {"4.0": 64, "4.1": 64}


def module_name(version: str) -> str:
    return "IFNet_HDv3_v4_" + version.removeprefix("4.").replace(".", "_")


@pytest.fixture(scope="session")
def vsrife5(pypi_wheel) -> Path:
    return extract_wheel(pypi_wheel(VSRIFE5)) / "vsrife"


@pytest.fixture(scope="session")
def ref_vsrife5(vsrife5):
    return load_reference_package("_ref_vsrife5", vsrife5, ["warplayer", *map(module_name, versions.VERSIONS)])


def vsrife_table(root: Path) -> tuple[list[str], dict[str, dict]]:
    """vs-rife's model list and, per `case`, its feature-head channels (None: no
    head) and padding modulus, read from __init__.py without running it."""
    tree = ast.parse((root / "__init__.py").read_text())
    names = next(
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "models" for t in n.targets)
    )
    rife = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "rife")
    default = next(
        n.value.value
        for n in ast.walk(rife)
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "modulo"
    )
    match = next(n for n in ast.walk(rife) if isinstance(n, ast.Match))
    cases = {}
    for case in match.cases:
        assert isinstance(case.pattern, ast.MatchValue) and isinstance(case.pattern.value, ast.Constant)
        facts: dict = {"encode_channel": None, "modulo": default}
        for node in ast.walk(ast.Module(body=case.body, type_ignores=[])):
            target = node.targets[0] if isinstance(node, ast.Assign) else None
            if isinstance(target, ast.Name) and target.id in facts and isinstance(node.value, ast.Constant):
                facts[target.id] = node.value.value
        cases[case.pattern.value.value] = facts
    return names, cases


def test_the_table_names_every_version_vsrife_knows_in_its_order(vsrife5):
    names, cases = vsrife_table(vsrife5)
    assert list(versions.VERSIONS) == names == list(cases)
    assert all(name in zoo.MODELS and zoo.get(name).family == "ifnet-v4" for name in names)


def test_feature_head_channels_and_modulus_match_vsrife(vsrife5):
    _, cases = vsrife_table(vsrife5)
    for name, facts in cases.items():
        arch = versions.get(name)
        assert (arch.encode_channels or None) == facts["encode_channel"], name
        assert arch.modulus == OWN_MODULUS.get(name, facts["modulo"]), name
        assert zoo.get(name).modulus == arch.modulus
    assert {n for n, a in versions.VERSIONS.items() if a.modulus != cases[n]["modulo"]} == set(OWN_MODULUS)


@pytest.mark.parametrize("name", list(versions.VERSIONS))
def test_keys_and_shapes_are_vsrifes(ref_vsrife5, name):
    with torch.device("meta"):
        ours = build_version(name).state_dict()
        theirs = getattr(ref_vsrife5, module_name(name)).IFNet(1.0, False).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}


@pytest.mark.parametrize("name", list(versions.VERSIONS))
def test_parameters_counted_from_the_facts_are_the_built_networks(name):
    arch = versions.get(name)
    with torch.device("meta"):
        state = build_version(name).state_dict()
    assert sum(v.numel() for v in state.values()) == arch.parameters == zoo.get(name).inference_params
    assert any(k.startswith("encode.") for k in state) == (arch.encoder is not None)
    assert sorted({k.split(".")[0] for k in state} - {"encode"}) == [f"block{i}" for i in range(arch.blocks)]


def test_the_existing_releases_keep_their_facts():
    v40, v46 = versions.get("4.0"), versions.get("4.6")
    assert (v40.activation, v40.stack, v40.head, v40.large_motion, v40.modulus) == (
        "prelu",
        "residual",
        "deconv",
        True,
        64,
    )
    assert (v46.activation, v46.stack, v46.head, v46.head_channels, v46.modulus) == (
        "leaky",
        "resconv",
        "shuffle",
        6,
        32,
    )
    assert v40.widths == v46.widths == (192, 128, 96, 64) and v40.encoder is None is v46.encoder


def test_ensemble_is_refused_where_the_release_has_none():
    with pytest.raises(ValueError, match=r"model 4\.25 has no ensemble mode"):
        build_version("4.25", ensemble=True)
    assert build_version("4.19", ensemble=True).ensemble


def test_a_release_file_of_another_version_is_refused_in_one_line(tmp_path):
    path = tmp_path / "flownet.pkl"
    torch.save({f"module.{k}": v for k, v in random_state(lambda: build_version("4.22"), 1).items()}, path)
    with pytest.raises(WeightsError) as info:
        load_model(zoo.get("4.25"), path)
    message = str(info.value)
    assert "\n" not in message and "does not match model 4.25" in message
    assert "missing keys (block4." in message and "wrong shape" in message


# ---------------------------------------------------------------- outputs, real frames


def frames(shared_data: Path, h: int, w: int, pick: int) -> tuple[torch.Tensor, torch.Tensor]:
    img0, _, img1 = read_triplet(triplet_dirs(shared_data / "mixed_448x256")[pick])
    return img0[..., :h, :w].contiguous(), img1[..., :h, :w].contiguous()


def vsrife_call(ref: torch.nn.Module, img0, img1, t: float, arch) -> torch.Tensor:
    """vs-rife's calling convention: a timestep map, the grid and divisor of the padded size,
    and the encoder run on each frame first for the versions with one."""
    _, _, h, w = img0.shape
    div = torch.tensor([(w - 1.0) / 2.0, (h - 1.0) / 2.0])
    gx = torch.linspace(-1.0, 1.0, w).view(1, 1, 1, w).expand(1, 1, h, w)
    gy = torch.linspace(-1.0, 1.0, h).view(1, 1, h, 1).expand(1, 1, h, w)
    args = [img0, img1, torch.full((1, 1, h, w), t), div, torch.cat((gx, gy), 1)]
    if arch.encoder is not None:
        args += [ref.encode(img0), ref.encode(img1)]
    return ref(*args)


def release_file(tmp_path: Path, name: str) -> Path:
    state = random_state(lambda: build_version(name), seed=sum(map(ord, name)))
    path = tmp_path / f"flownet_v{name}.pkl"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("name", list(versions.VERSIONS))
def test_outputs_match_vsrife_on_real_frames(ref_vsrife5, shared_data, tmp_path, name):
    arch, spec = versions.get(name), zoo.get(name)
    path = release_file(tmp_path, name)
    ours = load_model(spec, path)
    assert isinstance(ours, IFNetV4)
    state = {k.removeprefix("module."): v for k, v in torch.load(path, weights_only=True).items()}
    ensemble = arch.ensemble  # the second size runs the ensemble wherever the release has it
    for (h, w), t, ens, pick in (((128, 192), 0.5, False, 12), ((104, 136), 0.3, ensemble, 24)):
        ref = getattr(ref_vsrife5, module_name(name)).IFNet(1.0, ens)
        ref.load_state_dict(state)
        ours.ensemble = ens
        img0, img1 = frames(shared_data, h, w, pick)
        ph, pw = spec.padded_size(h, w)
        pad = (0, pw - w, 0, ph - h)
        a, b = F.pad(img0, pad), F.pad(img1, pad)
        with torch.inference_mode():
            mine = ours(a, b, t)[..., :h, :w]
            theirs = vsrife_call(ref.eval(), a, b, t, arch)[..., :h, :w]
        diff = (mine - theirs).abs().max().item()
        mse = (mine - theirs).pow(2).mean().item()
        psnr = math.inf if mse == 0 else -10 * math.log10(mse)
        print(f"parity {name} {w}x{h} t={t} ensemble={ens}: max abs diff {diff:.3g}, PSNR {psnr:.1f} dB")
        assert psnr >= MIN_PSNR_DB, f"{name} {w}x{h}: PSNR {psnr:.1f} dB < {MIN_PSNR_DB} (max abs diff {diff:.3g})"
