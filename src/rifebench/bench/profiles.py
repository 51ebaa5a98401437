"""CSV profiles for benchmark.sh: one row per run, one column per option variable.

A cell is a value handed to the run as an environment variable, never shell:
every cell is checked before any row runs (unknown column, shell
metacharacters, the option's own parser, then the checks across options of
config.validate), so a bad profile fails in a second with the row and column
named; then every row's start-up checks run (platform, knobs, streams plan,
socket, dataset list, LOAD_PATH), so row 500 cannot fail at its turn for a
reason known at start. An empty cell leaves the variable to the environment or
the default. Lines starting with '#' are comments; comma-only lines (which
spreadsheets export) are skipped. Intel's reference profiles are read
unchanged: `model_name` is a label recorded in the summary, not a variable.
"""

from __future__ import annotations

import csv
import importlib.resources
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rifebench.errors import UsageError
from rifebench.options import BY_ENV
from rifebench.paths import checkout_root

# OUTPUT_DIR is the benchmark's own folder; each row gets OUTPUT_DIR/test_<n>.
RESERVED = {"OUTPUT_DIR": "benchmark.sh gives each row its own OUTPUT_DIR/test_<n>"}
# Columns of the reference's profiles that label a row and never reach the run.
# `RIFE,...` there means the reference's one model: our default, unless MODEL says otherwise.
LABELS = ("model_name",)
SHELL_META = set("$`;&|<>(){}[]*?!\\\"'")


class ProfileError(UsageError):
    """The message is the whole one-line error (file, row, column, value, accepted); exit 2."""


def shipped() -> dict[str, Path]:
    """The profiles that come with rifebench, by name (`cpu` for cpu.csv): the
    checkout's profiles/ folder, or the same files installed as rifebench.profiles."""
    root = checkout_root()
    folder = root / "profiles" if root else Path(str(importlib.resources.files("rifebench.profiles")))
    return {p.stem: p for p in sorted(folder.glob("*.csv"))}


def locate(given: str) -> str:
    """A profile as given: a file's path, else a shipped profile's name."""
    if Path(given).exists() or given not in shipped():
        return given  # read() names the shipped profiles if nothing is there
    return str(shipped()[given])


@dataclass(frozen=True)
class Row:
    number: int  # 1-based: the row's folder is test_<number>
    line: int  # line in the file, for messages
    cells: dict = field(default_factory=dict)  # variable -> raw text, empty cells left out

    def where(self, path: str, column: str | None = None) -> str:
        return f"{path}: row {self.number} (line {self.line})" + (f", column {column}" if column else "")

    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.cells.items()) or "(all defaults)"


def read(path: str | Path) -> tuple[list[str], list[Row]]:
    """Header (canonical variable names) and rows. Raises ProfileError."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(
            f"PROFILE: cannot read {path!r} ({getattr(exc, 'strerror', None) or exc}) "
            f"(accepted: a CSV file, or a shipped profile by name: {', '.join(shipped()) or 'none installed'})"
        ) from None
    kept = [
        (n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")
    ]
    if not kept:
        raise ProfileError(
            f"{path}: no header and no rows (accepted: a header of option variables, then one "
            "row per run; see profiles/README.md)"
        )
    parsed = _records(path, kept)
    head_line, head = parsed[0]
    header = [_column(path, head_line, i, name) for i, name in enumerate(head, 1)]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ProfileError(f"{path}: line {head_line}: column {dupes[0]} appears twice (accepted: each option once)")
    rows = []
    for number, (line_no, cells) in enumerate(parsed[1:], 1):
        if len(cells) != len(header):
            raise ProfileError(
                f"{path}: row {number} (line {line_no}) has {len(cells)} cells for {len(header)} "
                f"columns (accepted: one cell per column; leave a cell empty for the default)"
            )
        values = {h: c.strip() for h, c in zip(header, cells, strict=True) if c.strip() != ""}
        rows.append(Row(number, line_no, values))
    if not rows:
        raise ProfileError(f"{path}: header only, no rows to run (accepted: at least one row)")
    return header, rows


def _records(path: str, kept: list[tuple[int, str]]) -> list[tuple[int, list[str]]]:
    """(file line, cells) per kept line, comma-only lines left out. A quoted cell
    spanning lines is refused: joining its lines would turn "0<newline>1" into 01."""
    reader = csv.reader(io.StringIO("\n".join(line for _, line in kept)), skipinitialspace=True)
    out: list[tuple[int, list[str]]] = []
    used = 0
    for cells in reader:
        first, used = used, reader.line_num
        if used - first > 1:
            where = f"row {len(out)} (line {kept[first][0]})" if out else f"line {kept[first][0]} (the header)"
            raise ProfileError(
                f"{path}: {where}: a quoted cell holds a line break (accepted: one line per row; "
                "a cell is a single value)"
            )
        if any(c.strip() for c in cells):
            out.append((kept[first][0], cells))
    if not out:
        raise ProfileError(
            f"{path}: no header and no rows (accepted: a header of option variables, then one "
            "row per run; see profiles/README.md)"
        )
    return out


def _column(path: str, line: int, index: int, raw: str) -> str:
    if raw.strip().lower() in LABELS:
        return raw.strip().lower()
    name = raw.strip().upper()
    if name in RESERVED:
        raise ProfileError(f"{path}: line {line}: column {name} cannot be set in a profile: {RESERVED[name]}")
    if name not in BY_ENV:
        accepted = ", ".join([*(v for v in BY_ENV if v not in RESERVED), *(f"{lab} (a label)" for lab in LABELS)])
        raise ProfileError(
            f"{path}: line {line}: column {index} {raw.strip()!r} is not an option variable (accepted: {accepted})"
        )
    return name


def check_cell(value: str) -> str | None:
    """Why a cell is not a plain value, or None."""
    bad = sorted({c for c in value if c in SHELL_META or ord(c) < 32 or ord(c) == 127})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        return (
            f"invalid value {value!r}: shell metacharacter(s) {shown} (accepted: a plain value; a cell is "
            "passed as an environment variable, never through a shell)"
        )
    return None


def base_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The option variables the benchmark's own environment sets for every row."""
    return {k: v for k, v in environ.items() if k in BY_ENV and k not in RESERVED}


def row_env(row: Row, environ: Mapping[str, str]) -> dict[str, str]:
    """Option variables of one row: the environment's, overridden by the row's
    cells. Performance mode unless a dataset is named anywhere."""
    env = base_env(environ) | {k: v for k, v in row.cells.items() if k not in LABELS}
    if "DUMMY" not in env and not env.get("DATASET_DIR"):
        env["DUMMY"] = "1"
    return env


def origins(row: Row, environ: Mapping[str, str]) -> dict[str, str]:
    """Where each option variable of a row takes its value from: "profile" (its
    cell), "environment" (set for benchmark.sh, e.g. DATA_HEIGHT=256 ./benchmark.sh),
    "benchmark.sh" (OUTPUT_DIR, the row's folder; DUMMY=1 when no dataset is
    named), else "default"."""
    base, env = base_env(environ), row_env(row, environ)
    out = {}
    for var in BY_ENV:
        if var in row.cells:
            out[var] = "profile"
        elif var in base:
            out[var] = "environment"
        elif var in env or var in RESERVED:
            out[var] = "benchmark.sh"
        else:
            out[var] = "default"
    return out


def validate(path: str, rows: list[Row], environ: Mapping[str, str], startup: bool = True) -> list[str]:
    """Every problem of every row, one line each; empty when all rows are valid.
    `startup`: also run each row's start-up checks on this host (not for rows
    run in a container, whose platform and paths are the image's)."""
    errors: list[str] = []
    seen: dict[tuple[tuple[str, str], ...], tuple[str, str | None] | None] = {}
    for row in rows:
        bad = [
            f"{row.where(path, col)}: {why}" for col, value in row.cells.items() if (why := _cell_problem(col, value))
        ]
        errors += bad or _row_problems(path, row, row_env(row, environ), startup, seen)
    return errors


def _cell_problem(col: str, value: str) -> str | None:
    why = check_cell(value)
    if why is None and col not in LABELS:
        try:
            BY_ENV[col].parse(value, "env")
        except UsageError as exc:
            why = str(exc).removeprefix(f"{col}: ")
    return why


def _row_problems(
    path: str,
    row: Row,
    env: dict[str, str],
    startup: bool,
    seen: dict[tuple[tuple[str, str], ...], tuple[str, str | None] | None],
) -> list[str]:
    """The checks across options, then the run's own start-up checks (once per
    distinct set of variables: a profile of 500 alike rows checks one)."""
    from rifebench.config import resolve
    from rifebench.run.startup import startup_checks

    key = tuple(sorted(env.items()))
    if key not in seen:
        seen[key] = None
        try:
            cfg = resolve([], env=env)
        except UsageError as exc:
            seen[key] = (str(exc), None)
        if startup and seen[key] is None:
            try:
                startup_checks(cfg, output_dir=False)
            except UsageError as exc:  # "--platform/PLATFORM: ..." names the column PLATFORM
                seen[key] = (str(exc), str(exc).split(":", 1)[0].rpartition("/")[2])
    found = seen[key]
    if found is None:
        return []
    msg, var = found
    return [f"{row.where(path, var if var in row.cells else None)}: {msg}"]


def resolved(row: Row, environ: Mapping[str, str], output_dir: str) -> dict[str, Any]:
    """The row's configuration as the run will resolve it (paths as on this
    host; `auto` platform and optimisation choices are settled by the run itself
    and recorded in its results.json)."""
    from rifebench.config import resolve

    cfg = resolve([], env=row_env(row, environ) | {"OUTPUT_DIR": output_dir})
    return cfg.to_dict()
