"""benchmark.sh with IMAGE: the container engine (docker or podman) and the image
checked before anything runs, and the documented `run` line of a row and of the
machine's description."""

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
ENGINES = ("docker", "podman")


def choose_engine(asked: str | None) -> str:
    """CONTAINER_ENGINE when given, else the first of docker, podman on PATH.
    Returns the engine's name; its path is looked up again when it runs."""
    if asked:
        name = asked.strip().lower()
        if name not in ENGINES:
            raise UsageError(
                f"--container-engine/CONTAINER_ENGINE: {asked!r} is not a container engine "
                f"(accepted: {', '.join(ENGINES)})"
            )
        if not shutil.which(name):
            raise UsageError(
                f"--container-engine/CONTAINER_ENGINE: {name!r} is not on PATH (accepted: an engine installed here: "
                f"{', '.join(e for e in ENGINES if shutil.which(e)) or 'none found'})"
            )
        return name
    for name in ENGINES:
        if shutil.which(name):
            return name
    raise UsageError(
        "--image/IMAGE: given but neither docker nor podman is on PATH "
        "(accepted: unset IMAGE for bare metal, or install docker or podman)"
    )


def _inspect_document(stdout: str) -> dict[str, Any] | None:
    """docker prints one object for `{{json .}}`; podman prints a list of one."""
    try:
        info = json.loads(stdout)
    except ValueError:
        return None
    if isinstance(info, list) and len(info) == 1:
        info = info[0]
    return info if isinstance(info, dict) else None


def inspect_image(name: str, engine: str) -> dict[str, Any]:
    """The image's id, digest and labels, from the engine's own store."""
    proc = subprocess.run([engine, "image", "inspect", "--format", "{{json .}}", name], capture_output=True, text=True)
    info = _inspect_document(proc.stdout) if proc.returncode == 0 else None
    if info is None:
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(
            f"--image/IMAGE: {name!r} is not a local {engine} image ({why}) "
            f"(accepted: an image built or pulled on this host with {engine}; see docker/README.md)"
        )
    digests = info.get("RepoDigests") or []
    return {
        "name": name,
        "engine": engine,
        "id": info.get("Id"),
        "digest": digests[0] if digests else None,
        "labels": (info.get("Config") or {}).get("Labels") or {},
    }


def device_flags(platform: str, engine: str) -> list[str]:
    """The GPU for the container: NVIDIA through docker's `--gpus all` or podman's
    CDI device; Intel through /dev/dri plus its render groups (a non-root user in
    the container needs the group of the render nodes)."""
    dri = sorted(glob.glob("/dev/dri/renderD*"))
    if platform == "cuda" or (platform == "auto" and not dri and shutil.which("nvidia-smi")):
        return ["--device", "nvidia.com/gpu=all"] if engine == "podman" else ["--gpus", "all"]
    if platform == "xpu" or (platform == "auto" and dri):
        flags = ["--device", "/dev/dri"]
        for gid in sorted({os.stat(p).st_gid for p in dri}):
            flags += ["--group-add", str(gid)]
        return flags
    return []


def run_command(image: Mapping[str, Any], env: Mapping[str, str], test_dir: Path, platform: str) -> list[str]:
    """The documented line (--ipc=host for the streams' shared memory, SYS_NICE
    for numactl), run as the calling user so the results belong to them."""
    engine = str(image.get("engine") or "docker")
    cmd = [
        engine,
        "run",
        "--rm",
        "--ipc=host",
        "--cap-add",
        "SYS_NICE",
        *device_flags(platform, engine),
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
    engine = str(image.get("engine") or "docker")
    cmd = [
        engine,
        "run",
        "--rm",
        *device_flags(platform, engine),
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
