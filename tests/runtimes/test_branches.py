"""Model 4.0 as three graphs with the large-motion branch taken on the host
(runtimes/branches.py): the same function as the network, in torch bit for bit; in
ONNX Runtime with its graph optimisations off, bit for bit the exported If graph;
in OpenVINO the same branch and outputs within float rounding."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_runtimes import large_motion_net

from rifebench.models import export as onnx_export
from rifebench.runtimes import branches


def split_forward(net, a, b, t):
    """What the OpenVINO engine does with the three graphs, in torch."""
    with torch.no_grad():
        flow, mask, df, dm = branches.Head(net, 1.0)(a, b, t)
        if branches.is_large(net, df.numpy()):
            return branches.Rerun(net, 1.0)(a, b, t), True
        return branches.Keep(net, 1.0)(a, b, t, flow, mask, df, dm), False


@pytest.mark.parametrize("large", [False, True])
def test_the_three_parts_are_the_network_bit_for_bit_in_both_branches(large):
    net, (a, b, t) = large_motion_net(large)
    with torch.no_grad():
        ref = net(a, b, t)
    assert net.large_motion_count == int(large)
    out, took = split_forward(net, a, b, t)
    assert took is large and torch.equal(out, ref)


def test_only_a_network_that_branches_on_its_output_is_split_and_each_part_has_its_cache_entry():
    from rifebench.models.nets.ifnet_v4 import build_v40, build_v46

    assert branches.splits(build_v40()) and not branches.splits(build_v46())
    key = onnx_export.ExportKey("4.0", "0" * 64, 64, 64, 1, "fp32", 1.0, onnx_export.OPSET, "t")
    names = {branches.part_key(key, p).file_name() for p in branches.PARTS}
    assert len(names) == 3 and all(n.startswith(key.file_name().removesuffix(".onnx")) for n in names)
    assert branches.part_key(key, "head").__dict__ != branches.part_key(key, "keep").__dict__


KEY = onnx_export.ExportKey("4.0", "0" * 64, 64, 64, 1, "fp32", 1.0, onnx_export.OPSET, "test")
# A child process writes one seeded network's If graph and its three parts: an export is one
# core's tracing, so the two networks export at once on the 2-core suite.
EXPORT_CHILD = """
import sys
from pathlib import Path
sys.path[:0] = sys.argv[3:]
from test_branches import KEY
from test_runtimes import large_motion_net
from rifebench.models import export as onnx_export
from rifebench.models import zoo
from rifebench.runtimes import branches
net, _ = large_motion_net(sys.argv[1] == "1")
out = Path(sys.argv[2])
onnx_export.export(net, zoo.get("4.0"), KEY, out / "whole.onnx")
for part in branches.PARTS:
    (out / f"{part}.onnx").write_bytes(branches.part_bytes(net, KEY, part))
"""


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> dict[bool, Path]:
    """{large: folder of whole.onnx, head.onnx, keep.onnx, rerun.onnx} for both networks."""
    here = Path(__file__).resolve().parent
    folders = {large: tmp_path_factory.mktemp(f"graphs-{int(large)}") for large in (False, True)}
    children = {
        large: subprocess.Popen(
            [sys.executable, "-c", EXPORT_CHILD, str(int(large)), str(d), str(here), str(here.parent)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for large, d in folders.items()
    }
    for large, child in children.items():
        said, _ = child.communicate(timeout=600)
        assert child.returncode == 0, f"exporting the large={large} network failed:\n{said}"
    return folders


@pytest.mark.slow  # eight exports, two at a time (about 30 s)
@pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("openvino") is None,
    reason="the CPU runtimes are not installed (./setup.sh --dev installs them)",
)
@pytest.mark.parametrize("large", [False, True])
def test_the_parts_equal_the_if_graph_and_take_its_branch(graphs, large):
    import onnxruntime as ort

    from rifebench.runtimes.ov_engine import OvEngine

    net, (a, b, t) = large_motion_net(large)
    feeds = {"img0": a.numpy(), "img1": b.numpy(), "timestep": t.numpy()}
    whole = graphs[large] / "whole.onnx"
    parts = {part: graphs[large] / f"{part}.onnx" for part in branches.PARTS}
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # no fusion across boundaries
    sess = {p: ort.InferenceSession(str(f), so, providers=["CPUExecutionProvider"]) for p, f in parts.items()}
    with_if = ort.InferenceSession(str(whole), so, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    carried = dict(zip(branches.CARRIED, sess["head"].run(None, feeds), strict=True))
    assert branches.is_large(net, carried["df"]) is large
    split = sess["rerun"].run(None, feeds)[0] if large else sess["keep"].run(None, feeds | carried)[0]
    assert np.array_equal(split, with_if)  # the same function, bit for bit
    engine = OvEngine(dict(parts), "cpu", 0, "fp32", 2, decide=lambda df: branches.is_large(net, df))
    ov_out = engine.run(a, b, 0.5).numpy()
    ov_if = OvEngine({"whole": whole}, "cpu", 0, "fp32", 2)
    ov_if_out = ov_if.run(a, b, 0.5).numpy()
    assert engine.large_motion_count == int(large) and ov_if.large_motion_count is None  # the If took it unseen
    # OpenVINO fuses differently at the new graph boundaries: float rounding, not another branch.
    assert np.abs(ov_out - ov_if_out).max() < 1e-5
