"""The tuner's two passes, on the study's workers (study/worker.py: one process per model).

1. Quality: one worker per quality group, one group at a time, scores the group's
   configuration on the dataset's ground truth (the worker's `dataset` command: quality
   mode's PSNR). A group whose mean PSNR falls more than the floor below the reference's
   is not timed.
2. Speed: every candidate left, alive at once, timed in the study's alternated rounds
   (the order rotates each round, so drift and other load hit every candidate alike). A
   candidate with STREAMS=S is S workers of 1/S of the threads each, told to time at the
   same moment; each pair then counts 1/S of its time (S pairs complete in parallel), so
   the median of these per-pair times gives throughput on the same statistic as one stream.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rifebench.study.worker import Worker
from rifebench.tune.space import Candidate

Log = Callable[[str], None]


@dataclass
class Measured:
    candidate: Candidate
    rounds_ms: list[list[float]] = field(default_factory=list)  # per-pair time / STREAMS, by round
    cpu_ms: list[float] = field(default_factory=list)
    warmup_s: float | None = None
    runtime: dict[str, Any] | None = None
    error: str | None = None


def _spawn(ctx: Any, c: Candidate, k: int, args: argparse.Namespace) -> Worker:
    threads = max(1, args.threads // c.streams)
    return Worker(ctx, f"{c.name}#{k}", args.common + c.flags(), args.size, args.seed, threads)


def quality(groups: dict[tuple, Candidate], args: argparse.Namespace, log: Log) -> dict[tuple, dict[str, Any]]:
    """{group: {"psnr_db", "ssim", "triplets", ...} or {"error"}}, one worker at a time."""
    ctx, out = mp.get_context("spawn"), {}
    for group, c in groups.items():
        w = _spawn(ctx, c, 0, args)
        try:
            w.ask(None, expect="ready")
            got = w.ask("dataset", (args.data, args.quality_pairs), expect="scored")
        finally:
            w.close()
        out[group] = got["dataset_quality"] if got else {"error": w.error}
        figure = f"{out[group]['psnr_db']:.3f} dB" if got else f"failed: {w.error}"
        log(f"  quality {c.runtime} {c.precision} {' '.join(c.knobs)}: {figure}")
    return out


def _round(workers: list[Worker], pairs: int) -> list[Any] | None:
    """All of a candidate's workers time `pairs` pairs at once; None when one failed."""
    live = [w for w in workers if not w.error]
    if len(live) < len(workers):
        return None
    for w in live:
        try:
            w.conn.send(("time", pairs))
        except OSError as exc:  # a dead worker: Worker.ask records why on the next call
            w.error = f"worker died ({type(exc).__name__})"
            return None
    got = [w.ask(None, expect="timed") for w in live]
    return None if any(g is None for g in got) else got


def speed(cands: list[Candidate], args: argparse.Namespace, log: Log) -> list[Measured]:
    """The candidates' pair times in alternated rounds, in the order of `cands`."""
    ctx = mp.get_context("spawn")
    fleet = [(Measured(c), [_spawn(ctx, c, k, args) for k in range(c.streams)]) for c in cands]
    try:
        for m, workers in fleet:
            for w in workers:
                w.ask(None, expect="ready")
            warm = [w.ask("warmup", args.warmup, expect="warm") for w in workers]  # compile and warm-up untimed
            m.warmup_s = max((x["warmup_s"] for x in warm if x), default=None)
            log(f"  {m.candidate.name}: warm" + (f" in {m.warmup_s:.1f} s" if m.warmup_s is not None else ""))
        for r in range(args.rounds):
            order = fleet[r % len(fleet) :] + fleet[: r % len(fleet)]
            for m, workers in order:
                got = _round(workers, args.pairs)
                if got:
                    m.rounds_ms.append([t / m.candidate.streams for g in got for t in g[0]])
                    m.cpu_ms.extend(t for g in got for t in g[1])
            log(f"  round {r + 1}/{args.rounds} done")
        for m, workers in fleet:
            stats = workers[0].ask("stats", expect="stats")
            m.runtime = (stats or {}).get("runtime")
            m.error = next((w.error for w in workers if w.error), None)
    finally:
        for _, workers in fleet:
            for w in workers:
                w.close()
    return [m for m, _ in fleet]
