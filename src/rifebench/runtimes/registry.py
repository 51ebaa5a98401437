"""Which runtimes exist, what each accepts, and whether it is installed.

Light on purpose: the configuration checks import this module before anything
heavy runs, so it never imports torch, and it imports a runtime only where the
question cannot be answered otherwise (is ONNX Runtime's TensorRT provider
compiled in?).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from rifebench.errors import UsageError


@dataclass(frozen=True)
class RuntimeSpec:
    name: str
    modules: tuple[str, ...]  # any one importable means installed
    install: str  # the command a user runs to get it
    precisions: tuple[str, ...]  # PRECISION values it runs (after auto is resolved)
    platforms: tuple[str, ...]  # PLATFORM values it runs on


RUNTIMES: dict[str, RuntimeSpec] = {
    r.name: r
    for r in (
        RuntimeSpec("torch", ("torch",), "./setup.sh", ("fp32", "fp16", "bf16"), ("cpu", "cuda", "xpu")),
        RuntimeSpec(
            "onnxruntime",
            ("onnxruntime",),
            "./setup.sh --runtimes onnxruntime (or pip install 'rifebench[onnxruntime]'; onnxruntime-gpu on NVIDIA)",
            ("fp32", "fp16"),
            ("cpu", "cuda"),
        ),
        RuntimeSpec(
            "openvino",
            ("openvino",),
            "./setup.sh --runtimes openvino (or pip install 'rifebench[openvino]')",
            ("fp32", "bf16", "fp16", "int8"),
            ("cpu", "xpu"),
        ),
        RuntimeSpec(
            "tensorrt",
            ("onnxruntime", "torch_tensorrt"),
            "pip install onnxruntime-gpu tensorrt (ONNX Runtime's TensorRT provider) or pip install torch-tensorrt",
            ("fp32", "fp16"),
            ("cuda",),
        ),
    )
}
NAMES = tuple(RUNTIMES)
INT8_INSTALL = "./setup.sh --runtimes openvino (or pip install 'rifebench[int8]')"
EXPORTER = ("onnx", "onnxscript")  # torch.onnx.export(dynamo=True) needs both
# Models a runtime cannot run: the null model is a host busy-wait, not a network.
NOT_EXPORTABLE = {"null": "the null model is a host busy-wait, not a network"}


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def ort_providers() -> list[str]:
    """ONNX Runtime's compiled-in execution providers ([] when it is absent)."""
    if not installed("onnxruntime"):
        return []
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def tensorrt_route(providers: list[str] | None = None, torch_trt: bool | None = None) -> str | None:
    """How TensorRT would run here: "ort" (ONNX Runtime's TensorRT provider),
    "torch_tensorrt", or None when neither is installed."""
    providers = ort_providers() if providers is None else providers
    if "TensorrtExecutionProvider" in providers:
        return "ort"
    if installed("torch_tensorrt") if torch_trt is None else torch_trt:
        return "torch_tensorrt"
    return None


def missing(name: str) -> str | None:
    """Why runtime `name` cannot be used here (one line with the install command), or None."""
    spec = RUNTIMES[name]
    if name == "tensorrt":
        if tensorrt_route() is None:
            return (
                "tensorrt needs ONNX Runtime's TensorRT execution provider or torch-tensorrt, and neither is "
                f"installed (install: {spec.install})"
            )
        return None
    if not any(installed(m) for m in spec.modules):
        return f"{name} is not installed (install: {spec.install})"
    if not all(installed(m) for m in EXPORTER):
        return f"{name} needs the ONNX exporter's onnx and onnxscript, not installed (install: {spec.install})"
    return None


def check(cfg, flag) -> None:
    """The configuration checks of RUNTIME; `flag(name)` spells an option as
    --flag/VARIABLE. Raises UsageError with one line."""
    name = cfg.runtime
    check_int8(cfg, flag)
    if cfg.ov_hint != "latency" and name != "openvino":
        raise UsageError(
            f"{flag('ov_hint')} {cfg.ov_hint} applies to RUNTIME=openvino only (accepted with {name}: latency)"
        )
    if name == "torch":
        return
    spec = RUNTIMES[name]
    rt = f"{flag('runtime')} {name}"
    if cfg.model in NOT_EXPORTABLE:
        raise UsageError(
            f"{rt}: cannot run {flag('model')} {cfg.model}: {NOT_EXPORTABLE[cfg.model]} "
            "(accepted: RUNTIME=torch, or a RIFE model)"
        )
    if cfg.platform != "auto" and cfg.platform not in spec.platforms:
        raise UsageError(
            f"{rt}: does not run on {flag('platform')} {cfg.platform} (accepted: {', '.join(spec.platforms)})"
        )
    if cfg.precision != "auto" and cfg.precision not in spec.precisions:
        raise UsageError(
            f"{rt}: does not run {flag('precision')} {cfg.precision} (accepted: {', '.join(spec.precisions)})"
        )
    if cfg.amp:
        raise UsageError(
            f"{rt}: {flag('amp')} is torch.autocast, which an exported graph does not have "
            "(accepted: AMP off; PRECISION sets the runtime's precision)"
        )
    for knob, off in (
        ("compile", ("auto", "none")),
        ("channels_last", ("auto", "no")),
        ("cuda_graphs", ("auto", "no")),
    ):
        if getattr(cfg, knob) not in off:
            raise UsageError(
                f"{rt}: {flag(knob)} {getattr(cfg, knob)} applies to RUNTIME=torch only "
                f"(accepted with {name}: {' or '.join(off)})"
            )
    why = missing(name)
    if why is not None:
        raise UsageError(f"{flag('runtime')}: {why}")


def check_int8(cfg, flag) -> None:
    """PRECISION=int8 (NNCF in OpenVINO, on the CPU) and CALIBRATION, which only it reads."""
    if cfg.calibration is not None and cfg.precision != "int8":
        raise UsageError(
            f"{flag('calibration')} applies to PRECISION=int8 only, and PRECISION is {cfg.precision} "
            "(accepted: --precision int8 --runtime openvino, or no CALIBRATION)"
        )
    if cfg.precision != "int8":
        return
    if cfg.runtime != "openvino":
        raise UsageError(
            f"{flag('precision')} int8 is NNCF post-training quantization in OpenVINO, not RUNTIME={cfg.runtime} "
            f"(accepted: --runtime openvino with int8; with {cfg.runtime}: "
            f"{', '.join(RUNTIMES[cfg.runtime].precisions)})"
        )
    if cfg.platform not in ("auto", "cpu"):
        raise UsageError(f"{flag('precision')} int8 runs on the CPU only (accepted: --platform cpu or auto)")
    from rifebench.runtimes.calibration import ACCEPTED, problem  # numpy: only where int8 is asked for

    if cfg.calibration is not None and (why := problem(cfg.calibration)):
        raise UsageError(f"{flag('calibration')}: {cfg.calibration!r} {why} (accepted: {ACCEPTED})")
    if not installed("nncf"):
        raise UsageError(f"{flag('precision')} int8 needs NNCF, which is not installed (install: {INT8_INSTALL})")
