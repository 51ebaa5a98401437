"""Which results compare sets side by side, and what each folder is, in words.

Two benchmarks: rows pair by their cells, repeats one by one; a row with no
counterpart is a difference. A benchmark and a single run: the run pairs with the
row closest to it (the same workload first, then the fewest differing options),
and the other rows are not compared, which is no difference: a run is one row."""

from __future__ import annotations

from dataclasses import dataclass, field

from rifebench.compare.checks import config_diff, mode_of, workload_diff
from rifebench.compare.load import Result


@dataclass
class Matching:
    pairs: list[tuple[Result, Result]] = field(default_factory=list)
    unmatched: list[tuple[str, Result]] = field(default_factory=list)  # (side, row): a difference
    spare: list[tuple[str, Result]] = field(default_factory=list)  # (side, row) beside a single run: not compared


def closest(single: Result, rows: list[Result]) -> Result:
    """The row a single run is compared with."""

    def distance(i: int) -> tuple[int, int, int]:
        r = rows[i]
        if r.run is None or single.run is None:
            return (1_000, 1_000, i)
        return (len(workload_diff(single.run, r.run)), len(config_diff(single.run, r.run)), i)

    return rows[min(range(len(rows)), key=distance)]


def match(kind_a: str, a: list[Result], kind_b: str, b: list[Result]) -> Matching:
    if len(a) == 1 and len(b) == 1:
        return Matching([(a[0], b[0])])
    if kind_a == "run" or kind_b == "run":
        single, rows, side = (a[0], b, "B") if kind_a == "run" else (b[0], a, "A")
        row = closest(single, rows)
        pair = (single, row) if kind_a == "run" else (row, single)
        return Matching([pair], spare=[(side, r) for r in rows if r is not row])
    pool = list(b)
    out = Matching()
    for r in a:
        other = next((x for x in pool if x.key == r.key), None)
        if other is None:
            out.unmatched.append(("A", r))
        else:
            pool.remove(other)
            out.pairs.append((r, other))
    out.unmatched += [("B", r) for r in pool]
    return out


def what_ran(r: Result) -> str:
    """A run in a few words: mode, model, precision and platform, frame size."""
    run = r.run
    if run is None:
        return r.status
    cfg = run.config
    mode = mode_of(run) or "mode unknown"
    words = [
        f"{mode} mode",
        f"model {cfg.get('model', '?')}",
        f"{cfg.get('precision', '?')} on {cfg.get('platform', '?')}",
    ]
    if mode == "dummy" and cfg.get("data_width") and cfg.get("data_height"):
        words.append(f"{cfg['data_width']}x{cfg['data_height']}")
    inp = (run.video or {}).get("input") or {}
    if mode == "video" and inp.get("width"):
        words.append(f"a {inp['width']}x{inp['height']} video of {inp.get('frames')} frames")
    if mode == "dataset" and run.quality:
        words.append(f"{run.quality.get('planned')} triplets")
    return ", ".join(words)


def describe(kind: str, results: list[Result]) -> str:
    """What a folder is: 'a single run (dummy mode, ...)' or 'a benchmark of 3 rows (...)'."""
    if kind == "run":
        return f"a single run ({what_ran(results[0])})"
    rows = "; ".join(f"{r.label}: {r.cells}" for r in results[:4]) + ("; ..." if len(results) > 4 else "")
    return f"a benchmark of {len(results)} row(s) ({rows})"


def spare_line(side: str, r: Result, paired: Result) -> str:
    return (
        f"not compared: {side} {r.label} ({r.cells}): the other side is a single run, compared with "
        f"{side} {paired.label} only (the row closest to its configuration)"
    )


def unmatched_line(side: str, r: Result) -> str:
    other = "B" if side == "A" else "A"
    return f"unmatched: {side} {r.label} ({r.cells}): {other} has no row with these cells  <-- DIFFERENT"
