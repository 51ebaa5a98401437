"""The run's preparation, between parsing and launching: every check that can
refuse the run (platform, output folder, streams, dataset, memory, weights),
then what the report needs to know of the model (identity, FLOPs) and, after
the streams, of the device (its peak). Raises UsageError (exit 2)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rifebench.console import log
from rifebench.errors import UsageError
from rifebench.fsutil import kind_name
from rifebench.warning_codes import warning

if TYPE_CHECKING:
    from rifebench.config import Config
    from rifebench.fsutil import OutputLock
    from rifebench.measure.records import StreamResult
    from rifebench.run.pinning import Plan

NULL_WEIGHTS = "null model: no weights"


@dataclass(frozen=True)
class Flops:
    """FLOPs of one pair at the run's padded size; `basis` says how they were
    counted, or why they were not (then the figures are None)."""

    basis: str
    gflop_per_pair: float | None = None
    gflop_per_call: float | None = None
    padded_size: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.gflop_per_call is None:
            return {"gflop_per_pair": self.gflop_per_pair, "basis": self.basis}
        return {
            "gflop_per_pair": self.gflop_per_pair,
            "gflop_per_call": self.gflop_per_call,
            "padded_size": list(self.padded_size) if self.padded_size is not None else None,
            "basis": self.basis,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Flops:
        size = d.get("padded_size")
        return cls(d["basis"], d.get("gflop_per_pair"), d.get("gflop_per_call"), tuple(size) if size else None)


@dataclass(frozen=True)
class ModelInfo:
    """The model's identity: results.json's `model` section."""

    name: str
    description: str
    weights_path: str | None
    sha256: str | None
    official_sha256: str | None
    parameters: int
    modulus: int
    weights: str | None = None  # the null model: why there is no weights file
    null_ms: float | None = None  # the null model: its busy-wait per frame
    flops: Flops | None = None
    checksum: dict[str, Any] | None = None  # what the file is held to (fetch/lock.py: published or first-fetch lock)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.weights is not None:
            d["weights"] = self.weights
        d.update(
            weights_path=self.weights_path,
            sha256=self.sha256,
            official_sha256=self.official_sha256,
            parameters=self.parameters,
            modulus=self.modulus,
        )
        if self.null_ms is not None:
            d["null_ms"] = self.null_ms
        d["flops"] = self.flops.to_dict() if self.flops is not None else None
        if self.checksum is not None:
            d["checksum"] = self.checksum
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelInfo:
        flops = d.get("flops")
        return cls(
            d["name"],
            d["description"],
            d.get("weights_path"),
            d.get("sha256"),
            d.get("official_sha256"),
            d["parameters"],
            d["modulus"],
            weights=d.get("weights"),
            null_ms=d.get("null_ms"),
            flops=Flops.from_dict(flops) if flops else None,
            checksum=d.get("checksum"),
        )


@dataclass(frozen=True)
class DevicePeak:
    """The device's peak TFLOP/s at the run's precision, and where the figure comes from."""

    tflops: float | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"tflops": self.tflops, "source": self.source}


@dataclass
class Prepared:
    """What the preparation produced: the settled config, the model's identity,
    the streams' plan and the warnings found on the way."""

    cfg: Config
    model: ModelInfo
    plan: Plan
    warnings: list[dict[str, Any]] = field(default_factory=list)


def prepare(cfg: Config) -> Prepared:
    """Everything that can refuse the run, before anything heavy: platform,
    output folder, streams, dataset, weights. Raises UsageError (exit 2)."""
    from rifebench.run.startup import startup_checks

    cfg, plan = startup_checks(cfg)
    if cfg.platform == "cpu":  # on a GPU the frames and activations are in the device's memory: out of scope
        from rifebench.run.memory import check as check_memory

        check_memory(cfg)  # before any weights download: a run that cannot fit fails in a second
    model, warnings = check_weights(cfg)
    if cfg.precision == "int8":  # which frames calibrate it; a warning when none are real
        from rifebench.runtimes import calibration

        warnings += calibration.warnings_of(
            calibration.source_of(cfg.calibration, cfg.dataset_dir, calibration.bundled_set())
        )
    return Prepared(cfg, replace(model, flops=model_flops(cfg)), plan, warnings)


def lock_output_dir(path: str) -> OutputLock:
    """One run per folder: a second run into it is refused, naming the first; a
    folder, FIFO, link or device at the lock's name is refused, naming it."""
    from rifebench.fsutil import LOCK_NAME, OutputLock

    lock = Path(path).expanduser().resolve() / LOCK_NAME
    what = _not_a_file(lock)
    if what is not None:
        raise UsageError(
            f"--output-dir/OUTPUT_DIR: {str(lock)!r} is {what}, not the run lock file this harness keeps there "
            "(accepted: a regular file or nothing at that name: remove it)"
        )
    try:
        return OutputLock(path).acquire()
    except OSError as exc:
        raise UsageError(
            f"--output-dir/OUTPUT_DIR: {(exc.strerror and f'{path!r}: {exc.strerror}') or exc} "
            "(accepted: a folder no other run is using)"
        ) from None


def _not_a_file(path: Path) -> str | None:
    """What is at `path` when it is neither nothing nor a regular file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return None if stat.S_ISREG(mode) else kind_name(mode)


def new_folders(path: str) -> list[Path]:
    """`path` and those of its parents that do not exist yet, deepest first: what
    creating it would create."""
    target = Path(path).expanduser().resolve()
    missing = []
    for folder in (target, *target.parents):
        if os.path.lexists(folder):
            break
        missing.append(folder)
    return missing


@contextlib.contextmanager
def refused(output_dir: str) -> Iterator[None]:
    """A run refused (bad input, memory admission, an interruption) before it
    began removes the folders it created for OUTPUT_DIR, when still empty:
    only what this run created, and nothing that holds a file."""
    made = new_folders(output_dir)
    try:
        yield
    except BaseException:
        for folder in made:
            try:
                folder.rmdir()  # an empty folder only: anything put there meanwhile stays
            except OSError:
                break
        raise


def model_flops(cfg: Config) -> Flops | None:
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
        return Flops(f"not counted: {type(exc).__name__}: {exc}")
    # INTERPOLATION=N makes N forward calls per pair (N timesteps, or 2^k - 1 bisection calls).
    return Flops(one["basis"], one["gflop"] * cfg.interpolation, one["gflop"], (h, w))


def device_peak(cfg: Config, streams: list[StreamResult]) -> DevicePeak | None:
    """The device's peak TFLOP/s at the run's precision: the table of known GPUs,
    else (MEASURE_PEAK) a one-second matrix-product measurement on the device."""
    if cfg.platform == "cpu":
        return None
    from rifebench.measure.flops import measured_matmul_tflops, peak_tflops

    dev = next((r.device for r in streams if r.device), None) or {}
    tf32 = bool(((streams[0].knobs or {}).get("effective") or {}).get("tf32")) if streams else False
    table = peak_tflops(dev.get("name") or "", cfg.precision, tf32=tf32)
    if table is not None and cfg.measure_peak != "yes":
        return DevicePeak(table, f"table: {dev.get('name')} dense {cfg.precision}")
    if cfg.measure_peak == "no" or not dev.get("device"):
        return None
    try:
        measured = measured_matmul_tflops(
            dev["device"], "tf32" if tf32 and cfg.precision == "fp32" else cfg.precision, seconds=1.0
        )
    except Exception as exc:  # noqa: BLE001 - a missing figure must not fail a run that measured
        return DevicePeak(None, f"measurement failed: {type(exc).__name__}: {exc}")
    return DevicePeak(measured, f"measured: 8192x8192 {cfg.precision} matmuls for 1 s on {dev['device']}")


def check_weights(cfg: Config) -> tuple[ModelInfo, list[dict[str, Any]]]:
    """Fetch the default weights when missing (as get_model.sh does), then load
    them once here so that a wrong file fails in a second, not in every stream.
    Returns the model's identity and any warning about the file."""
    spec = cfg.spec
    modulus = spec.modulus_for(cfg.scale)
    if spec.weights_file is None:
        return ModelInfo(spec.name, spec.description, None, None, None, 0, modulus, NULL_WEIGHTS, cfg.null_ms), []
    from rifebench.fsutil import sha256_file

    assert cfg.load_path is not None, "config.resolve sets LOAD_PATH for every model with weights"
    path = Path(cfg.load_path)  # startup_checks refused a missing one that is not the fetchable default
    parameters = _load_weights(cfg, path)
    digest = sha256_file(path)
    from rifebench.fetch.lock import checksum_of

    held = checksum_of(spec, path, digest)
    info = ModelInfo(spec.name, spec.description, str(path), digest, spec.sha256, parameters, modulus)
    info = replace(info, checksum=held.to_dict())
    if cfg.random_weights:  # speed only, recorded as such: never compared with any checksum
        from rifebench.models.weights import RANDOM_NOTE
        from rifebench.models.zoo import RANDOM_SEED

        note = RANDOM_NOTE.format(seed=RANDOM_SEED)
        info = replace(info, weights=note, checksum={"basis": "random weights", "seed": RANDOM_SEED})
        return info, [warning("RANDOM_WEIGHTS", model=spec.name, seed=RANDOM_SEED)]
    if held.matches is False:  # not the published file, or not the one the first fetch locked
        return info, [warning("WEIGHTS_NOT_OFFICIAL", path=str(path), model=spec.name, sha256=digest[:12])]
    return info, []


def _load_weights(cfg: Config, path: Path) -> int:
    """Fetch the default weights when missing, load them; their parameter count."""
    from rifebench.fetch.weights import FetchError, fetch
    from rifebench.models.weights import WeightsError, load_model

    spec = cfg.spec
    if cfg.random_weights and not path.exists():
        from rifebench.models.weights import write_random_weights

        log(f"model {spec.name}: writing seeded random weights of its official shapes to {path} (speed only)")
        write_random_weights(spec, path)
    if not path.exists():
        log(f"weights for model {spec.name} not found at {path}; fetching them (as ./get_model.sh --model {spec.name})")
        try:
            assert cfg.models_dir is not None, "config.resolve always sets MODELS_DIR"
            fetch(spec, Path(cfg.models_dir), log=log)
        except FetchError as exc:
            raise UsageError(f"--pretrained-weights/LOAD_PATH: {exc}") from None
    try:
        net = load_model(spec, str(path))
    except WeightsError as exc:
        raise UsageError(f"--pretrained-weights/LOAD_PATH: {exc}") from None
    return int(sum(p.numel() for p in net.parameters()))
