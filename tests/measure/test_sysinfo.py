"""The system inventory: composed from topology.py (synthetic /proc and /sys
files here) and gpu.py (stand-in nvidia-smi and svr-info executables; the GPU
readers themselves are tested in test_gpu.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import FAKE_NVIDIA_SMI, tool
from rifebench.measure import sysinfo, topology


def test_collect_describes_this_machine(bare_path):
    info = sysinfo.collect()
    json.dumps(info)  # plain data
    assert info["cpu_model"] and info["python"] == sys.version.split()[0]
    assert info["cpu_logical"] >= info["cpu_physical"] >= 1 and 1 <= info["cpus_usable"] <= info["cpu_logical"]
    assert info["memory_bytes"] > 2**28 and info["kernel"] and info["os"]
    assert info["packages"]["torch"].startswith("2.") and info["packages"]["numpy"]
    assert info["gpus"] == [] and info["gpu_tool"] is None
    assert info["inventory_tools"] == {"svr-info": None, "perfspect": None}
    if Path("/sys/devices/system/node/node0").exists():
        assert info["numa_nodes"][0]["node"] == 0 and info["numa_nodes"][0]["cpus"]


def test_numa_sockets_cpu_model_and_flags_from_files(tmp_path, monkeypatch):
    for node, cpus, kb in ((0, "0-3,8-11", 1024), (1, "4-7,12-15", 2048)):
        d = tmp_path / "node" / f"node{node}"
        d.mkdir(parents=True)
        (d / "cpulist").write_text(cpus + "\n")
        (d / "meminfo").write_text(f"Node {node} MemTotal:       {kb} kB\nNode {node} MemFree: 1 kB\n")
    for cpu, pkg in ((0, 0), (1, 0), (2, 1), (3, 1)):
        d = tmp_path / "cpu" / f"cpu{cpu}" / "topology"
        d.mkdir(parents=True)
        (d / "physical_package_id").write_text(f"{pkg}\n")
        (d / "core_id").write_text(f"{cpu % 2}\n")
    monkeypatch.setattr(topology, "SYS_NODE", tmp_path / "node")
    monkeypatch.setattr(topology, "SYS_CPU", tmp_path / "cpu")
    assert sysinfo.numa_nodes() == [
        {"node": 0, "cpus": "0-3,8-11", "memory_bytes": 1024 * 1024},
        {"node": 1, "cpus": "4-7,12-15", "memory_bytes": 2048 * 1024},
    ]
    # The pinning plan reads the same files through the same reader.
    node_of, mem_nodes = topology.read_nodes()
    assert (node_of[8], node_of[12], mem_nodes) == (0, 1, frozenset({0, 1}))
    assert topology.sockets() == 2
    (tmp_path / "cpu" / "online").write_text("0-1\n")  # the kernel's own list wins over the folders
    assert topology.sockets() == 1
    monkeypatch.setattr(topology, "SYS_CPU", tmp_path / "none")
    assert topology.sockets() is None
    cpuinfo = (
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu avx2 avx512f amx_tile "
        "amx_bf16 sse\n\nprocessor\t: 1\nmodel name\t: other\n"
    )
    assert topology.cpu_flags(cpuinfo) == ["avx2", "avx512f", "amx_tile", "amx_bf16"]
    assert topology.cpu_model(cpuinfo) == "Intel(R) Xeon(R) Platinum 8480+"
    assert topology.cpu_model("processor: 0\n")  # no model name (some ARM kernels): the platform's answer


def test_nvidia_gpus_in_the_inventory(bare_path):
    tool(bare_path, "nvidia-smi", FAKE_NVIDIA_SMI)
    info = sysinfo.collect()
    assert info["gpu_tool"] == "nvidia-smi"
    assert [(g["index"], g["name"], g["pci_bus_id"]) for g in info["gpus"]] == [
        (0, "Slow GPU", "0000:01:00.0"),
        (1, "Fast GPU", "0000:41:00.0"),
    ]


def test_inventory_tools_run_into_their_own_folder(bare_path, tmp_path):
    assert sysinfo.run_inventory(str(tmp_path / "inv")) == []
    tool(
        bare_path,
        "svr-info",
        """
        # svr-info -output DIR
        [[ "$1" == -output ]] || exit 2
        echo '{"Host": "fake"}' > "$2/host.json"; echo report written
    """,
    )
    tool(bare_path, "perfspect", "echo 'perfspect: needs root' >&2; exit 1\n")
    logged = []
    done = sysinfo.run_inventory(str(tmp_path / "inv"), log=logged.append)
    by_tool = {d["tool"]: d for d in done}
    assert by_tool["svr-info"]["exit_code"] == 0 and by_tool["svr-info"]["files"] == ["svr-info/host.json"]
    assert by_tool["perfspect"]["exit_code"] == 1 and by_tool["perfspect"]["stderr_tail"] == ["perfspect: needs root"]
    assert by_tool["perfspect"]["command"][1:4] == ["report", "--format", "json,txt"]
    assert len(logged) == 2


def test_container_block_names_the_image(monkeypatch):
    monkeypatch.setenv("RIFEBENCH_IMAGE", "rifebench:cuda")
    monkeypatch.setenv("RIFEBENCH_IMAGE_DIGEST", "rifebench@sha256:abcd")
    monkeypatch.setenv("RIFEBENCH_IMAGE_FLAVOUR", "cuda-gpu")
    c = sysinfo.container()
    assert (c["image"], c["digest"], c["flavour"]) == ("rifebench:cuda", "rifebench@sha256:abcd", "cuda-gpu")
    for var in ("RIFEBENCH_IMAGE", "RIFEBENCH_IMAGE_DIGEST", "RIFEBENCH_IMAGE_FLAVOUR"):
        monkeypatch.delenv(var)
    inside = os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv")
    assert topology.in_container() == inside and (sysinfo.container() is not None) == inside
    assert sysinfo.container(inside=True) == {
        "detected": True,
        **dict.fromkeys(("image", "image_id", "digest", "flavour", "base_image", "revision")),
    }


def test_cli_prints_json(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "rifebench.measure.sysinfo"], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["cpu_model"]
