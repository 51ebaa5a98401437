"""Exports, the cache, the parity gate and each CPU runtime end to end, at 64x64
with seeded random 4.6 weights (the export of one size takes a few seconds;
the session-wide weights folder keeps its cache between tests)."""

from __future__ import annotations

import importlib.util
import json

import cv2
import numpy as np
import pytest
import torch

from conftest import random_state
from helpers import clean_env, run_harness
from rifebench.fsutil import sha256_file
from rifebench.models import export as onnx_export
from rifebench.models import onnx_cache, zoo
from rifebench.models.nets.ifnet_v4 import build_v46

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("openvino") is None,
        reason="the CPU runtimes are not installed (./setup.sh --dev installs them)",
    ),
]
SIZE = ["--data-height", "64", "--data-width", "64"]


@pytest.fixture(scope="module")
def weights46(tmp_path_factory):
    path = tmp_path_factory.mktemp("w46") / "flownet.pkl"
    torch.save(random_state(build_v46, 0), path)
    return path


def run(weights, out, *flags, env=None):
    proc = run_harness(
        ["--model", "4.6", "--pretrained-weights", weights, "--output-dir", out, "--warmup", "1", *flags],
        env=env or clean_env(),
        timeout=600,
    )
    doc = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else None
    return proc, doc


def tiny_vimeo(root, n=3, h=64, w=64):
    rng = np.random.default_rng(0)
    entries = [f"00001/{i + 1:04d}" for i in range(n)]
    for entry in entries:
        coarse = rng.random((h // 8 + 2, (w + 8) // 8 + 2, 3))
        big = np.rint(cv2.resize(coarse, (w + 8, h), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255)
        big = big.astype(np.uint8)
        d = root / "sequences" / entry
        d.mkdir(parents=True)
        for name, x in (("im1.png", 8), ("im2.png", 4), ("im3.png", 0)):
            cv2.imwrite(str(d / name), big[:, x : x + w])
    (root / "tri_testlist.txt").write_text("\n".join(entries) + "\n")
    return root


def test_export_is_cached_and_rekeyed_by_size_and_precision(weights46):
    spec, net = zoo.get("4.6"), build_v46()
    net.load_state_dict(torch.load(weights46, weights_only=True))
    folder = onnx_export.cache_folder(str(weights46))
    folders = onnx_export.cache_folders(str(weights46))
    assert folders[0] == folder
    key = onnx_export.make_key(spec, str(weights46), 1, (32, 32), "fp32", 1.0)
    path, first = onnx_export.cached_export(net, spec, key, folders)
    assert not first["cached"] and first["export_s"] > 0 and path.parent == weights46.parent / "onnx-cache"
    assert first["beside_weights"] and first["fallback_reason"] is None
    stamp = path.stat().st_mtime_ns
    again, second = onnx_export.cached_export(net, spec, key, folders)
    assert again == path and second["cached"] and path.stat().st_mtime_ns == stamp
    other = onnx_export.make_key(spec, str(weights46), 1, (32, 64), "fp32", 1.0)
    half = onnx_export.make_key(spec, str(weights46), 1, (32, 32), "fp16", 1.0)
    assert len({key.file_name(), other.file_name(), half.file_name()}) == 3
    p16, info = onnx_export.cached_export(net.half(), spec, half, folders)
    assert not info["cached"] and p16 != path
    import onnx

    graph = onnx.load(str(p16)).graph
    assert {n.op_type for n in graph.node} >= {"GridSample", "Conv"}
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in onnx.shape_inference.infer_shapes(onnx.load(str(p16))).graph.value_info
    }
    grid_inputs = [n.input[0] for n in graph.node if n.op_type == "GridSample"]
    assert grid_inputs and all(types.get(i) == onnx.TensorProto.FLOAT for i in grid_inputs)  # the warp stays fp32


@pytest.mark.parametrize("runtime,precision", [("onnxruntime", "fp32"), ("openvino", "bf16")])
def test_dummy_run_records_runtime_and_parity(weights46, tmp_path, runtime, precision):
    proc, doc = run(
        weights46, tmp_path / "o", "--dummy", *SIZE, "--num-inputs", "3", "--runtime", runtime, "--precision", precision
    )
    assert proc.returncode == 0, proc.stderr
    rt = doc["runtime"]
    assert rt["name"] == runtime and rt["version"] and rt["precision"] == precision
    assert rt["parity"]["passed"] and rt["parity"]["threshold_db"] == (50.0 if precision == "fp32" else 35.0)
    assert rt["parity"]["identical"] or rt["parity"]["psnr_db"] >= rt["parity"]["threshold_db"]
    assert doc["streams"][0]["runtime"]["name"] == runtime and doc["config"]["runtime"] == runtime
    if runtime == "onnxruntime":
        assert rt["settings"]["providers"] == ["CPUExecutionProvider"]
        assert rt["settings"]["intra_op_num_threads"] == doc["streams"][0]["threads"]
    else:
        assert rt["settings"]["NUM_STREAMS"] == "1" and rt["settings"]["PERFORMANCE_HINT"] == "LATENCY"
    assert doc["metrics"]["frames"] == 3


def test_quality_mode_matches_torch_and_pads_a_short_last_batch(weights46, tmp_path):
    data = tiny_vimeo(tmp_path / "vimeo")
    means = {}
    for runtime in ("torch", "onnxruntime", "openvino"):
        proc, doc = run(
            weights46,
            tmp_path / runtime,
            "--data",
            data,
            "--batch-size",
            "2",
            "--runtime",
            runtime,
            "--psnr-threshold",
            "0",
        )
        assert proc.returncode == 0, proc.stderr
        assert doc["quality"]["tested"] == 3 and doc["streams"][0]["batch_sizes"] == [1, 2]
        means[runtime] = doc["quality"]["psnr_mean"]
    assert means["onnxruntime"] == pytest.approx(means["torch"], abs=0.01)
    assert means["openvino"] == pytest.approx(means["torch"], abs=0.01)


def test_a_corrupted_export_fails_the_parity_gate_with_its_figure(weights46, tmp_path):
    import onnx

    spec, net = zoo.get("4.6"), build_v46()
    net.load_state_dict(torch.load(weights46, weights_only=True))
    key = onnx_export.make_key(spec, str(weights46), 1, (64, 64), "fp32", 1.0)  # what the run will look up
    path, _ = onnx_export.cached_export(net, spec, key, onnx_export.cache_folders(str(weights46)))
    model = onnx.load(str(path))
    conv = next(t for t in model.graph.initializer if len(t.dims) == 4)
    arr = onnx.numpy_helper.to_array(conv) * 1.5  # a subtly different network, still a valid graph
    conv.CopyFrom(onnx.numpy_helper.from_array(arr.astype(np.float32), conv.name))
    onnx.save(model, str(path))
    # As a faulty exporter would write it: the key file vouches for it (else the cache exports it again).
    key_file = onnx_cache.key_path(path)
    key_file.write_text(json.dumps(json.loads(key_file.read_text()) | {"sha256": sha256_file(path)}))
    try:
        proc, doc = run(weights46, tmp_path / "bad", "--dummy", *SIZE, "--num-inputs", "1", "--runtime", "onnxruntime")
    finally:
        path.unlink()  # a later run exports a good one again
    assert proc.returncode == 1, proc.stderr
    console = proc.stdout + proc.stderr
    assert "Traceback" not in console and 'File "' not in console  # a designed outcome: its line only
    # The failure's own line (the run's header names the gate's threshold too: "(parity gate: >= 50 dB ...)").
    gate_lines = [line for line in console.splitlines() if "parity gate:" in line and "before timing" not in line]
    assert (
        len(gate_lines) == 1
        and "error: stream 0 failed: ParityFailed: parity gate: RUNTIME=onnxruntime" in (gate_lines[0])
    )
    assert "PRECISION=fp32 output is" in gate_lines[0]
    reason = doc["failures"][0]["reason"]
    assert "dB PSNR against PyTorch fp32" in reason and "needs >= 50 dB" in reason
    assert float(reason.split("output is ")[1].split(" dB")[0]) < 50
    gate = doc["failures"][0]["runtime_parity"]  # the figure, structured, in results.json
    assert gate["passed"] is False and gate["threshold_db"] == 50.0 and gate["psnr_db"] < 50


def test_model_40_exports_its_large_motion_branch_as_an_if():
    """The graph holds an If and ONNX Runtime takes the re-run branch as torch
    does (the export-only forward's eager equality is in test_runtimes.py)."""
    import tempfile
    from pathlib import Path

    import onnx
    import onnxruntime as ort
    from test_runtimes import large_motion_net

    net, (a, b, t) = large_motion_net()
    with torch.no_grad():
        ref = net(a, b, t)
    assert net.large_motion_count == 1
    key = onnx_export.ExportKey("4.0", "0" * 64, 64, 64, 1, "fp32", 1.0, onnx_export.OPSET, "test")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / key.file_name()
        onnx_export.export(net, zoo.get("4.0"), key, path)
        assert "If" in {n.op_type for n in onnx.load(str(path)).graph.node}
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"img0": a.numpy(), "img1": b.numpy(), "timestep": t.numpy()})[0]
    assert np.abs(got - ref.numpy()).max() < 1e-4


def test_video_mode_through_a_runtime_scores_as_torch(weights46, tmp_path):
    """The parity gate reads the video's first pair before the warm-up: the run must
    still score every pair from the first, as the same run in torch does."""
    from helpers import sibling_module

    videos = sibling_module("data", "test_video")
    video = videos.write_video(tmp_path / "v.mkv", videos.pattern(64, 64, 7))
    docs = {}
    for runtime in ("torch", "onnxruntime"):
        proc, doc = run(weights46, tmp_path / runtime, "--data", video, "--runtime", runtime, "--psnr-threshold", "0")
        assert proc.returncode == 0, proc.stderr
        docs[runtime] = doc
    frames = {rt: [f["entry"] for f in d["quality"]["frames"]] for rt, d in docs.items()}
    assert frames["onnxruntime"] == frames["torch"] == ["frame 1", "frame 3", "frame 5"]
    assert docs["onnxruntime"]["runtime"]["parity"]["passed"]
    assert docs["onnxruntime"]["quality"]["psnr_mean"] == pytest.approx(docs["torch"]["quality"]["psnr_mean"], abs=0.01)


def test_a_read_only_weights_folder_runs_with_the_user_cache(weights46, tmp_path):
    """A read-only model folder is a normal deployment: the graph goes to the user's
    cache folder, results.json says which was used, and nothing is refused."""
    from helpers import sibling_module

    read_only = sibling_module("models", "test_export_cache").read_only

    weights = tmp_path / "model" / "flownet.pkl"
    weights.parent.mkdir()
    weights.write_bytes(weights46.read_bytes())
    xdg = tmp_path / "xdg"
    with read_only(weights.parent):
        proc, doc = run(
            weights,
            tmp_path / "o",
            "--dummy",
            *SIZE,
            "--num-inputs",
            "2",
            "--runtime",
            "onnxruntime",
            env=clean_env(XDG_CACHE_HOME=xdg),
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    cache = doc["runtime"]["cache"]
    assert cache["folder"] == str(xdg / "rifebench" / "onnx-cache") and cache["beside_weights"] is False
    assert str(weights.parent / "onnx-cache") in cache["fallback_reason"] and "not writable" in cache["fallback_reason"]
    assert list((xdg / "rifebench" / "onnx-cache").glob("rife-4.6-*-64x64-*.onnx"))
    assert f"exporting into {xdg / 'rifebench' / 'onnx-cache'}" in proc.stdout
