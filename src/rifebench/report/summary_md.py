"""summary.md: the benchmark's result line, the machine, the table of rows
(report/table.py), what went wrong (failed rows, invalid measurements, every
row's warnings with their remedies), the plots and how to read the figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rifebench.report.table import RowRecord, md_table, setting_vars, to_dict

# The order of the "What ran" lines: where a value came from, most deliberate first.
ORIGIN_ORDER = ("profile", "environment", "flag", "env", "benchmark.sh", "default")


def markdown(
    meta: dict[str, Any],
    system: dict[str, Any],
    header: Sequence[str],
    records: Sequence[RowRecord],
    plots: Sequence[str],
) -> str:
    counts = {s: sum(r.status == s for r in records) for s in ("passed", "failed", "interrupted", "not run")}
    constant = [
        h for h in header if len({r.cells.get(h, "") for r in records}) <= 1 and records and records[0].cells.get(h)
    ]
    invalid = [r for r in records if r.valid is False]
    out = [f"# Benchmark: {Path(meta['profile']).name}", ""]
    out.append(
        f"- **Result: {counts['passed']} of {len(records)} rows passed**"
        + "".join(f", {n} {s}" for s, n in counts.items() if n and s != "passed")
        + (
            f"; **{len(invalid)} measured row(s) invalid** (see below): their figures and speed-ups cannot be trusted"
            if invalid
            else ""
        )
    )
    out.append(
        f"- Profile `{meta['profile']}`, run {meta['mode']}"
        + (
            f" in image `{meta['image']['name']}` ({meta['image'].get('digest') or meta['image'].get('id')})"
            if meta.get("image")
            else ""
        )
        + f", {meta['started']} to {meta.get('finished', '…')}"
    )
    out.append(f"- Machine: {machine_line(system)}")
    if constant:
        out.append("- Same in every row: " + ", ".join(f"`{h}={records[0].cells[h]}`" for h in constant))
    out += ["", *md_table(header, records)]
    problems = [r for r in records if r.status != "passed" or r.fingerprint_note]
    if problems:
        out += ["", "## Rows that did not pass", ""]
        out += [f"- row {r.row} ({r.status}): {r.reason or r.fingerprint_note}" for r in problems]
    out += warnings_section(records)
    out += settings_section(records)
    if plots:
        out += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    out += ["", "## How to read this", "", *_notes(header, records)]
    return "\n".join(out) + "\n"


def warnings_section(records: Sequence[RowRecord]) -> list[str]:
    """Every row's invalidity and warnings in words: a figure read from the table
    alone must not hide that its run said the machine was busy."""
    out = []
    for r in records:
        details = {w["code"]: w for w in r.warning_details}
        checks = {c.get("code"): c for c in r.validity_checks}
        if not details and r.valid is not False:
            continue
        verdict = (
            f"**invalid** ({', '.join(r.validity_reasons)})"
            if r.valid is False
            else "valid, with warnings"
            if r.valid is True
            else "warnings"
        )
        out.append(f"- row {r.row}: {verdict}")
        for code in dict.fromkeys([*r.validity_reasons, *details]):
            w = details.get(code) or {}
            text = w.get("message") or (checks.get(code) or {}).get("detail") or "see results.json"
            out.append(f"  - `{code}`: {text}" + (f". Remedy: {w['remedy']}" if w.get("remedy") else ""))
    return ["", "## Invalid measurements and warnings", "", *out] if out else []


def settings_section(records: Sequence[RowRecord]) -> list[str]:
    """Every option as the rows ran it and where its value came from: the settings
    every row shares, grouped by origin, then those that vary (their values are
    columns of the table above)."""
    rows = [r for r in records if r.settings]
    if not rows:
        return []
    same: dict[str, list[str]] = {}
    varying = []
    for var in setting_vars():
        seen = {(r.settings.get(var, ""), r.settings_from.get(var, "default")) for r in rows}
        if len(seen) > 1:
            origins = sorted({o for _, o in seen}, key=_origin_rank)
            varying.append(f"`{var}` ({', '.join(origins)})")
            continue
        value, origin = seen.pop()
        same.setdefault(origin, []).append(f"`{var}={value}`" if value != "" else f"`{var}` unset")
    out = [
        "",
        "## What ran",
        "",
        "Every option as the rows ran it, and where its value came from: a cell of the profile, the "
        "environment benchmark.sh ran in, benchmark.sh itself (each row's OUTPUT_DIR; DUMMY=1 when no dataset "
        "is named) or the option's default; `auto -> x`: what the run settled on this machine. Per row: "
        "`ran:VAR` and `from:VAR` in summary.csv, `row_settings` in benchmark.json.",
        "",
    ]
    out += [f"- Same in every row, {_from(origin)}: {', '.join(items)}" for origin, items in _by_origin(same)]
    if varying:
        out.append(f"- Varies by row (see the table): {', '.join(varying)}")
    return out


def _origin_rank(origin: str) -> tuple[int, str]:
    word = origin.split(" (")[0]
    return (ORIGIN_ORDER.index(word) if word in ORIGIN_ORDER else len(ORIGIN_ORDER), origin)


def _from(origin: str) -> str:
    """'profile' -> 'from the profile', 'default (auto -> cpu)' -> 'by default (auto -> cpu)'."""
    word, _, rest = origin.partition(" (")
    said = {"profile": "from the profile", "environment": "from the environment", "default": "by default"}
    return said.get(word, f"from {word}") + (f" ({rest}" if rest else "")


def _by_origin(groups: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    return sorted(groups.items(), key=lambda kv: _origin_rank(kv[0]))


def machine_line(system: dict[str, Any]) -> str:
    gib = (system.get("memory_bytes") or 0) / 2**30
    numa = len(system.get("numa_nodes") or []) or "?"
    pk = system.get("packages") or {}
    gpus = [g.get("name") or g.get("device_name") for g in system.get("gpus") or [] if "error" not in g]
    return (
        f"{system.get('cpu_model')} ({system.get('sockets') or '?'} socket(s), {system.get('cpu_physical')} "
        f"cores, {system.get('cpu_logical')} CPUs, {numa} NUMA node(s)), {gib:.1f} GiB, "
        f"{system.get('os')}, kernel {system.get('kernel')}, Python {system.get('python')}, "
        f"torch {pk.get('torch')}"
        + (f", IPEX {pk['ipex']}" if pk.get("ipex") else "")
        + (f"; GPU: {', '.join(str(g) for g in gpus)}" if gpus else "; no GPU")
        + (" (in a container)" if system.get("in_container") else "")
    )


def _notes(header: Sequence[str], records: Sequence[RowRecord]) -> list[str]:
    dicts = [to_dict(r, header) for r in records]
    keys = {k for d in dicts for k, v in d.items() if v not in (None, [])}
    basis = next((r.latency_basis for r in records if r.latency_basis), None)
    notes = [
        "- Throughput: interpolated images over the wall time from the first stream's start to the last "
        "stream's end, all streams on one clock (per row in `test_<n>/results.json`); with REPEAT > 1, the "
        "median over the repetitions, and CI95 low / high its 95% bootstrap interval.",
        "- Latency p50 / p99: percentiles of every pair's own timing over all streams "
        f"({basis or 'see results.json'}).",
        "- Valid: the run's own checks (enough samples, a quiet CPU, no throttling, aligned stream windows, a "
        "steady state); an invalid row's figures are shown but must not be compared. Warnings: the codes "
        "each run recorded, explained above and in the README's warning table.",
    ]
    if any(r.mode == "dummy" for r in records):
        notes.append("- Accuracy is 0 in dummy (performance) mode: no quality verdict is made there.")
    if any(r.mode in ("dataset", "video") for r in records):
        notes.append(
            "- Accuracy (dataset and video rows): % of interpolated frames at or above the PSNR threshold "
            "(video rows: against the frames dropped from the input, VIDEO_GT=drop; 0 with VIDEO_GT=none)."
        )
    if "peak_mem_mib" in keys:
        notes.append(
            "- Peak memory: the device's peak allocation where it reports one, else the stream process's "
            "peak resident memory; the largest over streams."
        )
    if "speedup" in keys:
        notes.append(
            "- Speed-up: the row's throughput over row 1's, measured in this one benchmark; marked "
            "(invalid) when either row's measurement is invalid."
        )
    if "psnr_db" in keys:
        notes.append(
            "- PSNR / SSIM: for dataset rows, the mean over the interpolated frames against the ground "
            "truth; for dummy rows, the row's output fingerprint (`images/dummy_0.npy`, the frame "
            "interpolated from the seeded dummy pair) against row 1's (PSNR and max error on the float "
            "output in [0, 1], SSIM on 8-bit frames as the RIFE evaluation computes it). `identical`: "
            "the outputs are bit for bit the same."
        )
    if "gpu_util_pct" in keys:
        notes.append(
            "- GPU telemetry: sampled about once a second in the timed window only (the `telemetry` "
            "section of `test_<n>/results.json`), each GPU found by its PCI bus id; mean utilisation, "
            "mean power summed over the GPUs, peak memory used."
        )
    return notes
