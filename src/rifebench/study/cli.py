"""The optimisation study: every configuration's speed-up against its cost in
quality, measured in one run.

    python -m rifebench study [--sizes 448x256,1280x720] [--configs baseline,...]
                              [--models LIST|all [--random-weights] [--data DIR]]
                              [--output-dir DIR]

(Two runs' output fingerprints are compared by `python -m rifebench compare A B`.)

Each configuration is a list of run_model.sh flags resolved by the harness's own
option table and knobs (so a row measures exactly what a run would), and lives in
its own process: torch's global switches (threads, cuDNN, denormals), compiled
code and peak memory stay its own. Workers warm up one after the other (compile
time is reported apart), then time their pairs in turn, round after round, in a
rotating order, so that drift and other load hit every configuration alike.
The workers and the rounds live in study/worker.py, the scoring in
study/score.py, the files in study/report.py; a row is a StudyRow
(study/records.py). `--models` crosses models with the configurations (one
cell per pair, study/cells.py); with `--data` every row with real weights is
also scored against a dataset's ground truth and each size gets a
speed-vs-quality chart with its Pareto front (study/chart.py).

A timed pair is what a stream times (run.timer.PairTimer): the model call on
prepared frames, synchronised. Speed: one statistic, the median pair time over
all rounds, gives both FPS and speed-up, each with a 95% bootstrap interval over
the rounds (the speed-up's from ratios within a round, which the rotation
exposed to the same load). Quality: outputs against the reference's; equal
outputs are "identical", never a capped or infinite PSNR.

Exit status: 0 every configuration measured, 1 one failed, 2 bad arguments or
a configuration that cannot run here (nothing measured).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

from rifebench import __version__
from rifebench.console import error, log
from rifebench.errors import UsageError
from rifebench.status import Exit
from rifebench.study.cells import cells, groups, parse_models
from rifebench.study.chart import draw_charts
from rifebench.study.records import StudyRow
from rifebench.study.report import notes, table, write
from rifebench.study.score import SPREAD_LIMIT_PCT, STATISTIC, score
from rifebench.study.worker import run_size, study_precision

PROG = "study"
CONFIGS = {
    "baseline": [],
    "channels_last": ["--channels-last", "yes"],
    "compile": ["--compile", "default"],
    "bf16": ["--precision", "bf16"],
    "fp16": ["--precision", "fp16"],
    "amp_bf16": ["--precision", "bf16", "--amp"],
    "reuse_frames": ["--reuse-frames", "yes"],
    "preallocate": ["--preallocate", "yes"],
    "optimized": ["--optimize", "optimized"],
    "optimized_bf16": ["--optimize", "optimized", "--precision", "bf16"],
    "optimized_fp16": ["--optimize", "optimized", "--precision", "fp16"],
}
DEFAULT_CONFIGS = "baseline,channels_last,compile,bf16,optimized"


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    if not (w.isdigit() and h.isdigit() and int(w) >= 16 and int(h) >= 16):
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (accepted: WIDTHxHEIGHT, e.g. 448x256)")
    return int(w), int(h)


def _model_arguments(p: argparse.ArgumentParser) -> None:
    """--model, or --models crossed with the configurations, their weights and --data."""
    p.add_argument("--model", default="4.0")
    p.add_argument(
        "--models",
        default=None,
        metavar="LIST",
        help="several models crossed with the configurations: comma-separated names, or all (every model "
        "with weights); each model's first configuration is its reference",
    )
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="models whose weights are absent run with seeded random weights of their official shapes "
        "(speed only: marked, no quality)",
    )
    p.add_argument("--models-dir", default=None, help="where weights live (default: $MODELS_DIR, else ./model)")
    p.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="a Vimeo-90K triplet folder: every row with real weights is also scored against its ground truth, "
        "and each size gets a speed-vs-quality chart with the Pareto front",
    )
    p.add_argument("--data-triplets", type=int, default=20, help="triplets of --data scored (default: %(default)s)")
    p.add_argument(
        "--max-workers",
        type=int,
        default=12,
        help="most workers alive at once: models are timed in rotation groups of whole models (default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rifebench study",
        allow_abbrev=False,
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Predefined configurations (run_model.sh flags): "
        + "; ".join(f"{k} = {' '.join(v) or '(none)'}" for k, v in CONFIGS.items())
        + ". Add your own with --config NAME='FLAGS'. The first configuration is "
        "the reference of speed-up and quality.",
    )
    p.add_argument("--version", action="version", version=f"rifebench {__version__}")
    p.add_argument("--sizes", default="448x256,1280x720", help="WxH list (default: %(default)s)")
    p.add_argument("--configs", default=DEFAULT_CONFIGS, help="names, first = reference (default: %(default)s)")
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME=FLAGS",
        help="define a configuration, e.g. cl_bf16='--channels-last yes --precision bf16'",
    )
    _model_arguments(p)
    p.add_argument("--platform", default="cpu")
    p.add_argument("--pretrained-weights", default=None)
    p.add_argument(
        "--rounds", type=int, default=8, help="timed rounds, configurations in rotating order (default: %(default)s)"
    )
    p.add_argument(
        "--pairs",
        type=int,
        default=1,
        help="timed pairs per configuration and round; few pairs and "
        "many rounds spread other load over every configuration (default: %(default)s)",
    )
    p.add_argument("--warmup", type=int, default=1, help="extra untimed pairs after the first ones")
    p.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="torch threads of each worker (default: the CPUs this process may use, %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--output-dir",
        default=None,
        metavar="DIR",
        help="folder for study.json and study.md (default: ./output/study-<UTC timestamp>; a new or empty folder)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty --output-dir (its study.json and study.md are replaced)",
    )
    return p


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The arguments, checked in shape (argparse's usage error, exit 2): the
    configurations named, the sizes, the counts."""
    p = build_parser()
    args = p.parse_args(argv)
    flags_of = dict(CONFIGS)
    for spec in args.config:
        name, sep, flags = spec.partition("=")
        if not sep or not name:
            p.error(f"--config: invalid value {spec!r} (accepted: NAME='run_model.sh flags')")
        flags_of[name] = flags.split()
    args.names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in args.names if n not in flags_of]
    if unknown or len(set(args.names)) != len(args.names) or not args.names:
        p.error(f"--configs: invalid value {args.configs!r} (accepted: distinct names among {', '.join(flags_of)})")
    try:
        args.sizes = [_size(s) for s in args.sizes.split(",")]
    except argparse.ArgumentTypeError as exc:
        p.error(f"--sizes: {exc}")
    for name in ("rounds", "pairs", "threads", "data_triplets", "max_workers"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")
    try:
        args.models = parse_models(args.models) if args.models else [args.model]
    except UsageError as exc:
        p.error(str(exc))
    if args.pretrained_weights and len(args.models) > 1:
        p.error("--pretrained-weights: one file cannot hold the weights of several --models (accepted: one model)")
    args.flags_of = flags_of
    return args


def check_configs(args: argparse.Namespace) -> None:
    """Every configuration resolves (flags, knobs) before any worker starts;
    UsageError naming the configuration otherwise."""
    from rifebench.backends.knobs import KnobError, preflight
    from rifebench.config import resolve
    from rifebench.data.video_io import path_problem
    from rifebench.models.weights import write_random_weights
    from rifebench.options import flag_of

    if args.data and (why := path_problem(os.path.join(args.data, "tri_testlist.txt"), "a regular file")):
        raise UsageError(f"--data: {args.data!r}: its tri_testlist.txt {why} (accepted: a Vimeo-90K triplet folder)")
    args.cells = cells(args)
    for c in args.cells:
        label = f"configuration {c.config!r}" + (f" of model {c.model}" if len(args.models) > 1 else "")
        try:
            cfg = resolve(["--dummy", *c.flags], env={})
            preflight(cfg.replace(precision=study_precision(cfg)))
        except UsageError as exc:
            raise UsageError(f"{label}: {exc}") from None
        except KnobError as exc:
            raise UsageError(f"{label}: {flag_of(exc.knob)}: {exc}") from None
        if c.speed_only and cfg.load_path is not None and not os.path.isfile(cfg.load_path):
            write_random_weights(cfg.spec, cfg.load_path)  # once, before the workers load it
        if cfg.load_path is not None and not os.path.isfile(cfg.load_path):  # the null model has no weights
            raise UsageError(
                f"weights {cfg.load_path} not found (accepted: an existing file; "
                f"./get_model.sh --model {c.model} fetches it)"
            )


def prepare_output(requested: str | None, force: bool) -> Path:
    """A new or empty folder (a non-empty one with --force), checked writable
    before any worker starts: a bad path fails in a second, not after the study."""
    from rifebench.fsutil import OutputDirError, prepare_dir

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    if requested is not None and not requested.strip():
        raise UsageError(
            "--output-dir: '' is empty (accepted: a folder path, or none for ./output/study-<UTC timestamp>)"
        )
    out = Path(requested or f"output/study-{stamp}").expanduser().resolve()
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(
            f"--output-dir: {str(out)!r} is not empty (accepted: a new or empty folder, "
            "or --force to replace its study.json and study.md)"
        )
    try:
        return prepare_dir(out, files=("study.json", "study.md"))
    except OutputDirError as exc:
        raise UsageError(f"--output-dir: {exc}") from None


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


def document(args: argparse.Namespace, argv: list[str], started: float, rows: list[StudyRow]) -> dict[str, Any]:
    """study.json: how the study ran, then its rows."""
    from rifebench.measure.topology import cpu_model

    finished = time.time()
    return {
        "command": "python -m rifebench study " + " ".join(argv),
        "cpu": cpu_model(),
        "threads": args.threads,
        "model": args.models[0] if len(args.models) == 1 else "several",
        "models": args.models,
        "weights": {c.model: c.weights for c in args.cells},
        "data": args.data,
        "rounds": args.rounds,
        "pairs": args.pairs,
        "started": _iso(started),
        "finished": _iso(finished),
        "duration_s": finished - started,
        "statistic": STATISTIC,
        "spread_limit_pct": SPREAD_LIMIT_PCT,
        "warnings": [w for r in rows for w in r.warnings],
        "rows": [r.to_dict() for r in rows],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    try:
        check_configs(args)
        out = prepare_output(args.output_dir, args.force)
    except UsageError as exc:
        error(PROG, str(exc))
        return Exit.USAGE
    started, rows = time.time(), []
    for size in args.sizes:
        log(f"{size[0]}x{size[1]}: {', '.join(args.names)} x {', '.join(args.models)}", stderr=True)
        for group in groups(args.cells, args.max_workers):
            raw = run_size(size, group, args, lambda msg: log(msg, stderr=True))
            rows += [score(r, next(b for b in raw if b.model == r.model)) for r in raw]
            for r in raw:
                r.outputs = []  # scored: the frames are not kept
        charts = draw_charts(out, rows) if args.data else []
        write(out, document(args, argv, started, rows) | {"complete": size == args.sizes[-1], "charts": charts}, rows)
    print(table(rows))
    print("\n".join(notes(rows)))
    log(f"study: results in {out}", stderr=True)
    failed = [r.config for r in rows if r.error or not r.fps]
    if failed:
        log(f"study: failed configurations: {', '.join(sorted(set(failed)))}", stderr=True)
    return Exit.FAIL if failed else Exit.PASS


if __name__ == "__main__":
    sys.exit(main())
