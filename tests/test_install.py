"""Installable like a Python tool: one command with subcommands, an installed copy that
needs no checkout, a missing torch named in one line, setup.sh's choice of torch build
on faked machines, the Python version said where it is true, and the names the issue
asked to be the same everywhere."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO, clean_env, run_harness
from rifebench import __version__, paths
from rifebench.config import resolve
from rifebench.fetch import weights
from rifebench.models import zoo

SUBCOMMANDS = ("run", "bench", "compare", "study", "fetch-model", "fetch-dataset", "fleet")


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_every_subcommand_has_help_and_version(sub):
    version = run_harness([sub, "--version"])
    assert version.returncode == 0 and version.stdout.strip() == f"rifebench {__version__}", version.stderr
    helped = run_harness([sub, "--help"])
    assert helped.returncode == 0 and "usage:" in helped.stdout, helped.stderr


def test_top_help_lists_subcommands_and_run_options():
    out = run_harness(["--help"]).stdout
    for sub in SUBCOMMANDS:
        assert re.search(rf"^  {re.escape(sub)}\s", out, flags=re.M), sub
    assert "--modelsdir MODELS_DIR, --models-dir MODELS_DIR" in out and "--dummy" in out


def test_checkout_models_dir_is_repo_model(monkeypatch):
    monkeypatch.delenv("MODELS_DIR", raising=False)
    assert paths.checkout_root() == REPO
    assert weights.default_models_dir() == REPO / "model" == paths.default_models_dir()


@pytest.mark.slow  # over 2 s on 2 cores: kept out of the fast tier
def test_installed_copy_keeps_weights_in_the_user_cache(tmp_path):
    target, cache, elsewhere = tmp_path / "site", tmp_path / "xdg", tmp_path / "cwd"
    elsewhere.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = clean_env(PYTHONPATH=target, XDG_CACHE_HOME=cache)
    env.pop("MODELS_DIR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "rifebench", "fetch-model", "--print-path"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    spec = zoo.get(zoo.DEFAULT_MODEL)
    assert Path(proc.stdout.strip()) == spec.weights_path(cache / "rifebench")
    # The run's default (MODELS_DIR unset) is the same folder, and no git revision is claimed.
    code = (
        "from rifebench.config import resolve; from rifebench import paths; "
        "print(resolve(['--dummy']).models_dir, paths.git_revision())"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.split() == [str(cache / "rifebench"), "None"], proc.stderr


def test_missing_torch_is_one_line_not_a_traceback(tmp_path):
    fake = tmp_path / "shadow" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    env = clean_env(PYTHONPATH=os.pathsep.join([str(fake.parent), str(REPO / "src")]))
    proc = subprocess.run(
        [sys.executable, "-m", "rifebench", "--dummy", "--output-dir", str(tmp_path / "out")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "PyTorch is not installed" in lines[0] and "setup.sh" in lines[0] and "--index-url" in lines[0]


# --- setup.sh: the torch build for the machine -------------------------------------------


def _fake_machine(tmp_path: Path, *, nvidia=False, intel=False, tools=()) -> dict:
    root, bin_dir = tmp_path / "root", tmp_path / "bin"
    (root / "proc").mkdir(parents=True)
    bin_dir.mkdir()
    (bin_dir / "dirname").symlink_to(shutil.which("dirname"))
    for tool in tools:  # nvidia-smi / xpu-smi on PATH
        (bin_dir / tool).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / tool).chmod(0o755)
    if nvidia:
        (root / "proc/driver/nvidia").mkdir(parents=True)
        (root / "proc/driver/nvidia/version").write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module 570\n")
    for name, vendor in (("renderD128", "0x8086" if intel else "0x1af4"),):
        (root / "sys/class/drm" / name / "device").mkdir(parents=True)
        (root / "sys/class/drm" / name / "device/vendor").write_text(vendor + "\n")
    return {"PATH": str(bin_dir), "RIFEBENCH_FAKE_ROOT": str(root), "PYTHON": sys.executable}


class _Index(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # a PEP 503 project page for torch on each of the three indexes
        ok = re.fullmatch(r"/whl/(cpu|xpu|cu\d+)/torch/", self.path)
        self.send_response(200 if ok else 404)
        self.end_headers()
        self.wfile.write(b"<html></html>")

    def log_message(self, *args):
        pass


@pytest.fixture()
def index_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/whl"
    server.shutdown()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torch_source(env: dict) -> str:
    proc = subprocess.run(
        [shutil.which("bash"), str(REPO / "setup.sh"), "--print-torch-source"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize(
    "machine, kind",
    [
        ({"nvidia": True}, "cu128"),
        ({"tools": ("nvidia-smi",)}, "cu128"),
        ({"intel": True}, "xpu"),
        ({"tools": ("xpu-smi",)}, "xpu"),
        ({}, "cpu"),
    ],
)
def test_setup_picks_the_index_for_the_machine(tmp_path, index_url, machine, kind):
    env = _fake_machine(tmp_path, **machine) | {"RIFEBENCH_TORCH_INDEX": index_url}
    assert _torch_source(env) == (
        f"setup.sh: torch: torch==2.13.0 --index-url {index_url}/{kind} "
        f"({kind if kind in ('cpu', 'xpu') else 'cuda'} build from {index_url}/{kind})"
    )


def test_setup_falls_back_to_the_plain_index_when_unreachable(tmp_path):
    dead = f"http://127.0.0.1:{_closed_port()}/whl"
    out = _torch_source(_fake_machine(tmp_path, nvidia=True) | {"RIFEBENCH_TORCH_INDEX": dead})
    assert out == f"setup.sh: torch: torch==2.13.0 (cuda machine, but {dead}/cu128 is unreachable: plain package index)"


def test_setup_keeps_torch_spec_as_the_override(tmp_path):
    env = _fake_machine(tmp_path, nvidia=True) | {"TORCH_SPEC": "torch==2.13.0 --index-url http://x/cpu"}
    assert _torch_source(env) == "setup.sh: torch: torch==2.13.0 --index-url http://x/cpu (TORCH_SPEC as given)"


def test_setup_refuses_an_old_python_in_one_line(tmp_path):
    old = tmp_path / "python3.10"
    old.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "Python 3.10.12" && exit 0\nexit 1\n')
    old.chmod(0o755)
    env = {**os.environ, "PYTHON": str(old), "VENV_DIR": str(tmp_path / "venv")}
    proc = subprocess.run(["bash", str(REPO / "setup.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and not (tmp_path / "venv").exists()
    assert proc.stderr.strip() == (
        f"setup.sh: PYTHON={old} is Python 3.10.12 (accepted: Python 3.11 or newer; set PYTHON)"
    )


def test_python_version_is_the_same_in_pyproject_and_readme():
    pyproject = (REPO / "pyproject.toml").read_text()
    want = re.search(r'^requires-python = ">=(3\.\d+)"', pyproject, flags=re.M).group(1)
    assert want == "3.11"  # numpy==2.4.6 and matplotlib==3.11.2 need it
    assert f"Python >= {want}" in (REPO / "README.md").read_text()


def test_the_version_is_pyproject_s_also_from_a_checkout_without_an_install():
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert __version__ == declared
    # -S: no site-packages, so no installed metadata; PYTHONPATH=src as on a machine with only a checkout
    proc = subprocess.run(
        [sys.executable, "-S", "-c", "import rifebench; print(rifebench.__version__)"],
        env=clean_env(PYTHONPATH=REPO / "src"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == declared, proc.stderr


def test_optional_pins_live_in_the_pyproject_extras_only():
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = ("onnxruntime", "openvino", "int8", "test", "lint", "docs")
    pinned = {r.split("==")[0] for name in names for r in extras[name]}
    assert {"onnxruntime", "openvino", "nncf", "pytest", "scikit-image", "ruff", "mypy", "pre-commit"} <= pinned
    assert extras["docs"] == ["mkdocs==1.6.1", "mkdocs-material==9.8.1"]  # tests/test_docs.py builds the site
    assert extras["int8"] == ["rifebench[openvino]", "nncf==3.4.0"]  # setup.sh installs it with openvino
    assert extras["dev"] == ["rifebench[test,lint,docs,onnxruntime,openvino,int8]"]
    for name in ("setup.sh", "requirements.txt", "requirements-dev.txt"):
        text = (REPO / name).read_text()
        assert not [p for p in pinned if re.search(rf"^{re.escape(p)}==|\b{re.escape(p)}==", text, re.M)], name


def test_intel_docs_say_ipex_stopped_at_28():
    for doc in (REPO / "docs" / "install.md", REPO / "docker" / "README.md"):
        text = " ".join(doc.read_text().split())
        assert "no release after 2.8" in text and "`torch.xpu` is PyTorch's own path" in text, doc


# --- names --------------------------------------------------------------------------------


def test_models_dir_spellings_are_accepted_by_both_tools(tmp_path, capsys):
    for flag in ("--modelsdir", "--models-dir"):
        assert resolve(["--dummy", flag, str(tmp_path)], env={}).models_dir == str(tmp_path)
        assert weights.main([flag, str(tmp_path), "--print-path"]) == 0
        assert capsys.readouterr().out.strip() == str(zoo.get(zoo.DEFAULT_MODEL).weights_path(tmp_path))


def test_benchmark_help_prints_once():
    proc = subprocess.run([str(REPO / "benchmark.sh"), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stdout.count("usage: benchmark.sh") == 1 and proc.stdout.count("Run every row") == 1
    assert "DOCKER_ARGS" in proc.stdout


def _tiny_dataset(root: Path) -> Path:
    import cv2

    (root / "sequences/00001/0001").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("im1.png", "im2.png", "im3.png"):
        cv2.imwrite(str(root / "sequences/00001/0001" / name), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    (root / "tri_testlist.txt").write_text("00001/0001\n")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["dummy", "dataset"])
def test_run_names_its_mode_warms_up_aloud_and_records_revision_and_times(tmp_path, mode):
    work = (
        ["--dummy", "--data-height", "64", "--data-width", "64"]
        if mode == "dummy"
        else ["--data", _tiny_dataset(tmp_path / "vimeo")]
    )
    out = tmp_path / "out"
    proc = run_harness(
        ["--model", "null", *work, "--num-inputs", "2", "--warmup", "1", "--pin", "none", "--output-dir", out]
    )
    assert proc.returncode in (0, 1), proc.stderr
    name = {"dummy": "performance mode (dummy)", "dataset": "quality mode (dataset)"}[mode]
    assert f", {name}, platform" in proc.stdout
    assert re.search(r"^stream 0: set-up [0-9.]+ s; warming up", proc.stdout, flags=re.M)
    assert proc.stdout.index("warming up") < proc.stdout.index("stream 0 ready")
    doc = json.loads((out / "results.json").read_text())
    assert doc["mode"] == mode and doc["mode_name"] == {"dummy": "performance", "dataset": "quality"}[mode]
    assert doc["schema_version"] == "3"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert doc["harness"]["git_revision"] == (head or None)
    s = doc["streams"][0]
    start, end = (np.datetime64(s[k].replace("+00:00", "")) for k in ("start_iso", "end_iso"))
    assert abs((end - start) / np.timedelta64(1, "ms") - (s["end"] - s["start"]) * 1000) <= 2
