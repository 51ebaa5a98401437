"""The system inventory and GPU telemetry, with stand-in nvidia-smi, xpu-smi and
svr-info executables where the real ones are absent (always, on the CPU CI)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rifebench import smi, sysinfo


def tool(bindir: Path, name: str, script: str) -> Path:
    bindir.mkdir(exist_ok=True)
    path = bindir / name
    path.write_text("#!/bin/bash\n" + textwrap.dedent(script))
    path.chmod(0o755)
    return path


FAKE_NVIDIA_SMI = """
    for a in "$@"; do
      if [[ "$a" == --query-gpu=index,name,* ]]; then
        echo "0, NVIDIA H100 80GB HBM3, GPU-1234, 550.54.15, 96.00.89.00.01, 81559, 00000000:19:00.0"
        exit 0
      fi
    done
    echo "timestamp, index, utilization.gpu [%], memory.used [MiB], power.draw [W], temperature.gpu"
    i=0
    while true; do
      echo "2026/01/01 00:00:0$i.000, 0, $((40 + 20 * (i % 2))), 1000, 300.5, 60"
      echo "2026/01/01 00:00:0$i.000, 1, 10, $((2000 + i)), [N/A], 55"
      i=$((i + 1)); sleep 0.05
    done
"""

FAKE_XPU_SMI = """
    if [[ "$1" == discovery && "$2" == -j ]]; then
      echo '{"device_list": [{"device_id": 0, "device_name": "Intel(R) Data Center GPU Flex 170"}]}'
    elif [[ "$1" == discovery ]]; then
      echo '{"device_id": 0, "driver_version": "1.3.29138", "gfx_firmware_version": "DG02_1.3170"}'
    elif [[ "$1" == dump ]]; then
      echo "Timestamp, DeviceId, GPU Utilization (%), GPU Power (W), GPU Memory Used (MiB)"
      while true; do echo "06:00:00.000,    0, 75.00, 110.50, 4096.00"; sleep 0.05; done
    fi
"""


@pytest.fixture
def bare_path(tmp_path, monkeypatch):
    """PATH holding only our stand-ins, so a real tool on a developer's machine
    cannot change the answers."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sleep").symlink_to(shutil.which("sleep"))  # the stand-ins pace themselves with it
    monkeypatch.setenv("PATH", str(bindir))
    return bindir


def test_collect_describes_this_machine(bare_path):
    info = sysinfo.collect()
    json.dumps(info)  # plain data
    assert info["cpu_model"] and info["python"] == sys.version.split()[0]
    assert info["cpu_logical"] >= info["cpu_physical"] >= 1 and 1 <= info["cpus_usable"] <= info["cpu_logical"]
    assert info["memory_bytes"] > 2 ** 28 and info["kernel"] and info["os"]
    assert info["packages"]["torch"].startswith("2.") and info["packages"]["numpy"]
    assert info["gpus"] == [] and info["gpu_tool"] is None
    assert info["inventory_tools"] == {"svr-info": None, "perfspect": None}
    if Path("/sys/devices/system/node/node0").exists():
        assert info["numa_nodes"][0]["node"] == 0 and info["numa_nodes"][0]["cpus"]


def test_numa_sockets_and_cpu_flags_from_files(tmp_path):
    for node, cpus, kb in ((0, "0-3,8-11", 1024), (1, "4-7,12-15", 2048)):
        d = tmp_path / "node" / f"node{node}"
        d.mkdir(parents=True)
        (d / "cpulist").write_text(cpus + "\n")
        (d / "meminfo").write_text(f"Node {node} MemTotal:       {kb} kB\nNode {node} MemFree: 1 kB\n")
    for cpu, pkg in ((0, 0), (1, 0), (2, 1), (3, 1)):
        d = tmp_path / "cpu" / f"cpu{cpu}" / "topology"
        d.mkdir(parents=True)
        (d / "physical_package_id").write_text(f"{pkg}\n")
    assert sysinfo.numa_nodes(str(tmp_path / "node")) == [
        {"node": 0, "cpus": "0-3,8-11", "memory_bytes": 1024 * 1024},
        {"node": 1, "cpus": "4-7,12-15", "memory_bytes": 2048 * 1024}]
    assert sysinfo.sockets(str(tmp_path / "cpu")) == 2
    assert sysinfo.sockets(str(tmp_path / "none")) is None
    flags = "processor: 0\nflags\t\t: fpu avx2 avx512f amx_tile amx_bf16 sse\n"
    assert sysinfo.cpu_flags(flags) == ["avx2", "avx512f", "amx_tile", "amx_bf16"]


def test_nvidia_gpu_in_the_inventory(bare_path):
    tool(bare_path, "nvidia-smi", FAKE_NVIDIA_SMI)
    info = sysinfo.collect()
    assert info["gpu_tool"] == "nvidia-smi"
    assert info["gpus"] == [{"tool": "nvidia-smi", "index": "0", "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-1234",
                             "driver_version": "550.54.15", "vbios_version": "96.00.89.00.01",
                             "memory.total": "81559", "pci.bus_id": "00000000:19:00.0"}]


def test_failing_tool_is_recorded_not_raised(bare_path):
    tool(bare_path, "nvidia-smi", "echo 'NVIDIA-SMI has failed because it could not communicate' >&2; exit 9\n")
    gpus, name = smi.gpu_inventory()
    assert name == "nvidia-smi" and gpus == [{"tool": "nvidia-smi", "error":
                                              "NVIDIA-SMI has failed because it could not communicate"}]


def test_intel_gpu_in_the_inventory(bare_path):
    tool(bare_path, "xpu-smi", FAKE_XPU_SMI)
    gpus, name = smi.gpu_inventory()
    assert name == "xpu-smi"
    assert gpus == [{"tool": "xpu-smi", "device_id": 0, "device_name": "Intel(R) Data Center GPU Flex 170",
                     "driver_version": "1.3.29138", "gfx_firmware_version": "DG02_1.3170"}]


def test_nvidia_telemetry_sampled_and_summarised(bare_path, tmp_path):
    tool(bare_path, "nvidia-smi", FAKE_NVIDIA_SMI)
    assert not smi.Telemetry(tmp_path, "cpu")  # a CPU row samples no GPU
    tel = smi.Telemetry(tmp_path, "cuda", devices="0,1")
    assert tel.jobs[0][0][-2:] == ["-i", "0,1"]
    tel.start()
    time.sleep(0.6)
    s = tel.stop()
    assert (tmp_path / "telemetry-nvidia.csv").stat().st_size < 10_000  # paced, as the real tool is
    assert (tmp_path / "telemetry-nvidia.csv").read_text().startswith("timestamp, index,")
    assert s["tool"] == "nvidia-smi" and s["samples"] >= 3 and set(s["devices"]) == {"0", "1"}
    util0 = s["devices"]["0"]["utilization.gpu [%]"]
    assert util0["min"] == 40 and util0["max"] == 60
    assert s["devices"]["1"]["utilization.gpu [%]"]["mean"] == 10
    assert "power.draw [W]" not in s["devices"]["1"]  # [N/A] is no sample, never 0
    assert s["power_w_mean"] == pytest.approx(300.5)
    assert s["mem_used_mib_max"] >= 2000 and 10 < s["util_pct_mean"] < 60


def test_xpu_telemetry_one_dump_per_device(bare_path, tmp_path):
    tool(bare_path, "xpu-smi", FAKE_XPU_SMI)
    tel = smi.Telemetry(tmp_path, "xpu")  # devices from discovery
    assert [cmd[1:] for cmd, _ in tel.jobs] == [["dump", "-d", "0", "-m", smi.XPU_METRICS]]
    tel.start()
    time.sleep(0.4)
    s = tel.stop()
    assert s["files"] == ["telemetry-xpu0.csv"]
    assert (s["util_pct_mean"], s["power_w_mean"], s["mem_used_mib_max"]) == (75.0, 110.5, 4096.0)


def test_inventory_tools_run_into_their_own_folder(bare_path, tmp_path):
    assert sysinfo.run_inventory(str(tmp_path / "inv")) == []
    tool(bare_path, "svr-info", """
        # svr-info -output DIR
        [[ "$1" == -output ]] || exit 2
        echo '{"Host": "fake"}' > "$2/host.json"; echo report written
    """)
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
    assert (sysinfo.container() is not None) == inside


def test_cli_prints_json(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "rifebench.sysinfo"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["cpu_model"]
