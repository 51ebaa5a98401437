"""PRECISION=int8: the option's checks, which frames calibrate it, the INT8 cache key and
entries, and what stays in float. Runs end to end (the gate, the modes) are in
test_int8_e2e.py."""

from __future__ import annotations

import importlib.util
import os
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn

from helpers import clean_env, sibling_module
from rifebench.config import resolve
from rifebench.errors import UsageError
from rifebench.models import export as onnx_export
from rifebench.runtimes import branches, calibration, quantize, registry

HAVE_INT8 = all(importlib.util.find_spec(m) is not None for m in ("openvino", "nncf", "onnxscript"))
needs_int8 = pytest.mark.skipif(not HAVE_INT8, reason="OpenVINO and NNCF are not installed (./setup.sh --dev)")


def cfg_of(*flags):
    return resolve(["--dummy", *flags], env={})


def triplet_folder(root, value=None, n=3, size=32, seed=0):
    """A Vimeo-90K triplet folder of n triplets: seeded texture, or constant `value` frames."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = root / "sequences" / "00001" / f"{i + 1:04d}"
        d.mkdir(parents=True)
        for k in (1, 2, 3):
            frame = (
                np.full((size, size, 3), value, np.uint8)
                if value is not None
                else rng.integers(0, 256, (size, size, 3))
            )
            cv2.imwrite(str(d / f"im{k}.png"), frame.astype(np.uint8))
    (root / "tri_testlist.txt").write_text("".join(f"00001/{i + 1:04d}\n" for i in range(n)))
    return root


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--precision", "int8"], r"--precision/PRECISION int8 is NNCF post-training quantization in OpenVINO, "
         r"not RUNTIME=torch \(accepted: --runtime openvino with int8; with torch: fp32, fp16, bf16\)"),
        (["--runtime", "onnxruntime", "--precision", "int8"], r"not RUNTIME=onnxruntime"),
        (["--runtime", "openvino", "--precision", "int8", "--platform", "xpu"], r"int8 runs on the CPU only"),
        (["--runtime", "openvino", "--calibration", "/tmp"], r"--calibration/CALIBRATION applies to PRECISION=int8"),
        (["--runtime", "openvino", "--precision", "int8", "--calibration", "/no/such"],
         r"--calibration/CALIBRATION: '/no/such' does not exist \(accepted: a Vimeo-90K triplet folder"),
        (["--ov-hint", "throughput"], r"--ov-hint/OV_HINT throughput applies to RUNTIME=openvino only"),
    ],
)  # fmt: skip
def test_what_int8_cannot_do_is_refused_in_one_line(flags, needle, monkeypatch):
    monkeypatch.setattr(registry, "missing", lambda name: None)
    with pytest.raises(UsageError, match=needle) as info:
        cfg_of(*flags)
    assert "\n" not in str(info.value)


def test_a_folder_without_a_list_and_a_missing_nncf_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "missing", lambda name: None)
    with pytest.raises(UsageError, match=r"has no tri_testlist.txt"):
        cfg_of("--runtime", "openvino", "--precision", "int8", "--calibration", str(tmp_path))
    monkeypatch.setattr(registry, "installed", lambda module: module != "nncf")
    with pytest.raises(UsageError, match=r"int8 needs NNCF.*install: \./setup\.sh --runtimes openvino"):
        cfg_of("--runtime", "openvino", "--precision", "int8")
    monkeypatch.undo()
    cfg = cfg_of("--runtime", "openvino", "--precision", "int8", "--calibration", str(triplet_folder(tmp_path / "c")))
    assert cfg.calibration == str(tmp_path / "c") and cfg.ov_hint == "latency"


def test_the_calibration_set_is_the_given_then_the_run_s_data_then_the_bundled_then_synthetic(tmp_path):
    assert calibration.source_of("/c", "/d", tmp_path) == calibration.CalibrationSource("given", "/c")
    assert calibration.source_of(None, "/d", tmp_path).kind == "dataset"
    assert calibration.source_of(None, "/v.mp4", tmp_path).kind == "video"
    assert calibration.source_of(None, None, tmp_path) == calibration.CalibrationSource("bundled", str(tmp_path))
    synthetic = calibration.source_of(None, None, None)
    assert synthetic.kind == "synthetic"
    (w,) = calibration.warnings_of(synthetic)
    assert w["code"] == "INT8_SYNTHETIC_CALIBRATION" and "--calibration" in w["remedy"]
    assert calibration.warnings_of(calibration.source_of("/c", None, None)) == []


def test_the_run_warns_before_anything_runs_when_int8_is_calibrated_on_synthetic_frames(tmp_path, monkeypatch):
    from conftest import random_state
    from rifebench.models.nets.ifnet_v4 import build_v46
    from rifebench.run import prepare

    weights = tmp_path / "w.pkl"
    torch.save(random_state(build_v46, 0), weights)
    monkeypatch.setattr(registry, "missing", lambda name: None)
    monkeypatch.setattr(calibration, "bundled_set", lambda: None)
    flags = ["--model", "4.6", "--pretrained-weights", str(weights), "--output-dir", str(tmp_path / "o")]
    ready = prepare.prepare(cfg_of("--runtime", "openvino", "--precision", "int8", *flags))
    assert [w["code"] for w in ready.warnings] == ["INT8_SYNTHETIC_CALIBRATION"]
    ready = prepare.prepare(cfg_of("--runtime", "openvino", "--precision", "fp32", *flags))
    assert ready.warnings == []


def test_the_fingerprint_follows_the_frames_and_timesteps(tmp_path):
    a = calibration.triplet_pairs(str(triplet_folder(tmp_path / "a", seed=1)))
    again = calibration.triplet_pairs(str(tmp_path / "a"))
    b = calibration.triplet_pairs(str(triplet_folder(tmp_path / "b", seed=2)))
    assert len(a) == 3 and a[0][0].shape == (32, 32, 3)
    assert calibration.fingerprint(a, [0.5]) == calibration.fingerprint(again, [0.5])
    assert calibration.fingerprint(a, [0.5]) != calibration.fingerprint(b, [0.5])
    assert calibration.fingerprint(a, [0.5]) != calibration.fingerprint(a, [0.25, 0.5, 0.75])
    samples = calibration.samples(a, (64, 48), 2, [0.25, 0.75])
    assert [s["img0"].shape for s in samples] == [(2, 3, 64, 48)] * 2  # the last batch filled from the first pairs
    assert [float(s["timestep"][0]) for s in samples] == [0.25, 0.75]


def test_a_video_calibrates_on_its_pairs_at_the_run_s_step(tmp_path):
    videos = sibling_module("data", "test_video")
    frames = videos.pattern(32, 48, 9)
    video = videos.write_video(tmp_path / "v.mkv", frames)
    pairs = calibration.video_pairs(str(video), step=2)
    assert len(pairs) == 4 and pairs[0][0].shape == (32, 48, 3)  # frames (0,2) (2,4) (4,6) (6,8)
    assert np.array_equal(pairs[1][0], pairs[0][1])  # consecutive pairs share a frame, as the run's do
    assert len(calibration.video_pairs(str(video), step=1, count=3)) == 3
    source = calibration.source_of(None, str(video))
    assert source.kind == "video" and len(calibration.read_pairs(source, (32, 48), 2)) == 4


def test_the_int8_key_changes_with_the_calibration_the_settings_and_the_versions(monkeypatch):
    monkeypatch.setattr(quantize, "versions", lambda: {"nncf": "3.4.0", "openvino": "2026.4.1"})
    key = onnx_export.ExportKey("4.0", "0" * 64, 64, 64, 1, "fp32", 1.0, onnx_export.OPSET, "t")
    head = branches.part_key(key, "head")
    base = quantize.int8_key(head, "f" * 64, 24)
    assert base == quantize.int8_key(head, "f" * 64, 24)  # equal inputs, equal key: the entry is reused
    others = [
        quantize.int8_key(head, "e" * 64, 24),
        quantize.int8_key(head, "f" * 64, 12),
        quantize.int8_key(head, "f" * 64, 24, quantize.SETTINGS | {"float_last_conv": True}),
        quantize.int8_key(branches.part_key(key, "keep"), "f" * 64, 24),
    ]
    monkeypatch.setattr(quantize, "versions", lambda: {"nncf": "3.5.0", "openvino": "2026.4.1"})
    others.append(quantize.int8_key(head, "f" * 64, 24))
    names = {k.file_name() for k in [base, *others]}
    assert len(names) == 6 and all(n.endswith(".ovzip") for n in names)
    assert all(o.__dict__ != base.__dict__ for o in others)


class TinyWarp(nn.Module):
    """A flow network in miniature: convolutions, a transposed last one, the warp."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(7, 8, 3, 2, 1)
        self.last = nn.ConvTranspose2d(8, 4, 4, 2, 1)

    def forward(self, img0, img1, timestep):
        from rifebench.models.nets.ifnet_v4 import timestep_map
        from rifebench.models.nets.warp import warp

        flow = self.last(torch.relu(self.down(torch.cat((img0, img1, timestep_map(timestep, img0)), 1)))) * 4
        return (warp(img0, flow[:, :2]) + warp(img1, flow[:, 2:4])) / 2


def tiny_graph(folder):
    torch.manual_seed(0)
    img = torch.rand(1, 3, 32, 32)
    data = onnx_export.module_bytes(
        TinyWarp().eval(), (img, img, torch.full((1,), 0.5)), branches.IMAGES, ("frame",), 18
    )
    path = folder / "tiny.onnx"
    path.write_bytes(data)
    return path


def grid_upstream(model, gridsample):
    """Every operation from a GridSample's grid back to the convolutions."""
    todo, seen = [gridsample.input_value(1).get_node()], []
    while todo:
        op = todo.pop()
        if op.get_type_name() in quantize.WEIGHTED | {"Parameter", "Constant"} or op in seen:
            continue
        seen.append(op)
        todo += [op.input_value(i).get_node() for i in range(op.get_input_size())]
    return seen


@pytest.mark.slow  # an export and three NNCF quantizations (about 30 s)
@needs_int8
def test_the_int8_cache_reuses_an_entry_and_quantizes_again_for_other_frames(tmp_path, monkeypatch):
    import openvino as ov

    from rifebench.runtimes import int8
    from rifebench.runtimes.ov_engine import read_model

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    graph = tiny_graph(tmp_path)
    model = ov.Core().read_model(str(graph))
    region = quantize.float_region(model)
    kinds = {op.get_friendly_name(): op.get_type_name() for op in model.get_ordered_ops()}
    assert {kinds[n] for n in region} >= {"GridSample"} and not {kinds[n] for n in region} & quantize.WEIGHTED
    assert {kinds[n] for n in quantize.float_region(model, float_last_conv=True)} & quantize.LAST_CONV
    key = onnx_export.ExportKey("tiny", "0" * 64, 32, 32, 1, "fp32", 1.0, onnx_export.OPSET, "t")
    spec = SimpleNamespace(arbitrary_timestep=True)

    def quantized(folder):
        source = calibration.CalibrationSource("given", str(folder))
        opts = {"calibration": source.to_dict(), "interpolation": 1, "weights": str(tmp_path / "w.pkl")}
        return int8.quantized_sources(None, spec, {"whole": branches.part_key(key, "whole")}, {"whole": graph}, opts)

    sources, first = quantized(triplet_folder(tmp_path / "a", seed=1))
    (entry,) = first["entries"]
    assert not entry["cached"] and entry["quantize_s"] > 0 and entry["path"].endswith(".ovzip")
    assert first["calibration"]["kind"] == "given" and first["calibration"]["pairs"] == 3
    stamp = os.stat(entry["path"]).st_mtime_ns
    _, again = quantized(tmp_path / "a")
    assert again["entries"][0]["cached"] and again["entries"][0]["path"] == entry["path"]
    assert os.stat(entry["path"]).st_mtime_ns == stamp
    _, other = quantized(triplet_folder(tmp_path / "b", seed=2))
    assert not other["entries"][0]["cached"] and other["entries"][0]["path"] != entry["path"]
    assert other["calibration"]["fingerprint"] != first["calibration"]["fingerprint"]
    core = ov.Core()
    qmodel = read_model(core, sources["whole"])
    fake = [op for op in qmodel.get_ordered_ops() if op.get_type_name() == "FakeQuantize"]
    grids = [op for op in qmodel.get_ordered_ops() if op.get_type_name() == "GridSample"]
    assert fake and len(grids) == 2  # quantized, and the warp and its grid are not
    assert not [op for g in grids for op in grid_upstream(qmodel, g) if op.get_type_name() == "FakeQuantize"]


def test_setup_sh_installs_nncf_wherever_it_installs_openvino(tmp_path):
    """setup.sh with a stand-in Python that records what pip is asked to install."""
    import shutil
    import subprocess

    from helpers import REPO

    log = tmp_path / "pip.log"
    fake = tmp_path / "python"
    fake.write_text(
        "#!/bin/bash\n"
        'case "$1" in\n'
        "  -c) exit 0 ;;\n"
        '  -m) if [[ "$2" == venv ]]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; exit 0; fi\n'
        f'      echo "$*" >> {log}; exit 0 ;;\n'
        "  *) exit 1 ;;\n"
        "esac\n"
    )
    fake.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "cat", "sha256sum", "cut", "rm", "mkdir", "cp", "id"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    env = clean_env(PATH=str(bin_dir), PYTHON=str(fake), VENV_DIR=str(tmp_path / "venv"), TORCH_SPEC="torch==2.13.0")
    for runtimes, want in (("openvino", ".[openvino,int8]"), ("onnxruntime", ".[onnxruntime]")):
        log.unlink(missing_ok=True)
        (tmp_path / "venv" / ".rifebench-setup").unlink(missing_ok=True)
        proc = subprocess.run(
            [shutil.which("bash"), str(REPO / "setup.sh"), "--runtimes", runtimes],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        installs = [line for line in log.read_text().splitlines() if "-e" in line.split()]
        assert installs and installs[-1].split()[-1] == want, installs
