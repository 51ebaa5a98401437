"""What each pod of `fleet k8s` requests: requests equal to limits for CPU,
memory and the GPUs, so every pod is of the Guaranteed QoS class (never
throttled below its request to feed a neighbour, evicted last, and given whole
CPUs by a static CPU manager) and a measurement is not a BestEffort pod's.

One pod template serves every row, so it asks for what the largest row needs:
- CPUs: one per stream (each stream is pinned to its own CPUs) and one for the
  launcher and the task wrapper, so max(STREAMS) + 1. A CPU row measures the
  CPUs it is given: `--cpus` gives more (e.g. a node's allocatable CPUs);
- memory: the run's own estimate (run/memory.py, host memory; it errs high)
  with MEMORY_HEADROOM, plus LAUNCHER_BYTES for the launcher, the wrapper and
  /dev/shm (a memory-backed emptyDir counts against the pod's limit); `--memory`
  sets it;
- GPUs: `--gpus` per pod of nvidia.com/gpu or gpu.intel.com/i915.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from typing import Any

from rifebench.errors import UsageError
from rifebench.fleet.records import FleetPlan

GPU_RESOURCE = {"cuda": "nvidia.com/gpu", "xpu": "gpu.intel.com/i915"}
MIB = 1 << 20
MEMORY_HEADROOM = 1.25
LAUNCHER_BYTES = 512 * MIB
MEMORY_STEP = 256 * MIB  # requests rounded up to this
MEMORY = r"[1-9][0-9]{0,6}(Mi|Gi|Ti)"
MAX_CPUS = 4096


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cpus",
        type=int,
        help="CPUs per pod, requested and limited alike (default: the largest row's STREAMS + 1)",
    )
    p.add_argument(
        "--memory",
        metavar="QUANTITY",
        help="memory per pod, requested and limited alike, e.g. 16Gi (default: the largest row's estimate, +25%%)",
    )


@dataclass(frozen=True)
class PodSize:
    cpus: int
    memory: str  # a Kubernetes quantity
    why: str  # what the figures came from, for the console

    def resources(self, platform: str, gpus: int) -> dict[str, Any]:
        """requests == limits: the Guaranteed QoS class."""
        amounts: dict[str, Any] = {"cpu": str(self.cpus), "memory": self.memory}
        if platform in GPU_RESOURCE:
            amounts[GPU_RESOURCE[platform]] = gpus
        return {"requests": dict(amounts), "limits": dict(amounts)}


def pod_size(args: argparse.Namespace, plan: FleetPlan) -> PodSize:
    """The pods' CPUs and memory: the options', else the largest row's needs."""
    if args.cpus is not None and not 1 <= args.cpus <= MAX_CPUS:
        raise UsageError(f"--cpus: invalid value {args.cpus} (accepted: 1 to {MAX_CPUS})")
    if args.memory is not None and not re.fullmatch(MEMORY, args.memory):
        raise UsageError(
            f"--memory: invalid value {args.memory!r} (accepted: a Kubernetes quantity in Mi, Gi or Ti, e.g. 16Gi)"
        )
    streams, needed = row_needs(plan)
    cpus = args.cpus if args.cpus is not None else streams + 1
    if args.memory is not None:
        memory = args.memory
    else:
        mib = math.ceil((needed * MEMORY_HEADROOM + LAUNCHER_BYTES) / MEMORY_STEP) * (MEMORY_STEP // MIB)
        memory = f"{mib}Mi"
    cpus_from = "--cpus" if args.cpus is not None else f"the largest row has {streams} stream(s), + 1"
    memory_from = (
        "--memory" if args.memory is not None else f"the largest row needs about {needed / 1e9:.1f} GB, + 25% + 512 MiB"
    )
    why = f"{cpus_from}; {memory_from}"
    return PodSize(cpus, memory, why)


def row_needs(plan: FleetPlan) -> tuple[int, int]:
    """(the most streams of a row, the most memory a row needs in bytes): each
    row as the run will resolve it, its memory as the run's admission estimates it."""
    from rifebench.config import resolve
    from rifebench.run.memory import estimate

    streams, needed = 1, 0
    for env in {tuple(sorted(r.env.items())) for r in plan.rows}:  # alike rows: once
        cfg = resolve([], env=dict(env))
        streams = max(streams, cfg.streams)
        needed = max(needed, estimate(cfg).total_bytes)
    return streams, needed
