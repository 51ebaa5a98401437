"""Shared helpers for tests that run the harness as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from rifebench.measure.topology import Topology

REPO = Path(__file__).resolve().parents[1]
OPTION_VARS = None


def clean_env(**extra) -> dict:
    """The environment minus every harness variable, so the host's settings
    never leak into a test; then the test's own."""
    from rifebench.options import OPTIONS

    env = {k: v for k, v in os.environ.items() if k not in {o.env for o in OPTIONS}}
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
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
