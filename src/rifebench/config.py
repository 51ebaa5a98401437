"""Options -> one frozen, validated configuration.

Built once, before anything heavy runs, with no side effects: errors are
UsageError with a one-line message naming the option, the value and what is
accepted. Checks that touch the file system (output folder, weights) belong to
the runner's start-up, also before anything heavy.
"""

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from rifebench import __version__, paths
from rifebench.data.video_io import VIDEO_EXTENSIONS, is_video_path, path_problem
from rifebench.errors import UsageError
from rifebench.models import zoo
from rifebench.models.zoo import random_weights_path
from rifebench.options import BY_NAME, GROUPS, OPTIONS
from rifebench.paths import default_models_dir
from rifebench.runtimes import registry as runtimes

PY_TYPES = {"int": int, "float": float, "choice": str, "switch": bool, "path": str, "text": str}


def field_type(o) -> Any:
    """The Python type of an option's resolved value (None where it can be unset)."""
    t = PY_TYPES[o.kind]
    return t | None if o.default is None or o.none_words else t


def _default(name: str) -> Any:
    """The option table's default: Config's fields repeat the table's names and types
    (for mypy and the reader), never its defaults."""
    return BY_NAME[name].default


@dataclasses.dataclass(frozen=True)
class Config:
    """Every option's resolved value, typed; `origin` says where each came from (flag/env/default).

    One field per row of the option table, in its order; tests/test_architecture.py
    keeps the two equal (names and types)."""

    # -- run
    model: str = _default("model")
    null_ms: float = _default("null_ms")
    platform: str = _default("platform")
    ipex: str = _default("ipex")
    precision: str = _default("precision")
    amp: bool = _default("amp")
    runtime: str = _default("runtime")
    calibration: str | None = _default("calibration")
    dummy: bool = _default("dummy")
    dataset_dir: str | None = _default("dataset_dir")
    models_dir: str | None = _default("models_dir")
    load_path: str | None = _default("load_path")
    random_weights: bool = _default("random_weights")
    output_dir: str = _default("output_dir")
    # -- workload
    num_inputs: int = _default("num_inputs")
    batch_size: int = _default("batch_size")
    interpolation: int = _default("interpolation")
    warmup: int = _default("warmup")
    async_: int = _default("async_")
    data_channels: int = _default("data_channels")
    data_height: int = _default("data_height")
    data_width: int = _default("data_width")
    scale: float = _default("scale")
    seed: int = _default("seed")
    min_test_duration: float = _default("min_test_duration")
    max_test_duration: float | None = _default("max_test_duration")
    # -- quality
    saveimages: bool = _default("saveimages")
    min_psnr_db: float = _default("min_psnr_db")
    min_pass_pct: float = _default("min_pass_pct")
    video_gt: str = _default("video_gt")
    save_video: bool = _default("save_video")
    # -- streams
    streams: int = _default("streams")
    pin: str = _default("pin")
    devices: str | None = _default("devices")
    barrier_timeout: float = _default("barrier_timeout")
    socket: str | None = _default("socket")
    fault: str | None = _default("fault")
    # -- optimisation
    optimize: str = _default("optimize")
    channels_last: str = _default("channels_last")
    compile: str = _default("compile")
    cudnn_benchmark: str = _default("cudnn_benchmark")
    tf32: str = _default("tf32")
    cuda_graphs: str = _default("cuda_graphs")
    preallocate: str = _default("preallocate")
    reuse_frames: str = _default("reuse_frames")
    ov_hint: str = _default("ov_hint")
    # -- run
    repeat: int = _default("repeat")
    min_samples: int = _default("min_samples")
    validity: str = _default("validity")
    measure_peak: str = _default("measure_peak")
    origin: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for o in OPTIONS:  # a real type check: a wrong type here is a bug, not a user error
            value = getattr(self, o.name)
            want = PY_TYPES[o.kind]
            ok = (value is None and field_type(o) is not want) or (
                isinstance(value, want) and not (want in (int, float) and isinstance(value, bool))
            )
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                ok = True
            if not ok:
                raise TypeError(f"Config.{o.name}: expected {field_type(o)}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {o.name.rstrip("_"): getattr(self, o.name) for o in OPTIONS}

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    @property
    def mode(self) -> str:
        if self.dummy:
            return "dummy"
        return "video" if is_video_path(self.dataset_dir) else "dataset"

    @property
    def mode_name(self) -> str:
        """What the console and README call the mode: "quality mode (dataset)"."""
        return {"dummy": "performance", "dataset": "quality", "video": "video"}[self.mode]

    @property
    def spec(self) -> zoo.ModelSpec:
        return zoo.get(self.model)

    @property
    def device_list(self) -> list[int] | None:
        """DEVICES as indices, or None for every visible device."""
        return None if self.devices is None else [int(p) for p in self.devices.split(",")]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print usage and exit; we want one line
        raise UsageError(f"{message} (accepted: the options listed by {self.prog} --help)")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog or paths.tool_name("run"),
        allow_abbrev=False,
        description="RIFE inference benchmark: throughput, latency and PSNR pass rate. "
        "Every option is also an environment variable (in brackets); a flag wins over the variable, "
        "the variable over the default.\n\n"
        "Subcommands (rifebench SUBCOMMAND --help for each):\n"
        "  run            this benchmark run (run_model.sh); the default when no subcommand is given\n"
        "  bench          every row of a CSV profile (benchmark.sh)\n"
        "  compare        two runs or benchmarks, A vs B\n"
        "  study          optimisation study: configurations x sizes in one process per worker\n"
        "  tune           the fastest configuration within a quality floor (runtime x precision x knobs x streams)\n"
        "  fetch-model    download and verify official weights (get_model.sh)\n"
        "  models         the model zoo: family, parameters, GFLOP at 720p, weights source and presence\n"
        "  fetch-dataset  download the Vimeo-90K triplet test set (get_dataset.sh)\n"
        "  fleet          a profile across many machines: Slurm job array or Kubernetes Indexed Job",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit status: 0 passed, 1 failed (a stream failed or the quality verdict failed), "
        "2 bad input, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"rifebench {__version__}")
    parser.add_argument("--options-markdown", action="store_true", help=argparse.SUPPRESS)
    groups = {g: parser.add_argument_group(f"{g} options") for g in GROUPS}
    for o in OPTIONS:
        text = f"[{o.env}] {o.help} (values: {o.accepted()}; default: {o.shown_default()})"
        text = text.replace("%", "%%")
        if o.kind == "switch":
            groups[o.group].add_argument(
                o.flag, *o.alias_flags, dest=o.name, action="store_const", const=True, default=None, help=text
            )
        else:
            groups[o.group].add_argument(o.flag, *o.alias_flags, dest=o.name, default=None, metavar=o.env, help=text)
    return parser


def resolve(argv: Sequence[str], env: Mapping[str, str] | None = None):
    """Flags > environment variables > defaults, each parsed by its option row."""
    env = os.environ if env is None else env
    args = build_parser().parse_args(list(argv))
    values, origin = {}, {}
    for o in OPTIONS:
        flag_value = getattr(args, o.name)
        if flag_value is not None:
            values[o.name], origin[o.name] = o.parse(flag_value, "flag"), "flag"
        elif o.env in env:
            values[o.name], origin[o.name] = o.parse(env[o.env], "env"), "env"
        else:
            values[o.name], origin[o.name] = o.default, "default"
    _resolve_paths(values)
    cfg = Config(**values, origin=origin)
    validate(cfg)
    return cfg


def _resolve_paths(values: dict) -> None:
    values["models_dir"] = str(Path(values["models_dir"] or default_models_dir()).expanduser().resolve())
    if zoo.get(values["model"]).weights_file is None:  # the null model: LOAD_PATH is recorded, not used
        if values["load_path"] is not None:
            values["load_path"] = str(Path(values["load_path"]).expanduser().resolve())
    elif values["random_weights"] and values["load_path"] is None:  # written at start-up (models/weights.py)
        values["load_path"] = str(random_weights_path(zoo.get(values["model"]), values["models_dir"]))
    elif values["load_path"] is None:
        values["load_path"] = str(zoo.get(values["model"]).weights_path(values["models_dir"]))
    else:
        values["load_path"] = str(Path(values["load_path"]).expanduser().resolve())
    if not str(values["output_dir"]).strip():  # Path("") is the current folder: never a silent choice
        raise UsageError(
            f"--output-dir/OUTPUT_DIR: {values['output_dir']!r} is empty (accepted: a folder path; "
            "'.' for the current folder)"
        )
    values["output_dir"] = str(Path(values["output_dir"]).expanduser().resolve())
    if values["dataset_dir"] is not None:  # absolute, but a link is not followed: its name decides the mode
        values["dataset_dir"] = os.path.abspath(os.path.expanduser(values["dataset_dir"]))
    if values["calibration"] is not None:  # as the dataset: a link keeps its name (a video is known by it)
        values["calibration"] = os.path.abspath(os.path.expanduser(values["calibration"]))


def _flag(name: str) -> str:
    o = BY_NAME[name]
    return f"{o.flag}/{o.env}"


def validate(cfg) -> None:
    """Checks across options. Raises UsageError with a one-line message."""
    if cfg.dummy and cfg.dataset_dir is not None:
        raise UsageError(
            f"{_flag('dummy')}: cannot be combined with {_flag('dataset_dir')} "
            f"{cfg.dataset_dir!r} (accepted: one of dummy performance mode or a dataset)"
        )
    if not cfg.dummy and cfg.dataset_dir is None:
        raise UsageError(
            f"{_flag('dummy')}: no workload given (accepted: --dummy for performance mode, "
            "or --data DIR for quality mode)"
        )
    videos = f"a video file ({' '.join(VIDEO_EXTENSIONS)})"
    if is_video_path(cfg.dataset_dir):  # video mode; its content is checked at start-up (run/startup.py)
        if why := path_problem(cfg.dataset_dir, "a regular file"):  # never opened here: a FIFO would block
            raise UsageError(f"{_flag('dataset_dir')}: video file {cfg.dataset_dir!r} {why} (accepted: {videos})")
    elif cfg.dataset_dir is not None:
        if why := path_problem(cfg.dataset_dir, "a folder"):
            raise UsageError(
                f"{_flag('dataset_dir')}: {cfg.dataset_dir!r} {why} (accepted: a Vimeo-90K triplet test folder, "
                f"or {videos} named so)"
            )
        if why := path_problem(Path(cfg.dataset_dir) / "tri_testlist.txt", "a regular file"):
            what = "has no tri_testlist.txt" if why == "does not exist" else f"holds a tri_testlist.txt that {why}"
            raise UsageError(
                f"{_flag('dataset_dir')}: {cfg.dataset_dir!r} {what} (accepted: a Vimeo-90K triplet test folder)"
            )
    if cfg.max_test_duration is not None and cfg.min_test_duration > cfg.max_test_duration:
        raise UsageError(
            f"{_flag('min_test_duration')}: {cfg.min_test_duration} is greater than "
            f"{_flag('max_test_duration')} {cfg.max_test_duration} (accepted: MIN <= MAX)"
        )
    _check_random_weights(cfg)
    why = cfg.spec.interpolation_error(cfg.interpolation)
    if why is not None:
        raise UsageError(f"{_flag('interpolation')}: {cfg.interpolation} frames per pair is not possible: {why}")
    if cfg.fault is not None:
        parse_fault(cfg.fault, cfg.streams)
    runtimes.check(cfg, _flag)  # RUNTIME: installed, and what it can run (model, platform, precision, knobs)
    if cfg.devices is not None:
        parts = [p.strip() for p in cfg.devices.split(",")]
        if not parts or not all(p.isdigit() for p in parts):
            raise UsageError(
                f"{_flag('devices')}: invalid value {cfg.devices!r} "
                "(accepted: comma-separated device indices, e.g. 0,1)"
            )


def _check_random_weights(cfg) -> None:
    """Random weights measure speed only: refused wherever a quality is scored."""
    if not cfg.random_weights:
        return
    if cfg.origin.get("load_path", "default") != "default":
        raise UsageError(
            f"{_flag('random_weights')}: cannot be combined with {_flag('load_path')} {cfg.load_path!r} "
            "(accepted: one of a weights file or random weights)"
        )
    scored = cfg.mode == "dataset" or (cfg.mode == "video" and cfg.video_gt != "none")
    if scored:
        raise UsageError(
            f"{_flag('random_weights')}: refused in {cfg.mode_name} mode: it scores quality, and random weights "
            "have none (accepted: --dummy performance mode, or video mode with --video-gt none)"
        )


def parse_fault(text: str, streams: int) -> tuple[int, int, str]:
    """FAULT "STREAM:PAIR[:exit]" or "STREAM:hold" -> (stream, pair, action) or UsageError;
    action: raise | exit | hold (held before it says ready; pair 0)."""
    parts = text.strip().split(":")
    if len(parts) == 2 and parts[0].isdigit() and parts[1] == "hold" and int(parts[0]) < streams:
        return int(parts[0]), 0, "hold"
    ok = len(parts) in (2, 3) and parts[0].isdigit() and parts[1].isdigit() and parts[2:] in ([], ["exit"])
    if not ok or int(parts[1]) < 1 or int(parts[0]) >= streams:
        raise UsageError(
            f"{_flag('fault')}: invalid value {text!r} (accepted: STREAM:PAIR or STREAM:PAIR:exit, or STREAM:hold, "
            f"STREAM a stream index below STREAMS={streams}, PAIR >= 1)"
        )
    return int(parts[0]), int(parts[1]), "exit" if parts[2:] == ["exit"] else "raise"
