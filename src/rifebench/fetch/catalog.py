"""`rifebench models`: every model of the zoo with its architecture family, parameters,
GFLOP per pair at 720p, where its weights come from and whether the official file is
here (the published sha256, or the first verified fetch's lock, fetch/lock.py).

    rifebench models [NAME ...] [--models-dir DIR] [--json] [--no-flops]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from rifebench import __version__
from rifebench.fetch.lock import FIRST_FETCH, PUBLISHED, checksum_of
from rifebench.fetch.weights import default_models_dir
from rifebench.fsutil import sha256_file
from rifebench.models import zoo
from rifebench.models.zoo import ModelSpec, Source

SIZE_720P = (720, 1280)
SOURCE_LABELS = {"gdrive": "Google Drive", "url": "vs-rife release", "pypi": "PyPI"}


@dataclass(frozen=True)
class Row:
    name: str
    family: str
    parameters: int
    gflop_720p: float | None  # per pair (one network call) at 1280x720 padded to the modulus
    modulus: int
    timesteps: str
    weights_source: str
    checksum: str
    official_weights_here: str

    def to_dict(self) -> dict:
        return asdict(self)


def source_label(src: Source) -> str:
    label = SOURCE_LABELS[src.kind]
    return f"{label} {src.ref}" if src.kind == "pypi" else label


def weights_here(spec: ModelSpec, models_dir: Path) -> str:
    """yes / no / what is wrong with the file at the default path."""
    path = spec.weights_path(models_dir)
    if path is None:
        return "needs none"
    if not path.is_file():
        return "no"
    held = checksum_of(spec, path, sha256_file(path))
    if held.basis == PUBLISHED:
        return "yes (sha256 verified)" if held.matches else "no: the file there is not the published one"
    if held.basis == FIRST_FETCH:
        return "yes (first-fetch lock)" if held.matches else "no: the file there differs from its lock"
    return "unverified (no lock: get_model.sh checks and locks it)"


def gflop_720p(spec: ModelSpec) -> float | None:
    from rifebench.measure.flops import count_gflop

    h, w = spec.padded_size(*SIZE_720P)
    one = count_gflop(spec.build(), h, w, arbitrary_timestep=spec.arbitrary_timestep, modulus=spec.modulus)
    return round(float(one["gflop"]), 2)


def row(spec: ModelSpec, models_dir: Path, flops: bool) -> Row:
    uses_weights = spec.weights_file is not None
    return Row(
        name=spec.name,
        family=spec.family,
        parameters=spec.inference_params,
        gflop_720p=gflop_720p(spec) if flops and uses_weights else None,
        modulus=spec.modulus,
        timesteps="any" if spec.arbitrary_timestep else "0.5 (bisection)",
        weights_source=", ".join(source_label(s) for s in spec.sources) or "-",
        checksum=(PUBLISHED if spec.sha256 else FIRST_FETCH) if uses_weights else "-",
        official_weights_here=weights_here(spec, models_dir),
    )


COLUMNS = (
    ("name", "model"),
    ("family", "family"),
    ("parameters", "parameters"),
    ("gflop_720p", "GFLOP/pair 720p"),
    ("modulus", "modulus"),
    ("weights_source", "weights source"),
    ("checksum", "held to"),
    ("official_weights_here", "official weights here"),
)


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def table(rows: list[Row]) -> str:
    grid = [[title for _, title in COLUMNS]] + [[cell(getattr(r, key)) for key, _ in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in grid)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other check
        self.exit(2, f"{self.prog}: {message} (accepted: the options listed by {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="rifebench models", allow_abbrev=False, description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"rifebench {__version__}")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these models (default: all)")
    p.add_argument("--models-dir", type=Path, help="where weights live (default: $MODELS_DIR, else ./model)")
    p.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count (about a second per model)")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in zoo.MODELS]
    if unknown:
        print(f"{p.prog}: unknown model {unknown[0]!r} (accepted: {', '.join(zoo.MODELS)})", file=sys.stderr)
        return 2
    models_dir = args.models_dir or default_models_dir()
    specs = [zoo.MODELS[n] for n in (args.names or zoo.MODELS)]
    rows = [row(spec, models_dir, not args.no_flops) for spec in specs]
    if args.json:
        doc = {"models_dir": os.fspath(models_dir), "size_for_gflop": "1280x720", "models": [r.to_dict() for r in rows]}
        print(json.dumps(doc, indent=2))
    else:
        print(table(rows))
        print(
            f"\nweights looked up in {models_dir}; GFLOP: convolutions (2 x MAC) of one pair at 1280x720 padded "
            "to the modulus (4.0 and 4.1 without their large-motion re-run); held to: the published sha256, or "
            "the sha256 of the first verified fetch locked beside the file"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
