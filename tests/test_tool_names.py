"""The installed command is a tool of its own: `rifebench run --help` says
`rifebench run`, not run_model.sh, and its hints name commands that exist
where it runs; a checkout's scripts keep their own names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rifebench import paths

COMMAND = Path(sys.executable).parent / "rifebench"  # the console script of this environment
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not COMMAND.exists(), reason=f"{COMMAND} not installed (./setup.sh installs the package)")
@pytest.mark.parametrize("sub", ["run", "bench", "fetch-model", "fetch-dataset"])
def test_the_installed_command_names_itself(sub):
    proc = subprocess.run([str(COMMAND), sub, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: rifebench {sub} "), proc.stdout[:200]


@pytest.mark.slow  # over 2 s on 2 cores: kept out of the fast tier
@pytest.mark.parametrize("script", ["run_model.sh", "benchmark.sh"])
def test_the_checkouts_scripts_keep_their_names(script):
    proc = subprocess.run([str(REPO / script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: {script} "), proc.stdout[:200]


def test_hints_name_the_command_that_exists(monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(REPO / "src" / "rifebench" / "__main__.py")])
    assert paths.tool_command("fetch-model") == "./get_model.sh"
    assert paths.tool_name("run") == "run_model.sh" and paths.tool_name("compare") == "python -m rifebench compare"
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/rifebench"])
    assert paths.tool_command("fetch-model") == "rifebench fetch-model" and paths.tool_name("run") == "rifebench run"
    monkeypatch.setattr(sys, "argv", [str(REPO / "src" / "rifebench" / "__main__.py")])
    monkeypatch.setattr(paths, "checkout_root", lambda: None)  # pip installed: no scripts beside the package
    assert paths.tool_command("fetch-model") == "rifebench fetch-model"


def test_shipped_profiles_are_addressed_by_name_inside_and_outside_a_checkout(tmp_path, monkeypatch):
    from rifebench.bench import profiles

    inside = profiles.shipped()
    assert {"cpu", "rife.fp16", "reference.rife.fp16"} <= set(inside)
    assert profiles.locate("cpu") == str(REPO / "profiles" / "cpu.csv")
    monkeypatch.setattr(profiles, "checkout_root", lambda: None)  # as installed from a wheel
    outside = profiles.shipped()
    assert set(outside) == set(inside)  # the same files, found as the package's data
    assert all(outside[name].read_bytes() == inside[name].read_bytes() for name in inside)
    monkeypatch.chdir(tmp_path)
    header, rows = profiles.read(profiles.locate("cpu"))
    assert header and rows
    with pytest.raises(profiles.ProfileError, match=r"a shipped profile by name: .*\bcpu\b"):
        profiles.read(profiles.locate("no-such-profile"))


def test_every_package_is_listed_in_pyproject():
    """pyproject lists the packages by hand (profiles/ travels as rifebench.profiles):
    a new package left out would be missing from the wheel."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    src = REPO / "src"
    found = {".".join(p.parent.relative_to(src).parts) for p in src.rglob("__init__.py")}
    assert found | {"rifebench.profiles"} == listed
