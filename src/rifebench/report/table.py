"""The benchmark summary's row record and columns: one `RowRecord` per row, one
`to_dict()` of it, one table of columns, and the renderings of that dict
(summary.csv through the one CSV writer, the markdown table).

hyperfine's CSV drifted from its JSON because its columns were kept by hand in
two places; here a column exists once, in COLUMNS, and both files follow it.
The fleet report writes its CSV through the same `csv_text`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple, TypeVar

IDENTICAL = "identical"
R = TypeVar("R", bound="RowRecord")


@dataclass
class RowRecord:
    """One benchmark row as the summary shows it: what ran, how it ended, and
    (for a measured row) its figures from results.json. A row that did not
    produce a measurement has no figures, never zeros."""

    row: int
    cells: dict[str, str]
    status: str
    reason: str | None = None
    exit_code: int | None = None
    dir: str | None = None  # the row's folder, relative to the benchmark's (None: it has none)
    wall_s: float | None = None
    # What the row ran (from results.json's config).
    platform: str | None = None
    precision: str | None = None
    streams: int | None = None
    mode: str | None = None
    model: str | None = None
    size: str | None = None
    device: str | None = None
    warnings: list[str | None] = field(default_factory=list)
    warning_details: list[dict[str, Any]] = field(default_factory=list)
    # The measured figures.
    throughput_img_s: float | None = None
    throughput_ci_low: float | None = None
    throughput_ci_high: float | None = None
    latency_mean_ms: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    accuracy_pct: float | None = None
    duration_s: float | None = None
    latency_basis: str | None = None
    peak_mem_mib: float | None = None
    repeat: int | None = None
    valid: bool | None = None
    validity_reasons: list[str] = field(default_factory=list)
    validity_checks: list[dict[str, Any]] = field(default_factory=list)
    psnr_db: float | None = None
    ssim: float | None = None
    quality_basis: str | None = None
    # The GPUs in the timed window (the run's telemetry).
    gpu_util_pct: float | None = None
    gpu_power_w: float | None = None
    gpu_mem_used_mib: float | None = None
    telemetry_tool: str | None = None
    # Against row 1 (summary.add_reference).
    speedup: float | None = None
    speedup_invalid: bool | None = None
    max_abs_err: float | None = None
    fingerprint_note: str | None = None
    # Every option variable as the row ran it (text) and where that value came from
    # (profile, environment, benchmark.sh or default, with what the run settled: "auto -> cpu").
    settings: dict[str, str] = field(default_factory=dict)
    settings_from: dict[str, str] = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return self.throughput_img_s is not None

    def update(self, values: Mapping[str, Any]) -> None:
        """Set fields by name (a figure dict from results.json); an unknown name is a bug."""
        for key, value in values.items():
            if not hasattr(self, key):
                raise AttributeError(f"{type(self).__name__} has no field {key!r}")
            setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls: type[R], d: Mapping[str, Any]) -> R:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class Column:
    key: str
    label: str  # markdown header
    spec: str = ""  # number format in the markdown table


class Flagged(NamedTuple):
    """A figure that must never travel without its mark (a speed-up computed
    from an invalid measurement)."""

    value: float
    note: str


COLUMNS = (
    Column("valid", "valid"),
    Column("validity_reasons", "invalid because"),
    Column("warnings", "warnings"),
    Column("throughput_img_s", "throughput img/s", ".2f"),
    Column("throughput_ci_low", "CI95 low img/s", ".2f"),
    Column("throughput_ci_high", "CI95 high img/s", ".2f"),
    Column("latency_mean_ms", "latency mean ms", ".1f"),
    Column("latency_p50_ms", "latency p50 ms", ".1f"),
    Column("latency_p99_ms", "latency p99 ms", ".1f"),
    Column("accuracy_pct", "accuracy %", ".2f"),
    Column("peak_mem_mib", "peak mem MiB", ".0f"),
    Column("speedup", "speed-up vs row 1", ".2f"),
    Column("psnr_db", "PSNR dB", ".2f"),
    Column("ssim", "SSIM", ".4f"),
    Column("quality_basis", "PSNR/SSIM of"),
    Column("max_abs_err", "max error vs row 1", ".2e"),
    Column("gpu_util_pct", "GPU util %", ".0f"),
    Column("gpu_power_w", "GPU power W", ".0f"),
    Column("gpu_mem_used_mib", "GPU mem MiB", ".0f"),
    Column("duration_s", "duration s", ".1f"),
)
# Columns a reader of the markdown table does not need beside the rest (still in the CSV).
MD_HIDDEN = {"latency_mean_ms", "duration_s"}


def speedup(rec: Mapping[str, Any]) -> float | Flagged | None:
    s = rec.get("speedup")
    return Flagged(s, "invalid") if s is not None and rec.get("speedup_invalid") else s


def setting_vars() -> list[str]:
    """Every option variable, in the option table's order (the settings columns)."""
    from rifebench.options import OPTIONS

    return [o.env for o in OPTIONS]


def fieldnames(header: Sequence[str]) -> list[str]:
    """summary.csv's columns: the row, the profile's columns, then COLUMNS, the
    reason, and for every option variable what ran (`ran:VAR`) and where that
    value came from (`from:VAR`)."""
    settings = [name for var in setting_vars() for name in (f"ran:{var}", f"from:{var}")]
    return ["row", *header, "status", "exit_code", *(c.key for c in COLUMNS), "reason", *settings]


def to_dict(rec: RowRecord, header: Sequence[str]) -> dict[str, Any]:
    """One row of the summary table, from the record's to_dict(): numbers stay
    numbers, absent figures None, a speed-up of an invalid row Flagged."""
    d = rec.to_dict()
    out = {
        "row": d["row"],
        **{h: d["cells"].get(h, "") for h in header},
        "status": d["status"],
        "exit_code": d["exit_code"],
    }
    for c in COLUMNS:
        out[c.key] = speedup(d) if c.key == "speedup" else d[c.key]
    out["reason"] = d["reason"]
    for var in setting_vars():
        out[f"ran:{var}"] = d["settings"].get(var)
        out[f"from:{var}"] = d["settings_from"].get(var)
    return out


# --- CSV -----------------------------------------------------------------------------------


def csv_value(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, Flagged):
        return f"{csv_value(x.value)} ({x.note})"
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        return IDENTICAL if math.isinf(x) else f"{x:.6g}"
    if isinstance(x, (list, tuple)):
        return ";".join(map(str, x))
    return str(x)


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """The one CSV writer (summary.csv of a benchmark and of a fleet): the
    columns, then each row's values by column name, as csv_value writes them."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([csv_value(r.get(k)) for k in columns])
    return buf.getvalue()


def summary_csv(header: Sequence[str], records: Sequence[RowRecord]) -> str:
    """summary.csv: one line per row (fieldnames)."""
    return csv_text(fieldnames(header), [to_dict(r, header) for r in records])


# --- the markdown table --------------------------------------------------------------------


def md_value(x: Any, spec: str = "") -> str:
    if x is None or x == []:
        return "\N{EN DASH}"
    if isinstance(x, Flagged):
        return f"**{md_value(x.value, spec)} ({x.note})**"
    if isinstance(x, bool):
        return "yes" if x else "**no**"
    if isinstance(x, float) and math.isinf(x):
        return IDENTICAL
    if isinstance(x, (int, float)) and spec:
        return format(x, spec)
    if isinstance(x, (list, tuple)):
        return ", ".join(map(str, x))
    return str(x)


def md_table(header: Sequence[str], records: Sequence[RowRecord]) -> list[str]:
    """Profile columns that vary, the other settings that vary between rows (as
    they ran), the status, then every column some row fills; a header cell for
    every column, whichever are shown."""
    dicts = [to_dict(r, header) for r in records]
    varying = [h for h in header if len({d[h] for d in dicts}) > 1]
    ran = [v for v in varying_settings(records) if v not in header]
    shown = [c for c in COLUMNS if c.key not in MD_HIDDEN and any(d[c.key] not in (None, []) for d in dicts)]
    labels = ["row", *varying, *ran, "status", *(c.label for c in shown)]
    aligns = ["---"] * (len(labels) - len(shown)) + ["---:" if c.spec else "---" for c in shown]
    out = ["| " + " | ".join(labels) + " |", "|" + "|".join(aligns) + "|"]
    for rec, d in zip(records, dicts, strict=True):
        status = d["status"] if d["status"] == "passed" else f"**{d['status']}**"
        cells = [
            f"[{d['row']}]({rec.dir}/)",
            *(d[h] for h in varying),
            *(md_value(rec.settings.get(v)) for v in ran),
            status,
            *(md_value(d[c.key], c.spec) for c in shown),
        ]
        out.append("| " + " | ".join(cells) + " |")
    return out


def varying_settings(records: Sequence[RowRecord]) -> list[str]:
    """The option variables whose value differs between rows (as they ran); not
    OUTPUT_DIR, which is each row's own folder by design."""
    return [v for v in setting_vars() if v != "OUTPUT_DIR" and len({r.settings.get(v) for r in records}) > 1]
