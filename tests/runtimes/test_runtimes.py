"""RUNTIME: the option's checks, the provider and setting choices (pure, with
fakes where the hardware is absent), the profile and study columns. The
exports, the parity gate and the runs end to end are in test_runtimes_e2e.py."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from helpers import clean_env, run_harness
from rifebench.config import resolve
from rifebench.errors import UsageError
from rifebench.runtimes import engines, ov_engine, registry
from rifebench.runtimes.net import graph_precision

HAVE_ORT = importlib.util.find_spec("onnxruntime") is not None
HAVE_OV = importlib.util.find_spec("openvino") is not None


def cfg_of(*flags, env=None):
    return resolve(["--dummy", *flags], env=env or {})


def test_torch_is_the_default_and_every_runtime_is_a_choice():
    assert cfg_of().runtime == "torch"
    with pytest.raises(
        UsageError,
        match=r"--runtime: invalid value 'tflite' \(accepted: torch, onnxruntime, "
        r"openvino, tensorrt\)",
    ):
        cfg_of("--runtime", "tflite")


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--model", "null"], r"--runtime/RUNTIME onnxruntime: cannot run --model/MODEL null"),
        (["--amp"], r"--amp/AMP is torch.autocast"),
        (["--precision", "bf16"], r"does not run --precision/PRECISION bf16 \(accepted: fp32, fp16\)"),
        (["--compile", "default"], r"--compile/COMPILE default applies to RUNTIME=torch only"),
        (["--channels-last", "yes"], r"--channels-last/CHANNELS_LAST yes applies to RUNTIME=torch only"),
        (["--platform", "xpu"], r"does not run on --platform/PLATFORM xpu \(accepted: cpu, cuda\)"),
    ],
)
def test_what_an_exported_graph_cannot_do_is_refused_in_one_line(flags, needle, monkeypatch):
    monkeypatch.setattr(registry, "missing", lambda name: None)
    with pytest.raises(UsageError, match=needle) as info:
        cfg_of("--runtime", "onnxruntime", *flags)
    assert "\n" not in str(info.value)


def test_openvino_refuses_cuda_and_accepts_bf16(monkeypatch):
    monkeypatch.setattr(registry, "missing", lambda name: None)
    assert cfg_of("--runtime", "openvino", "--precision", "bf16").precision == "bf16"
    with pytest.raises(UsageError, match=r"openvino: does not run on --platform/PLATFORM cuda"):
        cfg_of("--runtime", "openvino", "--platform", "cuda")


@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
def test_a_runtime_that_is_not_installed_names_the_install_command(name, monkeypatch):
    monkeypatch.setattr(registry, "installed", lambda module: False)
    with pytest.raises(
        UsageError,
        match=rf"--runtime/RUNTIME: {name} is not installed \(install: "
        rf"\./setup\.sh --runtimes {name} \(or pip install 'rifebench\[{name}\]'",
    ):
        cfg_of("--runtime", name)


def test_tensorrt_route_follows_what_is_installed():
    assert registry.tensorrt_route(["TensorrtExecutionProvider", "CPUExecutionProvider"], False) == "ort"
    assert registry.tensorrt_route(["CPUExecutionProvider"], True) == "torch_tensorrt"
    assert registry.tensorrt_route(["CUDAExecutionProvider"], False) is None


def test_tensorrt_without_either_route_is_exit_2_with_one_line():
    if registry.tensorrt_route() is not None:
        pytest.skip("a TensorRT route is installed here")
    proc = run_harness(
        ["--dummy", "--runtime", "tensorrt", "--output-dir", "/nonexistent/never"], env=clean_env(), timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "--runtime/RUNTIME: tensorrt needs ONNX Runtime's TensorRT execution provider or torch-tensorrt" in last
    assert "pip install torch-tensorrt" in last


def test_ort_providers_are_chosen_by_runtime_and_platform():
    cpu = engines.ort_providers("onnxruntime", "cpu", ["CPUExecutionProvider"], 0, False, "/c")
    assert cpu == ["CPUExecutionProvider"]
    gpu = engines.ort_providers("onnxruntime", "cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"], 1, True, "/c")
    assert gpu == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    with pytest.raises(UsageError, match=r"no CUDAExecutionProvider.*onnxruntime-gpu"):
        engines.ort_providers("onnxruntime", "cuda", ["CPUExecutionProvider"], 0, False, "/c")
    trt = engines.ort_providers(
        "tensorrt", "cuda", ["TensorrtExecutionProvider", "CUDAExecutionProvider"], 0, True, "/c/trt"
    )
    assert trt[0][0] == "TensorrtExecutionProvider" and trt[0][1]["trt_fp16_enable"] is True
    assert trt[0][1]["trt_engine_cache_path"] == "/c/trt" and trt[1][0] == "CUDAExecutionProvider"
    with pytest.raises(UsageError, match="no TensorrtExecutionProvider"):
        engines.ort_providers("tensorrt", "cuda", ["CUDAExecutionProvider"], 0, False, "/c")


def test_openvino_settings_one_request_latency_and_the_precision_hint():
    cpu = ov_engine.ov_config("cpu", "bf16", 3)
    assert cpu == {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1",
        "INFERENCE_PRECISION_HINT": "bf16",
        "INFERENCE_NUM_THREADS": 3,
    }
    assert "INFERENCE_NUM_THREADS" not in ov_engine.ov_config("xpu", "fp16", 3)
    assert ov_engine.ov_config("xpu", "fp16", 3)["INFERENCE_PRECISION_HINT"] == "f16"
    assert ov_engine.ov_device("cpu", 0) == "CPU" and ov_engine.ov_device("xpu", 1) == "GPU.1"


def test_openvino_throughput_hint_leaves_the_streams_to_openvino_and_int8_keeps_float_in_f32():
    tp = ov_engine.ov_config("cpu", "fp32", 2, "throughput")
    assert tp == {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2}
    assert ov_engine.ov_config("cpu", "int8", 2)["INFERENCE_PRECISION_HINT"] == "f32"  # the warp stays f32


@pytest.mark.skipif(not HAVE_OV, reason="openvino is not installed (./setup.sh --runtimes openvino)")
def test_a_throughput_hint_spreads_a_batch_pair_by_pair_even_over_one_request(tmp_path):
    """Under the throughput hint the graph takes one pair; a batch of 2 on a stream whose
    one CPU gives OpenVINO a single request used to reach the graph whole and fail."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    shape = [1, 3, 4, 4]
    graph = helper.make_graph(
        [helper.make_node("Add", ["img0", "img1"], ["s"]), helper.make_node("Mul", ["s", "timestep"], ["out"])],
        "average",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("img0", "img1")]
        + [helper.make_tensor_value_info("timestep", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)],
    )
    path = tmp_path / "average.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    engine = ov_engine.OvEngine({"whole": str(path)}, "cpu", 0, "fp32", 1, hint="throughput")
    engine.lanes, engine.pool = engine.lanes[:1], None  # the one-request case, whatever this CPU chose
    a, b = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    assert np.allclose(engine.run(a, b, 0.5).numpy(), ((a + b) * 0.5).numpy())


def test_graph_precision():
    assert graph_precision("onnxruntime", "fp16") == "fp16" and graph_precision("tensorrt", "fp16") == "fp16"
    assert graph_precision("openvino", "fp16") == "fp32" and graph_precision("openvino", "bf16") == "fp32"
    assert graph_precision("onnxruntime", "fp32") == "fp32"


class FakeSession:
    """What OrtEngine needs of an InferenceSession and its I/O binding, recorded."""

    def __init__(self):
        self.bound = []

    def io_binding(self):
        session = self

        class Binding:
            def bind_input(self, name, device, index, dtype, shape, ptr):
                session.bound.append(("in", name, device, index, shape))

            def bind_output(self, name, device, index, dtype, shape, ptr):
                session.bound.append(("out", name, device, index, shape))

            def synchronize_inputs(self):
                pass

            def synchronize_outputs(self):
                pass

        return Binding()

    def run_with_iobinding(self, binding):
        self.bound.append(("run",))


def test_cuda_frames_are_bound_not_copied(monkeypatch):
    """On CUDA the engine binds the frames' device memory (I/O binding) and
    returns a tensor on the same device; checked with a fake session and a
    meta-device stand-in, since no GPU is here."""
    eng = engines.OrtEngine.__new__(engines.OrtEngine)
    eng.session, eng.inputs, eng.bind = FakeSession(), {"img0", "img1", "timestep"}, True
    eng.device = torch.device("cuda", 1)
    monkeypatch.setattr(torch, "full", lambda *a, **k: torch.zeros(1))
    monkeypatch.setattr(torch, "empty_like", lambda x, **k: torch.zeros_like(x))
    img = torch.zeros(2, 3, 32, 32)
    eng.run(img, img, 0.5)
    kinds = [b[:2] for b in eng.session.bound]
    assert kinds == [("in", "img0"), ("in", "img1"), ("in", "timestep"), ("out", "frame"), ("run",)]
    assert all(b[2:4] == ("cuda", 1) for b in eng.session.bound if b[0] != "run")


def test_profile_column_and_study_configuration(tmp_path, monkeypatch):
    from rifebench.bench import profiles
    from rifebench.study import cli as study

    weights = tmp_path / "w.pkl"
    weights.write_bytes(b"x")
    monkeypatch.setattr(registry, "missing", lambda name: None)
    csv = tmp_path / "p.csv"
    csv.write_text(
        f"RUNTIME,PRECISION,DUMMY,LOAD_PATH\nonnxruntime,fp32,1,{weights}\nopenvino,bf16,1,{weights}\n"
        f"torch,,1,{weights}\n"
    )
    header, rows = profiles.read(csv)
    assert "RUNTIME" in header and rows[1].cells["RUNTIME"] == "openvino"
    assert profiles.validate(str(csv), rows, clean_env(), startup=False) == []
    bad = tmp_path / "bad.csv"
    bad.write_text(f"RUNTIME,PRECISION,DUMMY,LOAD_PATH\nonnxruntime,bf16,1,{weights}\n")
    problems = profiles.validate(str(bad), profiles.read(bad)[1], clean_env(), startup=False)
    assert len(problems) == 1 and "PRECISION bf16" in problems[0] and "row 1" in problems[0]
    args = study.parse(
        [
            "--configs",
            "baseline,ov",
            "--config",
            "ov=--runtime openvino",
            "--sizes",
            "32x32",
            "--model",
            "4.6",
            "--pretrained-weights",
            str(weights),
        ]
    )
    study.check_configs(args)  # resolves and preflights every configuration
    with pytest.raises(UsageError, match=r"configuration 'ov'.*openvino: does not run on --platform/PLATFORM cuda"):
        study.check_configs(
            study.parse(
                ["--configs", "baseline,ov", "--config", "ov=--runtime openvino --platform cuda", "--sizes", "32x32"]
            )
        )


def large_motion_net(large: bool = True):
    """A seeded 4.0 whose block 1 reports flows far beyond 32 px (the re-run fires) or not."""
    from rifebench.models.nets.ifnet_v4 import build_v40

    torch.manual_seed(0)
    net = build_v40().eval()
    if large:
        with torch.no_grad():
            net.block1.lastconv.bias[:4] += 100.0
    return net, (torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), torch.full((1,), 0.5))


@pytest.mark.slow  # torch.cond compiles its branches on the first eager call (about 5 s)
@pytest.mark.parametrize("large", [False, True])
def test_the_40_export_forward_equals_the_network_in_both_branches(large):
    from rifebench.models import export as onnx_export
    from rifebench.models import zoo

    net, inputs = large_motion_net(large)
    wrapped = onnx_export.export_module(net, zoo.get("4.0"), 1.0)
    assert isinstance(wrapped, onnx_export.ExportNet40)
    with torch.no_grad():
        ref = net(*inputs)
        assert net.large_motion_count == int(large)
        assert torch.equal(wrapped(*inputs), ref)


@pytest.mark.parametrize(
    "hidden,needle",
    [
        ({"openvino"}, "openvino is not installed (install: ./setup.sh --runtimes openvino"),
        ({"onnxscript"}, "openvino needs the ONNX exporter's onnx and onnxscript, not installed (install: "),
    ],
)
def test_a_missing_runtime_is_exit_2_before_anything_runs(tmp_path, hidden, needle):
    """As a user meets it: the command line, exit status 2, one line, no output folder."""
    import subprocess
    import sys

    code = (
        "import sys; from rifebench.runtimes import registry; real = registry.installed; "
        f"registry.installed = lambda m: m not in {sorted(hidden)!r} and real(m); "
        "from rifebench.__main__ import cli; sys.exit(cli())"
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", code, "--dummy", "--runtime", "openvino", "--output-dir", str(out)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("run_model.sh: error: --runtime/RUNTIME: ")
    assert not out.exists()


def test_setup_sh_takes_a_runtime_list_and_refuses_an_unknown_name(tmp_path):
    import shutil
    import subprocess

    from helpers import REPO

    env = clean_env(VENV_DIR=str(tmp_path / "venv"), TORCH_SPEC="torch==2.13.0")
    ok = subprocess.run(
        [shutil.which("bash"), str(REPO / "setup.sh"), "--runtimes", "onnxruntime,openvino", "--print-torch-source"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [shutil.which("bash"), str(REPO / "setup.sh"), "--runtimes=onnxruntime,tflite"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and not (tmp_path / "venv").exists()
    assert bad.stderr.strip().startswith(
        "setup.sh: --runtimes: unknown runtime 'tflite' (accepted: onnxruntime, openvino;"
    )
