"""The ONNX cache on a tiny graph (a 1x1 convolution, exported in about a second):
no planted symlink is followed or truncated, an entry that does not match the
sha256 in its key is exported again, a read-only weights folder gives way to the
user's cache folder, and the stream reports the cache's and the parity gate's
refusals as one line, without a traceback."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import types
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from rifebench.models import export as onnx_export
from rifebench.models import onnx_cache

SPEC = types.SimpleNamespace(name="tiny", arbitrary_timestep=False)
KEY = onnx_export.ExportKey("tiny", "0" * 64, 8, 8, 1, "fp32", 1.0, onnx_export.OPSET, "test")
OTHER = onnx_export.ExportKey("tiny", "0" * 64, 8, 16, 1, "fp32", 1.0, onnx_export.OPSET, "test")
VICTIM = b"not yours to truncate\n"
exports = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript")),
    reason="the ONNX exporter (onnx, onnxscript) is not installed (./setup.sh --dev installs it)",
)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(6, 3, 1)

    def forward(self, img0, img1, timestep=None, scale=1.0):
        return self.conv(torch.cat((img0, img1), 1))


@pytest.fixture(scope="module")
def entries(tmp_path_factory):
    """A folder holding good entries for KEY and OTHER, exported once for the module."""
    folder = tmp_path_factory.mktemp("entries") / "onnx-cache"
    for key in (KEY, OTHER):
        onnx_export.cached_export(Tiny().eval(), SPEC, key, [folder])
    return folder


def copy_entries(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("rife-*"):
        shutil.copy(f, dst / f.name)
    return dst


def no_export(monkeypatch):
    def refuse(*args):
        raise AssertionError("exported, where the cache held a valid entry")

    monkeypatch.setattr(onnx_export, "graph_bytes", refuse)


@contextlib.contextmanager
def read_only(*folders: Path):
    """Folders this process cannot write: mode 0555, or for root (whom modes do
    not stop) the immutable attribute; skips where neither holds."""
    root = os.geteuid() == 0
    done = []
    try:
        for folder in folders:
            if root:
                if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", folder]).returncode != 0:
                    pytest.skip("running as root without chattr +i: no folder can be made read-only here")
            else:
                folder.chmod(0o555)
            done.append(folder)
            if onnx_cache.unwritable(folder) is None:
                pytest.skip(f"{folder} stays writable here")
        yield
    finally:
        for folder in done:
            if root:
                subprocess.run(["chattr", "-i", folder], check=True)
            else:
                folder.chmod(0o755)


def victim(tmp_path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_bytes(VICTIM)
    return path


def test_a_symlink_at_the_lock_is_refused_and_its_target_kept(tmp_path):
    folder, target = tmp_path / "onnx-cache", victim(tmp_path)
    folder.mkdir()
    (folder / ".lock").symlink_to(target)
    with pytest.raises(onnx_cache.CacheError) as info:
        onnx_export.cached_export(Tiny().eval(), SPEC, KEY, [folder])
    message = str(info.value)
    assert "\n" not in message and f"{str(folder / '.lock')!r} is a symlink" in message
    assert target.read_bytes() == VICTIM and not (folder / KEY.file_name()).exists()


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_fifo_or_a_folder_at_the_lock_is_refused_in_one_line(tmp_path, kind):
    lock = tmp_path / ".lock"
    os.mkfifo(lock) if kind == "fifo" else lock.mkdir()
    with pytest.raises(onnx_cache.CacheError) as info, onnx_cache.locked(tmp_path):
        pass
    assert "\n" not in str(info.value) and str(lock) in str(info.value)


def test_the_lock_is_never_truncated(tmp_path):
    (tmp_path / ".lock").write_bytes(b"12345\n")
    with onnx_cache.locked(tmp_path):
        pass
    assert (tmp_path / ".lock").read_bytes() == b"12345\n"


@pytest.mark.slow  # over 2 s on 2 cores: kept out of the fast tier
@exports
def test_no_cache_file_is_written_through_a_planted_symlink(tmp_path):
    """Links at the graph's name, its key file's name and the temporary name the
    exporter once used: all left pointing at untouched targets, replaced by files."""
    folder = tmp_path / "onnx-cache"
    folder.mkdir()
    graph = folder / KEY.file_name()
    planted = {
        graph: victim(tmp_path),
        onnx_cache.key_path(graph): tmp_path / "victim-key.txt",
        folder / f".{graph.name}.{os.getpid()}.tmp": tmp_path / "victim-tmp.txt",
    }
    for link, target in planted.items():
        target.write_bytes(VICTIM)
        link.symlink_to(target)
    path, info = onnx_export.cached_export(Tiny().eval(), SPEC, KEY, [folder])
    assert all(target.read_bytes() == VICTIM for target in planted.values())
    assert not path.is_symlink() and not onnx_cache.key_path(path).is_symlink() and not info["cached"]
    assert onnx_cache.entry_problem(path, info["key"]) is None


@exports
def test_the_key_file_holds_the_graphs_sha256_and_a_valid_entry_is_reused(entries, tmp_path, monkeypatch):
    folder = copy_entries(entries, tmp_path / "onnx-cache")
    meta = json.loads(onnx_cache.key_path(folder / KEY.file_name()).read_text())
    assert meta["size_bytes"] == (folder / KEY.file_name()).stat().st_size and len(meta["sha256"]) == 64
    no_export(monkeypatch)
    path, info = onnx_export.cached_export(Tiny().eval(), SPEC, KEY, [folder])
    assert info["cached"] and info["export_s"] is None and path == folder / KEY.file_name()


@exports
@pytest.mark.parametrize(
    "damage,why",
    [
        ("truncate", "does not match the sha256 in its key file"),
        ("other size", "does not match the sha256 in its key file"),
        ("old key file", "holds no sha256"),
        ("no key file", "has no key file"),
    ],
)
def test_a_corrupt_entry_is_exported_again_with_one_line(entries, tmp_path, capsys, damage, why):
    folder = copy_entries(entries, tmp_path / "onnx-cache")
    graph = folder / KEY.file_name()
    good = graph.read_bytes()
    if damage == "truncate":
        graph.write_bytes(good[: len(good) // 2])
    elif damage == "other size":
        shutil.copy(folder / OTHER.file_name(), graph)
    elif damage == "old key file":
        key_file = onnx_cache.key_path(graph)
        key_file.write_text(json.dumps({k: v for k, v in json.loads(key_file.read_text()).items() if k != "sha256"}))
    else:
        onnx_cache.key_path(graph).unlink()
    path, info = onnx_export.cached_export(Tiny().eval(), SPEC, KEY, [folder])
    assert not info["cached"] and path.read_bytes() == good
    assert onnx_cache.entry_problem(path, info["key"]) is None
    lines = [line for line in capsys.readouterr().out.splitlines() if "ONNX cache" in line]
    assert len(lines) == 1 and str(graph) in lines[0] and why in lines[0] and "exporting it again" in lines[0]


@exports
def test_a_read_only_weights_folder_falls_back_to_the_user_cache(tmp_path, monkeypatch, capsys):
    weights = tmp_path / "model" / "flownet.pkl"
    weights.parent.mkdir()
    weights.write_bytes(b"w")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    folders = onnx_export.cache_folders(str(weights))
    assert folders == [weights.parent / "onnx-cache", tmp_path / "xdg" / "rifebench" / "onnx-cache"]
    with read_only(weights.parent):
        path, info = onnx_export.cached_export(Tiny().eval(), SPEC, KEY, folders)
        assert path.parent == folders[1] and not info["cached"] and not info["beside_weights"]
        assert str(weights.parent / "onnx-cache") in info["fallback_reason"]
        assert "not writable" in info["fallback_reason"]
        no_export(monkeypatch)
        again, second = onnx_export.cached_export(Tiny().eval(), SPEC, KEY, folders)
    assert again == path and second["cached"] and second["fallback_reason"] == info["fallback_reason"]
    lines = [line for line in capsys.readouterr().out.splitlines() if "ONNX cache" in line]
    assert len(lines) == 1 and f"exporting into {folders[1]}" in lines[0]


@exports
def test_a_read_only_weights_folder_with_a_valid_entry_uses_it(entries, tmp_path, monkeypatch):
    weights = tmp_path / "model" / "flownet.pkl"
    folder = copy_entries(entries, weights.parent / "onnx-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    no_export(monkeypatch)
    with read_only(folder, weights.parent):
        path, info = onnx_export.cached_export(Tiny().eval(), SPEC, KEY, onnx_export.cache_folders(str(weights)))
    assert path.parent == folder and info["cached"] and info["beside_weights"] and info["fallback_reason"] is None
    assert not (tmp_path / "xdg").exists()


def test_no_writable_folder_at_all_is_one_line_naming_both(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    with read_only(a, b), pytest.raises(onnx_cache.CacheError) as info:
        onnx_export.cached_export(Tiny().eval(), SPEC, KEY, [a / "onnx-cache", b / "onnx-cache"])
    message = str(info.value)
    assert "\n" not in message and str(a / "onnx-cache") in message and str(b / "onnx-cache") in message
    assert "$XDG_CACHE_HOME" in message


def test_a_symlinked_cache_folder_or_trt_folder_is_refused(tmp_path):
    real = tmp_path / "elsewhere"
    real.mkdir()
    (tmp_path / "onnx-cache").symlink_to(real)
    with pytest.raises(onnx_cache.CacheError, match=r"onnx-cache' is a symlink"):
        onnx_export.cached_export(Tiny().eval(), SPEC, KEY, [tmp_path / "onnx-cache"])
    (real / "trt").symlink_to(tmp_path)
    with pytest.raises(onnx_cache.CacheError, match=r"trt' is a symlink"):
        onnx_cache.subfolder([real], "trt")
    assert list(real.iterdir()) == [real / "trt"]


def test_the_tensorrt_engine_cache_goes_where_it_can_be_written(tmp_path):
    graphs, user = tmp_path / "model" / "onnx-cache", tmp_path / "xdg" / "onnx-cache"
    graphs.mkdir(parents=True)
    assert onnx_cache.subfolder([graphs, graphs, user], "trt") == graphs / "trt"
    (graphs / "trt").rmdir()
    with read_only(graphs):  # a read-only folder of ready graphs: the engines go to the user's cache
        assert onnx_cache.subfolder([graphs, graphs, user], "trt") == user / "trt"
    assert (user / "trt").is_dir() and not (graphs / "trt").exists()


class Conn:
    def __init__(self):
        self.sent = []

    def send(self, message):
        self.sent.append(message)


@pytest.mark.parametrize("designed", [True, False])
def test_a_designed_failure_reaches_the_launcher_without_a_traceback(designed):
    from rifebench.run.worker import StreamChannel
    from rifebench.runtimes.net import ParityFailed

    channel = StreamChannel(Conn(), 0)  # only its send() is used
    try:
        if designed:
            raise ParityFailed("parity gate: output is 20.00 dB", {"passed": False, "psnr_db": 20.0})
        raise RuntimeError("a bug")
    except Exception as exc:  # noqa: BLE001 - what the stream's entry point does
        channel.error(exc)
    kind, payload = channel.conn.sent[-1]
    assert kind == "error"
    if designed:
        assert payload["traceback"] == "" and payload["details"] == {
            "runtime_parity": {"passed": False, "psnr_db": 20.0}
        }
        assert payload["error"] == "ParityFailed: parity gate: output is 20.00 dB"
    else:
        assert payload["traceback"].startswith("Traceback")  # a bug keeps its traceback
