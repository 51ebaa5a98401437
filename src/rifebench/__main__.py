"""CLI: options -> config -> checks -> launch -> report; exit codes.

`python -m rifebench [run] OPTIONS` is run_model.sh; the other tools are
subcommands: `bench` (benchmark.sh), `compare`, `study`, `fetch-model`
(get_model.sh), `fetch-dataset` (get_dataset.sh). Exit status: status.Exit.
"""
from __future__ import annotations

import importlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rifebench import __version__
from rifebench.errors import UsageError
from rifebench.status import Exit, Status
from rifebench.warning_codes import line, warning

PROG = "run_model.sh"
SUBCOMMANDS = {"bench": "rifebench.bench.runner", "compare": "rifebench.report.compare",
               "study": "rifebench.bench.study", "fetch-model": "rifebench.fetch.weights",
               "fetch-dataset": "rifebench.fetch.vimeo"}


@dataclass
class Prepared:
    """What the start-up checks produced: the final config, the model's
    identity, the streams' plan and the warnings found on the way."""

    cfg: object
    model: dict
    plan: object
    warnings: list = field(default_factory=list)


def log(msg: str) -> None:
    print(msg, flush=True)


def error(msg: str) -> None:
    print(f"{PROG}: error: {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    if argv[:1] == ["run"]:
        argv = argv[1:]
    if "--options-markdown" in argv or "--warnings-markdown" in argv:
        from rifebench import options, warning_codes

        print((options if "--options-markdown" in argv else warning_codes).markdown_table())
        return Exit.PASS
    try:
        from rifebench.config import resolve

        ready = prepare(resolve(argv))
    except UsageError as exc:
        error(str(exc))
        return Exit.USAGE
    from rifebench.run.teelog import Tee

    with Tee(str(Path(ready.cfg.output_dir) / "output.log")):
        return run(ready)


def prepare(cfg) -> Prepared:
    """Everything that can refuse the run, before anything heavy: platform,
    output folder, streams, dataset, weights. Raises UsageError (exit 2)."""
    from rifebench.backends.device import BackendUnavailable, gpu_identities, resolve_platform

    try:
        platform = resolve_platform(cfg.platform)
    except BackendUnavailable as exc:
        raise UsageError(str(exc)) from None
    precision = cfg.precision if cfg.precision != "auto" else ("fp32" if platform == "cpu" else "fp16")
    origin = dict(cfg.origin)
    for name, before, after in (("platform", cfg.platform, platform), ("precision", cfg.precision, precision)):
        if before != after:
            origin[name] = f"{origin[name]} ({before} -> {after})"
    cfg = cfg.replace(platform=platform, precision=precision, origin=origin)
    from rifebench.backends.knobs import KnobError, preflight as check_knobs

    try:
        check_knobs(cfg)  # e.g. IPEX=yes without the extension, COMPILE without a C++ compiler
    except KnobError as exc:
        from rifebench.options import flag_of

        raise UsageError(f"{flag_of(exc.knob)}: {exc}") from None
    check_output_dir(cfg.output_dir)
    from rifebench.run.launcher import preflight

    plan = preflight(cfg, gpu_identities(cfg.platform, cfg.device_list))  # PIN, DEVICES, SOCKET, in a second
    if not cfg.dummy:  # a broken dataset fails in a second, not after the models are loaded
        from rifebench.data.vimeo import ACCEPTED, DatasetError, triplets

        try:
            triplets(cfg.dataset_dir, cfg.num_inputs)
        except DatasetError as exc:
            raise UsageError(f"--data/DATASET_DIR: {exc} (accepted: {ACCEPTED})") from None
    model, warnings = check_weights(cfg)
    model["flops"] = model_flops(cfg)
    return Prepared(cfg, model, plan, warnings)


def model_flops(cfg) -> dict | None:
    """FLOPs of one pair at the run's padded size (dummy mode: one size), counted
    once; a count that fails is recorded, never fatal."""
    spec = cfg.spec
    if not cfg.dummy or spec.weights_file is None:
        return None
    from rifebench.measure.flops import count_gflop

    m = spec.modulus_for(cfg.scale)
    h, w = -(-cfg.data_height // m) * m, -(-cfg.data_width // m) * m
    try:
        one = count_gflop(spec.build(), h, w, batch=1, scale=cfg.scale, arbitrary_timestep=spec.arbitrary_timestep,
                          modulus=m)
    except Exception as exc:  # noqa: BLE001 - a missing figure must not stop a benchmark
        return {"gflop_per_pair": None, "basis": f"not counted: {type(exc).__name__}: {exc}"}
    # INTERPOLATION=N makes N forward calls per pair (N timesteps, or 2^k - 1 bisection calls).
    return {"gflop_per_pair": one["gflop"] * cfg.interpolation, "gflop_per_call": one["gflop"],
            "padded_size": [h, w], "basis": one["basis"]}


def device_peak(cfg, streams: list[dict]) -> dict | None:
    """The device's peak TFLOP/s at the run's precision: the table of known GPUs,
    else (MEASURE_PEAK) a one-second matrix-product measurement on the device."""
    if cfg.platform == "cpu":
        return None
    from rifebench.measure.flops import measured_matmul_tflops, peak_tflops

    dev = next((r.get("device") for r in streams if r.get("device")), None) or {}
    tf32 = bool(((streams[0].get("knobs") or {}).get("effective") or {}).get("tf32")) if streams else False
    table = peak_tflops(dev.get("name") or "", cfg.precision, tf32=tf32)
    if table is not None and cfg.measure_peak != "yes":
        return {"tflops": table, "source": f"table: {dev.get('name')} dense {cfg.precision}"}
    if cfg.measure_peak == "no" or not dev.get("device"):
        return None
    try:
        measured = measured_matmul_tflops(dev["device"], "tf32" if tf32 and cfg.precision == "fp32" else
                                          cfg.precision, seconds=1.0)
    except Exception as exc:  # noqa: BLE001
        return {"tflops": None, "source": f"measurement failed: {type(exc).__name__}: {exc}"}
    return {"tflops": measured, "source": f"measured: 8192x8192 {cfg.precision} matmuls for 1 s on {dev['device']}"}


def check_output_dir(path: str) -> None:
    import tempfile

    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise UsageError(f"--output-dir/OUTPUT_DIR: {path!r} is not writable ({exc.strerror or exc}) "
                          "(accepted: a folder this user can create and write)") from None


def check_weights(cfg) -> tuple[dict, list]:
    """Fetch the default weights when missing (as get_model.sh does), then load
    them once here so that a wrong file fails in a second, not in every stream.
    Returns the model's identity and any warning about the file."""
    from rifebench.fetch.weights import FetchError, fetch
    from rifebench.fsutil import sha256_file
    from rifebench.models.weights import WeightsError, load_model

    spec = cfg.spec
    if spec.weights_file is None:
        return {"name": spec.name, "description": spec.description, "weights": "null model: no weights",
                "weights_path": None, "sha256": None, "official_sha256": None, "parameters": 0,
                "modulus": spec.modulus_for(cfg.scale), "null_ms": cfg.null_ms}, []
    path = Path(cfg.load_path)
    is_default = path == spec.weights_path(cfg.models_dir)
    if not path.exists():
        if not is_default:
            raise UsageError(f"--pretrained-weights/LOAD_PATH: {str(path)!r} does not exist "
                              f"(accepted: a weights file for model {spec.name}; ./get_model.sh --model "
                              f"{spec.name} fetches the official one)")
        log(f"weights for model {spec.name} not found at {path}; fetching them (as ./get_model.sh --model "
            f"{spec.name})")
        try:
            fetch(spec, Path(cfg.models_dir), log=log)
        except FetchError as exc:
            raise UsageError(f"--pretrained-weights/LOAD_PATH: {exc}") from None
    try:
        net = load_model(spec, str(path))
    except WeightsError as exc:
        raise UsageError(f"--pretrained-weights/LOAD_PATH: {exc}") from None
    digest = sha256_file(path)
    info = {"name": spec.name, "description": spec.description, "weights_path": str(path), "sha256": digest,
            "official_sha256": spec.sha256, "parameters": sum(p.numel() for p in net.parameters()),
            "modulus": spec.modulus_for(cfg.scale)}
    if spec.sha256 and digest != spec.sha256:
        return info, [warning("WEIGHTS_NOT_OFFICIAL", path=str(path), model=spec.name, sha256=digest[:12])]
    return info, []


def run(ready: Prepared) -> int:
    from rifebench.report import results as report
    from rifebench.run.launcher import launch

    cfg = ready.cfg
    log(f"rifebench {__version__}: model {cfg.model}, {cfg.mode} mode, platform {cfg.platform}, "
        f"precision {cfg.precision}{' (amp)' if cfg.amp else ''}, {cfg.streams} stream(s)")
    for w in ready.warnings:
        log(line(w))
    started_wall = time.time()
    report.begin(cfg, ready.model)
    outcomes = []
    for i in range(cfg.repeat):
        if cfg.repeat > 1:
            log(f"repetition {i + 1} of {cfg.repeat}")
        outcomes.append(launch(cfg, ready.plan, log=log))
        outcomes[-1].warnings[:0] = ready.warnings
        if outcomes[-1].status != Status.COMPLETED:
            break  # a failed or interrupted repetition ends the run; its failure is the run's
    streams = outcomes[-1].streams
    peak = device_peak(cfg, streams) if streams else None
    doc, code = report.finish(cfg, ready.model, outcomes, started_wall, peak)
    report.print_summary(doc, log)
    return code


if __name__ == "__main__":
    sys.exit(main())
