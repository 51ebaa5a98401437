"""What the study measures: one cell per (model, configuration), each a worker.

With one model (`--model`) a cell is a configuration, as it always was. With
`--models LIST|all` every model is crossed with every configuration; each model's
first configuration is its reference (speed-up, quality against the reference).
A model's weights are its official file when it is at the default path, else
seeded random weights of its official shapes when `--random-weights` allows
(speed only: marked, no quality), else the study is refused before any worker.
Workers run in rotation groups of at most `--max-workers` cells (whole models),
so that `--models all` does not hold every network in memory at once.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from rifebench.errors import UsageError
from rifebench.models import zoo

OFFICIAL, GIVEN, RANDOM, NONE = "official", "given", "random", "none"


@dataclass(frozen=True)
class Cell:
    key: str  # unique per study: the configuration, or "MODEL CONFIG" when models are crossed
    model: str
    config: str
    flags: tuple[str, ...]  # run_model.sh flags of its worker (a configuration's own come last and win)
    weights: str  # OFFICIAL, GIVEN (--pretrained-weights), RANDOM (speed only) or NONE (the null model)

    @property
    def speed_only(self) -> bool:
        return self.weights == RANDOM


def parse_models(text: str) -> list[str]:
    """`--models`: "all" (every model with weights) or distinct zoo names, comma-separated."""
    if text.strip() == "all":
        return [n for n, s in zoo.MODELS.items() if s.weights_file is not None]
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in zoo.MODELS]
    if not names or unknown or len(set(names)) != len(names):
        bad = unknown[0] if unknown else text
        raise UsageError(
            f"--models: invalid value {bad!r} (accepted: all, or distinct names among {', '.join(zoo.MODELS)})"
        )
    return names


def weights_of(model: str, args: argparse.Namespace) -> tuple[list[str], str]:
    """The weights flags of a model's workers and what they are."""
    spec = zoo.get(model)
    if spec.weights_file is None:
        return [], NONE
    if args.pretrained_weights:
        return ["--pretrained-weights", str(Path(args.pretrained_weights).resolve())], GIVEN
    from rifebench.fetch.weights import default_models_dir

    path = spec.weights_path(args.models_dir or default_models_dir())
    assert path is not None, "a model with weights has a default path"
    if path.is_file():
        from rifebench.fetch.lock import checksum_of
        from rifebench.fsutil import sha256_file

        # The file at the default path: official when it is the published or first-fetch-locked one.
        official = checksum_of(spec, path, sha256_file(path)).matches
        return ["--models-dir", str(path.parent.parent)], OFFICIAL if official else GIVEN
    if args.random_weights:
        return ["--random-weights", "--models-dir", str(path.parent.parent)], RANDOM
    raise UsageError(
        f"model {model}: weights not found at {path} (accepted: ./get_model.sh --model {model} fetches them, or "
        "--random-weights for a speed-only row)"
    )


def cells(args: argparse.Namespace) -> list[Cell]:
    crossed = len(args.models) > 1
    out = []
    for model in args.models:
        flags, kind = weights_of(model, args)
        common = ["--model", model, "--platform", args.platform, *flags]
        for config in args.names:
            key = f"{model} {config}" if crossed else config
            out.append(Cell(key, model, config, (*common, *args.flags_of[config]), kind))
    return out


def groups(all_cells: list[Cell], max_workers: int) -> list[list[Cell]]:
    """Consecutive whole models, at most max_workers cells a group (one model at least)."""
    by_model: dict[str, list[Cell]] = {}
    for c in all_cells:
        by_model.setdefault(c.model, []).append(c)
    out: list[list[Cell]] = []
    for model_cells in by_model.values():
        if out and len(out[-1]) + len(model_cells) <= max_workers:
            out[-1] += model_cells
        else:
            out.append(list(model_cells))
    return out
