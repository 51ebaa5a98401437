"""Which CPUs, memory nodes and device each stream gets, and how that is applied.

`split` is pure (a Topology in, CPU slices out) so that tests can feed it any
machine. The rules, in order:
- only usable CPUs: the affinity mask (which honours the cgroup cpuset), cut
  down to the cgroup CPU quota when that is smaller;
- every stream gets the same share, in whole cores when there are at least as
  many cores as streams; CPUs that do not divide evenly stay idle (and are
  listed), so no stream is favoured;
- a stream's CPUs lie on one NUMA node whenever the share fits in a node,
  otherwise slices are contiguous and a note says which streams span nodes;
- a GPU stream is kept on the node its GPU is attached to when the system says
  which, even if that leaves other nodes idle (its host work feeds the GPU);
- more streams than CPUs: the streams share CPUs round-robin, one each, with a
  warning.
Memory is bound (numactl --membind) only to nodes that have memory.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from rifebench.errors import UsageError
from rifebench.measure.topology import Topology, format_cpulist, quota_share
from rifebench.warning_codes import warning

if TYPE_CHECKING:
    from rifebench.config import Config

Unit = list[int]  # CPUs placed together: one core's siblings, or one CPU
Warning = dict[str, Any]  # warning_codes.warning()


class PinError(UsageError):
    """PIN asks for a pinning method this machine does not allow (exit 2)."""


@dataclass
class Split:
    slices: list[list[int]]  # per stream: CPU ids
    warnings: list[Warning] = field(default_factory=list)  # level warning
    notes: list[Warning] = field(default_factory=list)  # level note
    unused: list[int] = field(default_factory=list)  # usable CPUs no stream got

    def say(self, code: str, **fields: Any) -> None:
        w = warning(code, **fields)
        (self.warnings if w["level"] == "warning" else self.notes).append(w)


def _order(topo: Topology, first_nodes: Iterable[int]) -> list[int]:
    """CPUs by node (preferred nodes first), then core, so siblings stay together."""
    rank = {n: i for i, n in enumerate(dict.fromkeys(first_nodes))}
    return sorted(topo.cpus, key=lambda c: (rank.get(topo.node(c), len(rank)), topo.node(c), topo.core(c), c))


def _group(cpus: list[int], key: Callable[[int], Hashable]) -> list[list[int]]:
    groups: dict[Hashable, list[int]] = {}
    for c in cpus:
        groups.setdefault(key(c), []).append(c)
    return list(groups.values())


def split(topo: Topology, n: int, prefer_nodes: Sequence[int | None] | None = None) -> Split:
    """CPU slices for n streams. prefer_nodes[i]: NUMA node of stream i's GPU, or None."""
    prefer: list[int | None] = list(prefer_nodes or [None] * n)
    cpus = _order(topo, [p for p in prefer if p is not None])
    out = Split([])
    if not cpus:
        raise PinError("--pin/PIN: this process may run on no CPU at all (empty affinity mask)")
    share = quota_share(topo.quota_cpus, len(cpus))
    if share < len(cpus):
        out.say("CPU_QUOTA", quota=topo.quota_cpus, cpus=len(cpus), share=share)
        out.unused, cpus = cpus[share:], cpus[:share]
    if n > len(cpus):
        out.say("STREAMS_OVERSUBSCRIBED", streams=n, cpus=len(cpus))
        out.slices = [[cpus[i % len(cpus)]] for i in range(n)]
        return out
    cores = _group(cpus, topo.core)
    units = cores if n <= len(cores) else [[c] for c in cpus]
    if units is not cores:
        out.say("SHARED_CORES", streams=n, cores=len(cores))
    placed = _place_units(topo, units, n, prefer, "cores" if units is cores else "CPUs", out)
    taken = {c for p in placed for u in p for c in u}
    left = [c for u in units for c in u if c not in taken]
    if left:
        out.say("CPUS_IDLE", cpus=format_cpulist(left))
    out.unused = sorted(out.unused + left)
    out.slices = [sorted(c for u in p for c in u) for p in placed]
    for i, (p, sl) in enumerate(zip(prefer, out.slices, strict=True)):
        if p is not None and {topo.node(c) for c in sl} != {p}:
            out.say("NUMA_GPU_MISMATCH", stream=i, gpu_node=p, cpu_nodes=sorted({topo.node(c) for c in sl}))
    return out


def _place_units(
    topo: Topology, units: list[Unit], n: int, prefer: list[int | None], what: str, out: Split
) -> list[list[Unit]]:
    """The same number of units (cores or CPUs) per stream, each stream inside one
    NUMA node when its share fits, a GPU stream on its GPU's node."""
    s = len(units) // n
    by_node: dict[int, list[Unit]] = {}
    for u in units:
        by_node.setdefault(topo.node(u[0]), []).append(u)
    wanting = {j: prefer.count(j) for j in prefer if j is not None and j in by_node}
    if wanting:
        fit = min(len(by_node[j]) // k for j, k in wanting.items())
        if 1 <= fit < s:
            out.say("NUMA_GPU_NODE", fit=fit, share=s, what=what)
            s = fit
    placed = _place(by_node, n, s, prefer)
    if placed is not None:
        return placed
    s = len(units) // n
    placed = [units[i * s : (i + 1) * s] for i in range(n)]
    spanning = [i for i, p in enumerate(placed) if len({topo.node(u[0]) for u in p}) > 1]
    if spanning:
        out.say("NUMA_SPAN", spanning=spanning, share=s, what=what, nodes=sorted(by_node), n_nodes=len(by_node))
    return placed


def _place(by_node: dict[int, list[Unit]], n: int, s: int, prefer: list[int | None]) -> list[list[Unit]] | None:
    """s units per stream, each stream inside one node (its preferred node first);
    None when the nodes cannot hold n such shares."""
    left = {j: list(us) for j, us in by_node.items()}
    placed: list[list[Unit]] = [[] for _ in range(n)]
    for i in sorted(range(n), key=lambda i: prefer[i] is None):
        options = [j for j in left if len(left[j]) >= s]
        first = prefer[i]
        if first is not None and first in options:
            options.insert(0, first)
        if not options:
            return None
        j = options[0]
        placed[i], left[j] = left[j][:s], left[j][s:]
    return placed


@dataclass
class Slot:
    cpus: list[int]  # planned CPUs (what the worker is pinned to; empty with PIN=none)
    mem_nodes: list[int]  # numactl --membind nodes (empty: memory not bound)
    threads: int  # torch threads: the stream's CPU share
    device: int


@dataclass
class Plan:
    slots: list[Slot]
    method: str  # numactl | affinity | none
    warnings: list[Warning] = field(default_factory=list)
    notes: list[Warning] = field(default_factory=list)
    unused: list[int] = field(default_factory=list)
    numactl: str | None = None
    topology: dict[str, Any] = field(default_factory=dict)
    gpus: list[dict[str, Any]] = field(default_factory=list)  # GPU identities: {"index", "numa_node", ...}

    @property
    def devices(self) -> list[int]:
        return [s.device for s in self.slots]

    def prefix(self, sid: int) -> list[str]:
        """Command prefix that starts stream sid under numactl (empty otherwise)."""
        slot = self.slots[sid]
        if self.method != "numactl":
            return []
        return numactl_args(self.numactl, slot.cpus, slot.mem_nodes)

    def summary(self) -> str:
        parts = []
        for i, s in enumerate(self.slots):
            where = f"cpus {format_cpulist(s.cpus)}" if s.cpus else "any cpu"
            mem = f", memory node(s) {format_cpulist(s.mem_nodes)}" if s.mem_nodes and self.method == "numactl" else ""
            parts.append(f"stream {i}: {where}{mem}, {s.threads} thread(s), device {s.device}")
        return f"pinning by {self.method} ({'; '.join(parts)})"

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "numactl": self.numactl,
            "streams": [
                {
                    "id": i,
                    "planned_cpus": s.cpus,
                    "mem_nodes": s.mem_nodes if self.method == "numactl" else [],
                    "threads": s.threads,
                    "device": s.device,
                    "command_prefix": self.prefix(i),
                }
                for i, s in enumerate(self.slots)
            ],
            "unused_cpus": self.unused,
            "notes": self.notes,
            "topology": self.topology,
            "gpus": self.gpus,
        }


def numactl_args(exe: str | None, cpus: Iterable[int], mem_nodes: Iterable[int]) -> list[str]:
    args = [exe or "numactl", f"--physcpubind={format_cpulist(cpus)}"]
    if mem_nodes := list(mem_nodes):
        args.append(f"--membind={format_cpulist(mem_nodes)}")
    return args


def probe_numactl(exe: str | None, slots: Iterable[Slot]) -> str | None:
    """None when numactl may pin every slot as planned, else why not (its own words).
    In a container, binding memory needs CAP_SYS_NICE (docker --cap-add SYS_NICE)."""
    if exe is None:
        return "numactl is not installed (apt-get install numactl)"
    for key in {(tuple(s.cpus), tuple(s.mem_nodes)) for s in slots}:
        try:
            proc = subprocess.run([*numactl_args(exe, *key), "true"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"numactl cannot run: {exc}"
        if proc.returncode != 0:
            said = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[0]
            return f"numactl {' '.join(numactl_args(exe, *key)[1:])} failed: {said}"
    return None


GPU_STREAM_CPUS = 4  # a GPU stream's CPU work: one launching thread, the loader, the scorer, telemetry
GPU_STREAM_THREADS = 2  # torch intra-op threads of a GPU stream: its CPU ops are tiny (cast, pad)


def plan(
    cfg: Config,
    topo: Topology | None = None,
    gpus: list[dict[str, Any]] | None = None,
    numactl: str | Literal[True] | None = True,
) -> Plan:
    """The whole plan for cfg. topo/gpus/numactl are for tests: a synthetic
    machine, GPU identities ({"index", "numa_node", ...}) and the numactl path
    (True: look it up; None: absent)."""
    from rifebench.measure import topology

    topo = topology.read() if topo is None else topo
    n = cfg.streams
    indices = cfg.device_list or ([g["index"] for g in gpus] if gpus else [0])
    devices = [indices[i % len(indices)] for i in range(n)]
    node_of_dev = {g["index"]: g.get("numa_node") for g in gpus or []}
    result = split(topo, n, [node_of_dev.get(d) for d in devices] if cfg.platform != "cpu" else None)
    if cfg.platform != "cpu":
        _trim_for_gpu(result)
    slots = [
        Slot(sl, sorted({topo.node(c) for c in sl} & topo.mem_nodes), _threads(cfg, sl), d)
        for sl, d in zip(result.slices, devices, strict=True)
    ]
    exe = shutil.which("numactl") if numactl is True else numactl
    p = Plan(
        slots,
        "none",
        list(result.warnings),
        list(result.notes),
        result.unused,
        exe,
        {
            "usable_cpus": list(topo.cpus),
            "quota_cpus": topo.quota_cpus,
            "nodes": sorted({topo.node(c) for c in topo.cpus}),
            "mem_nodes": sorted(topo.mem_nodes),
        },
        list(gpus or []),
    )
    return _pick_method(cfg, p, len(topo.mem_nodes))


def _pick_method(cfg: Config, p: Plan, mem_nodes: int) -> Plan:
    """PIN applied to the plan: numactl where it can pin every slot as planned, else
    CPU affinity (a warning; a note where nothing is lost: one memory node and no
    numactl installed), or none."""
    slots, exe = p.slots, p.numactl
    if cfg.pin == "none":
        for s in slots:
            s.cpus, s.mem_nodes = [], []
        p.notes.append(warning("PIN_NONE"))
        return p
    if cfg.pin == "affinity":
        p.method = "affinity"
        return p
    why = probe_numactl(exe, slots)
    if why is None:
        p.method = "numactl"
        return p
    if cfg.pin == "numactl":
        raise PinError(
            f"--pin/PIN: 'numactl' is not usable here: {why} (accepted here: auto, affinity, none; "
            "in a container add --cap-add SYS_NICE)"
        )
    p.method = "affinity"
    if mem_nodes > 1 or exe is not None:
        p.warnings.append(warning("PIN_FALLBACK", why=why))
    else:
        p.notes.append(warning("PIN_FALLBACK_QUIET", why=why))
    return p


def _trim_for_gpu(result: Split) -> None:
    """A GPU stream launches kernels: a few CPUs of its share are enough, and
    16 CPU threads spinning in torch's pool would only steal cycles from the
    launching thread (seen on an H200 machine). The rest stay idle, listed."""
    extra = [c for sl in result.slices for c in sl[GPU_STREAM_CPUS:]]
    if extra:
        result.slices = [sl[:GPU_STREAM_CPUS] for sl in result.slices]
        result.unused = sorted(result.unused + extra)


def _threads(cfg: Config, cpus: list[int]) -> int:
    share = max(1, len(cpus))
    return min(share, GPU_STREAM_THREADS) if cfg.platform != "cpu" else share
