"""CLI: options -> config -> checks -> launch -> report; exit codes.

0 passed, 1 failed (a stream failed, or the quality verdict), 2 bad input,
130 interrupted.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from . import __version__
from .options import OptionError

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PROG = "run_model.sh"


def log(msg: str) -> None:
    print(msg, flush=True)


def error(msg: str) -> None:
    print(f"{PROG}: error: {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--options-markdown" in argv:
        from .options import markdown_table

        print(markdown_table())
        return EXIT_PASS
    try:
        from .config import resolve

        cfg = resolve(argv)
        cfg, model_info = prepare(cfg)
    except OptionError as exc:
        error(str(exc))
        return EXIT_USAGE
    from .teelog import Tee

    with Tee(str(Path(cfg.output_dir) / "output.log")):
        return run(cfg, model_info)


def prepare(cfg):
    """Everything that can refuse the run, before anything heavy: platform,
    output folder, weights. Raises OptionError (exit 2)."""
    from .backends import BackendUnavailable, resolve_platform

    try:
        platform = resolve_platform(cfg.platform)
    except BackendUnavailable as exc:
        raise OptionError(str(exc)) from None
    precision = cfg.precision if cfg.precision != "auto" else ("fp32" if platform == "cpu" else "fp16")
    origin = dict(cfg.origin)
    for name, before, after in (("platform", cfg.platform, platform), ("precision", cfg.precision, precision)):
        if before != after:
            origin[name] = f"{origin[name]} ({before} -> {after})"
    cfg = cfg.replace(platform=platform, precision=precision, origin=origin)
    from .knobs import KnobError, preflight as check_knobs

    try:
        check_knobs(cfg)  # e.g. IPEX=yes without the extension, COMPILE without a C++ compiler
    except KnobError as exc:
        raise OptionError(str(exc)) from None
    check_output_dir(cfg.output_dir)
    from .launcher import preflight

    preflight(cfg)  # pinning the user insists on, DEVICES, SOCKET: refused here, in a second
    if not cfg.dummy:  # a broken dataset fails in a second, not after the models are loaded
        from .dataset import ACCEPTED, DatasetError, triplets

        try:
            triplets(cfg.dataset_dir, cfg.num_inputs)
        except DatasetError as exc:
            raise OptionError(f"--data/DATASET_DIR: {exc} (accepted: {ACCEPTED})") from None
    return cfg, check_weights(cfg)


def check_output_dir(path: str) -> None:
    import tempfile

    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise OptionError(f"--output-dir/OUTPUT_DIR: {path!r} is not writable ({exc.strerror or exc}) "
                          "(accepted: a folder this user can create and write)") from None


def check_weights(cfg) -> dict:
    """Fetch the default weights when missing (as get_model.sh does), then load
    them once here so that a wrong file fails in a second, not in every stream."""
    from .fetch import FetchError, default_weights_path, fetch
    from .fsutil import sha256_file
    from .weights import WeightsError, load_model

    spec = cfg.spec
    path = Path(cfg.load_path)
    is_default = path == default_weights_path(spec, Path(cfg.models_dir))
    if not path.exists():
        if not is_default:
            raise OptionError(f"--pretrained-weights/LOAD_PATH: {str(path)!r} does not exist "
                              f"(accepted: a weights file for model {spec.name}; ./get_model.sh --model "
                              f"{spec.name} fetches the official one)")
        log(f"weights for model {spec.name} not found at {path}; fetching them (as ./get_model.sh --model "
            f"{spec.name})")
        try:
            fetch(spec, Path(cfg.models_dir), log=log)
        except FetchError as exc:
            raise OptionError(f"--pretrained-weights/LOAD_PATH: {exc}") from None
    try:
        net = load_model(spec, str(path))
    except WeightsError as exc:
        raise OptionError(f"--pretrained-weights/LOAD_PATH: {exc}") from None
    digest = sha256_file(path)
    info = {"name": spec.name, "description": spec.description, "weights_path": str(path), "sha256": digest,
            "official_sha256": spec.sha256, "parameters": sum(p.numel() for p in net.parameters()),
            "modulus": spec.modulus_for(cfg.scale)}
    if spec.sha256 and digest != spec.sha256:
        info["warning"] = "weights match the architecture but are not the official file (sha256 differs)"
    return info


def run(cfg, model_info) -> int:
    from . import results as report
    from .launcher import launch

    log(f"rifebench {__version__}: model {cfg.model}, {cfg.mode} mode, platform {cfg.platform}, "
        f"precision {cfg.precision}{' (amp)' if cfg.amp else ''}, {cfg.streams} stream(s)")
    if "warning" in model_info:
        log(f"warning: {model_info['warning']}")
    started_wall = time.time()
    report.begin(cfg, model_info)
    outcome = launch(cfg, log=log)
    doc, code = report.finish(cfg, model_info, outcome, started_wall)
    report.print_summary(doc, log)
    return code


if __name__ == "__main__":
    sys.exit(main())
