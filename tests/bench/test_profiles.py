"""Profiles as users bring them: every row's start-up checks before row 1 runs,
spreadsheet exports (comma-only rows, cells with line breaks), Intel's
reference profiles unchanged, and a benchmark run from an installed copy."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import clean_env
from rifebench.bench import profiles

REPO = Path(__file__).resolve().parents[2]
TINY = {"PLATFORM": "cpu", "PRECISION": "fp32", "DATA_HEIGHT": 64, "DATA_WIDTH": 64, "WARMUP": 1, "INVENTORY": "no"}


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def bench(*args, env=None, cwd=REPO, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rifebench", "bench", *map(str, args)],
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def problems(path: Path, environ=None) -> list[str]:
    try:
        _, rows = profiles.read(path)
        return profiles.validate(str(path), rows, environ or {})
    except profiles.ProfileError as exc:
        return [str(exc)]


# --- every row's start-up checks, before row 1 runs ------------------------------------------


@pytest.mark.slow  # over 2 s on 2 cores: kept out of the fast tier
def test_a_row_asking_for_cuda_without_a_gpu_stops_the_benchmark_before_row_1(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: row 3 would be valid here")
    prof = write(
        tmp_path / "p.csv",
        """
        MODEL,NUM_INPUTS,PLATFORM
        null,2,cpu
        null,2,cpu
        null,2,cuda
        """,
    )
    out = tmp_path / "out"
    proc = bench("--profile", prof, "--output-dir", out, env=clean_env(**TINY))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "row 3 (line 4), column PLATFORM: --platform/PLATFORM: 'cuda' is not available here" in lines[0]
    assert not (out / "test_1").exists() and "row 1/3" not in proc.stdout


def test_missing_weights_file_socket_and_broken_dataset_list_are_refused_per_row(tmp_path):
    data = tmp_path / "vimeo"
    data.mkdir()
    (data / "tri_testlist.txt").write_text("00001/0001\n")  # names a sequence that is not there
    prof = write(
        tmp_path / "p.csv",
        f"""
        MODEL,LOAD_PATH,SOCKET,DATASET_DIR
        null,,,
        4.0,{tmp_path}/missing/flownet.pkl,,
        null,,{tmp_path}/no.sock,
        null,,,{data}
        """,
    )
    found = problems(prof, {"PLATFORM": "cpu"})
    assert len(found) == 3, found
    assert "row 2 (line 3), column LOAD_PATH: --pretrained-weights/LOAD_PATH:" in found[0]
    assert "does not exist" in found[0]
    assert "row 3 (line 4), column SOCKET: --socket/SOCKET:" in found[1]
    assert "row 4 (line 5), column DATASET_DIR: --data/DATASET_DIR:" in found[2]


def test_missing_default_weights_pass_they_are_fetched_at_the_rows_turn(tmp_path):
    prof = write(tmp_path / "p.csv", f"MODEL,MODELS_DIR\n4.0,{tmp_path}/models\n")
    assert problems(prof, {"PLATFORM": "cpu"}) == []


def test_alike_rows_are_checked_once_and_image_rows_not_on_the_host(tmp_path, monkeypatch):
    from rifebench.run import startup

    calls = []
    real = startup.startup_checks
    monkeypatch.setattr(startup, "startup_checks", lambda cfg, **kw: calls.append(cfg) or real(cfg, **kw))
    prof = write(tmp_path / "p.csv", "STREAMS\n" + "1\n" * 50 + "2\n")
    _, rows = profiles.read(prof)
    assert profiles.validate(str(prof), rows, {"PLATFORM": "cpu"}) == [] and len(calls) == 2
    cuda = write(tmp_path / "c.csv", "PLATFORM\ncuda\n")
    _, rows = profiles.read(cuda)
    assert profiles.validate(str(cuda), rows, {}, startup=False) == []


# --- what spreadsheets export ----------------------------------------------------------------


def test_comma_only_rows_are_skipped_and_rows_numbered_without_them(tmp_path):
    prof = write(tmp_path / "p.csv", "PRECISION,STREAMS\n,\nfp32,1\n , \nfp32,2\n,,\n")
    header, rows = profiles.read(prof)
    assert header == ["PRECISION", "STREAMS"]
    assert [(r.number, r.line, r.cells) for r in rows] == [
        (1, 3, {"PRECISION": "fp32", "STREAMS": "1"}),
        (2, 5, {"PRECISION": "fp32", "STREAMS": "2"}),
    ]


def test_a_cell_with_a_line_break_is_refused_not_joined(tmp_path):
    prof = tmp_path / "p.csv"
    prof.write_text('PRECISION,SEED\nfp32,1\nfp32,"0\n1"\n')
    found = problems(prof)
    assert len(found) == 1 and "row 2 (line 3): a quoted cell holds a line break" in found[0], found
    prof.write_text('"PRECI\nSION",SEED\nfp32,1\n')
    assert "line 1 (the header): a quoted cell holds a line break" in problems(prof)[0]


# --- Intel's reference profiles, unchanged -------------------------------------------------------

REFERENCE = "model_name,batch_size,num_inputs,streams,precision\nRIFE,1,4,1,fp32\nRIFE,1,4,2,fp32\n"


def test_reference_header_is_read_and_model_name_never_reaches_the_run(tmp_path):
    prof = tmp_path / "ref.csv"
    prof.write_text("model_name,batch_size,num_inputs,streams,precision\nRIFE,2,1024,2,fp16\n")
    header, rows = profiles.read(prof)
    assert header == ["model_name", "BATCH_SIZE", "NUM_INPUTS", "STREAMS", "PRECISION"]
    assert problems(prof, {"PLATFORM": "cpu"}) == []
    env = profiles.row_env(rows[0], {})
    assert "model_name" not in env and "MODEL_NAME" not in env and env["BATCH_SIZE"] == "2"
    cfg = profiles.resolved(rows[0], {}, str(tmp_path / "o"))
    assert (cfg["model"], cfg["batch_size"], cfg["num_inputs"], cfg["streams"]) == ("4.0", 2, 1024, 2)
    assert profiles.resolved(rows[0], {"MODEL": "null"}, str(tmp_path / "o"))["model"] == "null"
    prof.write_text("model_name\nRIFE;id\n")
    assert "column model_name: invalid value 'RIFE;id': shell metacharacter(s) ';'" in problems(prof)[0]


@pytest.mark.slow
def test_reference_profile_runs_and_the_summary_carries_model_name(tmp_path):
    prof = tmp_path / "ref.csv"
    prof.write_text(REFERENCE)
    out = tmp_path / "out"
    proc = bench("--profile", prof, "--output-dir", out, env=clean_env(MODEL="null", **TINY))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model_name"], r["STREAMS"], r["status"]) for r in rows] == [
        ("RIFE", "1", "passed"),
        ("RIFE", "2", "passed"),
    ]
    assert "`model_name=RIFE`" in (out / "summary.md").read_text()
    row = json.loads((out / "test_1" / "row.json").read_text())
    assert row["model_name"] == "RIFE" and "model_name" not in row["env"]
    assert json.loads((out / "test_1" / "results.json").read_text())["config"]["model"] == "null"


def test_the_shipped_reference_profile_is_in_the_references_own_format():
    text = (REPO / "profiles" / "reference.rife.fp16.csv").read_text()
    assert text.splitlines()[0] == "model_name,batch_size,num_inputs,streams,precision"
    assert all(line.startswith("RIFE,1,1024,") and line.endswith(",fp16") for line in text.splitlines()[1:])
    assert "reference.rife.fp16.csv" in (REPO / "profiles" / "README.md").read_text()


# --- installed, outside a checkout -----------------------------------------------------------------


@pytest.mark.slow
def test_bench_runs_rows_from_an_installed_copy_outside_the_checkout(tmp_path):
    source = tmp_path / "source"  # built from a copy: a build in the checkout would leave build/ there
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(REPO / "profiles", source / "profiles")  # installed as rifebench.profiles
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    site = tmp_path / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    shutil.rmtree(source)  # nothing of a checkout is left to lean on
    away = tmp_path / "elsewhere"
    away.mkdir()
    prof = write(away / "p.csv", "MODEL,NUM_INPUTS\nnull,3\nnull,3\n")
    env = clean_env(PYTHONPATH=site, XDG_CACHE_HOME=tmp_path / "cache", **TINY)
    proc = bench("--profile", prof, "--output-dir", away / "out", env=env, cwd=away)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "row 2: passed" in proc.stdout
    run = json.loads((away / "out" / "test_1" / "row.json").read_text())
    assert run["command"] == [sys.executable, "-m", "rifebench"]
    origin = subprocess.run(
        [sys.executable, "-c", "import rifebench; print(rifebench.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        cwd=away,
    ).stdout
    assert origin.startswith(str(site))
