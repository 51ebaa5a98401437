"""Compare two result folders, each a run (results.json) or a benchmark
(test_<n>/ folders), and flag only the differences the folders show to be
beyond their own noise.

    python -m rifebench compare A B [--min-diff PCT] [--psnr-drop DB] [--force]

Speed: throughput and latency p50/p99, each with a 95% interval (see
compare_stats); a difference is flagged when the intervals do not overlap and
the change exceeds --min-diff %. Where a folder cannot show its noise (one
repetition's throughput, too few samples) the figure says "noise unknown" and
no difference is claimed. Quality (compare_checks): mean PSNR beyond
--psnr-drop dB or a changed verdict of dataset runs, and output fingerprints of
dummy runs saved with --saveimages. Runs of different workloads, or whose
results.json lacks the configuration that tells, are refused unless --force.
Benchmark rows are matched by their cells. Every results.json is read through
the schema (report/schema.py): one of a schema_version this rifebench does not
read, or holding a figure that is no finite number, is refused (exit 2), never
compared; so is a row.json or a saved output frame that is not one.

Exit status: 0 no difference beyond the noise, 1 some, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rifebench import __version__
from rifebench.compare.checks import config_diff, fingerprint_rows, quality_rows, workload_diff
from rifebench.compare.stats import METRICS, Figure, figures, interval, judge, pool_repeats
from rifebench.console import error
from rifebench.errors import UsageError
from rifebench.report.fingerprint import FINGERPRINT, read_fingerprint
from rifebench.report.schema import RunNotFinished, RunResult, SchemaError, UnknownSchema, Validity, load_results
from rifebench.report.shape import describe

PROG = "compare"
ROW_DIR = re.compile(r"test_[0-9]{1,9}$")
Key = tuple[tuple[str, str], ...]


class CompareError(UsageError):
    """Bad input: one line, exit 2."""


@dataclass
class Result:
    label: str
    key: Key
    folder: Path
    status: str
    run: RunResult | None = None
    figures: dict[str, Figure] = field(default_factory=dict)


@dataclass
class Tally:
    flagged: bool = False
    unknown: int = 0  # figures whose noise is unknown, so not judged


def load_result(folder: Path, label: str, key: Key, strict: bool) -> Result:
    """A run must have figures (strict: a folder named on the command line);
    a benchmark row that crashed is a result of its own, compared by status.
    Another version's results.json is refused wherever it is."""
    path = folder / "results.json"
    try:
        run = load_results(path)
    except UnknownSchema as exc:
        raise CompareError(str(exc)) from None
    except RunNotFinished as exc:
        if strict:
            raise CompareError(
                f"{str(path)!r} has no metrics (status {exc.status!r}: the run did not finish) "
                "(accepted: the results.json of a finished run)"
            ) from None
        return Result(label, key, folder, f"{exc.status} (no metrics)")
    except SchemaError as exc:
        if strict:
            detail = str(exc).removeprefix(f"results.json at {path}: ")
            raise CompareError(f"{str(path)!r} is not a readable results.json: {detail}") from None
        return Result(label, key, folder, "failed (no readable results.json)")
    check_fingerprint(folder / FINGERPRINT)
    return Result(label, key, folder, run.status, run, figures(run))


def check_fingerprint(path: Path) -> None:
    """A saved output frame is read before anything is printed: a file that is not
    one (a header declaring 100000x100000x3, NaN values) is bad input."""
    if not (path.exists() or path.is_symlink()):
        return
    try:
        read_fingerprint(path)
    except (OSError, ValueError) as exc:
        raise CompareError(
            f"{str(path)!r} is not an output fingerprint: {exc} "
            "(accepted: the images/dummy_0.npy of a run saved with --saveimages)"
        ) from None


def row_cells(test_dir: Path) -> dict[str, str]:
    """The profile cells of a benchmark row (row.json); none when it wrote no row.json."""
    path = test_dir / "row.json"
    if not (path.exists() or path.is_symlink()):
        return {}
    try:
        if not path.is_file():
            raise OSError("not a regular file")
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CompareError(
            f"{str(path)!r} cannot be read ({type(exc).__name__}: {str(exc)[:80]}) "
            "(accepted: the row.json a benchmark writes)"
        ) from None
    cells = doc.get("cells", {}) if isinstance(doc, dict) else doc
    if not (isinstance(cells, dict) and all(isinstance(v, str) for v in cells.values())):
        raise CompareError(
            f"{str(path)!r}: cells is {describe(cells)} (accepted: an object of profile columns and their values)"
        )
    return cells


def load(folder: str | Path) -> tuple[str, list[Result]]:
    folder = Path(folder)
    if (folder / "results.json").exists():
        return "run", [load_result(folder, "run", (), strict=True)]
    tests = sorted(
        (p for p in folder.glob("test_*") if p.is_dir() and ROW_DIR.match(p.name)), key=lambda p: int(p.name[5:])
    )
    if not tests:
        raise CompareError(
            f"{str(folder)!r} holds neither results.json nor test_<n>/ folders "
            "(accepted: the OUTPUT_DIR of a run or of a benchmark)"
        )
    out = []
    for t in tests:
        cells = row_cells(t)
        out.append(load_result(t, f"row {t.name[5:]}", tuple(sorted(cells.items())), strict=False))
    groups: dict[Key, list[dict[str, Figure]]] = {}
    for r in out:
        if r.figures:
            groups.setdefault(r.key, []).append(r.figures)
    pool_repeats(list(groups.values()))
    return "benchmark", out


def match(a: list[Result], b: list[Result]) -> tuple[list[tuple[Result, Result]], list[Result]]:
    """Pairs by key, in order (repeats pair up one by one); the unmatched rest."""
    if len(a) == 1 and len(b) == 1:
        return [(a[0], b[0])], []
    pool = list(b)
    pairs: list[tuple[Result, Result]] = []
    alone: list[Result] = []
    for r in a:
        other = next((x for x in pool if x.key == r.key), None)
        if other is None:
            alone.append(r)
        else:
            pool.remove(other)
            pairs.append((r, other))
    return pairs, alone + pool


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
    for rows, flagged in (quality_rows(a.run, b.run, args.psnr_drop), fingerprint_rows(a.folder, b.folder)):
        lines += rows
        tally.flagged |= flagged
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
        pairs, alone = match(ra, rb)
        if not args.force:
            check_workloads(pairs, kind_a == kind_b == "run")
    except CompareError as exc:
        error(PROG, str(exc))
        return 2
    print(f"A: {args.a} ({kind_a}, {len(ra)} result(s))\nB: {args.b} ({kind_b}, {len(rb)} result(s))")
    tally = Tally()
    for a, b in pairs:
        print("\n".join(compare_pair(a, b, args, tally)))
    for r in alone:
        cells = " ".join(f"{k}={v}" for k, v in r.key)
        print(
            f"unmatched: {r.label} ({cells or 'all defaults'}) of {r.folder.parent} has no counterpart  <-- DIFFERENT"
        )
        tally.flagged = True
    unknown = f"; noise unknown for {tally.unknown} figure(s), not judged" if tally.unknown else ""
    print(
        "verdict: "
        + ("differences beyond the noise (flagged above)" if tally.flagged else "no difference beyond the noise")
        + unknown
    )
    return 1 if tally.flagged else 0


if __name__ == "__main__":
    sys.exit(main())
