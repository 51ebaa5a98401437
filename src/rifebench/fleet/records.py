"""The fleet's records, each a dataclass with to_dict()/from_dict(): the plan
(fleet.json, written at submission and read by every task and by the report),
a task's own record (task.json), a cell of the report (a benchmark row record
with its node and the node's telemetry) and the per-row figures across nodes.
fleet.json, task.json, fleet_report.json and summary.csv are written from
to_dict(); a key a reader does not know is kept (`extra`) and written back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from rifebench.report.shape import STR, Shape, ShapeError, check_numbers, check_record, check_shape
from rifebench.report.table import RowRecord

T = TypeVar("T")
# The most (row, node) cells a fleet may have, the one bound of every reader and
# writer (submit's node list, k8s's replicas, the plan, the report): each lists every cell.
MAX_CELLS = 100_000
SCHEDULER: Shape = {"kind": STR, "job_id": STR, "args": "list[str] | None", "python": STR, "script": STR}


def _build(cls: type[T], d: Mapping[str, Any], where: str = "", **convert: Any) -> T:
    """cls from a JSON object: known keys become fields (through `convert`), the
    rest go to `extra` when cls keeps them; TypeError when it is not an object,
    ShapeError (a ValueError naming the key) when a field is not of its type or a
    number is not finite."""
    if not isinstance(d, Mapping):
        raise TypeError(f"{cls.__name__}: {type(d).__name__} is not an object")
    check_numbers(dict(d), where)
    known = {f.name for f in fields(cls)} - {"extra"}  # type: ignore[arg-type]  # cls is a dataclass
    kwargs = {k: convert[k](v) if k in convert else v for k, v in d.items() if k in known}
    if "extra" in {f.name for f in fields(cls)}:  # type: ignore[arg-type]  # cls is a dataclass
        kwargs["extra"] = {k: v for k, v in d.items() if k not in known}
    record = cls(**kwargs)
    check_record(record, where)
    return record


def _plain(record: Any, omit_none: tuple[str, ...] = ()) -> dict[str, Any]:
    """The record's fields in order, less the optional ones that are None, then `extra`."""
    out = {
        f.name: getattr(record, f.name)
        for f in fields(record)
        if f.name != "extra" and not (f.name in omit_none and getattr(record, f.name) is None)
    }
    return out | dict(getattr(record, "extra", {}))


@dataclass
class PlanRow:
    """One profile row as every task runs it: its cells and resolved variables."""

    row: int
    cells: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    line: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "line": self.line, "cells": self.cells, "env": self.env} | self.extra

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "") -> PlanRow:
        return _build(cls, d, where)


@dataclass
class FleetPlan:
    """fleet.json: the checked profile, the nodes asked for and the scheduler's job."""

    rows: list[PlanRow]
    profile: str | None = None
    header: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    created: str | None = None
    replicas: int | None = None  # Kubernetes: pods per row
    nodes: list[str] = field(default_factory=list)
    node_count: int = 0
    output_dir: str | None = None
    log_hint: str | None = None
    scheduler: dict[str, Any] = field(default_factory=dict)
    cancelled: bool | None = None
    cancelled_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    OPTIONAL = ("replicas", "output_dir", "log_hint", "cancelled", "cancelled_at")

    def to_dict(self) -> dict[str, Any]:
        return _plain(self, self.OPTIONAL) | {"rows": [r.to_dict() for r in self.rows]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FleetPlan:
        """The plan; TypeError or ShapeError (a ValueError naming the key) for a
        document that is not one, or one of more than MAX_CELLS cells."""
        if not isinstance(d, Mapping) or not isinstance(d.get("rows"), list):
            raise TypeError("not an object with a list of rows")
        if len(d["rows"]) > MAX_CELLS:  # before a row is read
            raise ShapeError(f"rows holds {len(d['rows'])} rows (accepted: at most {MAX_CELLS} cells in all)")
        plan = _build(cls, d, rows=lambda rows: [PlanRow.from_dict(r, f"rows[{i}]") for i, r in enumerate(rows)])
        check_shape(plan.scheduler, SCHEDULER, "scheduler")
        width = max(plan.node_count, len(plan.nodes), 1)
        if plan.node_count < 0 or len(plan.rows) * width > MAX_CELLS:
            raise ShapeError(
                f"{len(plan.rows)} row(s) x {width} node(s) (node_count {plan.node_count}) "
                f"(accepted: a node_count >= 0 and at most {MAX_CELLS} cells in all)"
            )
        return plan


@dataclass
class TaskRecord:
    """task.json: one task's start, then its end and exit status."""

    state: str
    row: int | None = None
    node: str | None = None
    host: str | None = None
    started: str | None = None
    job_id: str | None = None
    array_task_id: str | None = None
    completion_index: str | None = None
    exit_code: int | None = None
    finished: str | None = None
    wall_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    OPTIONAL = ("exit_code", "finished", "wall_s")

    def to_dict(self) -> dict[str, Any]:
        return _plain(self, self.OPTIONAL)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskRecord:
        return _build(cls, d)


@dataclass
class FleetCell(RowRecord):
    """One (row, node) cell: the benchmark row record, where it ran, and what the
    node's own run says about it (telemetry of the timed window)."""

    node: str = ""
    host: str | None = None
    outlier: str | None = None  # "slow" / "fast" (collect.OUTLIER_RULE)
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    power_w_mean: float | None = None
    throttle: str | None = None
    cpus_busy_pct: float | None = None
    others_pct_of_cpus: float | None = None


@dataclass
class RowStats:
    """One row's throughput across the nodes that measured it (img/s)."""

    row: int
    cells: dict[str, str]
    nodes: int
    measured: int
    passed: int
    statuses: dict[str, int]
    median: float | None = None
    min: float | None = None
    max: float | None = None
    range_pct: float | None = None  # (max - min) / median: every node counts
    mad: float | None = None
    ci: list[float] | None = None
    outliers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RowStats:
        return _build(cls, d)
