"""`rifebench tune`: the fastest configuration of a model at a size on this machine whose
quality stays within a floor of eager PyTorch fp32's.

    python -m rifebench tune [--model 4.0] [--size 448x256] [--platform cpu]
                             [--min-psnr-drop 0.1] [--data DIR]
                             [--runtimes LIST] [--precisions LIST] [--streams LIST] [--batches LIST]

It searches runtime x precision x knobs x streams x batch (tune/space.py), scores each
configuration's outputs on a dataset's ground truth, times those within the floor in the
study's alternated rounds (tune/measure.py) and prints the fastest, with its 95% interval
and the run_model.sh command that runs it (tune/report.py); tune.json and tune.md keep it all.

Exit status: 0 a configuration was found, 1 none meets the floor (or the reference
failed), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rifebench import __version__
from rifebench.console import error, log
from rifebench.errors import UsageError
from rifebench.fsutil import atomic_write_text
from rifebench.status import Exit
from rifebench.tune import measure, report
from rifebench.tune.space import Candidate, candidates, runnable

PROG = "tune"
FILES = ("tune.json", "tune.md")


def _list(kind: type, text: str, flag: str) -> list[Any]:
    try:
        items = [kind(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        items = []
    if not items or (kind is int and min(items) < 1):
        raise argparse.ArgumentTypeError(f"{flag}: invalid value {text!r} (accepted: a comma-separated list)")
    return items


def _size_of(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    if not (w.isdigit() and h.isdigit() and int(w) >= 16 and int(h) >= 16):
        raise argparse.ArgumentTypeError(f"--size: invalid value {text!r} (accepted: WIDTHxHEIGHT, e.g. 448x256)")
    return int(w), int(h)


def build_parser() -> argparse.ArgumentParser:
    cpus = len(os.sched_getaffinity(0))
    p = argparse.ArgumentParser(prog="python -m rifebench tune", allow_abbrev=False,
                                description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--version", action="version", version=f"rifebench {__version__}")
    p.add_argument("--model", default="4.0")
    p.add_argument("--size", default="448x256", help="WxH of the frames timed (default: %(default)s)")
    p.add_argument("--platform", default="cpu")
    p.add_argument("--pretrained-weights", default=None)
    p.add_argument(
        "--min-psnr-drop",
        type=float,
        default=0.1,
        help="most dB the dataset's mean PSNR may fall below eager PyTorch fp32's (default: %(default)s)",
    )
    p.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="Vimeo-90K triplet folder the quality is scored on (default: the bundled mixed_448x256)",
    )
    p.add_argument("--quality-pairs", type=int, default=24, help="triplets scored (default: %(default)s)")
    p.add_argument("--runtimes", default="torch,onnxruntime,openvino")
    p.add_argument("--precisions", default="fp32,bf16,fp16,int8", help="those each runtime takes are tried")
    p.add_argument("--streams", default=",".join(str(s) for s in sorted({1, cpus})), help="STREAMS values tried")
    p.add_argument("--batches", default="1", help="BATCH_SIZE values tried (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--pairs", type=int, default=2, help="timed pairs per candidate and round")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=cpus, help="threads of a one-stream candidate (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-workers", type=int, default=24, help="most worker processes timed at once")
    p.add_argument("--output-dir", default=None, help="for tune.json and tune.md (default: ./output/tune-<UTC time>)")
    p.add_argument("--force", action="store_true", help="write into a non-empty --output-dir")
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    from rifebench.runtimes import registry

    p = build_parser()
    args = p.parse_args(argv)
    try:
        args.size = _size_of(args.size)
        args.runtimes = _list(str, args.runtimes, "--runtimes")
        args.precisions = _list(str, args.precisions, "--precisions")
        args.streams, args.batches = _list(int, args.streams, "--streams"), _list(int, args.batches, "--batches")
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    if unknown := [r for r in args.runtimes if r not in registry.NAMES]:
        p.error(f"--runtimes: invalid value {unknown[0]!r} (accepted: {', '.join(registry.NAMES)})")
    for name in ("rounds", "pairs", "threads", "quality_pairs", "max_workers"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")
    if not args.min_psnr_drop >= 0:
        p.error(f"--min-psnr-drop: invalid value {args.min_psnr_drop} (accepted: a number of dB >= 0)")
    args.common = ["--model", args.model, "--platform", args.platform]
    if args.pretrained_weights:
        args.common += ["--pretrained-weights", os.path.abspath(args.pretrained_weights)]
    return args


def check(args: argparse.Namespace) -> tuple[list[Candidate], dict[str, str], Path]:
    """The candidates that can run, why the others cannot, and the output folder; UsageError otherwise."""
    from rifebench.data.video_io import path_problem
    from rifebench.fsutil import OutputDirError, prepare_dir
    from rifebench.runtimes.calibration import bundled_set

    args.data = args.data or (str(bundled_set()) if bundled_set() else None)
    why = "is not given, and no bundled set is beside the checkout" if args.data is None else None
    if why is None and (bad := path_problem(os.path.join(args.data, "tri_testlist.txt"), "a regular file")):
        why = f"its tri_testlist.txt {bad}"
    if why is not None:
        raise UsageError(f"--data: {args.data!r} {why} (accepted: a Vimeo-90K triplet folder)")
    args.data = os.path.abspath(args.data)
    cands, left_out = runnable(candidates(args.runtimes, args.precisions, args.streams, args.batches, args.platform),
                               args.common)  # fmt: skip
    if (workers := sum(c.streams for c in cands)) > args.max_workers:
        raise UsageError(
            f"--max-workers: the search needs {workers} worker processes at once, more than {args.max_workers} "
            "(accepted: fewer --runtimes, --precisions, --streams or --batches, or a larger --max-workers)"
        )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = Path(args.output_dir or f"output/tune-{stamp}").expanduser().resolve()
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise UsageError(f"--output-dir: {str(out)!r} is not empty (accepted: a new or empty folder, or --force)")
    try:
        return cands, left_out, prepare_dir(out, files=FILES)
    except OutputDirError as exc:
        raise UsageError(f"--output-dir: {exc}") from None


def write(out: Path, doc: dict[str, Any], text: str) -> None:
    atomic_write_text(out / "tune.json", json.dumps(doc, indent=2, default=str, allow_nan=False) + "\n")
    atomic_write_text(out / "tune.md", f"# rifebench tune\n\n`{doc['command']}`\n\n{text}\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    try:
        cands, left_out, out = check(args)
    except UsageError as exc:
        error(PROG, str(exc))
        return Exit.USAGE
    say = lambda msg: log(msg, stderr=True)  # noqa: E731 - a one-line callback
    groups = {c.group: Candidate(c.runtime, c.precision, c.knobs) for c in cands}
    say(f"tune: {len(cands)} candidates, {len(groups)} quality groups on {args.data}")
    scores = measure.quality(groups, args, say)
    ref_psnr = scores[cands[0].group]
    within = [c for c in cands if report.quality_verdict(scores[c.group], ref_psnr, args.min_psnr_drop)[0]
              == "meets the floor"]  # fmt: skip
    say(f"tune: timing {len(within)} candidates at {args.size[0]}x{args.size[1]} in {args.rounds} rounds")
    timed = measure.speed(within, args, say) if within and within[0] == cands[0] else []
    tbl = report.rows(cands, scores, timed, args.min_psnr_drop)
    winner = report.best(tbl)
    lines = [report.table(tbl), "", *report.answer(winner, args.common, args.size, args.min_psnr_drop)]
    reasons: dict[str, list[str]] = {}
    for name, why in left_out.items():
        reasons.setdefault(why, []).append(name)
    lines += [f"left out: {', '.join(names)}: {why}" for why, names in reasons.items()]
    text = "\n".join(lines)
    doc = {"command": "python -m rifebench tune " + " ".join(argv), "size": list(args.size), "data": args.data,
           "min_psnr_drop_db": args.min_psnr_drop, "rows": [r.to_dict() for r in tbl], "left_out": left_out,
           "best": winner.to_dict() if winner else None,
           "reproduce": report.command(winner, args.common, args.size) if winner else None}  # fmt: skip
    write(out, doc, text)
    print(text)
    say(f"tune: results in {out}")
    return Exit.PASS if winner else Exit.FAIL


if __name__ == "__main__":
    sys.exit(main())
