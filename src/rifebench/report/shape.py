"""What a record read from a file may hold: every number finite (NaN, infinity
and 1e400, which JSON readers turn into infinity, are no figures), every field
of the type its annotation declares, and the free-form sections that readers
dig into shaped as they expect. A file that breaks one of these is refused
with the key and the value named, before any figure reaches a statistic: a
NaN throughput once passed a fleet's cell and moved its median.

`check_numbers(doc)` walks a plain document; `check_record(record)` checks a
dataclass record's fields against their annotations ("float | None",
"list[int]", "dict[str, str]", a record's class name); `check_shape(doc,
shape)` checks a free-form section against a nested spec of dicts, one-item
lists and annotation strings. Each raises ShapeError, a ValueError whose
message is "<key> is <value> (accepted: <what>)".
"""

from __future__ import annotations

import functools
import math
from dataclasses import fields, is_dataclass
from typing import Any

from rifebench.measure.records import LATENCY_KEYS

MAX_INT = 2**63  # larger integers are no count, size or identifier a harness writes
Shape = dict[str, Any] | list[Any] | str


class ShapeError(ValueError):
    """One line: the key, what it holds, what is accepted."""


def describe(value: Any) -> str:
    """A value in a message, kept short: a hostile file may hold a megabyte string."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) > MAX_INT:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _bad_number(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT


def check_numbers(doc: Any, where: str = "") -> None:
    """Every number in a plain document finite and within MAX_INT; the first that
    is not raises ShapeError naming its key. Iterative: no nesting overflows it."""
    stack: list[tuple[Any, str]] = [(doc, where)]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            # Reversed onto the stack: the first bad number named is the first in the file.
            stack.extend(reversed([(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()]))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                if _bad_number(v):
                    raise ShapeError(f"{path}[{i}] is {describe(v)} (accepted: {_finite(v)})")
            stack.extend(reversed([(v, f"{path}[{i}]") for i, v in enumerate(value) if isinstance(v, (dict, list))]))
        elif _bad_number(value):
            raise ShapeError(f"{path or 'the document'} is {describe(value)} (accepted: {_finite(value)})")


def _finite(value: Any) -> str:
    return "a finite number" if isinstance(value, float) else "an integer of at most 19 digits"


@functools.lru_cache(maxsize=256)
def _split(ann: str, sep: str) -> tuple[str, ...]:
    """ann split at `sep` outside brackets."""
    out, depth, cur = [], 0, ""
    for ch in ann:
        depth += ch == "["
        depth -= ch == "]"
        if ch == sep and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return (*out, cur.strip())


def _args(alt: str) -> tuple[str, ...]:
    return _split(alt[alt.index("[") + 1 : -1], ",")


WORDS = {
    "None": "null",
    "Any": "any value",
    "str": "a string",
    "bool": "true or false",
    "int": "an integer",
    "float": "a finite number",
}


def accepted(ann: str) -> str:
    """An annotation in words: "float | None" -> "a finite number or null"."""
    words = []
    for alt in _split(ann, "|"):
        if alt in WORDS:
            words.append(WORDS[alt])
        elif alt.startswith("list["):
            words.append(f"a list of {accepted(_args(alt)[0]).removeprefix('a ').removeprefix('an ')}s")
        elif alt.startswith("tuple["):
            words.append(f"a list of {len(_args(alt))} finite numbers")
        else:
            words.append("an object")
    return " or ".join(words)


def _fits(value: Any, alt: str) -> bool:
    """value is of the one alternative `alt` (its items are checked by _check)."""
    if alt in ("Any", "object"):
        return True
    if alt == "None":
        return value is None
    if alt in ("int", "float"):
        ok = isinstance(value, int if alt == "int" else (int, float)) and not isinstance(value, bool)
        return ok and not _bad_number(value)
    simple = {"str": str, "bool": bool}
    if alt in simple:
        return isinstance(value, simple[alt])
    if alt.startswith("list["):
        return isinstance(value, list)
    if alt.startswith("tuple["):
        return isinstance(value, (list, tuple)) and len(value) == len(_args(alt))
    if alt.startswith("dict["):
        return isinstance(value, dict)
    return is_dataclass(value) and type(value).__name__ == alt


def _check(value: Any, ann: str, where: str) -> None:
    for alt in _split(ann, "|"):
        if not _fits(value, alt):
            continue
        if alt.startswith("list["):
            item = _args(alt)[0]
            fast = item == "float" and all(type(v) is float and math.isfinite(v) for v in value)
            if item != "Any" and not fast:  # a million latency samples: the fast path
                for i, v in enumerate(value):
                    _check(v, item, f"{where}[{i}]")
        elif alt.startswith("tuple["):
            for i, (v, a) in enumerate(zip(value, _args(alt), strict=True)):
                _check(v, a, f"{where}[{i}]")
        elif alt.startswith("dict[") and _args(alt)[1] != "Any":
            for k, v in value.items():
                _check(v, _args(alt)[1], f"{where}.{k}")
        elif is_dataclass(value):
            check_record(value, where)
        return
    raise ShapeError(f"{where} is {describe(value)} (accepted: {accepted(ann)})")


def check_record(record: Any, where: str) -> None:
    """Each field of a dataclass record (and of the records it holds) of the type
    its annotation declares; `extra` (keys the reader does not know) and
    in-memory fields are left alone."""
    for f in fields(record):
        if f.name != "extra" and not f.metadata.get("local"):
            _check(getattr(record, f.name), str(f.type), f"{where}.{f.name}" if where else f.name)


def check_shape(doc: Any, shape: Shape, where: str, nullable: bool = True) -> None:
    """A free-form section against `shape`: a dict spec is an object (or null)
    whose keys, where present, match their specs ("*": every key's); a one-item
    list spec is a list (or null) of items matching it (never null); a string is
    an annotation."""
    if isinstance(shape, str):
        _check(doc, shape, where)
        return
    if doc is None and nullable:
        return
    kind = list if isinstance(shape, list) else dict
    if not isinstance(doc, kind):
        what = "a list" if kind is list else "an object"
        raise ShapeError(f"{where} is {describe(doc)} (accepted: {what}{' or null' if nullable else ''})")
    if isinstance(shape, list):
        for i, item in enumerate(doc):
            check_shape(item, shape[0], f"{where}[{i}]", nullable=False)
        return
    for key, value in dict(doc).items():
        spec = shape.get(key, shape.get("*"))
        if spec is not None:
            check_shape(value, spec, f"{where}.{key}" if where else key)


# results.json's free-form sections: the keys that readers (summary, compare,
# the fleet report) take as figures or names, where present.
NUM, INT, STR = "float | None", "int | None", "str | None"
PAIR = "tuple[float, float] | None"
LATENCY: Shape = dict.fromkeys(LATENCY_KEYS, NUM) | {"count": INT, "percentile_note": STR}  # a Latency's dict
_STATS = {"min": NUM, "mean": NUM, "max": NUM}
RESULTS_SECTIONS: Shape = {
    "metrics": {"ci95": {"throughput_img_s": PAIR, "latency_p50_ms": PAIR, "latency_p99_ms": PAIR}},
    "quality": {
        "psnr_mean": NUM,
        "ssim_mean": NUM,
        "pass_pct": NUM,
        "threshold_db": NUM,
        "planned": INT,
        "frames": ["dict[str, Any]"],
    },
    "telemetry": {
        "gpus": [
            {
                **dict.fromkeys(("util_pct", "mem_used_bytes", "power_w", "sm_clock_mhz", "mem_clock_mhz"), _STATS),
                "throttle_reasons": {"*": NUM},
                "name": STR,
            }
        ],
        "streams": [{"cpus_busy_pct": _STATS, "others_pct_of_cpus": NUM}],
        "gpu_source": STR,
    },
    "system": {"gpus": [{"name": STR}], "cpu_model": STR},
    "model": {"name": STR},
    "streams": [{"device": {"name": STR}, "memory": {"peak_allocated_bytes": NUM, "peak_rss_bytes": NUM}}],
    "warnings": [{"code": STR, "message": STR}],
    "failures": ["dict[str, Any]"],
}
