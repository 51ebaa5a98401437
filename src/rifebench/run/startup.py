"""The run's start-up checks that load nothing and fetch nothing, shared by
run_model.sh (before the weights are loaded) and benchmark.sh (for every row of
a profile, before row 1 runs), so a row that cannot start fails in a second."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rifebench import paths
from rifebench.errors import UsageError

if TYPE_CHECKING:
    from rifebench.config import Config
    from rifebench.run.pinning import Plan


def startup_checks(cfg: Config, output_dir: bool = True) -> tuple[Config, Plan]:
    """prepare()'s checks that load nothing and fetch nothing: platform, knobs,
    output folder (unless output_dir is False: benchmark.sh creates each row's
    folder itself), streams plan, dataset list, a LOAD_PATH that is not the
    fetchable default. Returns (settled cfg, plan); raises UsageError."""
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
    from rifebench.backends.knobs import KnobError
    from rifebench.backends.knobs import preflight as check_knobs

    try:
        check_knobs(cfg)  # e.g. IPEX=yes without the extension, COMPILE without a C++ compiler
    except KnobError as exc:
        from rifebench.options import flag_of

        raise UsageError(f"{flag_of(exc.knob)}: {exc}") from None
    if output_dir:
        check_output_dir(cfg.output_dir)
    from rifebench.run.launcher import preflight

    plan = preflight(cfg, gpu_identities(cfg.platform, cfg.device_list))  # PIN, DEVICES, SOCKET, in a second
    if cfg.mode == "video":  # not a video, an unsupported codec, too few frames: before any model loads
        from rifebench.data.video import VideoError
        from rifebench.data.video import check as check_video

        try:
            check_video(cfg)
        except VideoError as exc:  # its message ends with what is accepted
            raise UsageError(f"--data/DATASET_DIR: {exc}") from None
    elif cfg.dataset_dir is not None:  # quality mode: a broken dataset fails in a second, not after the models load
        from rifebench.data.vimeo import ACCEPTED, DatasetError, triplets

        try:
            triplets(cfg.dataset_dir, cfg.num_inputs)
        except DatasetError as exc:
            raise UsageError(f"--data/DATASET_DIR: {exc} (accepted: {ACCEPTED})") from None
    check_load_path(cfg)
    return cfg, plan


def check_output_dir(path: str) -> None:
    """A writable folder with some space free, its output files not symlinks."""
    from rifebench.fsutil import OutputDirError, prepare_dir

    try:
        prepare_dir(
            path, files=("output.log", "results.json", "results.yaml", "images", "previous", "interpolated.mkv")
        )
    except OutputDirError as exc:
        raise UsageError(f"--output-dir/OUTPUT_DIR: {exc}") from None


def check_load_path(cfg: Config) -> None:
    """A missing LOAD_PATH is refused unless it is the default, which is fetched."""
    spec = cfg.spec
    if spec.weights_file is None or cfg.load_path is None:  # config.resolve sets it for a model with weights
        return
    path = Path(cfg.load_path)
    if not path.exists() and path != spec.weights_path(cfg.models_dir) and not cfg.random_weights:
        raise UsageError(
            f"--pretrained-weights/LOAD_PATH: {str(path)!r} does not exist "
            f"(accepted: a weights file for model {spec.name}; {paths.tool_command('fetch-model')} --model "
            f"{spec.name} fetches the official one)"
        )
