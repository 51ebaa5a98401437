"""Reading the two folders compare is given: a run (results.json) or a benchmark
(test_<n>/ folders with their row.json), each result read through the schema; a
file that is not what it claims is bad input (CompareError, exit 2)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from rifebench.compare.stats import Figure, figures, pool_repeats
from rifebench.errors import UsageError
from rifebench.report.fingerprint import FINGERPRINT, read_fingerprint
from rifebench.report.schema import RunNotFinished, RunResult, SchemaError, UnknownSchema, load_results
from rifebench.report.shape import describe

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

    @property
    def cells(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.key) or "all defaults"


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
