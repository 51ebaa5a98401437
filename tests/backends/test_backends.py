"""Backends without the hardware: platform selection and its errors, the Intel
Extension for PyTorch import guard (a fake extension that fails the way a
version mismatch does, and one that imports), the CPU backend's knobs and
statistics, and the CLI's refusals (exit 2, one line)."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch

from helpers import clean_env, run_harness
from rifebench.backends import device as backends
from rifebench.backends.device import Backend, BackendUnavailable, CudaGraphs, import_ipex, probe, resolve_platform

IPEX = "intel_extension_for_pytorch"


@pytest.fixture
def mismatched_ipex(tmp_path, monkeypatch):
    """An importable extension whose import raises AttributeError, as a build for
    another torch version does."""
    pkg = tmp_path / IPEX
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "raise AttributeError(\"module 'torch._C' has no attribute '_xpu_getArchFlags'\")\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, IPEX, raising=False)
    yield
    sys.modules.pop(IPEX, None)


@pytest.fixture
def working_ipex(monkeypatch):
    fake = types.ModuleType(IPEX)
    fake.__version__ = "9.9.9+fake"
    fake.calls = []

    def optimize(model, dtype=None, inplace=False, **kw):
        fake.calls.append((dtype, inplace))
        return model

    fake.optimize = optimize
    monkeypatch.setitem(sys.modules, IPEX, fake)
    return fake


def test_import_guard_catches_the_version_mismatch(mismatched_ipex):
    module, why = import_ipex()
    assert module is None and why.startswith("AttributeError: module 'torch._C' has no attribute")


def test_import_guard_returns_a_working_extension(working_ipex):
    assert import_ipex() == (working_ipex, None)


def test_missing_platforms_fail_with_a_clear_error(mismatched_ipex):
    assert probe("cpu") is None
    with pytest.raises(BackendUnavailable) as err:
        resolve_platform("cuda")
    msg = str(err.value)
    assert msg.startswith("--platform/PLATFORM: 'cuda' is not available here: ") and "accepted here: cpu" in msg
    assert "CUDA" in msg and "\n" not in msg
    with pytest.raises(BackendUnavailable) as err:
        resolve_platform("xpu")
    assert "no Intel GPU (XPU)" in str(err.value) and "AttributeError" in str(err.value)
    assert resolve_platform("auto") == "cpu"
    with pytest.raises(BackendUnavailable, match="not available here"):
        Backend("cuda")
    with pytest.raises(BackendUnavailable, match="platform must be one of cpu, cuda, xpu, got 'tpu'"):
        Backend("tpu")
    with pytest.raises(BackendUnavailable, match="CUDA graphs need a CUDA device, got cpu"):
        CudaGraphs("cpu")


def test_cpu_backend_statistics_and_description():
    b = Backend("cpu")
    b.configure({"cudnn_benchmark": True, "tf32": True})  # not CUDA: nothing to set, nothing fails
    b.sync()
    b.reset_peak_memory()
    mem = b.memory()
    assert mem["peak_allocated_bytes"] is None and mem["peak_rss_bytes"] > 50 * 2**20
    info = b.describe()
    assert info["platform"] == "cpu" and info["threads"] == torch.get_num_threads()
    assert info["runtime"] == "torch" and info["name"] and info["isa"]
    assert b.optimizer() is None


def test_ipex_on_cpu_optimizes_the_network(working_ipex):
    b = Backend("cpu")
    b.configure({"ipex": True})
    assert b.describe()["runtime"] == "intel_extension_for_pytorch 9.9.9+fake"
    net = torch.nn.Conv2d(3, 3, 1)
    assert b.optimizer()(net, torch.bfloat16) is net and b.optimizer()(net, torch.float32) is net
    assert working_ipex.calls == [(torch.bfloat16, True), (None, True)]  # fp32 needs no low-precision kernels


def test_backend_refuses_ipex_that_stopped_importing(mismatched_ipex):
    with pytest.raises(BackendUnavailable, match="AttributeError"):
        Backend("cpu").configure({"ipex": True})


def test_dtypes():
    assert backends.torch_dtype("bf16") is torch.bfloat16 and backends.torch_dtype("fp16") is torch.float16


# ----------------------------------------------------------------------- the CLI


def _refused(out, args, **env):
    proc = run_harness(["--dummy", "--output-dir", out, *args], env=clean_env(**env), timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.slow
def test_cli_refuses_absent_accelerators_and_impossible_knobs(tmp_path):
    assert "--platform/PLATFORM: 'cuda' is not available here" in _refused(tmp_path, ["--platform", "cuda"])
    assert "'xpu' is not available here" in _refused(tmp_path, [], PLATFORM="xpu")
    assert not (tmp_path / "results.json").exists()  # refused before anything was written
    msg = _refused(tmp_path, ["--platform", "cpu", "--ipex", "yes"])
    assert "--ipex/IPEX: 'yes' but Intel Extension for PyTorch cannot be used" in msg and "accepted here: no" in msg
    msg = _refused(tmp_path, ["--platform", "cpu", "--compile", "default"], CXX="/nonexistent/c++")
    assert "--compile/COMPILE: 'default' cannot run here" in msg and "accepted here: none" in msg


@pytest.mark.slow
def test_cli_records_every_knob_and_fingerprints_compare(tmp_path, weights_40):
    """Every knob set explicitly on the CPU: recorded with its effective value,
    the CUDA-only ones as not applicable; the saved fingerprints of this run
    and of a baseline run agree to fp32 precision."""
    from rifebench.report.fingerprint import fingerprint_diff

    common = [
        "--dummy",
        "--platform",
        "cpu",
        "--precision",
        "fp32",
        "--data-height",
        "64",
        "--data-width",
        "96",
        "--num-inputs",
        "2",
        "--warmup",
        "1",
        "--pretrained-weights",
        weights_40,
        "--saveimages",
    ]
    knobs = [
        "--channels-last",
        "yes",
        "--preallocate",
        "yes",
        "--reuse-frames",
        "yes",
        "--compile",
        "none",
        "--cudnn-benchmark",
        "yes",
        "--tf32",
        "yes",
        "--cuda-graphs",
        "yes",
    ]
    runs = {}
    for name, extra in (("baseline", []), ("knobs", knobs)):
        out = tmp_path / name
        proc = run_harness([*common, "--output-dir", out, *extra], timeout=240)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        runs[name] = (out, json.loads((out / "results.json").read_text()))
    k = runs["knobs"][1]["knobs"]
    assert k["effective"] == {
        "channels_last": True,
        "compile": "none",
        "cudnn_benchmark": False,
        "tf32": False,
        "cuda_graphs": False,
        "preallocate": True,
        "reuse_frames": True,
        "ipex": False,
    }
    assert {f["knob"] for f in k["fallbacks"]} == {"cudnn_benchmark", "tf32", "cuda_graphs"}
    assert k["runtime"]["preallocate"]["buffers_allocated"] == 2
    assert runs["baseline"][1]["knobs"]["preset"] == "baseline" and runs["baseline"][1]["knobs"]["fallbacks"] == []
    for out, _ in runs.values():
        assert (out / "images" / "dummy_0.png").stat().st_size > 0
        assert np.load(out / "images" / "dummy_0.npy").shape == (64, 96, 3)
    q = fingerprint_diff(*(out / "images" / "dummy_0.npy" for out, _ in runs.values()))
    assert q["psnr_db"] >= 50 and q["max_abs_err"] <= 1e-4 and q["ssim"] > 0.9999
