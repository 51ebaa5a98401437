"""The benchmark summary's columns: one table of columns, one `to_dict` per row,
and two renderings of that dict (summary.csv, the markdown table).

hyperfine's CSV drifted from its JSON because its columns were kept by hand in
two places; here a column exists once, in COLUMNS, and both files follow it.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import NamedTuple

IDENTICAL = "identical"


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


def speedup(rec: dict):
    s = rec.get("speedup")
    return Flagged(s, "invalid") if s is not None and rec.get("speedup_invalid") else s


def fieldnames(header: list[str]) -> list[str]:
    """summary.csv's columns: the row, the profile's columns, then COLUMNS."""
    return ["row", *header, "status", "exit_code", *(c.key for c in COLUMNS), "reason"]


def to_dict(rec: dict, header: list[str]) -> dict:
    """One row of the summary, typed: numbers stay numbers, absent figures None."""
    out = {
        "row": rec["row"],
        **{h: rec["cells"].get(h, "") for h in header},
        "status": rec["status"],
        "exit_code": rec.get("exit_code"),
    }
    for c in COLUMNS:
        out[c.key] = speedup(rec) if c.key == "speedup" else rec.get(c.key)
    out["reason"] = rec.get("reason")
    return out


# --- summary.csv ---------------------------------------------------------------------------


def csv_value(x) -> str:
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


def csv_text(header: list[str], records: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fieldnames(header))
    for r in records:
        w.writerow([csv_value(v) for v in to_dict(r, header).values()])
    return buf.getvalue()


# --- the markdown table --------------------------------------------------------------------


def md_value(x, spec: str = "") -> str:
    if x is None or x == []:
        return "–"
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


def md_table(header: list[str], records: list[dict]) -> list[str]:
    """Profile columns that vary, the status, then every column some row fills."""
    dicts = [to_dict(r, header) for r in records]
    varying = [h for h in header if len({d[h] for d in dicts}) > 1]
    shown = [c for c in COLUMNS if c.key not in MD_HIDDEN and any(d[c.key] not in (None, []) for d in dicts)]
    out = [
        "| row | "
        + " | ".join(varying)
        + (" | " if varying else "")
        + "status | "
        + " | ".join(c.label for c in shown)
        + " |",
        "|---|" + "---|" * len(varying) + "---|" + "".join("---:|" if c.spec else "---|" for c in shown),
    ]
    for rec, d in zip(records, dicts):
        cells = [d[h] for h in varying]
        status = d["status"] if d["status"] == "passed" else f"**{d['status']}**"
        out.append(
            f"| [{d['row']}]({rec['dir']}/) | "
            + " | ".join(cells)
            + (" | " if cells else "")
            + f"{status} | "
            + " | ".join(md_value(d[c.key], c.spec) for c in shown)
            + " |"
        )
    return out
