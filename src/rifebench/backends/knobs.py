"""Optimisation knobs: preset + explicit values + platform -> effective values.

`resolve` is pure: what the machine can do (a C++ compiler for torch.compile,
an importable Intel Extension for PyTorch, a model without data-dependent
branches for CUDA graphs) comes in as `Caps`, so every rule is unit-tested
without the hardware. `probe_caps` gathers those facts; it is the only part
that looks at the machine.

Policy, one rule for every knob:
- `auto` takes the value of the OPTIMIZE preset for the platform; anything the
  preset wants that cannot run here falls back and is recorded, never fails.
- An explicit value that does not apply to the platform (TF32 on a CPU) is
  recorded as not applicable, so one profile CSV serves every platform.
- An explicit value that applies but cannot run here (COMPILE=default without
  a C++ compiler, IPEX=yes without the extension, CUDA_GRAPHS=yes with a model
  that branches on data) is an error: the user asked to measure exactly that,
  and numbers labelled with it must not come from something else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rifebench.errors import RifebenchError

KNOBS = ("channels_last", "compile", "cudnn_benchmark", "tf32", "cuda_graphs", "preallocate", "reuse_frames", "ipex")
CUDA_ONLY = ("cudnn_benchmark", "tf32", "cuda_graphs")
# These torch.compile modes capture CUDA graphs themselves (cudagraph trees).
GRAPHING_COMPILE_MODES = ("reduce-overhead", "max-autotune")

BASELINE = {
    "channels_last": False,
    "compile": "none",
    "cudnn_benchmark": False,
    "tf32": False,
    "cuda_graphs": False,
    "preallocate": False,
    "reuse_frames": False,
    "ipex": False,
}
# "Everything that helps on the platform". CPU, measured with `python -m
# rifebench study` (4.0, 448x256 and 1280x720, 2 cores of an AMD EPYC with
# AVX512-BF16, torch 2.13): channels_last (0.96x) and torch.compile (0.87x)
# slow fp32 down (oneDNN convolutions dominate, and neither the layout nor
# fused pointwise ops buy anything back), so the CPU preset keeps only what
# costs nothing; CHANNELS_LAST/COMPILE stay there to try. bf16 is the CPU's
# real speed-up (1.47x, 53 dB against fp32): it is PRECISION's, not a preset's.
# CUDA, chosen by measurement (benchmarks/gpu_check.sh on one H200, torch 2.11,
# 4.6 fp16 1280x720, batch 1, 5 s windows; docs/figures.md "One NVIDIA H200"):
#   eager (baseline)                                          189 img/s, NVML kernels 56%
#   COMPILE=none CUDA_GRAPHS=yes CHANNELS_LAST=yes CUDNN_BENCHMARK=yes   491 img/s, 82%
#   COMPILE=reduce-overhead (+ channels_last, cudnn.benchmark, TF32)  598 img/s, 100%
# so the preset is torch.compile reduce-overhead (Inductor's fused pointwise ops
# plus its own CUDA graphs), not eager + explicit graphs (0.82x of it).
# max-autotune(-no-cudagraphs) was not measured: its autotuning did not fit the
# check's time budget and can outlast BARRIER_TIMEOUT at 1080p.
OPTIMIZED = {
    "cpu": {**BASELINE, "reuse_frames": True, "ipex": True},
    "cuda": {
        **BASELINE,
        "channels_last": True,
        "compile": "reduce-overhead",
        "cudnn_benchmark": True,
        "tf32": True,
        "preallocate": True,
        "reuse_frames": True,
    },
    "xpu": {**BASELINE, "channels_last": True, "preallocate": True, "reuse_frames": True},
}
PRESETS = {"baseline": {p: dict(BASELINE) for p in OPTIMIZED}, "optimized": OPTIMIZED}


class KnobError(RifebenchError, ValueError):
    """An explicit knob value that cannot run here. Neutral: `knob` names the
    option (its config name) and the message says the rest; the configuration
    layer puts the flag and variable in front."""

    def __init__(self, knob: str, message: str):
        super().__init__(message)
        self.knob = knob


@dataclass(frozen=True)
class Caps:
    """Why each capability is missing here (None: it is there)."""

    compile_problem: str | None = None
    ipex_problem: str | None = None
    graph_problem: str | None = None  # the model cannot be captured in a CUDA graph


@dataclass
class Knobs:
    preset: str
    platform: str
    values: dict
    sources: dict  # knob -> preset | explicit | forced | n/a
    fallbacks: list = field(default_factory=list)

    def explicit(self, knob: str) -> bool:
        return self.sources.get(knob) == "explicit"

    def fall_back(self, knob: str, wanted, effective, reason: str) -> None:
        """Record that `knob` runs as `effective` instead of `wanted`, and why."""
        self.values[knob] = effective
        self.fallbacks.append({"knob": knob, "wanted": wanted, "effective": effective, "reason": reason})

    def interpolator_options(self) -> dict:
        """Keyword arguments of interp.Interpolator for these knobs."""
        v = self.values
        return {
            "channels_last": v["channels_last"],
            "compile": v["compile"],
            "cuda_graphs": v["cuda_graphs"],
            "preallocate": v["preallocate"],
            "reuse_frames": v["reuse_frames"],
            "strict": {k for k in KNOBS if self.explicit(k)},
            "on_fallback": self.fall_back,
        }

    def to_dict(self) -> dict:
        return {
            "preset": self.preset,
            "platform": self.platform,
            "effective": dict(self.values),
            "source": dict(self.sources),
            "fallbacks": [dict(f) for f in self.fallbacks],
        }


def _requested(cfg, knob: str):
    """(explicit?, value) of one knob as the configuration asks for it."""
    raw = getattr(cfg, knob)
    if knob == "ipex":
        # IPEX is a yes/no option with a default of yes (XPU); only a flag or a
        # variable counts as asking for it.
        explicit = (getattr(cfg, "origin", None) or {}).get("ipex", "default") != "default"
        return explicit, raw == "yes"
    if raw == "auto":
        return False, None
    return True, raw if knob == "compile" else raw == "yes"


def resolve(cfg, platform: str, caps: Caps) -> Knobs:
    """The effective knobs for `cfg` on `platform`; KnobError for an explicit
    value that applies here but cannot run."""
    preset = PRESETS[cfg.optimize][platform]
    values, sources = {}, {}
    for knob in KNOBS:
        explicit, value = _requested(cfg, knob)
        if explicit:
            values[knob], sources[knob] = value, "explicit"
        elif knob == "ipex" and platform == "xpu":
            # On XPU the extension is the runtime, not an optimisation: IPEX's
            # default (yes, as in the reference) holds for both presets.
            values[knob], sources[knob] = value, "default"
        else:
            values[knob], sources[knob] = preset[knob], "preset"
    knobs = Knobs(cfg.optimize, platform, values, sources)

    for knob in CUDA_ONLY:
        if platform != "cuda":
            if values[knob] and knobs.explicit(knob):
                knobs.fall_back(knob, True, False, f"CUDA only; the platform is {platform}")
            values[knob], sources[knob] = False, "n/a"
    if platform == "cuda":
        if values["ipex"] and knobs.explicit("ipex"):
            knobs.fall_back("ipex", True, False, "Intel Extension for PyTorch is for CPUs and Intel GPUs")
        values["ipex"], sources["ipex"] = False, "n/a"

    if values["compile"] != "none" and caps.compile_problem:
        if knobs.explicit("compile"):
            raise KnobError(
                "compile", f"{values['compile']!r} cannot run here: {caps.compile_problem} (accepted here: none)"
            )
        knobs.fall_back("compile", values["compile"], "none", caps.compile_problem)

    if values["ipex"] and caps.ipex_problem:
        if knobs.explicit("ipex"):
            raise KnobError(
                "ipex",
                f"'yes' but Intel Extension for PyTorch cannot be used: {caps.ipex_problem} "
                f"(accepted here: no"
                f"{', PyTorch' + chr(39) + 's own torch.xpu' if platform == 'xpu' else ''})",
            )
        knobs.fall_back("ipex", True, False, f"Intel Extension for PyTorch unavailable: {caps.ipex_problem}")

    if values["cuda_graphs"]:
        if values["compile"] in GRAPHING_COMPILE_MODES:
            knobs.fall_back(
                "cuda_graphs",
                True,
                False,
                f"COMPILE={values['compile']} already captures CUDA graphs (cudagraph trees)",
            )
        elif caps.graph_problem:
            if knobs.explicit("cuda_graphs"):
                raise KnobError("cuda_graphs", f"'yes' cannot run here: {caps.graph_problem} (accepted here: no)")
            knobs.fall_back("cuda_graphs", True, False, caps.graph_problem)
    if values["cuda_graphs"] and not values["preallocate"]:
        knobs.fall_back("preallocate", False, True, "CUDA graphs replay from static input buffers")
        sources["preallocate"] = "forced"
    return knobs


# ----------------------------------------------------------------- the impure part


def compile_problem(platform: str) -> str | None:
    """Why torch.compile's default backend (Inductor) cannot run here, or None."""
    import importlib.util
    import os
    import shutil

    try:
        import torch._dynamo

        if not torch._dynamo.is_dynamo_supported():
            return "torch.compile does not support this Python version"
    except Exception as exc:  # noqa: BLE001 - any failure here means "no compile"
        return f"torch.compile is unavailable ({type(exc).__name__}: {exc})".splitlines()[0]
    if platform == "cpu":
        cxx = os.environ.get("CXX") or "g++"
        if shutil.which(cxx) is None:
            return f"Inductor needs a C++ compiler and {cxx!r} is not on PATH (install g++ or set CXX)"
        return None
    if importlib.util.find_spec("triton") is None:
        return f"Inductor needs Triton on {platform} and it is not installed"
    return None


def graph_problem(net) -> str | None:
    if getattr(net, "data_dependent", False):
        return (
            f"model {net.variant.name if hasattr(net, 'variant') else type(net).__name__} branches on its "
            "own output (large-motion re-run), which needs a host sync a CUDA graph cannot capture"
        )
    return None


def probe_caps(platform: str, net, cfg) -> Caps:
    """The facts `resolve` needs; probes only what the configuration could use."""
    from rifebench.backends.device import import_ipex

    explicit, asked = _requested(cfg, "ipex")
    wants_ipex = asked if explicit or platform == "xpu" else PRESETS[cfg.optimize][platform]["ipex"]
    ipex_problem = None
    if wants_ipex and platform != "cuda":
        _, ipex_problem = import_ipex()
    wants_compile = cfg.compile not in ("none", "auto") or (
        cfg.compile == "auto" and PRESETS[cfg.optimize][platform]["compile"] != "none"
    )
    return Caps(
        compile_problem=compile_problem(platform) if wants_compile else None,
        ipex_problem=ipex_problem,
        graph_problem=graph_problem(net),
    )


def preflight(cfg) -> Knobs:
    """Resolve the knobs before anything heavy (cfg.platform already resolved),
    so that an impossible explicit value is refused in a second (exit 2). The
    network is built on the meta device: only its structure is asked about."""
    import torch

    with torch.device("meta"):
        net = cfg.spec.build()()
    return resolve(cfg, cfg.platform, probe_caps(cfg.platform, net, cfg))


def summarize(records: list) -> dict | None:
    """The run's knobs for results.json from the streams' records: the first
    stream's effective values, every distinct fallback, and the knobs whose
    effective value differs between streams (a runtime fallback in one)."""
    records = [r for r in records if r]
    if not records:
        return None
    out = {k: v for k, v in records[0].items() if k != "fallbacks"}
    seen, fallbacks = set(), []
    for r in records:
        for f in r.get("fallbacks", []):
            key = (f["knob"], str(f["effective"]), f["reason"])
            if key not in seen:
                seen.add(key)
                fallbacks.append(f)
    out["fallbacks"] = fallbacks
    out["differs_between_streams"] = sorted(
        {k for r in records[1:] for k, v in r.get("effective", {}).items() if out["effective"].get(k) != v}
    )
    return out
