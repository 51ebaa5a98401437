"""benchmark.sh with IMAGE: the image checked before anything runs, and the
documented `docker run` line of a row and of the machine's description."""

from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rifebench.errors import UsageError
from rifebench.measure import sysinfo

CONTAINER_OUTPUT = "/tmp/output"
CONTAINER_DATA = "/data"


def inspect_image(name: str) -> dict[str, Any]:
    docker = shutil.which("docker")
    if not docker:
        raise UsageError(
            f"--image/IMAGE: {name!r} given but docker is not on PATH "
            "(accepted: unset IMAGE for bare metal, or install docker)"
        )
    proc = subprocess.run([docker, "image", "inspect", "--format", "{{json .}}", name], capture_output=True, text=True)
    try:
        info = json.loads(proc.stdout) if proc.returncode == 0 else None
    except ValueError:
        info = None
    if not isinstance(info, dict):
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(
            f"--image/IMAGE: {name!r} is not a local image ({why}) "
            "(accepted: an image built or pulled on this host; see docker/README.md)"
        )
    digests = info.get("RepoDigests") or []
    return {
        "name": name,
        "id": info.get("Id"),
        "digest": digests[0] if digests else None,
        "labels": (info.get("Config") or {}).get("Labels") or {},
    }


def device_flags(platform: str) -> list[str]:
    """`--gpus all` for CUDA, /dev/dri plus its render groups for Intel GPUs
    (a non-root user in the container needs the group of the render nodes)."""
    dri = sorted(glob.glob("/dev/dri/renderD*"))
    if platform == "cuda" or (platform == "auto" and not dri and shutil.which("nvidia-smi")):
        return ["--gpus", "all"]
    if platform == "xpu" or (platform == "auto" and dri):
        flags = ["--device", "/dev/dri"]
        for gid in sorted({os.stat(p).st_gid for p in dri}):
            flags += ["--group-add", str(gid)]
        return flags
    return []


def docker_command(image: Mapping[str, Any], env: Mapping[str, str], test_dir: Path, platform: str) -> list[str]:
    """The documented line (--ipc=host for the streams' shared memory, SYS_NICE
    for numactl), run as the calling user so the results belong to them."""
    cmd = [
        "docker",
        "run",
        "--rm",
        "--ipc=host",
        "--cap-add",
        "SYS_NICE",
        *device_flags(platform),
        "--user",
        f"{os.getuid()}:{os.getgid()}",
        "-e",
        "HOME=/tmp",
        "-v",
        f"{test_dir}:{CONTAINER_OUTPUT}",
        "-e",
        f"OUTPUT_DIR={CONTAINER_OUTPUT}",
    ]
    env = dict(env)
    if env.get("DATASET_DIR"):
        cmd += ["-v", f"{Path(env['DATASET_DIR']).expanduser().resolve()}:{CONTAINER_DATA}:ro"]
        env["DATASET_DIR"] = CONTAINER_DATA
    for key, value in [
        ("RIFEBENCH_IMAGE", image["name"]),
        ("RIFEBENCH_IMAGE_ID", image.get("id")),
        ("RIFEBENCH_IMAGE_DIGEST", image.get("digest")),
        *sorted(env.items()),
    ]:
        if value:
            cmd += ["-e", f"{key}={value}"]
    cmd += shlex.split(os.environ.get("DOCKER_ARGS", ""))
    return [*cmd, image["name"], "./run_model.sh"]


def container_sysinfo(image: Mapping[str, Any]) -> dict[str, Any]:
    """The machine as a row sees it: collected inside the image."""
    platform = os.environ.get("PLATFORM", "auto").lower()
    cmd = [
        "docker",
        "run",
        "--rm",
        *device_flags(platform),
        "-e",
        f"RIFEBENCH_IMAGE={image['name']}",
        "-e",
        f"RIFEBENCH_IMAGE_DIGEST={image.get('digest') or ''}",
        image["name"],
        ".venv/bin/python",
        "-m",
        "rifebench.measure.sysinfo",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    try:
        info: dict[str, Any] = json.loads(proc.stdout) | {"image": dict(image)}
        return info
    except ValueError:
        host = sysinfo.collect()
        host["note"] = f"collected on the host: the image's own description failed (exit {proc.returncode})"
        return host | {"image": dict(image)}
