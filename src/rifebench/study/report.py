"""The study's files: study.json (the document, rows from their to_dict()) and
study.md (the table and its notes), written atomically after every size so a
later failure loses nothing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rifebench.fsutil import atomic_write_text
from rifebench.study.records import StudyRow
from rifebench.study.score import STATISTIC
from rifebench.warning_codes import line


def figure(x: float | None, spec: str) -> str:
    """A figure in a table cell; n/a when there is none (never a zero)."""
    return "n/a" if x is None else format(x, spec)


def with_ci(x: float | None, ci: Sequence[float] | None, spec: str, unit: str = "") -> str:
    return "n/a" if x is None else f"{x:{spec}}{unit}" + (f" [{ci[0]:{spec}}, {ci[1]:{spec}}]" if ci else "")


def table(rows: Sequence[StudyRow]) -> str:
    out = [
        "| size | config | FPS [95% CI] | ms/pair median (min) | speed-up [95% CI] | CPU-time speed-up "
        "| PSNR dB vs reference | SSIM | max abs | peak mem MiB (added) | warm-up s | fell back | dataset PSNR dB "
        "(SSIM) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    crossed = len({r.model for r in rows}) > 1
    for r in rows:
        q = r.quality or {}
        name = f"{r.model} {r.config}" if crossed else r.config
        if r.error:
            out.append(f"| {r.size} | {name} | failed: {r.error} ||||||||||| |")
            continue
        mem, added = r.peak_mem_bytes, r.peak_mem_added_bytes
        psnr = "identical" if q.get("identical") else figure(q.get("psnr_db"), ".1f")
        out.append(
            f"| {r.size} | {name} ({r.precision}{', random weights' if r.weights == 'random' else ''}) | "
            f"{with_ci(r.fps, r.fps_ci95, '.2f')} | "
            f"{figure(r.ms_p50, '.0f')} ({figure(r.ms_min, '.0f')}) | "
            f"{with_ci(r.speedup, r.speedup_ci95, '.2f', 'x')} | "
            f"{figure(r.speedup_cpu_time, '.2f')}{'x' if r.speedup_cpu_time else ''} | "
            f"{psnr} | {figure(q.get('ssim'), '.5f')} | {figure(q.get('max_abs_err'), '.2e')} | "
            f"{figure(mem / 2**20 if mem else None, '.0f')}"
            f"{'' if added is None else f' (+{added / 2**20:.0f})'} | {figure(r.warmup_s, '.1f')} | "
            f"{'; '.join(r.fallbacks) or '-'} | {_dataset(r)} |"
        )
    return "\n".join(out)


def _dataset(r: StudyRow) -> str:
    if r.weights == "random":
        return "speed only"
    d = r.dataset_quality
    return "-" if not d else f"{d['psnr_db']:.2f} ({d['ssim']:.4f}){' Pareto' if r.pareto else ''}"


def notes(rows: Sequence[StudyRow]) -> list[str]:
    """The lines under the table: how the figures were computed, then every warning."""
    return [STATISTIC + "."] + [line(w) for r in rows for w in r.warnings]


def write(out: Path, doc: dict[str, Any], rows: Sequence[StudyRow]) -> None:
    """study.json (`doc`, whose "rows" are the rows' to_dict()) and study.md, atomically."""
    atomic_write_text(out / "study.json", json.dumps(doc, indent=2, default=str, allow_nan=False) + "\n")
    md = [
        f"# Optimisation study ({doc['started']} to {doc['finished']})",
        "",
        f"`{doc['command']}`",
        "",
        f"{doc['cpu']}, model {', '.join(doc.get('models') or [doc['model']])}, {doc['threads']} threads, "
        f"{doc['rounds']} rounds of "
        f"{doc['pairs']} pair(s){'' if doc['complete'] else ' (incomplete)'}",
        "",
        table(rows),
        "",
    ]
    md += [f"- {n}" for n in notes(rows)]
    md += [f"\n![speed vs quality]({name})" for name in doc.get("charts") or ()]
    atomic_write_text(out / "study.md", "\n".join(md) + "\n")
