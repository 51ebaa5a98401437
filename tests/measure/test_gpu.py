"""gpu.py on the CPU: a stand-in NVML module and stand-in nvidia-smi / xpu-smi
executables on a machine whose PCI bus order and CUDA order differ. CUDA device
0 is the fast GPU at bus 0000:41:00.0, which NVML and nvidia-smi call index 1;
CUDA device 1 is the slow one at 0000:01:00.0 (their index 0)."""

from __future__ import annotations

import sys
import time
import types

import pytest

from helpers import FAKE_NVIDIA_SMI, tool
from rifebench.measure import gpu, inventory
from rifebench.measure.telemetry import Telemetry

FAST, SLOW = "0000:41:00.0", "0000:01:00.0"
CUDA_GPUS = [{"index": 0, "pci_bus_id": FAST}, {"index": 1, "pci_bus_id": SLOW}]  # as topology.gpu_identity says
# In bus order, as NVML and nvidia-smi number them.
BOARDS = [
    {"bus": SLOW, "name": "Slow GPU", "uuid": "GPU-aaaa", "util": 10, "mem_mib": 1000, "power_mw": 100000},
    {"bus": FAST, "name": "Fast GPU", "uuid": "GPU-bbbb", "util": 90, "mem_mib": 5000, "power_mw": 300000},
]


FAKE_XPU_SMI = """
    if [[ "$1" == discovery && "$2" == -j ]]; then
      echo '{"device_list": [{"device_id": 0, "device_name": "Intel(R) Data Center GPU Flex 170",
             "pci_bdf_address": "0000:4d:00.0"}, {"device_id": 1, "device_name": "Intel(R) Data Center GPU Flex 170",
             "pci_bdf_address": "0000:3a:00.0"}]}'
    elif [[ "$1" == discovery ]]; then
      echo "{\\"device_id\\": $3, \\"driver_version\\": \\"1.3.29138\\"}"
    elif [[ "$1" == dump ]]; then
      echo "Timestamp, DeviceId, GPU Utilization (%), GPU Power (W), GPU Frequency (MHz), GPU Memory Used (MiB)"
      while true; do
        echo "06:00:00.000,    0, 75.00, 110.50, 2050, 4096.00"
        echo "06:00:00.000,    1, 5.00, 40.00, 300, 16.00"
        sleep 0.05
      done
    fi
"""


class NVMLError(Exception):
    pass


def fake_nvml(energy: bool = True) -> types.ModuleType:
    """A stand-in for nvidia-ml-py's pynvml with BOARDS in bus order; it records
    which lookups were made."""
    m = types.ModuleType("pynvml")
    m.NVML_CLOCK_SM, m.NVML_CLOCK_MEM = 1, 2
    m.calls = []
    board = {b["bus"]: b for b in BOARDS}

    def by_bus(bus_id):
        m.calls.append(("bus", bus_id))
        parts = bus_id.lower().split(":")  # NVML takes either domain width
        key = f"{int(parts[0], 16):04x}:{parts[1]}:{parts[2]}"
        if key not in board:
            raise NVMLError("Not Found")
        return board[key]

    def by_index(i):
        m.calls.append(("index", i))
        return BOARDS[i]

    def energy_mj(h):
        if not energy:
            raise NVMLError("Not Supported")
        return 1_000_000 + h["util"]

    m.nvmlInit = m.nvmlShutdown = lambda: None
    m.nvmlDeviceGetHandleByPciBusId, m.nvmlDeviceGetHandleByIndex = by_bus, by_index
    m.nvmlDeviceGetCount = lambda: len(BOARDS)
    m.nvmlSystemGetDriverVersion = lambda: "550.54.15"
    m.nvmlDeviceGetName = lambda h: h["name"]
    m.nvmlDeviceGetUUID = lambda h: h["uuid"]
    m.nvmlDeviceGetVbiosVersion = lambda h: "96.00.89.00.01"
    m.nvmlDeviceGetPciInfo = lambda h: types.SimpleNamespace(busId=b"0000" + h["bus"].upper().encode())
    m.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=h["util"], memory=0)
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=h["mem_mib"] * 2**20, total=80 * 2**30)
    m.nvmlDeviceGetPowerUsage = lambda h: h["power_mw"]
    m.nvmlDeviceGetClockInfo = lambda h, which: {1: 1980 if h["util"] > 50 else 1200, 2: 9001}[which]
    m.nvmlDeviceGetCurrentClocksThrottleReasons = lambda h: 0x4 if h["util"] > 50 else 0x1
    m.nvmlDeviceGetTotalEnergyConsumption = energy_mj
    return m


# --- CUDA device 0 is sampled from its own bus, whatever the numbering -------------------


def test_nvml_samples_cuda_device_0_from_its_bus(bare_path, monkeypatch):
    nvml = fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    src, note = gpu.open_gpu_source("cuda", CUDA_GPUS)
    assert src.name == "nvml" and note is None
    s = src.sample()
    assert s[0] == {
        "util_pct": 90,
        "mem_used_bytes": 5000 * 2**20,
        "power_w": 300.0,
        "sm_clock_mhz": 1980,
        "mem_clock_mhz": 9001,
        "throttle": ["sw_power_cap"],
    }
    assert s[1]["util_pct"] == 10 and s[1]["throttle"] == ["gpu_idle"]
    assert src.energy_j() == {0: pytest.approx(1000.09), 1: pytest.approx(1000.01)}
    assert [c for c in nvml.calls if c[0] == "index"] == []  # never by index
    src.close()


def test_nvidia_smi_samples_cuda_device_0_from_its_bus(bare_path):
    tool(bare_path, "nvidia-smi", FAKE_NVIDIA_SMI)  # NVML is blocked: the fallback
    src, note = gpu.open_gpu_source("cuda", CUDA_GPUS)
    assert src.name == "nvidia-smi" and note is None
    s = src.sample()
    assert s[0] == {
        "util_pct": 90.0,
        "mem_used_bytes": 5000 * 2**20,
        "power_w": 300.0,
        "sm_clock_mhz": 1980.0,
        "mem_clock_mhz": 9001.0,
        "throttle": ["sw_power_cap"],
    }
    assert s[1]["util_pct"] == 10.0 and src.energy_j() == {}
    only_slow = gpu.open_gpu_source("cuda", [{"index": 0, "pci_bus_id": SLOW}])[0].sample()
    assert only_slow == {0: s[1]}  # renumbered to the caller's torch index


def test_in_run_telemetry_names_the_gpu_by_bus(bare_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml())
    tel = Telemetry("cuda", [CUDA_GPUS[0]], None, interval=60)  # the run uses CUDA device 0 only
    tel.started(time.monotonic())
    tel.sample()
    tel.stopped(time.monotonic())
    tel.close()
    s = tel.summary(images=10)
    assert s["gpu_source"] == "nvml" and len(s["gpus"]) == 1
    g = s["gpus"][0]
    assert (g["index"], g["pci_bus_id"], g["util_pct"]["mean"]) == (0, FAST, 90)
    assert g["energy_method"] == "energy counter"


def test_a_gpu_without_bus_id_is_not_guessed(bare_path, monkeypatch):
    nvml = fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    src, note = gpu.open_gpu_source("cuda", [{"index": 0, "pci_bus_id": None}, CUDA_GPUS[1]])
    assert note == "cuda [0] not sampled: torch gave no PCI bus id"
    assert set(src.sample()) == {1}


def test_no_source_is_a_note(bare_path):
    assert gpu.open_gpu_source("cuda", CUDA_GPUS)[0] is None
    assert "nvidia-smi not on PATH" in gpu.open_gpu_source("cuda", CUDA_GPUS)[1]
    assert gpu.open_gpu_source("xpu", [{"index": 0}]) == (None, "no GPU telemetry: xpu-smi not on PATH")
    assert gpu.open_gpu_source("cpu", []) == (None, None)


def test_xpu_smi_devices_matched_by_bus(bare_path):
    tool(bare_path, "xpu-smi", FAKE_XPU_SMI)
    # torch's xpu 0 is xpu-smi's device 1 (bus 3a); xpu 1 gave no bus id and is taken to be device 1 too.
    ids, note = gpu.xpu_ids(
        [{"index": 0, "pci_bus_id": "0000:3a:00.0"}, {"index": 1}],
        [d for d in inventory.xpu_gpus() if "error" not in d],
    )
    assert ids == {1: 1} and note == "xpu-smi device ids taken to be torch xpu indices for xpu [1]"
    src, note = gpu.open_gpu_source("xpu", [{"index": 0, "pci_bus_id": "0000:3a:00.0"}])
    assert note is None
    try:
        time.sleep(0.4)
        s = src.sample()
    finally:
        src.close()
    assert s == {
        0: {
            "util_pct": 5.0,
            "power_w": 40.0,
            "sm_clock_mhz": 300.0,
            "mem_clock_mhz": None,
            "mem_used_bytes": 16 * 2**20,
            "throttle": [],
        }
    }


# --- the inventory -----------------------------------------------------------------------

INVENTORY = [
    {
        "index": 0,
        "name": "Slow GPU",
        "uuid": "GPU-aaaa",
        "driver_version": "550.54.15",
        "vbios_version": "96.00.89.00.01",
        "pci_bus_id": SLOW,
    },
    {
        "index": 1,
        "name": "Fast GPU",
        "uuid": "GPU-bbbb",
        "driver_version": "550.54.15",
        "vbios_version": "96.00.89.00.01",
        "pci_bus_id": FAST,
    },
]


def test_inventory_from_nvml_first(bare_path, monkeypatch):
    tool(bare_path, "nvidia-smi", "exit 7\n")  # not asked when NVML answers
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml())
    gpus, tools = inventory.gpu_inventory()
    assert tools == "nvml"
    assert gpus == [{"tool": "nvml", **g, "memory_total_bytes": 80 * 2**30} for g in INVENTORY]


def test_inventory_from_nvidia_smi_without_nvml(bare_path):
    tool(bare_path, "nvidia-smi", FAKE_NVIDIA_SMI)
    gpus, tools = inventory.gpu_inventory()
    assert tools == "nvidia-smi"
    assert gpus == [{"tool": "nvidia-smi", **g, "memory_total_bytes": 81559 * 2**20} for g in INVENTORY]


def test_failing_tool_is_recorded_not_raised(bare_path):
    tool(bare_path, "nvidia-smi", "echo 'NVIDIA-SMI has failed because it could not communicate' >&2; exit 9\n")
    assert inventory.gpu_inventory() == (
        [{"tool": "nvidia-smi", "error": "NVIDIA-SMI has failed because it could not communicate"}],
        "nvidia-smi",
    )


def test_intel_gpus_in_the_inventory(bare_path):
    tool(bare_path, "xpu-smi", FAKE_XPU_SMI)
    gpus, tools = inventory.gpu_inventory()
    assert tools == "xpu-smi"
    assert gpus[1] == {
        "tool": "xpu-smi",
        "device_id": 1,
        "device_name": "Intel(R) Data Center GPU Flex 170",
        "pci_bdf_address": "0000:3a:00.0",
        "driver_version": "1.3.29138",
    }


# --- the parsers on known outputs --------------------------------------------------------


def test_parse_nvidia_smi():
    text = (
        "00000000:3B:00.0, 97, 4021, 251.37, 1980, 2619, 0x0000000000000004\n"
        "00000000:AF:00.0, [N/A], 10, [N/A], 210, 405, 0x0000000000000001\n"
        "00000000:D8:00.0, 1, 1, 1, 1, 1, 0x0\n"
    )  # a GPU this run does not use
    out = gpu.parse_nvidia_smi(text, {"0000:af:00.0": 0, "0000:3b:00.0": 1})
    assert set(out) == {0, 1}
    assert out[1] == {
        "util_pct": 97.0,
        "mem_used_bytes": 4021 * 2**20,
        "power_w": 251.37,
        "sm_clock_mhz": 1980.0,
        "mem_clock_mhz": 2619.0,
        "throttle": ["sw_power_cap"],
    }
    assert out[0]["util_pct"] is None and out[0]["power_w"] is None and out[0]["throttle"] == ["gpu_idle"]
    assert gpu.parse_nvidia_smi(text, {}) == {}  # no bus ids: nothing is guessed


def test_parse_xpu_smi_row():
    header = [
        h.strip()
        for h in [
            "Timestamp",
            " DeviceId",
            " GPU Utilization (%)",
            " GPU Power (W)",
            " GPU Frequency (MHz)",
            " GPU Memory Used (MiB)",
        ]
    ]
    row = gpu.parse_xpu_smi_row(header, "06:14:46.000,    1, 99.52, 287.10, 1550, 3071.25")
    assert row == {
        "device": 1,
        "util_pct": 99.52,
        "power_w": 287.1,
        "sm_clock_mhz": 1550.0,
        "mem_clock_mhz": None,
        "mem_used_bytes": 3071.25 * 2**20,
        "throttle": [],
    }
    assert gpu.parse_xpu_smi_row(header, "06:14:47.000, , , , ,") is None


def test_throttle_names():
    assert gpu.throttle_names(0x20 | 0x4) == ["sw_power_cap", "sw_thermal_slowdown"]
    assert gpu.throttle_names(0x1000) == ["other_0x1000"] and gpu.throttle_names(None) == []
