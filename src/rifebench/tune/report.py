"""The tuner's verdicts, table and answer: speed on the study's statistic (study/score.py:
the median pair time, 95% bootstrap intervals over the rounds, speed-up from ratios paired
by round against the reference), quality as the drop of the dataset's mean PSNR against
the reference's, and the fastest candidate within the floor with the command that runs it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from rifebench.study.records import StudyRow
from rifebench.study.report import figure, with_ci
from rifebench.study.score import STATISTIC, bad_figure, speed
from rifebench.tune.measure import Measured
from rifebench.tune.space import Candidate


@dataclass
class Row:
    candidate: Candidate
    verdict: str  # meets the floor | below the floor | failed | not timed
    psnr_db: float | None = None
    drop_db: float | None = None
    figures: dict[str, Any] = field(default_factory=dict)  # study.score.speed's
    error: str | None = None
    runtime: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.candidate.to_dict(),
            "verdict": self.verdict,
            "psnr_db": self.psnr_db,
            "psnr_drop_db": self.drop_db,
            **self.figures,
            "error": self.error,
            "runtime": self.runtime,
        }


def quality_verdict(scored: dict[str, Any], ref: dict[str, Any], floor_db: float) -> tuple[str, float | None]:
    if "error" in scored or "error" in ref:
        return "failed", None
    drop = ref["psnr_db"] - scored["psnr_db"]
    return ("meets the floor" if drop <= floor_db else "below the floor"), drop


def rows(
    cands: list[Candidate], scores: dict[tuple, dict[str, Any]], timed: list[Measured], floor_db: float
) -> list[Row]:
    """A row per candidate: its quality verdict, then its speed against the reference (timed first)."""
    ref_scores, by_name = scores[cands[0].group], {m.candidate.name: m for m in timed}
    ref = by_name.get(cands[0].name)
    out = []
    for c in cands:
        verdict, drop = quality_verdict(scores[c.group], ref_scores, floor_db)
        row = Row(c, verdict, scores[c.group].get("psnr_db"), drop, error=scores[c.group].get("error"))
        m = by_name.get(c.name)
        if m is None:
            row.verdict = row.verdict if row.verdict != "meets the floor" else "not timed"
        elif m.error or not any(m.rounds_ms) or bad_figure(StudyRow("", "", rounds_ms=m.rounds_ms)):
            row.verdict, row.error = "failed", m.error or "no finite pair time"
        else:
            ref_rounds = ref.rounds_ms if ref and any(ref.rounds_ms) else None
            row.figures, row.runtime = speed(m.rounds_ms, ref_rounds), m.runtime
        out.append(row)
    return out


def best(table: list[Row]) -> Row | None:
    ok = [r for r in table if r.verdict == "meets the floor" and r.figures.get("fps")]
    return max(ok, key=lambda r: r.figures["fps"], default=None)


def command(row: Row, common: list[str], size: tuple[int, int]) -> str:
    """The run_model.sh command that runs the winner (performance mode at the tuned size)."""
    flags = ["--dummy", *common, "--data-width", str(size[0]), "--data-height", str(size[1])]
    flags += [*row.candidate.flags(), "--streams", str(row.candidate.streams)]
    return "./run_model.sh " + shlex.join(flags)


def table(tbl: list[Row]) -> str:
    out = [
        "| candidate | streams | batch | pairs/s [95% CI] | speed-up [95% CI] | PSNR dB | drop dB | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in tbl:
        f = r.figures
        out.append(
            f"| {r.candidate.name} | {r.candidate.streams} | {r.candidate.batch} | "
            f"{with_ci(f.get('fps'), f.get('fps_ci95'), '.2f')} | "
            f"{with_ci(f.get('speedup'), f.get('speedup_ci95'), '.2f', 'x')} | {figure(r.psnr_db, '.3f')} | "
            f"{figure(r.drop_db, '+.3f')} | {r.verdict}{f': {r.error}' if r.error else ''} |"
        )
    return "\n".join(out)


def answer(winner: Row | None, common: list[str], size: tuple[int, int], floor_db: float) -> list[str]:
    if winner is None:
        return [f"no candidate meets the floor (a PSNR drop <= {floor_db:g} dB) and was timed"]
    f = winner.figures
    return [
        f"fastest within {floor_db:g} dB of the reference's PSNR: {winner.candidate.name}: "
        f"{with_ci(f['fps'], f.get('fps_ci95'), '.2f')} pairs/s, "
        f"{with_ci(f.get('speedup'), f.get('speedup_ci95'), '.2f', 'x')} eager PyTorch fp32, "
        f"PSNR drop {figure(winner.drop_db, '+.3f')} dB",
        f"reproduce: {command(winner, common, size)}",
        STATISTIC + ".",
    ]
