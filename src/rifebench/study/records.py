"""A row of the optimisation study: one configuration at one size, as its worker
measured it and as the scoring judged it against the reference row. study.json
and study.md are written from to_dict(); the outputs the quality is scored on
stay in memory (never written)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

LOCAL = {"local": True}  # kept in memory, never written


@dataclass
class StudyRow:
    size: str
    config: str
    flags: str = ""
    model: str | None = None  # the zoo model the row measured
    weights: str | None = None  # official, given, random (speed only: no quality) or none (study/cells.py)
    # What the worker reported.
    precision: str | None = None
    platform: str | None = None
    error: str | None = None  # the worker failed, died or stayed silent
    warmup_s: float | None = None
    first_pairs_s: float | None = None
    rounds_ms: list[list[float]] = field(default_factory=list)  # pair times, by round
    cpu_ms: list[float] = field(default_factory=list)  # process CPU time per pair
    memory: dict[str, Any] | None = None
    rss_after_load_bytes: int | None = None
    knobs: dict[str, Any] | None = None
    runtime: dict[str, Any] | None = None
    device: dict[str, Any] | None = None
    # Speed (study.score.speed): one statistic, the median pair time.
    ms_p50: float | None = None
    ms_min: float | None = None
    fps: float | None = None
    fps_ci95: list[float] | None = None
    rounds: int | None = None
    pairs: int | None = None
    spread_pct: float | None = None  # measure.stats.spread_pct of the pair times
    speedup: float | None = None
    speedup_ci95: list[float] | None = None
    speedup_cpu_time: float | None = None
    # Against the reference's outputs, memory, and what the knobs could not do.
    quality: dict[str, Any] | None = None
    dataset_quality: dict[str, Any] | None = None  # PSNR / SSIM against a dataset's ground truth (--data)
    pareto: bool | None = None  # on the speed-vs-quality front of its size (--data)
    peak_mem_bytes: int | None = None
    peak_mem_added_bytes: int | None = None
    fallbacks: list[str] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list, repr=False, metadata=LOCAL)

    @property
    def measured(self) -> bool:
        return any(self.rounds_ms) and not self.error

    def update(self, values: Mapping[str, Any]) -> None:
        """Set fields by name (what a worker answered); an unknown name is a bug."""
        for key, value in values.items():
            if not hasattr(self, key):
                raise AttributeError(f"StudyRow has no field {key!r}")
            setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.metadata.get("local")}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudyRow:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
