"""A description of the machine, for results.json (and sysinfo.json)."""
from __future__ import annotations

import os
import platform
import sys
from importlib import metadata


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def packages() -> dict:
    names = {"torch": "torch", "numpy": "numpy", "opencv": "opencv-python-headless", "pyyaml": "PyYAML",
             "psutil": "psutil", "ipex": "intel-extension-for-pytorch"}
    out = {k: _version(v) for k, v in names.items()}
    if out["opencv"] is None:
        out["opencv"] = _version("opencv-python")
    return out


def collect() -> dict:
    import psutil

    from .backends import cpu_model

    info = {
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cpu_logical": psutil.cpu_count(logical=True),
        "cpu_physical": psutil.cpu_count(logical=False),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_bytes": psutil.virtual_memory().total,
        "os": _os_release(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "packages": packages(),
        "in_container": os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv"),
    }
    return info


def _os_release() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()
