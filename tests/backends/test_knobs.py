"""Optimisation knobs: the pure resolution rules (preset, explicit values,
platform, capabilities), and every knob run on the CPU against the baseline
output of the real 4.0 model on a real triplet: fp32 knobs >= 50 dB,
bf16/fp16 >= 35 dB."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from conftest import read_triplet, synthetic_pair, triplet_dirs
from helpers import SHARED_DATA
from rifebench.backends.knobs import (
    KNOBS,
    Caps,
    KnobError,
    compile_problem,
    graph_problem,
    probe_caps,
    resolve,
    summarize,
)
from rifebench.config import resolve as resolve_config
from rifebench.models import zoo
from rifebench.models.interp import CompileFailed, Interpolator, _Buffers
from rifebench.models.nets.ifnet_v4 import build_v40, build_v46
from rifebench.models.weights import load_model

FP32_MIN_DB, LOW_PRECISION_MIN_DB = 50.0, 35.0
OK = Caps()
NO_IPEX = Caps(ipex_problem="AttributeError: module 'torch' has no attribute 'xpu_fake'")


def cfg(*flags, env=None):
    return resolve_config(["--dummy", *flags], env=env or {})


# ------------------------------------------------------------------ pure resolution


def test_baseline_is_the_reference_everywhere():
    for platform in ("cpu", "cuda", "xpu"):
        k = resolve(cfg(), platform, OK)
        assert k.values["compile"] == "none" and not k.values["channels_last"]
        assert not any(k.values[n] for n in KNOBS if n not in ("compile", "ipex"))
        assert k.fallbacks == []
    assert resolve(cfg(), "cpu", OK).sources["tf32"] == "n/a"
    assert resolve(cfg(), "cuda", OK).sources["tf32"] == "preset"


def test_optimized_presets_per_platform():
    cpu = resolve(cfg("--optimize", "optimized"), "cpu", OK).values
    assert cpu["reuse_frames"] and cpu["ipex"] and cpu["compile"] == "none"
    # Measured to slow fp32 down on the CPU (knobs.OPTIMIZED): left to explicit values.
    assert not (
        cpu["channels_last"] or cpu["tf32"] or cpu["cudnn_benchmark"] or cpu["cuda_graphs"] or cpu["preallocate"]
    )
    cuda = resolve(cfg("--optimize", "optimized"), "cuda", OK)
    assert cuda.values["cudnn_benchmark"] and cuda.values["tf32"] and cuda.values["preallocate"]
    assert cuda.values["compile"] == "reduce-overhead" and not cuda.values["ipex"]
    xpu = resolve(cfg("--optimize", "optimized"), "xpu", OK).values
    assert xpu["ipex"] and xpu["channels_last"] and xpu["compile"] == "none"


def test_explicit_values_win_over_the_preset_from_flags_and_variables():
    k = resolve(cfg("--optimize", "optimized", "--channels-last", "no", env={"COMPILE": "max-autotune"}), "cpu", OK)
    assert k.values["channels_last"] is False and k.sources["channels_last"] == "explicit"
    assert k.values["compile"] == "max-autotune" and k.sources["compile"] == "explicit"
    assert k.values["reuse_frames"] is True and k.sources["reuse_frames"] == "preset"


def test_cuda_only_knobs_elsewhere_are_recorded_not_applicable():
    k = resolve(cfg("--tf32", "yes", "--cuda-graphs", "yes", "--cudnn-benchmark", "yes"), "cpu", OK)
    assert not k.values["tf32"] and not k.values["cuda_graphs"] and not k.values["cudnn_benchmark"]
    assert {f["knob"] for f in k.fallbacks} == {"tf32", "cuda_graphs", "cudnn_benchmark"}
    assert all("CUDA only" in f["reason"] for f in k.fallbacks)
    assert k.to_dict()["source"]["tf32"] == "n/a"


def test_compile_unavailable_falls_back_for_the_preset_and_fails_when_explicit():
    caps = Caps(compile_problem="Inductor needs Triton on cuda and it is not installed")
    k = resolve(cfg("--optimize", "optimized"), "cuda", caps)
    assert k.values["compile"] == "none"
    assert k.fallbacks == [
        {"knob": "compile", "wanted": "reduce-overhead", "effective": "none", "reason": caps.compile_problem}
    ]
    with pytest.raises(KnobError, match=r"^'default' cannot run here: Inductor .*here: none"):
        resolve(cfg("--compile", "default"), "cpu", caps)


def test_ipex_yes_without_the_extension_fails_clearly_and_suggests_ipex_no():
    for platform in ("xpu", "cpu"):
        with pytest.raises(KnobError) as err:
            resolve(cfg("--ipex", "yes"), platform, NO_IPEX)
        msg = str(err.value)
        assert err.value.knob == "ipex"  # the configuration layer puts --ipex/IPEX in front
        assert msg.startswith("'yes'") and "AttributeError" in msg and "accepted here: no" in msg
        assert "\n" not in msg
    # The variable counts as explicit too.
    with pytest.raises(KnobError, match="accepted here: no"):
        resolve(cfg(env={"IPEX": "yes"}), "xpu", NO_IPEX)


def test_ipex_default_falls_back_to_torch_xpu_and_says_so():
    k = resolve(cfg(), "xpu", NO_IPEX)  # IPEX's default is yes, as in the reference
    assert k.values["ipex"] is False and k.sources["ipex"] == "default"
    assert k.fallbacks[0]["knob"] == "ipex" and "AttributeError" in k.fallbacks[0]["reason"]
    assert resolve(cfg("--ipex", "no"), "xpu", NO_IPEX).fallbacks == []
    assert resolve(cfg(), "xpu", OK).values["ipex"] is True
    assert resolve(cfg(), "cpu", OK).values["ipex"] is False  # CPU baseline: plain torch


def test_cuda_graph_rules():
    graph_caps = Caps(graph_problem="model 4.0 branches on its own output")
    with pytest.raises(KnobError, match=r"^'yes' cannot run here: model 4.0"):
        resolve(cfg("--cuda-graphs", "yes"), "cuda", graph_caps)
    k = resolve(cfg("--cuda-graphs", "yes", "--compile", "reduce-overhead"), "cuda", OK)
    assert not k.values["cuda_graphs"] and "already captures CUDA graphs" in k.fallbacks[0]["reason"]
    k = resolve(cfg("--cuda-graphs", "yes", "--preallocate", "no"), "cuda", OK)
    assert k.values["cuda_graphs"] and k.values["preallocate"] and k.sources["preallocate"] == "forced"
    assert k.fallbacks == [
        {
            "knob": "preallocate",
            "wanted": False,
            "effective": True,
            "reason": "CUDA graphs replay from static input buffers",
        }
    ]


def test_capability_probes():
    assert graph_problem(build_v40()) is not None and "4.0" in graph_problem(build_v40())
    assert graph_problem(build_v46()) is None
    assert compile_problem("cpu") is None  # g++ is part of the development image


def test_caps_probe_only_what_the_configuration_could_use(monkeypatch):
    from rifebench.backends import device as backends

    calls = []
    monkeypatch.setattr(backends, "import_ipex", lambda: calls.append(1) or (None, "not installed"))
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    net = build_v46()
    caps = probe_caps("cpu", net, cfg())
    assert caps == Caps() and calls == []  # the baseline imports nothing and compiles nothing
    assert probe_caps("cpu", net, cfg("--optimize", "optimized")).ipex_problem == "not installed"
    assert probe_caps("xpu", net, cfg()).ipex_problem == "not installed"  # IPEX's default on XPU
    assert probe_caps("cuda", net, cfg("--ipex", "yes")).ipex_problem is None
    assert "C++ compiler" in probe_caps("cpu", net, cfg("--compile", "default")).compile_problem


def test_compile_probe_names_a_missing_compiler(monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/g++-42")
    assert "C++ compiler" in compile_problem("cpu") and "g++-42" in compile_problem("cpu")


def test_summarize_merges_streams():
    a = resolve(cfg("--optimize", "optimized", "--compile", "default"), "cpu", NO_IPEX).to_dict()
    b = copy.deepcopy(a)
    b["effective"]["compile"] = "none"
    b["fallbacks"].append({"knob": "compile", "wanted": "default", "effective": "none", "reason": "boom"})
    s = summarize([a, b, None])
    assert s["effective"] == a["effective"] and s["differs_between_streams"] == ["compile"]
    assert [f["knob"] for f in s["fallbacks"]] == ["ipex", "compile"]
    assert summarize([None]) is None


# ------------------------------------------------------------ every knob, real model


@pytest.fixture(scope="module")
def net40(weights_40):
    return load_model(zoo.get("4.0"), weights_40)


@pytest.fixture(scope="module")
def pair():
    """A 128x160 crop of a real triplet (padded to 128x192: the padding path runs),
    or a smooth synthetic pair where ../shared/data is absent."""
    data = SHARED_DATA / "ucf101_256x256"
    if not data.is_dir():
        return synthetic_pair(128, 160, shift=6)[:2]
    f0, _, f1 = read_triplet(triplet_dirs(data)[7])
    return f0[..., 64:192, 48:208].contiguous(), f1[..., 64:192, 48:208].contiguous()


def run(net, pair, dtype="fp32", steps=1, **knobs):
    interp = Interpolator(copy.deepcopy(net), zoo.get("4.0"), "cpu", dtype, **knobs)
    outs = [
        interp.interpolate(interp.prepare(pair[0], key=0), interp.prepare(pair[1], key=1), 1)[0] for _ in range(steps)
    ]
    return interp, outs


@pytest.fixture(scope="module")
def baseline(net40, pair):
    return run(net40, pair)[1][0]


def psnr(a, b):
    mse = ((a.float() - b.float()) ** 2).mean().item()
    return math.inf if mse == 0 else -10 * math.log10(mse)


@pytest.mark.parametrize(
    "dtype,knobs,floor",
    [
        ("fp32", {"channels_last": True}, FP32_MIN_DB),
        ("fp32", {"preallocate": True}, FP32_MIN_DB),
        ("fp32", {"preallocate": True, "channels_last": True, "reuse_frames": True}, FP32_MIN_DB),
        ("fp32", {"reuse_frames": True}, FP32_MIN_DB),
        ("fp32", {"cuda_graphs": True}, FP32_MIN_DB),  # refused on the CPU: runs eager, says so
        ("bf16", {}, LOW_PRECISION_MIN_DB),
        ("bf16", {"channels_last": True}, LOW_PRECISION_MIN_DB),
        ("fp16", {}, LOW_PRECISION_MIN_DB),
    ],
)
def test_knob_output_stays_close_to_baseline(net40, pair, baseline, dtype, knobs, floor):
    interp, outs = run(net40, pair, dtype, steps=2, **knobs)
    db = psnr(outs[-1], baseline)
    print(f"4.0 {dtype} {knobs}: {db:.1f} dB against the fp32 baseline")
    assert db >= floor and torch.isfinite(outs[-1]).all()
    if dtype == "fp32":
        assert (outs[-1] - baseline).abs().max() <= 1e-4
    if knobs.get("reuse_frames"):
        assert interp.reuse["hits"] == 2 and interp.reuse["misses"] == 2  # the second pair is all reused
        assert interp.runtime()["reuse_frames"]["saved_s_est"] > 0
    if knobs.get("cuda_graphs"):
        assert interp.fallbacks[0]["knob"] == "cuda_graphs" and "large-motion" in interp.fallbacks[0]["reason"]
        assert interp.runtime()["cuda_graphs"] is None


@pytest.mark.slow
def test_compile_with_channels_last_small(net40, pair, baseline):
    """The one torch.compile test (64x64: compilation dominates), with
    channels_last as well: close to eager, compiled before timing."""
    small = tuple(f[..., :64, :64].contiguous() for f in pair)
    ref = run(net40, small)[1][0]
    interp, outs = run(net40, small, steps=2, compile="default", channels_last=True)
    assert interp.warmup_needed == 1 and interp.compile_first_call_s > 0
    assert interp.fallbacks == [] and interp.runtime()["compile"]["mode"] == "default"
    print(f"compile+channels_last 64x64: first call {interp.compile_first_call_s:.1f} s, {psnr(outs[-1], ref):.1f} dB")
    assert psnr(outs[-1], ref) >= FP32_MIN_DB


def test_compile_failure_falls_back_or_fails_when_explicit(monkeypatch):
    def broken_compile(net, mode=None):
        def call(*args, **kwargs):
            raise RuntimeError("BackendCompilerFailed: fake inductor crash\nsecond line")

        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    f0, f1, _ = synthetic_pair(64, 64)
    net = build_v46()
    seen = []
    interp = Interpolator(
        copy.deepcopy(net), zoo.get("4.6"), "cpu", "fp32", compile="default", on_fallback=lambda *a: seen.append(a)
    )
    out = interp.interpolate(interp.prepare(f0), interp.prepare(f1))[0]
    eager = Interpolator(copy.deepcopy(net), zoo.get("4.6"), "cpu", "fp32")
    assert torch.equal(out, eager.interpolate(eager.prepare(f0), eager.prepare(f1))[0])
    assert seen[0][:3] == ("compile", "default", "none") and "fake inductor crash" in seen[0][3]
    assert "second line" not in seen[0][3]
    strict = Interpolator(copy.deepcopy(net), zoo.get("4.6"), "cpu", "fp32", compile="default", strict={"compile"})
    with pytest.raises(CompileFailed, match=r"^'default': torch.compile failed.*accepted: none"):
        strict.interpolate(strict.prepare(f0), strict.prepare(f1))


def test_cuda_graphs_refuse_cleanly_on_cpu():
    net = build_v46()  # no data-dependent branch: the refusal is about the device
    interp = Interpolator(net, zoo.get("4.6"), "cpu", "fp32", cuda_graphs=True)
    assert interp.fallbacks == [
        {"knob": "cuda_graphs", "wanted": True, "effective": False, "reason": "CUDA graphs need a CUDA device, got cpu"}
    ]
    assert interp.runtime()["cuda_graphs"] is None and interp.warmup_needed == 0
    with pytest.raises(KnobError, match=r"^'yes' cannot run here: CUDA graphs need a CUDA device"):
        Interpolator(build_v46(), zoo.get("4.6"), "cpu", "fp32", cuda_graphs=True, strict={"cuda_graphs"})


def test_preallocated_ring_reuses_storage_and_keeps_padding_zero():
    buf = _Buffers(torch.device("cpu"), torch.float32, channels_last=True)
    frames = [torch.full((1, 3, 20, 30), float(k + 1)) for k in range(6)]
    got = [buf.put(f, (32, 32)) for f in frames]
    assert buf.allocations == _Buffers.SLOTS and got[0].data_ptr() == got[_Buffers.SLOTS].data_ptr()
    assert got[1].is_contiguous(memory_format=torch.channels_last)
    assert got[-1][..., :20, :30].eq(6).all() and got[-1][..., 20:, :].eq(0).all() and got[-1][..., 30:].eq(0).all()
    assert got[3][..., :20, :30].eq(4).all()  # SLOTS - 1 later, still intact
    buf.put(torch.zeros(1, 3, 40, 30), (64, 32))
    assert buf.allocations == _Buffers.SLOTS + 1


def test_reuse_needs_the_same_key_and_size():
    interp = Interpolator(build_v46(), zoo.get("4.6"), "cpu", "fp32", reuse_frames=True)
    a = torch.rand(1, 3, 40, 40)
    first = interp.prepare(a, key="f7")
    assert interp.prepare(a, key="f7") is first
    assert interp.prepare(torch.rand(1, 3, 40, 48), key="f7") is not first  # same key, other size
    interp.prepare(a)  # no key: never cached
    assert interp.reuse["hits"] == 1 and interp.reuse["misses"] == 2
