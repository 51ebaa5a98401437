"""The pinning plan on synthetic machines: whole cores, one NUMA node per stream,
the GPU's node, cgroup quotas, sharing, and the choice of numactl or affinity."""

from __future__ import annotations

import stat

import pytest

from helpers import machine
from helpers import pin_cfg as cfg
from rifebench.measure import topology
from rifebench.measure.topology import Topology, format_cpulist, parse_cpulist
from rifebench.run import pinning
from rifebench.run.pinning import PinError, split


def whole_cores(topo, cpus) -> bool:
    cores = {topo.core(c) for c in cpus}
    return all(sum(topo.core(x) == k for x in topo.cpus) == sum(topo.core(x) == k for x in cpus) for k in cores)


def test_cpulist_round_trip():
    assert parse_cpulist("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert format_cpulist([11, 0, 1, 2, 3, 8, 10]) == "0-3,8,10-11"
    assert parse_cpulist("") == [] and format_cpulist([]) == ""


@pytest.mark.parametrize("n", [2, 4, 8])
def test_two_sockets_one_node_per_stream_whole_cores(n):
    topo = machine(2, 8, 2)
    out = split(topo, n)
    assert not out.warnings and out.unused == []
    seen = set()
    for sl in out.slices:
        assert len(sl) == 32 // n  # even split
        assert len({topo.node(c) for c in sl}) == 1  # one NUMA node
        assert whole_cores(topo, sl)  # SMT siblings stay together
        assert not seen & set(sl)
        seen |= set(sl)
    assert seen == set(range(32))
    # contiguous: the streams fill node 0 first, then node 1
    assert [topo.node(sl[0]) for sl in out.slices] == sorted(topo.node(sl[0]) for sl in out.slices)


def test_two_sockets_two_streams_exact_cpus():
    out = split(machine(2, 8, 2), 2)
    assert out.slices == [[*range(0, 8), *range(16, 24)], [*range(8, 16), *range(24, 32)]]


def test_uneven_split_leaves_cpus_idle_and_says_which_streams_span_nodes():
    topo = machine(2, 8, 2)
    out = split(topo, 3)
    assert [len(sl) for sl in out.slices] == [10, 10, 10]  # 5 whole cores each
    assert len(out.unused) == 2 and whole_cores(topo, out.unused)
    assert any("span NUMA nodes" in n["message"] and "multiple of 2" in n["remedy"] for n in out.notes)
    assert any("stay idle" in n["message"] for n in out.notes)


def test_one_stream_takes_everything_across_nodes():
    topo = machine(2, 4, 2)
    plan = pinning.plan(cfg(1, "affinity"), topo=topo, numactl=None)
    assert plan.slots[0].cpus == list(range(16)) and plan.slots[0].threads == 16
    assert plan.slots[0].mem_nodes == [0, 1]


def test_more_streams_than_cores_use_single_threads():
    topo = machine(1, 4, 2)
    out = split(topo, 8)
    assert sorted(c for sl in out.slices for c in sl) == list(range(8))
    assert all(len(sl) == 1 for sl in out.slices)
    assert any("share a core" in n["message"] for n in out.notes)
    assert not out.warnings


def test_more_streams_than_cpus_share_round_robin_with_a_warning():
    out = split(machine(1, 2, 1), 5)
    assert out.slices == [[0], [1], [0], [1], [0]]
    assert (
        len(out.warnings) == 1
        and "share CPUs" in out.warnings[0]["message"]
        and "STREAMS <= 2" in out.warnings[0]["remedy"]
    )


def test_affinity_mask_not_nproc():
    topo = machine(2, 4, 1, cpus=[2, 3, 4, 5])  # e.g. taskset -c 2-5 on an 8-CPU machine
    out = split(topo, 2)
    assert out.slices == [[2, 3], [4, 5]]


def test_cgroup_quota_limits_the_cpus_used():
    topo = machine(1, 8, 1, quota=2.5)
    out = split(topo, 2)
    assert out.slices == [[0], [1]]
    assert out.unused == [2, 3, 4, 5, 6, 7]
    assert "quota allows 2.5 CPUs" in out.warnings[0]["message"]


def test_gpu_stream_stays_on_its_gpus_node():
    topo = machine(2, 8, 2)
    out = split(topo, 1, prefer_nodes=[1])
    assert {topo.node(c) for c in out.slices[0]} == {1} and len(out.slices[0]) == 16
    assert any("GPU's NUMA node" in n["message"] for n in out.notes)
    two = split(topo, 2, prefer_nodes=[1, 0])
    assert {topo.node(c) for c in two.slices[0]} == {1} and {topo.node(c) for c in two.slices[1]} == {0}


def test_gpu_node_too_small_falls_back_and_says_so():
    topo = machine(2, 2, 1)  # 2 CPUs per node
    out = split(topo, 3, prefer_nodes=[0, 0, 0])  # three streams on a GPU of node 0
    assert all(len(sl) == 1 for sl in out.slices)
    assert len({c for sl in out.slices for c in sl}) == 3
    assert any("stream 2's GPU is on NUMA node 0" in n["message"] for n in out.notes)


def test_plan_devices_round_robin_and_devices_option():
    topo = machine(2, 4, 1)
    gpus = [{"index": 0, "numa_node": 0}, {"index": 1, "numa_node": 1}]
    p = pinning.plan(cfg(4, "affinity", "cuda"), topo=topo, gpus=gpus, numactl=None)
    assert p.devices == [0, 1, 0, 1]
    assert [topology_nodes(topo, s.cpus) for s in p.slots] == [{0}, {1}, {0}, {1}]
    p = pinning.plan(cfg(2, "affinity", "cuda", devices="1"), topo=topo, gpus=gpus, numactl=None)
    assert p.devices == [1, 1]


def topology_nodes(topo, cpus):
    return {topo.node(c) for c in cpus}


def test_membind_only_to_nodes_with_memory():
    topo = machine(2, 2, 1, mem_nodes=[0])  # node 1: CPUs but no memory
    p = pinning.plan(cfg(2, "affinity"), topo=topo, numactl=None)
    assert [s.mem_nodes for s in p.slots] == [[0], []]
    assert pinning.numactl_args("numactl", [2, 3], []) == ["numactl", "--physcpubind=2-3"]
    assert pinning.numactl_args("numactl", [0, 1], [0]) == ["numactl", "--physcpubind=0-1", "--membind=0"]


def fake_numactl(tmp_path, ok: bool):
    """A numactl that behaves like the real one in a container without SYS_NICE."""
    path = tmp_path / "numactl"
    body = 'exec "${@: -1}"' if ok else 'echo "set_mempolicy: Operation not permitted" >&2; exit 1'
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_method_numactl_when_permitted(tmp_path):
    p = pinning.plan(cfg(2), topo=machine(1, 2, 1), numactl=fake_numactl(tmp_path, ok=True))
    assert p.method == "numactl" and not p.warnings
    assert p.prefix(1)[1:] == ["--physcpubind=1", "--membind=0"]


def test_auto_falls_back_to_affinity_and_says_why(tmp_path):
    p = pinning.plan(cfg(2), topo=machine(1, 2, 1), numactl=fake_numactl(tmp_path, ok=False))
    assert p.method == "affinity" and p.prefix(0) == []
    assert p.warnings[0]["code"] == "PIN_FALLBACK"
    assert "Operation not permitted" in p.warnings[0]["message"] and "SYS_NICE" in p.warnings[0]["remedy"]
    p = pinning.plan(cfg(2), topo=machine(1, 2, 1), numactl=None)
    assert p.method == "affinity" and "not installed" in p.notes[0]["message"]


def test_insisting_on_numactl_fails_clearly(tmp_path):
    with pytest.raises(PinError, match=r"--pin/PIN: 'numactl' is not usable here: .*Operation not permitted"):
        pinning.plan(cfg(2, "numactl"), topo=machine(1, 2, 1), numactl=fake_numactl(tmp_path, ok=False))
    with pytest.raises(PinError, match="not installed"):
        pinning.plan(cfg(2, "numactl"), topo=machine(1, 2, 1), numactl=None)


def test_pin_none_keeps_the_thread_share():
    p = pinning.plan(cfg(2, "none"), topo=machine(1, 4, 2), numactl=None)
    assert p.method == "none" and all(s.cpus == [] for s in p.slots)
    assert [s.threads for s in p.slots] == [4, 4]
    assert "any cpu" in p.summary()


def test_read_quota_from_cgroup_files(tmp_path, monkeypatch):
    root = tmp_path / "cg"
    (root / "job").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu\n")
    (root / "job" / "cpu.max").write_text("150000 100000\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/job\n")
    monkeypatch.setattr(topology, "CGROUP_ROOT", root)
    monkeypatch.setattr(topology, "PROC_CGROUP", proc)
    assert topology.read_quota() == 1.5
    (root / "job" / "cpu.max").write_text("max 100000\n")
    assert topology.read_quota() is None
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    proc.write_text("4:cpu,cpuacct:/\n")
    monkeypatch.setattr(topology, "CGROUP_ROOT", v1)
    assert topology.read_quota() == 3.0


def test_this_machine_reads():
    topo = topology.read()
    assert set(topo.cpus) <= set(range(4096)) and topo.cpus
    topo = Topology(topo.cpus, topo.core_of, topo.node_of, topo.mem_nodes, None)  # whatever the quota here
    out = split(topo, len(topo.cpus))
    assert sorted(c for sl in out.slices for c in sl) == sorted(topo.cpus)
    assert topology.normalise_bus_id("00000000:3B:00.0") == "0000:3b:00.0"
