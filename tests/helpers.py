"""Shared helpers for tests that run the harness as a user would."""

from __future__ import annotations

import hashlib
import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType, SimpleNamespace

from rifebench.measure.topology import Topology

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"  # real frames and datasets, on dev and CI machines only


def cache_dir() -> Path:
    """Downloads and builds kept between test runs (RIFEBENCH_TEST_CACHE, default ~/.cache/rifebench-tests)."""
    path = Path(os.environ.get("RIFEBENCH_TEST_CACHE") or Path.home() / ".cache" / "rifebench-tests")
    path.mkdir(parents=True, exist_ok=True)
    return path


def interpreter_venv() -> Path:
    """A VENV_DIR whose bin/python is the interpreter running the tests. The shell entrypoints
    (run_model.sh, get_model.sh, benchmark.sh, ...) run setup.sh when their VENV_DIR has no usable
    Python; pointed here, they run the code under test and never build an environment."""
    if sys.prefix != sys.base_prefix and (Path(sys.prefix) / "bin" / "python").is_file():
        return Path(sys.prefix)
    # Not a venv (a system or conda Python): a folder whose bin/python hands over to it.
    folder = cache_dir() / "test-venv" / hashlib.sha256(sys.executable.encode()).hexdigest()[:12]
    python = folder / "bin" / "python"
    script = f'#!/bin/sh\nexec "{sys.executable}" "$@"\n'
    if not python.is_file() or python.read_text() != script:
        python.parent.mkdir(parents=True, exist_ok=True)
        python.write_text(script)
        python.chmod(0o755)
    return folder


def sibling_module(folder: str, name: str) -> ModuleType:
    """The test module tests/<folder>/<name>.py, for the data generators it defines, imported as
    pytest imports it (its folder on sys.path, the basename as its name: basenames are unique),
    whichever folders this session collected."""
    path = str(REPO / "tests" / folder)
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module(name)


def clean_env(**extra) -> dict:
    """The environment minus every harness variable, so the host's settings
    never leak into a test; then the test's own."""
    from rifebench.options import OPTIONS

    env = {k: v for k, v in os.environ.items() if k not in {o.env for o in OPTIONS}}
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def env_with_src(**extra) -> dict:
    """clean_env, with the checkout's src/ importable: a tool started as `python -m` from
    anywhere runs the code under test."""
    env = clean_env(**extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (env.get("PYTHONPATH"), str(REPO / "src"))))
    return env


def run_harness(args, env=None, timeout=300, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rifebench", *map(str, args)],
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or REPO,
    )


# Synthetic machines and configurations for the pinning plan (run/pinning.py).
def machine(sockets: int, cores: int, threads: int, cpus=None, mem_nodes=None, quota=None) -> Topology:
    """Linux numbering of an SMT server: first threads of every core of every
    socket, then their siblings (cpu 0 and cpu sockets*cores share a core)."""
    total = sockets * cores
    core_of, node_of = {}, {}
    for c in range(total * threads):
        rem = c % total
        core_of[c] = (rem // cores, rem % cores)
        node_of[c] = rem // cores
    usable = tuple(sorted(cpus if cpus is not None else range(total * threads)))
    mem = frozenset(range(sockets) if mem_nodes is None else mem_nodes)
    return Topology(usable, core_of, node_of, mem, quota)


def pin_cfg(streams=1, pin="auto", platform="cpu", devices=None):
    return SimpleNamespace(
        streams=streams,
        pin=pin,
        platform=platform,
        devices=devices,
        device_list=[int(d) for d in devices.split(",")] if devices else None,
    )


# Stand-ins for the GPU vendors' command-line tools (measure/gpu.py, measure/sysinfo.py).
def tool(bindir: Path, name: str, script: str) -> Path:
    bindir.mkdir(exist_ok=True)
    path = bindir / name
    path.write_text("#!/bin/bash\n" + textwrap.dedent(script))
    path.chmod(0o755)
    return path


# Answers the inventory and the telemetry queries; `-i` (an index or a bus id)
# narrows the answer as the real tool does, so a torch index passed there
# would pick the slow GPU and the tests would see it.
FAKE_NVIDIA_SMI = """
    query=""; only=""
    while [[ $# -gt 0 ]]; do
      case "$1" in
        --query-gpu=*) query="${1#--query-gpu=}" ;;
        -i|--id) only="$2"; shift ;;
        --id=*) only="${1#--id=}" ;;
      esac
      shift
    done
    bus=("00000000:01:00.0" "00000000:41:00.0")
    inv=("0, Slow GPU, GPU-aaaa, 550.54.15, 96.00.89.00.01, 81559, ${bus[0]}"
         "1, Fast GPU, GPU-bbbb, 550.54.15, 96.00.89.00.01, 81559, ${bus[1]}")
    tel=("${bus[0]}, 10, 1000, 100.00, 1200, 9001, 0x0000000000000001"
         "${bus[1]}, 90, 5000, 300.00, 1980, 9001, 0x0000000000000004")
    for i in 0 1; do
      if [[ -n "$only" && "$only" != "$i" && "${bus[$i]}" != *"${only^^}" ]]; then continue; fi
      if [[ "$query" == index,name,* ]]; then echo "${inv[$i]}"; else echo "${tel[$i]}"; fi
    done
"""
