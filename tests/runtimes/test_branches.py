"""Model 4.0 as three graphs with the large-motion branch taken on the host
(runtimes/branches.py): the same function as the network, in torch bit for bit; in
ONNX Runtime with its graph optimisations off, bit for bit the exported If graph;
in OpenVINO the same branch and outputs within float rounding."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from test_runtimes import large_motion_net

from rifebench.models import export as onnx_export
from rifebench.models import zoo
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


@pytest.mark.slow  # four exports (about a minute)
@pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("openvino") is None,
    reason="the CPU runtimes are not installed (./setup.sh --dev installs them)",
)
@pytest.mark.parametrize("large", [False, True])
def test_the_parts_equal_the_if_graph_and_take_its_branch(large):
    import onnxruntime as ort

    from rifebench.runtimes.ov_engine import OvEngine

    net, (a, b, t) = large_motion_net(large)
    key = onnx_export.ExportKey("4.0", "0" * 64, 64, 64, 1, "fp32", 1.0, onnx_export.OPSET, "test")
    feeds = {"img0": a.numpy(), "img1": b.numpy(), "timestep": t.numpy()}
    with tempfile.TemporaryDirectory() as tmp:
        whole = Path(tmp) / key.file_name()
        onnx_export.export(net, zoo.get("4.0"), key, whole)
        parts = {}
        for part in branches.PARTS:
            parts[part] = Path(tmp) / f"{part}.onnx"
            parts[part].write_bytes(branches.part_bytes(net, key, part))
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
        ov_if = OvEngine({"whole": whole}, "cpu", 0, "fp32", 2).run(a, b, 0.5).numpy()
    assert engine.large_motion_count == int(large)
    # OpenVINO fuses differently at the new graph boundaries: float rounding, not another branch.
    assert np.abs(ov_out - ov_if).max() < 1e-5
