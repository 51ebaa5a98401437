"""The readers against a few hundred mutated files (issue 21, "Done when"):
`compare`, `fleet report` and the profile reader (bench/profiles.py) are fed
files the tests make, mutated by a seeded mutator (truncated, bytes of noise,
NaN and infinity, deep nesting, huge numbers, strings for numbers, swapped
types, deleted keys). No mutation may raise out of the reader (a traceback),
and none that makes the file garbage may pass (exit 0, or a profile with no
problem). In-process, through the readers' own main(), so it runs in seconds.

A failure names the mutant (reader, operation, key): rerun it with the seed.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
import shutil
from pathlib import Path

import numpy as np

from helpers import REPO, sibling_module
from rifebench.bench import profiles
from rifebench.compare import cli as compare
from rifebench.fleet import cli as fleet

SEED = 21
MUTANTS = 120  # per reader
DEEP = "[" * 100_000 + "]" * 100_000  # beyond any parser's recursion limit
HUGE = ("1e400", "-1e400", "1" + "0" * 30)
SWAPS = ([1.5], {"k": 1}, "x", True)
OPS = ("truncate", "noise", "nan", "inf", "huge", "deep", "string", "swap", "delete")

# Keys whose type a reader checks: a string for a number there, or another type, is garbage.
RESULTS_TYPED = re.compile(
    r"(exit_code|repeat|status"
    r"|metrics\.(throughput_img_s|frames|duration_s|latency_ms\.\w+)"
    r"|repetitions\[\d+\](\.(throughput_img_s|frames|status|latency_ms\.\w+))?"
    r"|streams\[\d+\]\.latency_samples_ms\[\d+\]|quality\.(psnr_mean|ssim_mean|pass_pct)"
    r"|validity\.valid|config)"
)
PLAN_TYPED = re.compile(
    r"node_count|nodes|command(\[\d+\])?|rows\[\d+\](\.(row|cells(\.\w+)?))?|scheduler\.(kind|job_id)"
)
TASK_TYPED = re.compile(r"state|exit_code|wall_s")
ROW_TYPED = re.compile(r"cells(\.\w+)?")


def _nodes(doc, path=()):
    """Every (path, value) under the root."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        yield (*path, k), v
        yield from _nodes(v, (*path, k))


def dotted(path) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def mutate_json(text: str, rng: random.Random, typed: re.Pattern, numbers_checked: bool = True):
    """(label, bytes, garbage): one seeded mutation of a JSON document; garbage when
    no reader may accept what it made."""
    doc = json.loads(text)
    text = json.dumps(doc)
    nodes = list(_nodes(doc))
    numbers = [p for p, v in nodes if _number(v)]
    op = rng.choice(OPS)
    if (op in ("nan", "inf", "huge", "string") and not numbers) or (op in ("deep", "swap", "delete") and not nodes):
        op = "truncate"
    if op == "truncate":
        return op, text[: rng.randrange(1, len(text))].encode(), True
    if op == "noise":
        data = bytearray(text.encode())
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(6))) + b"\xff"  # never UTF-8
        at = rng.randrange(len(data))
        data[at:at] = bytes(rng.sample(list(junk), len(junk)))
        return op, bytes(data), True
    path = rng.choice(numbers if op in ("nan", "inf", "huge", "string") else [p for p, _ in nodes])
    new = copy.deepcopy(doc)
    parent = new
    for k in path[:-1]:
        parent = parent[k]
    old, garbage = parent[path[-1]], True
    if op == "delete":
        del parent[path[-1]]
        garbage = False
    else:
        parent[path[-1]] = {
            "nan": math.nan,
            "inf": rng.choice([math.inf, -math.inf]),
            "huge": "__HUGE__",
            "deep": "__DEEP__",
            "string": rng.choice([str(old), "many", "1e3", "NaN"]),
            "swap": rng.choice([s for s in SWAPS if type(s) is not type(old)]),
        }[op]
        if op in ("nan", "inf", "huge"):
            garbage = numbers_checked
        elif op in ("string", "swap"):
            garbage = bool(typed.fullmatch(dotted(path)))
    out = json.dumps(new).replace('"__HUGE__"', rng.choice(HUGE)).replace('"__DEEP__"', DEEP)
    return f"{op} {dotted(path)}", out.encode(), garbage


def mutants(rng: random.Random, files: dict[str, tuple[re.Pattern, bool]], base: Path):
    """MUTANTS seeded mutations, each of one of `files` (relative path -> (typed keys,
    numbers checked)) under `base`."""
    texts = {name: (base / name).read_text() for name in files}
    for _ in range(MUTANTS):
        name = rng.choice(sorted(files))
        label, data, garbage = mutate_json(texts[name], rng, *files[name])
        yield name, f"{name}: {label}", data, garbage


def _restore(src: Path, dst: Path) -> None:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)


def test_compare_never_crashes_and_never_passes_garbage(tmp_path, capsys):
    gen = sibling_module("compare", "test_compare")
    rng = random.Random(SEED)
    frame = np.random.default_rng(0).random((8, 8, 3), dtype=np.float32)
    a = gen.make_run(tmp_path / "a", n=40, fingerprint=frame)
    bench_a = gen.make_bench(tmp_path / "bench_a", [({"PRECISION": "fp32"}, {"n": 40})])
    for folder in (a, bench_a):
        _restore(folder, folder.with_name(folder.name + "_base"))
    assert compare.main([str(a), str(tmp_path / "a_base")]) == 0  # the files as made pass
    assert compare.main([str(bench_a), str(tmp_path / "bench_a_base")]) == 0
    files = {
        "a/results.json": (RESULTS_TYPED, True),
        "bench_a/test_1/row.json": (ROW_TYPED, False),
        "bench_a/test_1/results.json": (RESULTS_TYPED, True),
    }
    crashed, passed = [], []
    for name, label, data, garbage in mutants(rng, files, tmp_path):
        folder = name.split("/")[0]
        _restore(tmp_path / f"{folder}_base", tmp_path / folder)
        (tmp_path / name).write_bytes(data)
        try:
            rc = compare.main([str(tmp_path / f"{folder}_base"), str(tmp_path / folder)])
        except Exception as exc:  # noqa: BLE001 - the finding: a traceback
            crashed.append(f"{label}: {type(exc).__name__}: {exc}"[:300])
            continue
        err = capsys.readouterr().err
        if rc == 2:
            assert len(err.strip().splitlines()) == 1 and err.startswith("compare: error: "), (label, err)
        if garbage and rc == 0:
            passed.append(label)
    assert not crashed, crashed
    assert not passed, passed
    _fingerprints(tmp_path, rng, capsys)


def _fingerprints(tmp_path: Path, rng: random.Random, capsys) -> None:
    """A saved output frame: its header (shape, type), its length, its values."""
    fp = Path("images") / "dummy_0.npy"
    good = (tmp_path / "a_base" / fp).read_bytes()
    header_end = good.index(b"\n") + 1
    cases = [
        good[: rng.randrange(1, len(good))],
        good.replace(b"(8, 8, 3)", b"(100000, 100000, 3)"),
        good.replace(b"<f4", b"<f8"),
        good.replace(b"<f4", b"|O"),
        good[:header_end] + np.full(8 * 8 * 3, np.nan, np.float32).tobytes(),
        good[:6] + b"\x09" + good[7:],
        bytes(rng.randrange(256) for _ in range(64)),
    ]
    for data in cases:
        _restore(tmp_path / "a_base", tmp_path / "a")
        (tmp_path / "a" / fp).write_bytes(data)
        assert compare.main([str(tmp_path / "a_base"), str(tmp_path / "a")]) == 2, data[:80]
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and str(tmp_path / "a" / fp) in err, err


def test_fleet_report_never_crashes_and_never_passes_garbage(tmp_path, capsys, monkeypatch):
    gen = sibling_module("fleet", "test_fleet_report")
    monkeypatch.setattr("rifebench.fleet.plot.node_plot", lambda *a: None)  # the readers, not matplotlib
    rng = random.Random(SEED + 1)
    base = gen.make_fleet(tmp_path / "fleet_base", {1: {"a": 100.0, "b": 99.0}, 2: {"a": 50.0, "b": 51.0}})
    plan = json.loads((base / "fleet.json").read_text())
    (base / "fleet.json").write_text(json.dumps(plan | {"scheduler": {"kind": "kubernetes", "job_id": "fuzz"}}))
    _restore(base, tmp_path / "fleet")
    assert fleet.main(["report", str(tmp_path / "fleet")]) == 0  # the files as made pass
    files = {
        "fleet.json": (PLAN_TYPED, True),
        "node_a/test_1/task.json": (TASK_TYPED, True),
        "node_b/test_2/results.json": (RESULTS_TYPED, True),
    }
    crashed, passed = [], []
    for name, label, data, garbage in mutants(rng, files, base):
        _restore(base, tmp_path / "fleet")
        (tmp_path / "fleet" / name).write_bytes(data)
        try:
            rc = fleet.main(["report", str(tmp_path / "fleet")])
        except Exception as exc:  # noqa: BLE001 - the finding: a traceback
            crashed.append(f"{label}: {type(exc).__name__}: {exc}"[:300])
            continue
        err = capsys.readouterr().err
        if rc == 2:
            assert len(err.strip().splitlines()) == 1 and "rifebench fleet: error: " in err, (label, err)
        if garbage and rc == 0:
            passed.append(label)
    assert not crashed, crashed
    assert not passed, passed


CELL_GARBAGE = ("nan", "inf", "-inf", "1e400", "many", "$(reboot)", "1;2", "a\x01b", '"1\n2"')


def mutate_csv(text: str, rng: random.Random):
    """(label, text or bytes, garbage): one seeded mutation of a profile."""
    lines = text.splitlines()
    data = [i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#")]
    head, rows = data[0], data[1:]
    op = rng.choice(("truncate", "noise", "cell", "cell", "huge", "extra", "column"))
    if op == "truncate":
        return op, text[: rng.randrange(1, len(text))], False  # fewer rows may well be a profile
    if op == "noise":
        raw = bytearray(text.encode())
        at = rng.randrange(len(raw))
        raw[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(4))) + b"\xfe"
        return op, bytes(raw), True
    if op == "column":
        lines[head] = lines[head].replace(rng.choice(lines[head].split(",")), rng.choice(["NOPE", "OUTPUT_DIR", ""]), 1)
        return f"column {lines[head]}", "\n".join(lines), True
    i = rng.choice(rows)
    cells = lines[i].split(",")
    if op == "extra":
        lines[i] += ",x"
        return f"extra cell on line {i + 1}", "\n".join(lines), True
    c = rng.randrange(len(cells))
    cells[c] = rng.choice(CELL_GARBAGE) if op == "cell" else "9" * rng.choice((12, 30, 400))
    lines[i] = ",".join(cells)
    return f"{op} line {i + 1} cell {c + 1} = {cells[c]!r}", "\n".join(lines), op == "cell"


def test_the_profile_reader_never_crashes_and_never_passes_garbage(tmp_path):
    rng = random.Random(SEED + 2)
    text = (REPO / "profiles" / "cpu.csv").read_text()
    path = tmp_path / "p.csv"
    path.write_text(text)
    _, rows = profiles.read(path)
    assert profiles.validate(str(path), rows, {}, startup=False) == []  # the file as made passes
    crashed, passed = [], []
    for _ in range(MUTANTS):
        label, data, garbage = mutate_csv(text, rng)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        try:
            _, rows = profiles.read(path)
            problems = profiles.validate(str(path), rows, {}, startup=False)
        except profiles.ProfileError as exc:
            assert "\n" not in str(exc), (label, str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - the finding: a traceback
            crashed.append(f"{label}: {type(exc).__name__}: {exc}"[:300])
            continue
        assert all("\n" not in p for p in problems), (label, problems)
        if garbage and not problems:
            passed.append(label)
    assert not crashed, crashed
    assert not passed, passed


def test_the_mutator_is_seeded_and_changes_the_file():
    doc = json.dumps({"metrics": {"throughput_img_s": 1.5, "frames": 3}, "status": "passed"})
    made = [mutate_json(doc, random.Random(seed), RESULTS_TYPED) for seed in range(40)]
    assert made == [mutate_json(doc, random.Random(seed), RESULTS_TYPED) for seed in range(40)]
    assert all(data != doc.encode() for _, data, _ in made)
    assert {label.split()[0] for label, _, _ in made} == set(OPS)
    assert all(garbage for label, _, garbage in made if label.split()[0] in ("truncate", "noise", "deep", "nan"))
