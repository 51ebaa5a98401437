"""CLI: options -> config -> checks -> launch -> report; exit codes.

`python -m rifebench [run] OPTIONS` is run_model.sh; the other tools are
subcommands: `bench` (benchmark.sh), `compare`, `study`, `fetch-model`
(get_model.sh), `fetch-dataset` (get_dataset.sh), `fleet` (Slurm, Kubernetes). Exit
status: status.Exit.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rifebench import __version__
from rifebench.errors import UsageError
from rifebench.run.interrupts import Deferred, Interrupted, interrupted_late, raise_on_signals
from rifebench.status import Exit, Status
from rifebench.warning_codes import line, warning

PROG = "run_model.sh"
SUBCOMMANDS = {
    "bench": "rifebench.bench.runner",
    "compare": "rifebench.compare.cli",
    "study": "rifebench.study.cli",
    "fetch-model": "rifebench.fetch.weights",
    "fetch-dataset": "rifebench.fetch.vimeo",
    "fleet": "rifebench.fleet.cli",
}

TORCH_MISSING = (
    "PyTorch is not installed in this Python (accepted: run ./setup.sh in a checkout, which picks "
    "the build for this machine, or pip install torch --index-url "
    "https://download.pytorch.org/whl/cpu (or .../whl/cu128 for NVIDIA, .../whl/xpu for Intel GPUs))"
)


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


class _Stdout:
    """sys.stdout whose first broken pipe (`| head -1`) sends the rest to /dev/null,
    as Python's documentation on SIGPIPE advises, so that the run goes on and keeps
    its exit status instead of dying in a BrokenPipeError traceback."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            self._to_devnull(exc)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            self._to_devnull(exc)

    def _to_devnull(self, exc: OSError) -> None:
        if exc.errno not in (errno.EPIPE, errno.EBADF):
            raise exc
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, self._stream.fileno())
        os.close(null)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _guard_stdio() -> None:
    # A descriptor closed at start (`>&-`) leaves sys.stdout None, and the next
    # descriptor opened would take its number: give it /dev/null first.
    for fd, name, mode in ((0, "stdin", os.O_RDONLY), (1, "stdout", os.O_WRONLY), (2, "stderr", os.O_WRONLY)):
        if getattr(sys, name) is None:
            null = os.open(os.devnull, mode)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))
    if not isinstance(sys.stdout, _Stdout):
        sys.stdout = _Stdout(sys.stdout)


def main(argv: list[str] | None = None) -> int:
    _guard_stdio()
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
    except ModuleNotFoundError as exc:
        if exc.name != "torch" and not (exc.name or "").startswith("torch."):
            raise
        error(TORCH_MISSING)
        return Exit.USAGE
    from rifebench.report.previous import set_aside_previous
    from rifebench.run.teelog import Tee

    try:
        lock = lock_output_dir(ready.cfg.output_dir)
    except UsageError as exc:
        error(str(exc))
        return Exit.USAGE
    try:  # the lock lives as long as the run; the previous results go aside before output.log is opened
        set_aside_previous(ready.cfg.output_dir)
        with Tee(str(Path(ready.cfg.output_dir) / "output.log")), Deferred() as sigs:
            return run(ready, sigs)
    finally:
        lock.release()


def lock_output_dir(path: str):
    """One run per folder: a second run into it is refused, naming the first."""
    from rifebench.fsutil import OutputLock

    try:
        return OutputLock(path).acquire()
    except OSError as exc:
        raise UsageError(
            f"--output-dir/OUTPUT_DIR: {(exc.strerror and f'{path!r}: {exc.strerror}') or exc} "
            "(accepted: a folder no other run is using)"
        ) from None


def prepare(cfg) -> Prepared:
    """Everything that can refuse the run, before anything heavy: platform,
    output folder, streams, dataset, weights. Raises UsageError (exit 2)."""
    from rifebench.run.startup import startup_checks

    cfg, plan = startup_checks(cfg)
    if cfg.platform == "cpu":  # on a GPU the frames and activations are in the device's memory: out of scope
        from rifebench.run.memory import check as check_memory

        check_memory(cfg)  # before any weights download: a run that cannot fit fails in a second
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

    h, w = spec.padded_size(cfg.data_height, cfg.data_width, cfg.scale)
    try:
        one = count_gflop(
            spec.build(),
            h,
            w,
            batch=1,
            scale=cfg.scale,
            arbitrary_timestep=spec.arbitrary_timestep,
            modulus=spec.modulus_for(cfg.scale),
        )
    except Exception as exc:  # noqa: BLE001 - a missing figure must not stop a benchmark
        return {"gflop_per_pair": None, "basis": f"not counted: {type(exc).__name__}: {exc}"}
    # INTERPOLATION=N makes N forward calls per pair (N timesteps, or 2^k - 1 bisection calls).
    return {
        "gflop_per_pair": one["gflop"] * cfg.interpolation,
        "gflop_per_call": one["gflop"],
        "padded_size": [h, w],
        "basis": one["basis"],
    }


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
        measured = measured_matmul_tflops(
            dev["device"], "tf32" if tf32 and cfg.precision == "fp32" else cfg.precision, seconds=1.0
        )
    except Exception as exc:  # noqa: BLE001
        return {"tflops": None, "source": f"measurement failed: {type(exc).__name__}: {exc}"}
    return {"tflops": measured, "source": f"measured: 8192x8192 {cfg.precision} matmuls for 1 s on {dev['device']}"}


def check_weights(cfg) -> tuple[dict, list]:
    """Fetch the default weights when missing (as get_model.sh does), then load
    them once here so that a wrong file fails in a second, not in every stream.
    Returns the model's identity and any warning about the file."""
    from rifebench.fetch.weights import FetchError, fetch
    from rifebench.fsutil import sha256_file
    from rifebench.models.weights import WeightsError, load_model

    spec = cfg.spec
    if spec.weights_file is None:
        return {
            "name": spec.name,
            "description": spec.description,
            "weights": "null model: no weights",
            "weights_path": None,
            "sha256": None,
            "official_sha256": None,
            "parameters": 0,
            "modulus": spec.modulus_for(cfg.scale),
            "null_ms": cfg.null_ms,
        }, []
    path = Path(cfg.load_path)  # startup_checks refused a missing one that is not the fetchable default
    if not path.exists():
        log(f"weights for model {spec.name} not found at {path}; fetching them (as ./get_model.sh --model {spec.name})")
        try:
            fetch(spec, Path(cfg.models_dir), log=log)
        except FetchError as exc:
            raise UsageError(f"--pretrained-weights/LOAD_PATH: {exc}") from None
    try:
        net = load_model(spec, str(path))
    except WeightsError as exc:
        raise UsageError(f"--pretrained-weights/LOAD_PATH: {exc}") from None
    digest = sha256_file(path)
    info = {
        "name": spec.name,
        "description": spec.description,
        "weights_path": str(path),
        "sha256": digest,
        "official_sha256": spec.sha256,
        "parameters": sum(p.numel() for p in net.parameters()),
        "modulus": spec.modulus_for(cfg.scale),
    }
    if spec.sha256 and digest != spec.sha256:
        return info, [warning("WEIGHTS_NOT_OFFICIAL", path=str(path), model=spec.name, sha256=digest[:12])]
    return info, []


def run(ready: Prepared, sigs: Deferred | None = None) -> int:
    from rifebench.report import results as report
    from rifebench.run.launcher import Outcome, launch

    sigs = sigs or Deferred()  # not entered: records nothing

    cfg = ready.cfg
    log(
        f"rifebench {__version__}: model {cfg.model}, {cfg.mode_name} mode ({cfg.mode}), platform {cfg.platform}, "
        f"precision {cfg.precision}{' (amp)' if cfg.amp else ''}, {cfg.streams} stream(s)"
    )
    for w in ready.warnings:
        log(line(w))
    started_wall = time.time()
    try:
        report.begin(cfg, ready.model)
    except OSError as exc:
        return results_lost(cfg, exc)
    outcomes = []
    for i in range(cfg.repeat):
        if cfg.repeat > 1:
            log(f"repetition {i + 1} of {cfg.repeat}")
        # A signal before the launch stops the run here; one during it, the launcher.
        outcomes.append(Outcome(Status.INTERRUPTED) if sigs.received else launch(cfg, ready.plan, log=log))
        outcomes[-1].warnings[:0] = ready.warnings
        if outcomes[-1].status != Status.COMPLETED:
            break  # a failed or interrupted repetition ends the run; its failure is the run's
    streams = outcomes[-1].streams
    peak = device_peak(cfg, streams) if streams else None
    if sigs.received and outcomes[-1].status == Status.COMPLETED:
        outcomes[-1].status = Status.INTERRUPTED  # after the streams ended: kept, but not a pass
    try:
        doc, code = report.finish(cfg, ready.model, outcomes, started_wall, peak)
    except OSError as exc:
        return results_lost(cfg, exc)
    if sigs.received and doc["status"] != Status.INTERRUPTED:  # arrived while the results were written
        doc, code = interrupted_late(cfg, doc, sigs.received, log)
    report.print_summary(doc, log)
    return code


def results_lost(cfg, exc: OSError) -> int:
    """A result file could not be written (a full disk): say so in one line and
    leave no results.json claiming "running"; earlier runs stay in previous/."""
    from rifebench.report.previous import discard_unfinished

    discard_unfinished(cfg.output_dir)
    error(
        f"--output-dir/OUTPUT_DIR: results not written in {cfg.output_dir!r} ({exc.strerror or exc}); "
        "earlier runs' results are kept in its previous/ folder"
    )
    return Exit.FAIL


def cli() -> int:
    """`python -m rifebench`: a signal exits 130 with one line from here on (run/interrupts.py)."""
    raise_on_signals()
    try:
        return main()
    except Interrupted as exc:
        error(f"interrupted by {exc} during start-up; nothing was measured")
        return Exit.INTERRUPTED


if __name__ == "__main__":
    sys.exit(cli())
