"""A description of the machine: the `system` block of every results.json, and
benchmark.sh's sysinfo.json (the same block plus the svr-info / PerfSpect
inventory, which takes minutes and so runs once per benchmark, not per run).

Composed from topology.py (CPUs, packages, NUMA, cgroups, container) and inventory.py
(the GPUs); this module parses no /proc or /sys file of its own. Everything
reads files or asks tools with a timeout; a missing tool or file gives null,
never an exception, because a description must not fail a run.

    python -m rifebench.measure.sysinfo [--inventory DIR]   prints the JSON
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from typing import Any

from rifebench.measure import inventory, topology

INVENTORY_TIMEOUT_S = 900


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def packages() -> dict[str, str | None]:
    names = {
        "torch": "torch",
        "numpy": "numpy",
        "opencv": "opencv-python-headless",
        "pyyaml": "PyYAML",
        "psutil": "psutil",
        "ipex": "intel-extension-for-pytorch",
        "matplotlib": "matplotlib",
    }
    out = {k: _version(v) for k, v in names.items()}
    if out["opencv"] is None:
        out["opencv"] = _version("opencv-python")
    return out


def numa_nodes() -> list[dict[str, Any]]:
    """One entry per NUMA node: its CPUs (in the kernel's list format) and memory."""
    return [
        {"node": n["node"], "cpus": topology.format_cpulist(n["cpus"]), "memory_bytes": n["memory_bytes"]}
        for n in topology.read_numa()
    ]


def container(inside: bool | None = None) -> dict[str, Any] | None:
    """Inside a container: which image. The image sets RIFEBENCH_IMAGE* at build
    time; benchmark.sh passes the digest it read with `docker image inspect`,
    because an image cannot know its own digest."""
    inside = topology.in_container() if inside is None else inside
    keys = {
        "image": "RIFEBENCH_IMAGE",
        "image_id": "RIFEBENCH_IMAGE_ID",
        "digest": "RIFEBENCH_IMAGE_DIGEST",
        "flavour": "RIFEBENCH_IMAGE_FLAVOUR",
        "base_image": "RIFEBENCH_BASE_IMAGE",
        "revision": "RIFEBENCH_IMAGE_REVISION",
    }
    info = {k: os.environ.get(v) for k, v in keys.items()}
    if not inside and not any(info.values()):
        return None
    return {"detected": inside, **info}


def inventory_tools() -> dict[str, str | None]:
    return {name: shutil.which(name) for name in ("svr-info", "perfspect")}


def collect() -> dict[str, Any]:
    import psutil

    gpus, gpu_tool = inventory.gpu_inventory()
    cores = psutil.cpu_count(logical=False)
    logical = psutil.cpu_count(logical=True)
    inside = topology.in_container()
    return {
        "hostname": platform.node(),
        "cpu_model": topology.cpu_model(),
        "sockets": topology.sockets(),
        "cpu_physical": cores,
        "cpu_logical": logical,
        "threads_per_core": (logical // cores) if cores and logical else None,
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_quota_cpus": topology.read_quota(),
        "cpu_flags": topology.cpu_flags(),
        "numa_nodes": numa_nodes(),
        "memory_bytes": psutil.virtual_memory().total,
        "os": _os_release(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "packages": packages(),
        "gpu_tool": gpu_tool,
        "gpus": gpus,
        "in_container": inside,
        "container": container(inside),
        "inventory_tools": inventory_tools(),
    }


def run_inventory(out_dir: str, log: Callable[[str], object] = print) -> list[dict[str, Any]]:
    """Run svr-info and/or PerfSpect (whichever is on PATH) into out_dir. Each
    entry records the command, its exit status and the report files it wrote."""
    commands = {
        "svr-info": ["-output"],
        "perfspect": ["report", "--format", "json,txt", "--noupdate", "--output"],
    }
    done = []
    for name, path in inventory_tools().items():
        if not path:
            continue
        tool_dir = os.path.join(out_dir, name)
        os.makedirs(tool_dir, exist_ok=True)
        cmd = [path, *commands[name], tool_dir]
        log(f"system inventory: running {' '.join(cmd)} (up to {INVENTORY_TIMEOUT_S} s)")
        entry: dict[str, Any] = {"tool": name, "command": cmd}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=INVENTORY_TIMEOUT_S, cwd=tool_dir)
            entry.update(exit_code=proc.returncode, stderr_tail=proc.stderr.strip().splitlines()[-5:])
        except (OSError, subprocess.TimeoutExpired) as exc:
            entry.update(exit_code=None, error=f"{type(exc).__name__}: {exc}")
        entry["files"] = sorted(
            os.path.relpath(os.path.join(d, f), out_dir) for d, _, fs in os.walk(tool_dir) for f in fs
        )
        done.append(entry)
    return done


def _os_release() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rifebench.measure.sysinfo", description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", metavar="DIR", help="also run svr-info / PerfSpect into DIR")
    args = parser.parse_args(argv)
    info = collect()
    if args.inventory:
        info["inventory"] = run_inventory(args.inventory, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(info, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
