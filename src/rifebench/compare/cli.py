"""Compare two result folders, each a run (results.json) or a benchmark
(test_<n>/ folders), and flag only the differences the folders show to be
beyond their own noise.

    python -m rifebench compare A B [--min-diff PCT] [--psnr-drop DB] [--force]

Speed: throughput and latency p50/p99, each with a 95% interval (see
compare_stats); a difference is flagged when the intervals do not overlap and
the change exceeds --min-diff %. Where a folder cannot show its noise (one
repetition's throughput, too few samples) the figure says "noise unknown" and
no difference is claimed. Quality (compare_checks): mean PSNR beyond
--psnr-drop dB or a changed verdict of dataset and video runs, and output
fingerprints of dummy runs saved with --saveimages; where an option that changes
outputs differs (MODEL, PRECISION, AMP, RUNTIME, SCALE) a fingerprint difference
is expected, said so, and not counted: the verdict is about speed and quality.
Runs of different workloads (a video's: its size, frame count and first frames),
or whose results.json lacks the configuration that tells, are refused unless
--force. Benchmark rows are matched by their cells; a single run against a
benchmark is compared with its closest row (compare/match.py). Every results.json is read through
the schema (report/schema.py): one of a schema_version this rifebench does not
read, or holding a figure that is no finite number, is refused (exit 2), never
compared; so is a row.json or a saved output frame that is not one.

Exit status: 0 no difference beyond the noise, 1 some, 2 bad input.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field

from rifebench import __version__
from rifebench.compare.checks import config_diff, fingerprint_rows, output_knobs, quality_rows, workload_diff
from rifebench.compare.load import CompareError, Result, load
from rifebench.compare.match import describe, match, spare_line, unmatched_line
from rifebench.compare.stats import METRICS, interval, judge
from rifebench.console import error
from rifebench.report.schema import RunResult, Validity

PROG = "compare"
__all__ = ["CompareError", "load", "main"]


@dataclass
class Tally:
    flagged: bool = False
    unknown: int = 0  # figures whose noise is unknown, so not judged
    expected: set[str] = field(default_factory=set)  # options whose change explains an output difference


def compare_pair(a: Result, b: Result, args: argparse.Namespace, tally: Tally) -> list[str]:
    what = " ".join(f"{k}={v}" for k, v in a.key) if a.key == b.key else None
    head = a.label if a.label == b.label else f"A {a.label} vs B {b.label}"
    lines = [f"== {head}" + (f" ({what})" if what else "") + " =="]
    if diff := workload_diff(a.run, b.run):
        lines.append("workload differs (compared anyway: --force): " + ", ".join(diff))
    if blind := no_config(a, b):
        lines.append(f"workload unknown: {blind} (compared anyway: --force)")
    if diff := config_diff(a.run, b.run):
        lines.append("configuration differs: " + ", ".join(diff))
    lines += _validity(a.run, b.run)
    if a.status != b.status:
        lines.append(f"status: A {a.status}, B {b.status}  <-- DIFFERENT")
        tally.flagged = True
    if not (a.figures and b.figures):
        if a.status == b.status:
            lines.append(f"status: both {a.status}; no figures to compare")
        return lines
    lines.append(
        f"{'metric':<18}{'A':>12}{'B':>12}{'change':>11}  {'A 95% interval':>18}{'B 95% interval':>18}  verdict"
    )
    for key, name, sign in METRICS:
        fa, fb = a.figures[key], b.figures[key]
        change, verdict, flagged = judge(fa, fb, sign, args.min_diff / 100)
        lines.append(
            f"{name:<18}{_f(fa.value):>12}{_f(fb.value):>12}{change:>11}  {interval(fa):>18}"
            f"{interval(fb):>18}  {verdict}"
        )
        tally.flagged |= bool(flagged)
        tally.unknown += flagged is None
    rows, flagged = quality_rows(a.run, b.run, args.psnr_drop)
    lines += rows
    tally.flagged |= flagged
    knobs = output_knobs(a.run, b.run)
    rows, flagged = fingerprint_rows(a.folder, b.folder, knobs)
    lines += rows
    tally.flagged |= flagged
    if knobs and any("expected:" in row for row in rows):
        tally.expected.update(k.upper() for k in knobs)
    return lines


def no_config(a: Result, b: Result) -> str | None:
    """Why the workload check cannot be made for two runs with figures, or None."""
    lacking = [side for side, r in (("A", a), ("B", b)) if r.run is not None and not r.run.config]
    if not (a.run and b.run and lacking):
        return None
    return f"{' and '.join(lacking)} {'has' if len(lacking) == 1 else 'have'} no config in results.json"


def _validity(a: RunResult | None, b: RunResult | None) -> list[str]:
    va, vb = (a.validity if a else None), (b.validity if b else None)
    if not (va or vb) or all(v and v.valid for v in (va, vb)):
        return []

    def word(v: Validity | None) -> str:
        return "unchecked" if not v else "valid" if v.valid else f"invalid ({', '.join(v.reasons)})"

    return [f"validity: A {word(va)}, B {word(vb)} (the figures of an invalid run may mislead)"]


def check_workloads(pairs: list[tuple[Result, Result]], runs: bool) -> None:
    """Runs of different workloads, or whose workload cannot be checked, are refused (without --force)."""
    for a, b in pairs:
        where = "" if runs else f" (A {a.label} vs B {b.label})"
        if d := workload_diff(a.run, b.run):
            raise CompareError(
                f"different workloads{where}: {', '.join(d)} "
                "(accepted: runs of the same workload; --force compares them anyway)"
            )
        if blind := no_config(a, b):
            raise CompareError(
                f"the workload cannot be checked{where}: {blind} "
                "(accepted: results.json files that record their configuration; --force compares them anyway)"
            )


def _f(x: float | None) -> str:
    return "\N{EN DASH}" if x is None else f"{x:.2f}"


def _number(flag: str, text: str, unit: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise CompareError(f"{flag}: {text!r} is not accepted (accepted: a finite number >= 0, in {unit})")
    return value


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m rifebench compare",
        allow_abbrev=False,
        description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 no difference beyond the noise, 1 some, 2 bad input.",
    )
    p.add_argument("--version", action="version", version=f"rifebench {__version__}")
    p.add_argument("a", metavar="A", help="reference folder (a run's or a benchmark's OUTPUT_DIR)")
    p.add_argument("b", metavar="B", help="folder compared with A")
    p.add_argument(
        "--min-diff",
        default="2",
        metavar="PCT",
        help="smallest relative change of a speed figure ever flagged, in percent (default 2)",
    )
    p.add_argument(
        "--psnr-drop",
        default="0.05",
        metavar="DB",
        help="largest change of mean PSNR, either way, that is no difference, in dB (default 0.05)",
    )
    p.add_argument("--force", action="store_true", help="compare runs of different workloads anyway")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        args.min_diff = _number("--min-diff", args.min_diff, "percent")
        args.psnr_drop = _number("--psnr-drop", args.psnr_drop, "dB")
        kind_a, ra = load(args.a)
        kind_b, rb = load(args.b)
        matched = match(kind_a, ra, kind_b, rb)
        if not args.force:
            check_workloads(matched.pairs, kind_a == kind_b == "run")
    except CompareError as exc:
        error(PROG, str(exc))
        return 2
    print(f"A: {args.a}: {describe(kind_a, ra)}\nB: {args.b}: {describe(kind_b, rb)}")
    tally = Tally()
    for a, b in matched.pairs:
        print("\n".join(compare_pair(a, b, args, tally)))
    for side, r in matched.spare:
        print(spare_line(side, r, matched.pairs[0][0 if side == "A" else 1]))
    for side, r in matched.unmatched:
        print(unmatched_line(side, r))
        tally.flagged = True
    print(verdict(tally))
    return 1 if tally.flagged else 0


def verdict(tally: Tally) -> str:
    """The last line: about speed and quality; an output difference that an option
    explains is said, not counted."""
    text = "differences beyond the noise (flagged above)" if tally.flagged else "no difference beyond the noise"
    if tally.expected:
        text += f"; outputs differ as expected ({', '.join(sorted(tally.expected))} differs)"
    if tally.unknown:
        text += f"; noise unknown for {tally.unknown} figure(s), not judged"
    return "verdict: " + text


if __name__ == "__main__":
    sys.exit(main())
