"""compare on files that are not what they claim (issue 21): hostile
results.json documents, row.json files and saved output frames are one line
naming the file and exit 2, never a traceback or a verdict; a figure that is no
finite number is never compared; and a run whose results.json has no
configuration cannot pass the workload check silently."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from helpers import sibling_module

gen = sibling_module("compare", "test_compare")


def one_line(rc, out, err, *words):
    assert rc == 2 and out == "", out
    assert err.startswith("compare: error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err


def edit(folder: Path, change) -> Path:
    path = folder / "results.json"
    doc = json.loads(path.read_text())
    new = change(doc)
    path.write_text(new if isinstance(new, str) else json.dumps(doc if new is None else new))
    return folder


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda d: [d], "the document is list"),
        (lambda d: d.update(config="dummy"), "config is 'dummy' (accepted: an object)"),
        (lambda d: json.dumps(d)[:-1] + ', "x": ' + DEEP + "}", "nested too deeply"),
        (lambda d: json.dumps(d).replace('"throughput_img_s": ', '"throughput_img_s": 1e400, "y": ', 1), "inf"),
        (lambda d: d["metrics"].update(throughput_img_s=float("nan")), "metrics.throughput_img_s is nan"),
        (lambda d: d["metrics"].update(throughput_img_s="fast"), "metrics.throughput_img_s is 'fast'"),
        (lambda d: d["metrics"]["latency_ms"].update(p50="12.5"), "latency_ms.p50 is '12.5'"),
        (lambda d: d["metrics"]["latency_ms"].update(count="many"), "latency_ms.count is 'many' (accepted: an"),
        (lambda d: d["metrics"].update(frames=10**30), "metrics.frames is an integer of about 31 digits"),
        (lambda d: d["repetitions"].append("rep"), "repetitions"),
        (lambda d: d["streams"][0]["latency_samples_ms"].append("1.0"), "latency_samples_ms[80] is '1.0'"),
        (lambda d: d["metrics"].update(ci95={"latency_p50_ms": [1.0]}), "metrics.ci95.latency_p50_ms is a list"),
        (lambda d: d.update(quality={"psnr_mean": "30"}), "quality.psnr_mean is '30'"),
        (lambda d: d.update(validity={"valid": "yes", "reasons": []}), "validity.valid is 'yes'"),
    ],
)
def test_a_hostile_results_json_is_one_line_and_exit_2(compare_cli, tmp_path, change, words):
    good = gen.make_run(tmp_path / "a")
    bad = edit(gen.make_run(tmp_path / "b"), change)
    one_line(*compare_cli(good, bad), str(bad / "results.json"), words)
    one_line(*compare_cli(bad, good), str(bad / "results.json"))


def test_a_nan_figure_is_never_compared(compare_cli, tmp_path):
    """Issue 21, item 5: NaN passed every comparison ("same within noise")."""
    a = gen.make_run(tmp_path / "a", reps=[40.0, 40.4, 39.6])
    b = edit(
        gen.make_run(tmp_path / "b", reps=[40.0, 40.4, 39.6]),
        lambda d: d["repetitions"][1].update(throughput_img_s=float("nan")),
    )
    one_line(*compare_cli(a, b), "repetitions[1].throughput_img_s is nan (accepted: a finite number)")


def fingerprint_file(path: Path, header_shape, data: bytes = b"", dtype="<f4") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"descr": dtype, "fortran_order": False, "shape": header_shape}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(data)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: fingerprint_file(p, (100000, 100000, 3)), "float32 (100000, 100000, 3)"),
        (lambda p: fingerprint_file(p, (4, 4, 3), b"\0" * 10), "10 bytes of data where its header declares 192"),
        (lambda p: np.save(p, np.full((4, 4, 3), np.nan, np.float32)), "NaN or infinite"),
        (lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "is not an output fingerprint"),
        (lambda p: p.write_bytes(b"\x93NUMPY\x09\x00junk"), "is not an output fingerprint"),
        (os.mkfifo, "not a regular file"),
    ],
)
def test_a_hostile_fingerprint_is_one_line_and_exit_2(compare_cli, tmp_path, make, words):
    frame = np.zeros((4, 4, 3), np.float32)
    a = gen.make_run(tmp_path / "a", fingerprint=frame)
    b = gen.make_run(tmp_path / "b")
    (b / "images").mkdir()
    make(b / "images" / "dummy_0.npy")
    one_line(*compare_cli(a, b), str(b / "images" / "dummy_0.npy"), words)


@pytest.mark.parametrize(
    "text, words",
    [
        ("[1, 2]", "cells is a list"),
        ('{"cells": {"PRECISION": 16}}', "cells is an object"),
        ('{"cells": ', "cannot be read"),
        ("[" * 50_000, "cannot be read"),
    ],
)
def test_a_hostile_row_json_is_one_line_and_exit_2(compare_cli, tmp_path, text, words):
    bench = gen.make_bench(tmp_path / "bench", [({"PRECISION": "fp32"}, {}), ({"PRECISION": "bf16"}, {})])
    good = gen.make_bench(tmp_path / "good", [({"PRECISION": "fp32"}, {}), ({"PRECISION": "bf16"}, {})])
    (bench / "test_2" / "row.json").write_text(text)
    one_line(*compare_cli(good, bench), str(bench / "test_2" / "row.json"), words)


def test_row_folders_are_named_by_ascii_digits(compare_cli, tmp_path):
    bench = gen.make_bench(tmp_path / "bench", [({"PRECISION": "fp32"}, {})])
    (bench / "test_\N{SUPERSCRIPT TWO}").mkdir()  # str.isdigit() says yes, int() says no
    rc, out, _ = compare_cli(bench, bench)
    assert rc == 0 and "a benchmark of 1 row(s)" in out


@pytest.mark.parametrize("config", [None, {}])
def test_a_run_without_its_configuration_is_not_compared_silently(compare_cli, tmp_path, config):
    """Issue 21, item 32: without a config the workload check was skipped in silence."""
    a = gen.make_run(tmp_path / "a")
    b = edit(
        gen.make_run(tmp_path / "b"),
        lambda d: {k: v for k, v in d.items() if k != "config"} | ({} if config is None else {"config": config}),
    )
    one_line(*compare_cli(a, b), "the workload cannot be checked: B has no config in results.json", "--force")
    one_line(*compare_cli(b, b), "A and B have no config")
    rc, out, _ = compare_cli(a, b, "--force")
    assert rc == 0 and "workload unknown: B has no config in results.json (compared anyway: --force)" in out
