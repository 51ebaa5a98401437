"""What compare checks besides speed: that the two runs ran the same workload
(for a video: its size, frame count and a hash of its first frames), which options
differ (those that apply to the mode), and whether the outputs differ: the quality
figures of dataset and video runs, the output fingerprint of dummy runs saved with
--saveimages (expected to differ where an option that changes outputs differs)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from rifebench.measure.quality import PSNR_CAP_DB
from rifebench.report.fingerprint import FINGERPRINT, fingerprint_diff
from rifebench.report.schema import RunResult

ALWAYS_IGNORED = {"output_dir", "origin"}
# Options the mode never reads: a different value there is no difference.
NOT_IN_MODE: dict[str | None, set[str]] = {
    "dataset": {"seed", "data_height", "data_width", "data_channels", "min_test_duration", "max_test_duration"},
    "dummy": {"dataset_dir", "min_psnr_db", "min_pass_pct", "video_gt", "save_video"},
}
NOT_IN_MODE["video"] = NOT_IN_MODE["dataset"]
# Options that change what the model outputs: where one differs, so do the outputs.
CHANGES_OUTPUTS = ("model", "precision", "amp", "runtime", "scale")
EIGHT_BIT_LEVEL = 1 / 255


def mode_of(run: RunResult | None) -> str | None:
    if run is None:
        return None
    if run.mode:
        return run.mode
    cfg = run.config
    return None if "dummy" not in cfg else ("dummy" if cfg["dummy"] else "dataset")


def _config(run: RunResult | None) -> dict[str, Any]:
    return run.config if run else {}


def _quality(run: RunResult | None) -> dict[str, Any]:
    return (run.quality if run else None) or {}


def identity(run: RunResult | None) -> dict[str, Any]:
    """The workload: what must match for two runs' figures to be comparable.
    Precision, platform and knobs are what users compare, so they are not part of
    it; None means unknown and matches anything. No run (a row that crashed):
    nothing known."""
    cfg = _config(run)
    mode = mode_of(run)
    out = {
        "mode": mode,
        "model": cfg.get("model"),
        "interpolation": cfg.get("interpolation"),
        "batch_size": cfg.get("batch_size"),
    }
    if mode == "dummy":
        h, w = cfg.get("data_height"), cfg.get("data_width")
        out["data size"] = f"{w}x{h}" if h and w else None  # width x height, as everywhere
    elif mode == "dataset":
        q = _quality(run)
        out["triplets"] = q.get("planned") or None
        entries = [f.get("entry") for f in q.get("frames") or []]
        # The folder's path differs between machines; the list it held does not.
        out["triplet list"] = (
            hashlib.sha256("\n".join(map(str, entries)).encode()).hexdigest()[:12]
            if q.get("complete") and entries
            else None
        )
    elif mode == "video":
        out.update(video_identity(run))
    return out


def video_identity(run: RunResult | None) -> dict[str, Any]:
    """The video a run read (its size, frame count and first frames, not its path,
    which differs between machines) and the pairs each stream took from it."""
    v = (run.video if run else None) or {}
    inp = v.get("input") or {}
    w, h = inp.get("width"), inp.get("height")
    return {
        "video size": f"{w}x{h}" if w and h else None,
        "video frames": inp.get("frames"),
        "video first frames": inp.get("fingerprint"),
        "video_gt": v.get("video_gt"),
        "pairs": v.get("pairs_per_stream"),
    }


def output_knobs(a: RunResult | None, b: RunResult | None) -> list[str]:
    """The options that change outputs and differ between the two runs."""
    ca, cb = _config(a), _config(b)
    return [k for k in CHANGES_OUTPUTS if k in ca and k in cb and ca[k] != cb[k]]


def workload_diff(a: RunResult | None, b: RunResult | None) -> list[str]:
    ia, ib = identity(a), identity(b)
    return [
        f"{k} {ia.get(k)!r} -> {ib.get(k)!r}"
        for k in dict.fromkeys([*ia, *ib])
        if ia.get(k) is not None and ib.get(k) is not None and ia.get(k) != ib.get(k)
    ]


def config_diff(a: RunResult | None, b: RunResult | None) -> list[str]:
    ca, cb = _config(a), _config(b)
    ignored = ALWAYS_IGNORED | (NOT_IN_MODE.get(mode_of(a), set()) & NOT_IN_MODE.get(mode_of(b), set()))
    if ca.get("model") != "null" and cb.get("model") != "null":
        ignored = ignored | {"null_ms"}
    return [
        f"{k} {ca.get(k)!r} -> {cb.get(k)!r}"
        for k in sorted(set(ca) | set(cb))
        if k not in ignored and ca.get(k) != cb.get(k)
    ]


def quality_rows(a: RunResult | None, b: RunResult | None, psnr_drop: float) -> tuple[list[str], bool]:
    """Mean PSNR and SSIM, pass rate and verdict. A change of mean PSNR larger
    than psnr_drop dB, either way, or of the verdict, is a difference."""
    qa, qb = _quality(a), _quality(b)
    if not (qa or qb):
        return [], False
    pa, pb = qa.get("psnr_mean"), qb.get("psnr_mean")
    flagged = False
    if pa is None or pb is None:
        verdict, change = "not comparable", ""
    else:
        change = f"{pb - pa:+.2f} dB"
        if abs(pb - pa) > psnr_drop:
            verdict = f"{'WORSE' if pb < pa else 'BETTER'} (more than --psnr-drop {psnr_drop:g} dB)"
            flagged = True
        else:
            verdict = f"same within --psnr-drop {psnr_drop:g} dB"
    lines = [_row("mean PSNR dB", _psnr(pa), _psnr(pb), change, verdict)]
    sa, sb = qa.get("ssim_mean"), qb.get("ssim_mean")
    lines.append(
        _row(
            "mean SSIM",
            _num(sa, ".4f"),
            _num(sb, ".4f"),
            "" if sa is None or sb is None else f"{sb - sa:+.4f}",
            "for information",
        )
    )
    ra, rb = qa.get("pass_pct"), qb.get("pass_pct")
    lines.append(
        _row(
            "pass rate %",
            _num(ra, ".1f"),
            _num(rb, ".1f"),
            "" if ra is None or rb is None else f"{rb - ra:+.1f} pts",
            "for information",
        )
    )
    va, vb = qa.get("verdict"), qb.get("verdict")
    if va != vb:
        lines.append(f"quality verdict: A {va or 'none'}, B {vb or 'none'}  <-- DIFFERENT")
        flagged = True
    else:
        lines.append(f"quality verdict: both {va}")
    return lines, flagged


def fingerprint_rows(fa: Path, fb: Path, knobs: list[str] | None = None) -> tuple[list[str], bool]:
    """The output frames dummy runs saved with --saveimages, B against A. Where an
    option that changes outputs differs (`knobs`), a difference is expected, said so
    and not flagged: the verdict is then about speed and quality."""
    pa, pb = fa / FINGERPRINT, fb / FINGERPRINT
    if not (pa.exists() or pb.exists()):
        return [], False
    if not (pa.exists() and pb.exists()):
        have, lack = ("A", "B") if pa.exists() else ("B", "A")
        return [
            f"output fingerprint: only {have} has {FINGERPRINT} (run {lack} with --saveimages to compare outputs)"
        ], False
    d = fingerprint_diff(pa, pb)
    if "note" in d:
        return [f"output fingerprint: {d['note']}  <-- DIFFERENT"], True
    if d["max_abs_err"] == 0:
        return ["output fingerprint: identical"], False
    visible = d["max_abs_err"] > EIGHT_BIT_LEVEL
    if visible and knobs:
        note = f" (more than one 8-bit level, expected: {', '.join(k.upper() for k in knobs)} differs)"
    else:
        note = "  <-- DIFFERENT (more than one 8-bit level)" if visible else " (within one 8-bit level)"
    return [
        f"output fingerprint (B against A): PSNR {d['psnr_db']:.2f} dB, SSIM {d['ssim']:.5f}, max error "
        f"{d['max_abs_err']:.2e}" + note
    ], visible and not knobs


def _row(name: str, a: str, b: str, change: str, verdict: str) -> str:
    return f"{name:<18}{a:>12}{b:>12}{change:>11}  {'':>36}  {verdict}"  # the speed table's columns


def _num(x: float | None, spec: str) -> str:
    return "\N{EN DASH}" if x is None else format(x, spec)


def _psnr(x: float | None) -> str:
    return "identical" if x is not None and x >= PSNR_CAP_DB else _num(x, ".2f")
