"""Every model of the zoo exports through the ONNX path (models/export.py, the cache
beside the weights) and passes the runtimes' parity gate (runtimes/net.py: PSNR against
PyTorch fp32 at the gate's fp32 threshold) in ONNX Runtime and OpenVINO on the CPU, at a
small size, with seeded random weights in the release format. Releases with the same
architecture (4.2, 4.3 and 4.4; 4.13 to 4.24 but 4.20; ...) have the same graph, so one of
each architecture is exported: every release's graph is covered in half the time."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import random_state
from rifebench.models import versions, zoo
from rifebench.runtimes.net import PARITY_DB

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(importlib.util.find_spec(m) for m in ("onnxruntime", "openvino", "onnx", "onnxscript")),
        reason="the CPU runtimes or the ONNX exporter are not installed (./setup.sh --dev installs them)",
    ),
]
WITH_WEIGHTS = [name for name, spec in zoo.MODELS.items() if spec.weights_file is not None]


def _architecture(name: str) -> object:
    return dataclasses.replace(versions.get(name), name="") if name in versions.VERSIONS else name


# The first release of each architecture, in the zoo's order.
EXPORTED = list({_architecture(name): name for name in reversed(WITH_WEIGHTS)}.values())[::-1]


def test_the_sweep_covers_every_release_3_6_and_the_paper_model():
    assert [*versions.VERSIONS, "3.6", "paper"] == WITH_WEIGHTS
    exported = {_architecture(name): name for name in EXPORTED}
    assert all(_architecture(name) in exported for name in WITH_WEIGHTS)  # every graph is one exported
    assert {"4.0", "4.6", "4.25", "4.25.lite", "4.25.heavy", "3.6", "paper"} <= set(EXPORTED)


HW = ("--data-height", "40", "--data-width", "72")
# A child process that starts a stream as a run does: its first input exports the graph into the
# cache beside the weights.
EXPORT_CHILD = """
import sys
from rifebench.config import resolve
from rifebench.run.stream import build, make_source
from rifebench.runtimes.net import parity
name, weights, *hw = sys.argv[1:]
cfg = resolve(["--model", name, "--dummy", "--platform", "cpu", "--precision", "fp32",
               "--runtime", "onnxruntime", "--pretrained-weights", weights, *hw], {})
_, interp = build(cfg)
parity(cfg, interp, make_source(cfg, interp, 0), cfg.num_inputs)  # the first input exports the graph
"""


@pytest.fixture(scope="module")
def zoo_weights(tmp_path_factory) -> dict[str, tuple[Path, str | None]]:
    """Each architecture's release file, exported ahead two at a time in child processes
    (an export is one core's tracing: the 2-core suite does two at once), with what a failed
    child said (None: its graph is in the cache beside the weights)."""
    root = tmp_path_factory.mktemp("zoo")
    weights, said = {}, {}
    for name in EXPORTED:
        path = root / name / "flownet.pkl"
        path.parent.mkdir()
        state = random_state(zoo.get(name).build(), seed=len(name))
        torch.save({f"module.{k}": v for k, v in state.items()}, path)
        weights[name] = path
    pending, running = list(weights), {}
    while pending or running:
        while pending and len(running) < 2:
            name = pending.pop(0)
            cmd = [sys.executable, "-c", EXPORT_CHILD, name, str(weights[name]), *HW]
            running[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        while all(proc.poll() is None for proc in running.values()):
            time.sleep(0.2)
        for name in [n for n, proc in running.items() if proc.poll() is not None]:
            proc = running.pop(name)
            out, _ = proc.communicate()
            said[name] = None if proc.returncode == 0 else f"exit {proc.returncode}\n{out}"
    return {name: (path, said.get(name)) for name, path in weights.items()}


@pytest.mark.parametrize("name", EXPORTED)
def test_exports_and_passes_the_parity_gate_on_both_cpu_runtimes(zoo_weights, name):
    """As a run does it: the stream's own build (the runtime adopts the eager network),
    its dummy source, and the gate itself (runtimes.net.parity) on the first input."""
    from rifebench.config import resolve
    from rifebench.run.stream import build, make_source
    from rifebench.runtimes.net import parity

    weights, failed = zoo_weights[name]
    assert failed is None, f"exporting {name} in a child process failed:\n{failed}"
    for runtime in ("onnxruntime", "openvino"):
        flags = ["--model", name, "--dummy", "--platform", "cpu", "--precision", "fp32", "--runtime", runtime]
        cfg = resolve([*flags, "--pretrained-weights", str(weights), *HW], {})
        _, interp = build(cfg)
        gate = parity(cfg, interp, make_source(cfg, interp, 0), cfg.num_inputs)
        shown = "identical" if gate["identical"] else f"{gate['psnr_db']:.1f} dB"
        print(f"export {name} {runtime} {interp.padded_hw(40, 72)}: {shown} (needs {gate['threshold_db']:g})")
        assert gate["passed"] and gate["threshold_db"] == PARITY_DB["fp32"], gate
        export = interp.net.describe()["exports"][-1]
        assert export["path"].endswith(".onnx") and export["beside_weights"]
        assert export["cached"]  # the child's export, for both runtimes: one fp32 graph at batch 1
