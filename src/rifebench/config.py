"""Options -> one frozen, validated configuration.

Built once, before anything heavy runs, with no side effects: errors are
OptionError with a one-line message naming the option, the value and what is
accepted. Checks that touch the file system (output folder, weights) belong to
the runner's start-up, also before anything heavy.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import __version__, zoo
from .options import BY_NAME, GROUPS, OPTIONS, OptionError

REPO_ROOT = Path(__file__).resolve().parents[2]

Config = dataclasses.make_dataclass(
    "Config",
    [(o.name, Any, dataclasses.field(default=o.default)) for o in OPTIONS]
    + [("origin", dict, dataclasses.field(default_factory=dict))],
    frozen=True,
)
Config.__doc__ = "Every option's resolved value; `origin` says where each came from (flag/env/default)."


def _to_dict(self) -> dict:
    return {o.name.rstrip("_"): getattr(self, o.name) for o in OPTIONS}


def _replace(self, **changes):
    return dataclasses.replace(self, **changes)


Config.to_dict = _to_dict
Config.replace = _replace
Config.mode = property(lambda self: "dummy" if self.dummy else "dataset")
Config.spec = property(lambda self: zoo.get(self.model))


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print usage and exit; we want one line
        raise OptionError(f"{message} (accepted: the options listed by {self.prog} --help)")


def build_parser(prog: str = "run_model.sh") -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="RIFE inference benchmark: throughput, latency and PSNR pass rate. "
        "Every option is also an environment variable (in brackets); a flag wins over the variable, "
        "the variable over the default.",
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
            groups[o.group].add_argument(o.flag, dest=o.name, action="store_const", const=True,
                                         default=None, help=text)
        else:
            groups[o.group].add_argument(o.flag, dest=o.name, default=None, metavar=o.env, help=text)
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
    from .fetch import default_weights_path  # no torch import

    values["models_dir"] = str(Path(values["models_dir"] or REPO_ROOT / "model").expanduser().resolve())
    if values["load_path"] is None:
        values["load_path"] = str(default_weights_path(zoo.get(values["model"]), Path(values["models_dir"])))
    else:
        values["load_path"] = str(Path(values["load_path"]).expanduser().resolve())
    values["output_dir"] = str(Path(values["output_dir"]).expanduser().resolve())
    if values["dataset_dir"] is not None:
        values["dataset_dir"] = str(Path(values["dataset_dir"]).expanduser().resolve())


def _flag(name: str) -> str:
    o = BY_NAME[name]
    return f"{o.flag}/{o.env}"


def validate(cfg) -> None:
    """Checks across options. Raises OptionError with a one-line message."""
    if cfg.dummy and cfg.dataset_dir is not None:
        raise OptionError(f"{_flag('dummy')}: cannot be combined with {_flag('dataset_dir')} "
                          f"{cfg.dataset_dir!r} (accepted: one of dummy performance mode or a dataset)")
    if not cfg.dummy and cfg.dataset_dir is None:
        raise OptionError(f"{_flag('dummy')}: no workload given (accepted: --dummy for performance mode, "
                          "or --data DIR for quality mode)")
    if cfg.dataset_dir is not None:
        root = Path(cfg.dataset_dir)
        if not root.is_dir():
            raise OptionError(f"{_flag('dataset_dir')}: folder {cfg.dataset_dir!r} does not exist "
                              "(accepted: a Vimeo-90K triplet test folder)")
        if not (root / "tri_testlist.txt").is_file():
            raise OptionError(f"{_flag('dataset_dir')}: {cfg.dataset_dir!r} has no tri_testlist.txt "
                              "(accepted: a Vimeo-90K triplet test folder)")
    if cfg.max_test_duration is not None and cfg.min_test_duration > cfg.max_test_duration:
        raise OptionError(f"{_flag('min_test_duration')}: {cfg.min_test_duration} is greater than "
                          f"{_flag('max_test_duration')} {cfg.max_test_duration} (accepted: MIN <= MAX)")
    spec = zoo.get(cfg.model)
    n = cfg.interpolation
    if not spec.arbitrary_timestep and (n + 1) & n:
        raise OptionError(f"{_flag('interpolation')}: {n} frames per pair is not possible with model "
                          f"{spec.name} (accepted: 2^k - 1, e.g. 1, 3, 7, 15: it only bisects at t = 0.5)")
    if cfg.devices is not None:
        parts = [p.strip() for p in cfg.devices.split(",")]
        if not parts or not all(p.isdigit() for p in parts):
            raise OptionError(f"{_flag('devices')}: invalid value {cfg.devices!r} "
                              "(accepted: comma-separated device indices, e.g. 0,1)")


def device_indices(cfg) -> list[int] | None:
    if cfg.devices is None:
        return None
    return [int(p) for p in cfg.devices.split(",")]
