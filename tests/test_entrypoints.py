"""The shell entrypoints run the Python of VENV_DIR, and the suite points VENV_DIR at the
interpreter under test (tests/conftest.py), so that no test runs setup.sh and builds an
environment in the checkout."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import REPO, clean_env

# script, arguments, the module it hands over to
ENTRYPOINTS = [
    ("run_model.sh", ["--dummy"], "rifebench"),
    ("get_model.sh", ["--print-path"], "rifebench.fetch"),
    ("get_dataset.sh", ["--dir", "x"], "rifebench.fetch.vimeo"),
    ("benchmark.sh", ["--profile", "p.csv"], "rifebench.bench"),
]


@pytest.mark.parametrize("script,args,module", ENTRYPOINTS, ids=[e[0] for e in ENTRYPOINTS])
def test_entrypoint_runs_the_python_of_venv_dir(tmp_path, script, args, module):
    calls = tmp_path / "calls"
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\n')  # answers every probe with success
    python.chmod(0o755)
    proc = subprocess.run(
        [str(REPO / script), *args],
        env=clean_env(VENV_DIR=tmp_path / "venv"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "setup.sh" not in proc.stderr
    assert calls.read_text().splitlines()[-1] == " ".join(["-m", module, *args])


def test_the_suite_runs_the_entrypoints_with_the_interpreter_under_test():
    venv_python = os.path.join(os.environ["VENV_DIR"], "bin", "python")
    proc = subprocess.run(
        [venv_python, "-c", "import sys, rifebench; print(sys.prefix)"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == sys.prefix
