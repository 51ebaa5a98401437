"""A real one-node Slurm cluster on localhost for the fleet tests.

The session fixture `slurm` installs slurm-wlm and munge when they are missing
(root and apt-get: CI has both), starts munged, slurmctld and slurmd with every
file in a temporary folder (slurm_cluster.sh), points SLURM_CONF at it, waits
until the node is idle and stops the daemons at the end, failed tests included.
Without root, or without Slurm and apt-get, the tests that need it skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("slurm_cluster.sh")


def _free_port_pair() -> int:
    """A port p with p + 1 free as well (slurmctld, slurmd): another cluster on
    this host (a developer's own) keeps its ports."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


def _why_not() -> str | None:
    have = all(shutil.which(t) for t in ("slurmctld", "slurmd", "munged", "sbatch"))
    if os.geteuid() != 0:
        return "the local Slurm cluster needs root (slurmd runs jobs as their users); run the tests as root, as CI does"
    if not have and not shutil.which("apt-get"):
        return "slurm-wlm/munge are not installed and there is no apt-get to install them"
    return None


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """The cluster's SLURM_CONF; the environment points at it for the session."""
    why = _why_not()
    if why:
        pytest.skip(why)
    state = tmp_path_factory.mktemp("slurm")
    env = dict(os.environ, SLURM_TEST_PORT=str(_free_port_pair()))
    try:
        proc = subprocess.run(
            ["bash", str(SCRIPT), "start", str(state)], capture_output=True, text=True, env=env, timeout=1500
        )
        if proc.returncode != 0:
            pytest.fail(f"local Slurm did not start: {proc.stderr.strip()[-2000:]}")
        conf = proc.stdout.strip().splitlines()[-1]
        saved = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = conf
        yield conf
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(state)], capture_output=True, timeout=60)
        if "saved" in locals():
            if saved is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = saved
