"""What the machine looks like to this process: the CPU model and features,
usable CPUs, cores, packages, NUMA nodes, the cgroup CPU quota, whether this is
a container, and the NUMA node of a GPU. The one reader of these files: the
pinning plan uses `read()`, the system inventory (sysinfo.py) the rest.

Everything is read from /proc and /sys into plain data, so the pinning plan
(pinning.py) is a pure function that tests feed synthetic machines. A missing
or unreadable file means "unknown", never an error: containers and virtual
machines hide a lot of /sys.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SYS_CPU = Path("/sys/devices/system/cpu")
SYS_NODE = Path("/sys/devices/system/node")
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
PROC_CPUINFO = Path("/proc/cpuinfo")
PROC_MEMINFO = Path("/proc/meminfo")
PROC_VMSTAT = Path("/proc/vmstat")
CONTAINER_MARKERS = (Path("/.dockerenv"), Path("/run/.containerenv"))  # docker, podman
# CPU features that decide which precisions are fast on a CPU.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


@dataclass(frozen=True)
class Topology:
    cpus: tuple[int, ...]  # usable logical CPUs: the affinity mask (which already honours the cpuset)
    core_of: dict[int, tuple[int, int]] = field(default_factory=dict)  # cpu -> (package, core id); missing: own core
    node_of: dict[int, int] = field(default_factory=dict)  # cpu -> NUMA node; missing: node 0
    mem_nodes: frozenset[int] = frozenset({0})  # nodes that have memory (membind only to these)
    quota_cpus: float | None = None  # cgroup CPU quota in CPUs (cpu.max / cfs quota); None: no limit

    def node(self, cpu: int) -> int:
        return self.node_of.get(cpu, 0)

    def core(self, cpu: int) -> tuple[int | str, ...]:
        return self.core_of.get(cpu, (self.node(cpu), "cpu", cpu))


def parse_cpulist(text: str) -> list[int]:
    """'0-3,8,10-11' -> [0, 1, 2, 3, 8, 10, 11] (the kernel's list format)."""
    out: list[int] = []
    for raw in text.strip().split(","):
        part = raw.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return sorted(set(out))


def format_cpulist(cpus: Iterable[int]) -> str:
    """[0, 1, 2, 3, 8] -> '0-3,8' (what numactl and the kernel accept)."""
    parts: list[str] = []
    run: list[int] = []
    for c in sorted(set(cpus)):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def read_cores(cpus: Iterable[int]) -> dict[int, tuple[int, int]]:
    out = {}
    for c in cpus:
        pkg = _read(SYS_CPU / f"cpu{c}" / "topology" / "physical_package_id")
        core = _read(SYS_CPU / f"cpu{c}" / "topology" / "core_id")
        if pkg is not None and core is not None:
            out[c] = (int(pkg), int(core))
    return out


def online_cpus() -> list[int]:
    """Every CPU the kernel runs, usable by this process or not."""
    text = _read(SYS_CPU / "online")
    if text:
        return parse_cpulist(text)
    return sorted(int(d.name[3:]) for d in SYS_CPU.glob("cpu[0-9]*"))


def sockets() -> int | None:
    return len({pkg for pkg, _ in read_cores(online_cpus()).values()}) or None


def read_numa() -> list[dict[str, Any]]:
    """One entry per NUMA node: its CPUs and its memory in bytes (None: not said)."""
    nodes = []
    for d in sorted(SYS_NODE.glob("node[0-9]*"), key=lambda d: int(d.name[4:])):
        mem = None
        for line in (_read(d / "meminfo") or "").splitlines():
            if "MemTotal:" in line:
                mem = int(line.split("MemTotal:")[1].split()[0]) * 1024  # kB
        nodes.append({"node": int(d.name[4:]), "cpus": parse_cpulist(_read(d / "cpulist") or ""), "memory_bytes": mem})
    return nodes


def read_nodes() -> tuple[dict[int, int], frozenset[int]]:
    nodes = read_numa()
    node_of = {c: n["node"] for n in nodes for c in n["cpus"]}
    mem = {n["node"] for n in nodes if n["memory_bytes"]}
    has_memory = _read(SYS_NODE / "has_memory")
    if has_memory is not None:
        mem = set(parse_cpulist(has_memory))
    return node_of, frozenset(mem or {0})


def _own_cgroup_dirs(controller: str = "cpu") -> list[Path]:
    """cgroup folders that limit this process's CPU time (or memory), innermost first (v2 and v1)."""
    dirs = []
    text = _read(PROC_CGROUP) or ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "":  # v2 unified hierarchy
            base = CGROUP_ROOT if (CGROUP_ROOT / "cgroup.controllers").exists() else CGROUP_ROOT / "unified"
        elif controller in controllers.split(","):
            base = CGROUP_ROOT / controllers
            if not base.is_dir():
                base = CGROUP_ROOT / controller
        else:
            continue
        p = base / rel.lstrip("/")
        # A limit set on any ancestor applies too; in a container the path is
        # often relative to a namespace root, so the root itself is checked last.
        while True:
            dirs.append(p)
            if p == base:
                break
            p = p.parent
    return dirs


def read_quota() -> float | None:
    """The tightest CPU quota over this process's cgroups, in CPUs."""
    best = None
    for d in _own_cgroup_dirs():
        quota: float | None = None
        cpu_max = _read(d / "cpu.max")  # v2: "max 100000" or "150000 100000"
        if cpu_max:
            q, _, period = cpu_max.partition(" ")
            if q != "max" and period:
                quota = int(q) / int(period)
        else:
            cfs_q, cfs_period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
            if cfs_q and cfs_period and int(cfs_q) > 0:
                quota = int(cfs_q) / int(cfs_period)
        if quota is not None and (best is None or quota < best):
            best = quota
    return best


def read_meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes ('MemAvailable', 'MemTotal', ...); {} when unreadable."""
    out = {}
    for line in (_read(PROC_MEMINFO) or "").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return out


def read_memory_limit() -> tuple[int, str] | None:
    """The tightest cgroup memory limit over this process's cgroups and where it
    was read (v2 memory.max, v1 memory.limit_in_bytes); None: no limit."""
    best = None
    for d in _own_cgroup_dirs("memory"):
        for name in ("memory.max", "memory.limit_in_bytes"):
            text = _read(d / name)
            # v1 writes "no limit" as a huge page-rounded number: anything past 2^60 is none.
            if text and text.isdigit() and int(text) < 1 << 60 and (best is None or int(text) < best[0]):
                best = (int(text), str(d / name))
    return best


def read_oom_kills() -> tuple[int, str] | None:
    """How many processes the OOM killer has killed so far, and where that was read:
    this process's cgroup (v2 memory.events, v1 memory.oom_control, both counting
    the cgroups below), else the whole machine (/proc/vmstat, Linux 4.13+). The
    kernel log says it too, but it is often not readable; these counters are."""
    for d in _own_cgroup_dirs("memory"):
        for name in ("memory.events", "memory.oom_control"):
            for line in (_read(d / name) or "").splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit():
                    return int(value), str(d / name)
    for line in (_read(PROC_VMSTAT) or "").splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value), str(PROC_VMSTAT)
    return None


def read(cpus: Iterable[int] | None = None) -> Topology:
    usable = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
    node_of, mem = read_nodes()
    return Topology(tuple(usable), read_cores(usable), node_of, mem, read_quota())


def cpuinfo_field(name: str, text: str | None = None) -> str | None:
    """The first value of a /proc/cpuinfo field ('model name', 'flags')."""
    text = _read(PROC_CPUINFO) if text is None else text
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == name:
            return value.strip()
    return None


def cpu_model(cpuinfo: str | None = None) -> str:
    import platform

    return cpuinfo_field("model name", cpuinfo) or platform.processor() or platform.machine()


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """Those of CPU_FLAGS this CPU has, in CPU_FLAGS order."""
    have = set((cpuinfo_field("flags", cpuinfo) or "").split())
    return [f for f in CPU_FLAGS if f in have]


def in_container() -> bool:
    return any(p.exists() for p in CONTAINER_MARKERS)


def quota_share(quota_cpus: float | None, n_cpus: int) -> int:
    """How many CPUs' worth of time the quota allows (at least one)."""
    if quota_cpus is None:
        return n_cpus
    return max(1, min(n_cpus, math.floor(quota_cpus + 1e-9)))


def pci_numa_node(bus_id: str | None) -> int | None:
    """NUMA node of a PCI device ('0000:3b:00.0'), None when the system does not say."""
    if not bus_id:
        return None
    text = _read(Path("/sys/bus/pci/devices") / normalise_bus_id(bus_id) / "numa_node")
    if text is None or not text.lstrip("-").isdigit() or int(text) < 0:
        return None
    return int(text)


def normalise_bus_id(bus_id: str) -> str:
    """NVML writes '00000000:3B:00.0', sysfs '0000:3b:00.0'."""
    parts = bus_id.strip().lower().split(":")
    if len(parts) == 3:
        return f"{int(parts[0], 16):04x}:{parts[1]}:{parts[2]}"
    if len(parts) == 2:
        return "0000:" + ":".join(parts)
    return bus_id.strip().lower()


def gpu_identity(platform: str, index: int) -> dict[str, Any]:
    """PCI bus id and NUMA node of a GPU by torch index, as far as torch tells."""
    info: dict[str, Any] = {"index": index, "pci_bus_id": None, "numa_node": None}
    if platform not in ("cuda", "xpu"):
        return info
    try:
        import torch

        props = getattr(torch, platform).get_device_properties(index)
        info["name"] = getattr(props, "name", None)
        bus, dev, dom = (getattr(props, a, None) for a in ("pci_bus_id", "pci_device_id", "pci_domain_id"))
        if isinstance(bus, int) and isinstance(dev, int):
            info["pci_bus_id"] = f"{dom or 0:04x}:{bus:02x}:{dev:02x}.0"
    except Exception as exc:  # noqa: BLE001 - identity is a nicety; the run goes on without it
        info["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    info["numa_node"] = pci_numa_node(info["pci_bus_id"])
    return info
