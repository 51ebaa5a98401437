"""Safe loading and verification of RIFE checkpoints.

Checkpoints are only ever read with torch.load(weights_only=True): a full unpickle
runs whatever code the file names, and a benchmark must be able to load a file it
did not produce. Every failure becomes a WeightsError with a one-line message that
names the file and what is wrong with it.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch
import torch.nn as nn

from rifebench.errors import RifebenchError
from rifebench.fsutil import atomic_write_bytes
from rifebench.models import zoo
from rifebench.models.zoo import ModelSpec

MAX_LISTED_KEYS = 5


class WeightsError(RifebenchError):
    """A weights file is missing, unreadable, unsafe, or does not fit the model."""


def _first_line(exc: BaseException) -> str:
    # torch's messages run to several sentences of advice; the first one says what broke.
    text = str(exc).strip()
    line = text.splitlines()[0].split(". ")[0].rstrip(".") if text else ""
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _why_unreadable(exc: BaseException) -> str:
    if isinstance(exc, pickle.UnpicklingError) and "weights only load failed" in str(exc).lower():
        # The file names a global outside the tensor allow-list or an opcode the safe
        # unpickler does not run: it would execute code or build arbitrary objects.
        # Nothing of it was executed.
        detail = re.search(r"(unsupported (?:global|operand)[^\n]*)", str(exc), re.IGNORECASE)
        why = f": {detail.group(1).strip()}" if detail else ""
        return f"refused by the safe (weights_only) unpickler, it is not a plain tensor state dict{why}"
    if isinstance(exc, (EOFError, zipfile.BadZipFile)) or "failed finding central directory" in str(exc):
        return f"truncated or corrupt ({_first_line(exc)})"
    return f"not a readable PyTorch checkpoint ({_first_line(exc)})"


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint's tensors on the CPU, with any `module.` prefix stripped."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist or is not a file")
    if path.stat().st_size == 0:
        raise WeightsError(f"weights file {path} is empty")
    try:
        # The safe unpickler warns about pickle protocols before refusing a
        # file; the refusal is our one-line error, the warning is noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types here; all mean "unusable file"
        raise WeightsError(f"weights file {path} is {_why_unreadable(exc)}") from exc
    if not isinstance(obj, dict) or not obj:
        raise WeightsError(f"weights file {path} does not hold a state dict (found {type(obj).__name__})")
    state = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            raise WeightsError(
                f"weights file {path} does not hold a state dict "
                f"(entry {key!r} is a {type(value).__name__}, not a tensor)"
            )
        state[key.removeprefix("module.")] = value
    return state


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    return shown + (", ..." if len(keys) > MAX_LISTED_KEYS else "")


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(d) for d in t.shape) + ")"


def mismatch(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> list[str]:
    """Human-readable differences between two state dicts' keys and shapes."""
    missing = sorted(k for k in expected if k not in state)
    unexpected = sorted(k for k in state if k not in expected)
    wrong = sorted(k for k in expected if k in state and state[k].shape != expected[k].shape)
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({_listed(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_listed(unexpected)})")
    if wrong:
        details = [f"{k} {_shape(state[k])} != {_shape(expected[k])}" for k in wrong]
        problems.append(f"{len(wrong)} keys with a wrong shape, file vs model ({_listed(details)})")
    return problems


def check_and_load(net: nn.Module, state: dict[str, torch.Tensor], spec: ModelSpec, path) -> nn.Module:
    """Load state into net after an exact key and shape check. Only the tensors whose
    top-level name is one of spec.training_only may be left over."""
    kept = {k: v for k, v in state.items() if k.split(".", 1)[0] not in spec.training_only}
    problems = mismatch(net.state_dict(), kept)
    if problems:
        raise WeightsError(f"weights file {path} does not match model {spec.name}: " + ", ".join(problems))
    net.load_state_dict(kept, strict=True)
    return net


RANDOM_NOTE = "seeded random weights of the official shapes (seed {seed}): speed only, no quality"


def write_random_weights(spec: ModelSpec, path: str | os.PathLike, seed: int = zoo.RANDOM_SEED) -> Path:
    """Write the network's state dict after a seeded initialisation to path (atomically),
    for speed-only runs of a release whose weights are not at hand."""
    if spec.weights_file is None:
        raise WeightsError(f"model {spec.name} takes no weights, random or not")
    with torch.random.fork_rng(devices=[]):  # the caller's random stream is left as it was
        torch.manual_seed(seed)
        state = spec.build()().state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_model(spec: ModelSpec, path: str | os.PathLike | None, options: dict | None = None) -> nn.Module:
    """Build spec's network on the CPU (options: its build_options' values), load
    the checkpoint at path, set eval mode. A model without weights ignores path."""
    net = spec.build()(**(options or {}))
    if spec.weights_file is not None:
        if path is None:
            raise WeightsError(f"model {spec.name} needs a weights file; none was given")
        check_and_load(net, load_state_dict(path), spec, path)
    return net.eval()
