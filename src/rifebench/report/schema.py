"""results.json as typed records: one versioned document that every reader loads
through `load_results` (pyperf's versioned JSON map, hyperfine's single result
that feeds every export).

Schema versions (CHANGELOG.md records each change):
- 2: harness.git_revision, streams' start_iso/end_iso beside the monotonic start/end;
- 3: validity.settings, the thresholds the validity rules used.

A reader accepts every version in READABLE_SCHEMAS; a key it does not know is
kept (in `extra`) and written back unchanged, a key a version lacks is None.
Every number in the document is finite, every field of its declared type, and
the free-form sections' figures numbers (report/shape.py), or the document is
refused (SchemaError naming the key): no NaN reaches a median.

The document `report.results.begin()` writes when a run starts says
{"status": "running", ...} and has no schema_version: it holds no figures, so
`load_results` refuses it with `RunNotFinished` (a SchemaError whose `status`
is "running"). A reader that lists runs (a benchmark's rows) catches it and
counts the run as unfinished; a reader given one run (compare) lets it exit 2.
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rifebench.errors import UsageError
from rifebench.measure.records import LOCAL, OMIT_NONE, Latency, from_plain, to_plain
from rifebench.report import shape

SCHEMA_VERSION = "3"
READABLE_SCHEMAS = ("2", "3")


class SchemaError(UsageError):
    """A file that is not a results.json this rifebench reads; the message is one line."""


class RunNotFinished(SchemaError):
    """The results.json of a run that has not finished (or crashed before its end):
    the "running" document, which has no figures."""

    def __init__(self, message: str, status: str):
        super().__init__(message)
        self.status = status


class UnknownSchema(SchemaError):
    """A results.json whose schema_version (or its absence) this rifebench does not read."""


def _latency(d: Any, where: str = "latency_ms") -> Latency:
    shape.check_shape(d, shape.LATENCY, where, nullable=False)  # Latency.from_dict would take "12" for 12
    return Latency.from_dict(d)


@dataclass
class Window:
    """The timed window of all streams, on the monotonic clock they share."""

    first_start: float | None = None
    last_end: float | None = None
    overlap_s: float | None = None
    overlap_pct: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Window:
        return from_plain(cls, d, "metrics.window")


@dataclass
class Metrics:
    """results.json `metrics`: the headline figures (the repetitions' medians)."""

    throughput_img_s: float | None = None
    throughput_basis: str | None = None
    model_throughput_img_s: float | None = None
    end_to_end_throughput_img_s: float | None = None
    end_to_end_basis: str | None = None
    throughput_pairs_s: float | None = None
    latency_ms: Latency = field(default_factory=Latency)
    latency_per_pair_ms: Latency = field(default_factory=Latency)
    host_submit_ms: Latency | None = None
    latency_basis: str | None = None
    batch_size: int = 1
    frames: int = 0
    images: int = 0
    duration_s: float | None = None
    warmup_pairs: int = 0
    warmup_s: float | None = None
    accuracy_pct: float = 0.0
    accuracy_note: str | None = None
    window: Window | None = None
    ci95: dict[str, Any] | None = field(default=None, metadata=OMIT_NONE)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Metrics:
        return from_plain(
            cls,
            d,
            "metrics",
            latency_ms=lambda v: _latency(v, "metrics.latency_ms"),
            latency_per_pair_ms=lambda v: _latency(v, "metrics.latency_per_pair_ms"),
            host_submit_ms=lambda v: _latency(v, "metrics.host_submit_ms"),
            window=Window.from_dict,
        )


@dataclass
class Check:
    """One validity rule's outcome: did it fire, on what figure, against what limit."""

    code: str
    triggered: bool
    value: Any = None
    threshold: Any = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Check:
        return from_plain(cls, d, "validity.checks[]")


def _checks(items: Any) -> list[Check]:
    return [Check.from_dict(c) for c in items]


@dataclass
class Validity:
    """results.json `validity` (and, with `valid` and `reasons` alone, a repetition's)."""

    valid: bool
    reasons: list[str] = field(default_factory=list)
    checks: list[Check] | None = field(default=None, metadata=OMIT_NONE)
    settings: dict[str, Any] | None = field(default=None, metadata=OMIT_NONE)  # schema 3
    repetitions_valid: list[bool] | None = field(default=None, metadata=OMIT_NONE)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Validity:
        return from_plain(cls, d, "validity", checks=_checks)


@dataclass
class Repetition:
    """One repetition's figures (results.json `repetitions[]`)."""

    index: int
    status: str
    throughput_img_s: float | None = None
    latency_ms: Latency = field(default_factory=Latency)
    frames: int = 0
    duration_s: float | None = None
    validity: Validity | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Repetition:
        return from_plain(
            cls,
            d,
            "repetitions[]",
            latency_ms=lambda v: _latency(v, "repetitions[].latency_ms"),
            validity=Validity.from_dict,
        )


@dataclass
class StreamSummary:
    """One stream of the representative repetition (results.json `streams[]`)."""

    id: int
    status: str | None = None
    pid: int | None = None
    cpus: list[int] | None = None
    threads: int | None = None
    pinned_by: str | None = None
    mems_allowed: str | None = None
    mempolicy: dict[str, Any] | None = None
    device: dict[str, Any] | None = None
    runtime: dict[str, Any] | None = None
    frames: int = 0
    images: int = 0
    throughput: float | None = None
    model_throughput: float | None = None
    latency_ms: Latency = field(default_factory=Latency)
    latency_clock: str | None = None
    batch_sizes: list[int] = field(default_factory=list)
    submissions: int = 0
    large_motion_count: int | None = None
    start: float | None = None
    end: float | None = None
    start_iso: str | None = None
    end_iso: str | None = None
    start_offset_s: float | None = None
    end_offset_s: float | None = None
    warmup: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None
    latency_samples_ms: list[float] = field(default_factory=list)
    host_submit_samples_ms: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StreamSummary:
        return from_plain(cls, d, "streams[]", latency_ms=lambda v: _latency(v, "streams[].latency_ms"))


@dataclass
class RunResult:
    """results.json of a finished run (passed, failed or interrupted).

    Free-form sections (config, model, system, device_time, quality, pinning,
    telemetry, knobs, runtime, video) stay plain dicts; the figures are records."""

    status: str
    exit_code: int
    schema_version: str = SCHEMA_VERSION
    harness: dict[str, Any] = field(default_factory=dict)
    created: str | None = None
    started: str | None = None
    mode: str | None = None
    mode_name: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    system: dict[str, Any] | None = None
    metrics: Metrics = field(default_factory=Metrics)
    validity: Validity = field(default_factory=lambda: Validity(valid=False))
    repeat: int = 1
    repetitions: list[Repetition] = field(default_factory=list)
    streams_from_repetition: int = 0
    device_time: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None
    streams: list[StreamSummary] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    pinning: dict[str, Any] | None = None
    telemetry: dict[str, Any] | None = None
    knobs: dict[str, Any] | None = None
    runtime: dict[str, Any] | None = None
    video: dict[str, Any] | None = field(default=None, metadata=OMIT_NONE)  # video mode only
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False, metadata=LOCAL)  # the file it was read from

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    @classmethod
    def from_dict(cls, d: Any, path: str | Path | None = None) -> RunResult:
        """The record of a results.json document; SchemaError (one line naming
        `path`) for anything that is not a finished run of a known schema_version."""
        where = f"results.json at {path}" if path is not None else "results.json"
        if not isinstance(d, dict):
            raise SchemaError(f"{where}: the document is {type(d).__name__}, not an object (accepted: a run's results)")
        version = d.get("schema_version")
        if version is None and d.get("status") == "running":
            raise RunNotFinished(
                f"{where}: the run has not finished (status 'running', written at its start; no figures) "
                "(accepted: the results.json of a finished run)",
                "running",
            )
        if version not in READABLE_SCHEMAS:
            shown = "None" if version is None else shape.describe(version)
            raise UnknownSchema(
                f"{where}: schema_version {shown} is not one this rifebench reads "
                f"(accepted: {', '.join(READABLE_SCHEMAS)})"
            )
        try:
            shape.check_numbers(d)  # every figure finite, before any reaches a statistic
            run = from_plain(
                cls,
                d,
                "the document",
                metrics=Metrics.from_dict,
                validity=Validity.from_dict,
                repetitions=lambda items: [Repetition.from_dict(r) for r in items],
                streams=lambda items: [StreamSummary.from_dict(s) for s in items],
            )
            shape.check_record(run, "")
            shape.check_shape(d, shape.RESULTS_SECTIONS, "")
        except shape.ShapeError as exc:
            raise SchemaError(f"{where}: {exc}") from None
        except (TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise SchemaError(f"{where}: not a valid schema {version} document ({exc})") from None
        run.path = Path(path) if path is not None else None
        return run


def results_path(path: str | Path) -> Path:
    """results.json itself, or the results.json in the folder `path`."""
    p = Path(path)
    return p / "results.json" if p.is_dir() else p


def load_results(path: str | Path) -> RunResult:
    """The RunResult in `path` (a results.json or the folder that holds one);
    SchemaError for a file that is missing, unreadable, not JSON or not a
    finished run's results of a known schema_version."""
    file = results_path(path)
    try:
        regular = stat.S_ISREG(file.stat().st_mode)  # a FIFO would block the reader for ever
        doc = json.loads(file.read_text()) if regular else None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(
            f"results.json at {file}: not readable ({exc.__class__.__name__}) "
            "(accepted: a run's OUTPUT_DIR or its results.json)"
        ) from None
    except RecursionError:
        raise SchemaError(f"results.json at {file}: nested too deeply (accepted: a run's results.json)") from None
    except ValueError as exc:
        raise SchemaError(f"results.json at {file}: not JSON ({exc}) (accepted: a run's results.json)") from None
    if not regular:
        raise SchemaError(f"results.json at {file}: not a regular file (accepted: a run's results.json)")
    return RunResult.from_dict(doc, file)
