"""Checkpoint loading: only weights_only unpickling, exact key/shape checks, and a
one-line WeightsError for every kind of bad file."""

from __future__ import annotations

import builtins
import os
import pickle

import pytest
import torch

from conftest import random_state
from rifebench.fsutil import sha256_file
from rifebench.models import zoo
from rifebench.models.nets.ifnet_v4 import build_v40, build_v46
from rifebench.models.weights import WeightsError, check_and_load, load_model, load_state_dict


@pytest.fixture(scope="module")
def state46():
    return random_state(build_v46, seed=7)


@pytest.fixture
def saved46(tmp_path, state46):
    path = tmp_path / "flownet.pkl"
    torch.save(state46, path)
    return path


def load_error(path) -> str:
    with pytest.raises(WeightsError) as info:
        load_state_dict(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_round_trip(saved46, state46):
    net = load_model(zoo.get("4.6"), saved46)
    assert not net.training
    for key, value in net.state_dict().items():
        assert torch.equal(value, state46[key]), key


def test_module_prefix_is_stripped(tmp_path, state46):
    path = tmp_path / "dp.pkl"
    torch.save({f"module.{k}": v for k, v in state46.items()}, path)
    loaded = load_state_dict(path)
    assert set(loaded) == set(state46)
    load_model(zoo.get("4.6"), path)


def test_wrong_model_names_model_and_keys(saved46):
    with pytest.raises(WeightsError) as info:
        load_model(zoo.get("4.0"), saved46)
    message = str(info.value)
    print(message)
    assert "model 4.0" in message and str(saved46) in message
    assert "missing keys (block0.conv0.0.1.weight" in message  # 4.0's PReLU slopes
    assert "unexpected keys (block0.convblock.0.beta" in message  # 4.6's ResConv
    assert message.count(",") < 40, "at most 5 keys are listed per kind"


def test_wrong_shape_is_reported(tmp_path, state46):
    state = dict(state46)
    state["block3.lastconv.0.bias"] = torch.zeros(7)
    path = tmp_path / "shape.pkl"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"1 keys with a wrong shape.*block3\.lastconv\.0\.bias \(7\) != \(24\)"):
        load_model(zoo.get("4.6"), path)


def test_training_only_keys_ignored_only_for_listed_prefixes():
    spec = zoo.get("4.0")
    state = random_state(build_v40, seed=1)
    extra = {
        "block_tea.conv0.0.0.weight": torch.zeros(1),
        "contextnet.conv1.conv1.0.weight": torch.zeros(2),
        "unet.conv.bias": torch.zeros(3),
    }
    check_and_load(build_v40(), {**state, **extra}, spec, "x.pkl")
    for stray in ("foo.bar", "block_teacher.weight", "block4.lastconv.bias"):
        with pytest.raises(WeightsError, match=rf"1 unexpected keys \({stray}\)"):
            check_and_load(build_v40(), {**state, stray: torch.zeros(1)}, spec, "x.pkl")
    # contextnet is inference code for the paper model: never skipped there.
    paper = zoo.get("paper")
    net = paper.build()()
    partial = {k: v for k, v in net.state_dict().items() if not k.startswith("contextnet.conv4")}
    with pytest.raises(WeightsError, match=r"model paper: 6 missing keys \(contextnet\.conv4"):
        check_and_load(net, partial, paper, "p.pkl")


def test_real_checkpoint_layout(weights_40):
    state = load_state_dict(weights_40)
    assert len(state) == 222 and not any(k.startswith("module.") for k in state)
    spec = zoo.get("4.0")
    assert sum(k.split(".")[0] in spec.training_only for k in state) == 94
    assert sha256_file(weights_40) == spec.sha256


def test_missing_empty_truncated_and_random_files(tmp_path, saved46):
    assert "does not exist" in load_error(tmp_path / "nope.pkl")
    assert "does not exist" in load_error(tmp_path)  # a folder
    (tmp_path / "empty.pkl").write_bytes(b"")
    assert "is empty" in load_error(tmp_path / "empty.pkl")
    data = saved46.read_bytes()
    (tmp_path / "half.pkl").write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in load_error(tmp_path / "half.pkl")
    (tmp_path / "noise.pkl").write_bytes(os.urandom(4096))
    load_error(tmp_path / "noise.pkl")
    torch.save([torch.zeros(1)], tmp_path / "list.pkl")
    assert "does not hold a state dict" in load_error(tmp_path / "list.pkl")
    torch.save({"a": 1}, tmp_path / "int.pkl")
    assert "not a tensor" in load_error(tmp_path / "int.pkl")


class RunsShell:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class OpensFile:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def test_payload_would_really_run(tmp_path):
    """The payloads below are live: a plain unpickle creates the marker."""
    marker = tmp_path / "proof"
    pickle.loads(pickle.dumps(OpensFile(marker))).close()
    assert marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("payload", [RunsShell, OpensFile])
@pytest.mark.parametrize("writer", ["pickle-2", "pickle-4", "torch.save"])
def test_malicious_pickle_is_refused_and_never_run(tmp_path, payload, writer):
    marker = tmp_path / "PWNED"
    obj = {"block0.conv0.0.0.weight": torch.zeros(1), "evil": payload(marker)}
    path = tmp_path / "evil.pkl"
    if writer == "torch.save":
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=int(writer[-1])))
    message = load_error(path)
    print(message)
    assert "refused" in message
    assert not marker.exists(), "the pickle's payload was executed"
