"""What GPUs there are, for the system block (sysinfo.py): NVIDIA's through NVML
(nvidia-ml-py, imported as pynvml, optional) or the `nvidia-smi` CLI, Intel's through
`xpu-smi`, each record named by its PCI bus id. Also the vendor tools' runner and the
parsing helpers the telemetry sources (gpu.py) share.
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
import subprocess
from typing import Any

from rifebench.measure.topology import normalise_bus_id

GpuRecord = dict[str, Any]  # {"index": torch index, "pci_bus_id": ...}, or an inventory entry

TOOL_TIMEOUT_S = 20
NVIDIA_INVENTORY = "index,name,uuid,driver_version,vbios_version,memory.total,pci.bus_id"


def number(text: str) -> float | None:
    try:
        return float(text.strip().split()[0])
    except (ValueError, IndexError):
        return None  # "[N/A]", "N/A", "" and the like


def text_of(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def run_tool(cmd: list[str]) -> tuple[int | None, str, str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
        return proc.returncode, proc.stdout, proc.stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, "", f"{type(exc).__name__}: {exc}"


def nvml_gpus() -> list[GpuRecord] | None:
    """Every NVIDIA GPU NVML sees, or None when NVML cannot be used here."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no module or no driver library: nvidia-smi may still answer
        return None
    try:
        driver = text_of(pynvml.nvmlSystemGetDriverVersion())
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)  # listing them all; the bus id is the identity
            gpus.append(
                {
                    "tool": "nvml",
                    "index": i,
                    "name": text_of(pynvml.nvmlDeviceGetName(h)),
                    "uuid": text_of(pynvml.nvmlDeviceGetUUID(h)),
                    "driver_version": driver,
                    "vbios_version": text_of(pynvml.nvmlDeviceGetVbiosVersion(h)),
                    "memory_total_bytes": int(pynvml.nvmlDeviceGetMemoryInfo(h).total),
                    "pci_bus_id": normalise_bus_id(text_of(pynvml.nvmlDeviceGetPciInfo(h).busId)),
                }
            )
        return gpus
    except Exception as exc:  # noqa: BLE001 - recorded, never raised
        return [{"tool": "nvml", "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}]
    finally:
        with contextlib.suppress(Exception):  # NVML's own error classes: a failed init fails its shutdown too
            pynvml.nvmlShutdown()


def nvidia_smi_gpus() -> list[GpuRecord] | None:
    """The same record as nvml_gpus, from nvidia-smi; None when it is not on PATH."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    rc, out, err = run_tool([exe, f"--query-gpu={NVIDIA_INVENTORY}", "--format=csv,noheader,nounits"])
    if rc != 0:
        return [{"tool": "nvidia-smi", "error": (err.strip() or out.strip() or f"exit {rc}").splitlines()[-1]}]
    gpus = []
    for cells in csv.reader(out.strip().splitlines(), skipinitialspace=True):
        if len(cells) != 7:
            continue
        index, name, uuid, driver, vbios, mem, bus = (c.strip() for c in cells)
        mib = number(mem)
        gpus.append(
            {
                "tool": "nvidia-smi",
                "index": int(index) if index.isdigit() else None,
                "name": name,
                "uuid": uuid,
                "driver_version": driver,
                "vbios_version": vbios,
                "memory_total_bytes": None if mib is None else int(mib * 2**20),
                "pci_bus_id": normalise_bus_id(bus),
            }
        )
    return gpus


def xpu_gpus() -> list[GpuRecord] | None:
    """xpu-smi's own JSON per device (name, driver, firmware versions, PCI
    address, ...), kept whole: its keys differ between xpu-smi releases."""
    exe = shutil.which("xpu-smi")
    if not exe:
        return None
    rc, out, err = run_tool([exe, "discovery", "-j"])
    try:
        listing = json.loads(out) if rc == 0 else None
    except ValueError:
        listing = None
    if not isinstance(listing, dict):
        return [{"tool": "xpu-smi", "error": (err.strip() or f"exit {rc}: unreadable output").splitlines()[-1]}]
    gpus = []
    for dev in listing.get("device_list", [])[:16]:
        detail = dev
        rc, out, _ = run_tool([exe, "discovery", "-d", str(dev.get("device_id", 0)), "-j"])
        if rc == 0:
            with contextlib.suppress(ValueError):  # unreadable details: the listing's entry stands
                detail = {**dev, **json.loads(out)}
        gpus.append({"tool": "xpu-smi", **detail})
    return gpus


def gpu_inventory() -> tuple[list[GpuRecord], str | None]:
    """(the GPUs, the tools that listed them). NVIDIA's `index` is the driver's
    (PCI bus order), not torch's; `pci_bus_id` is what names a GPU."""
    gpus: list[GpuRecord] = []
    tools: list[str] = []
    nvidia = nvml_gpus()
    for name, found in (
        ("nvml", nvidia),
        ("nvidia-smi", nvidia_smi_gpus() if nvidia is None else None),
        ("xpu-smi", xpu_gpus()),
    ):
        if found is not None:
            tools.append(name)
            gpus.extend(found)
    return gpus, ",".join(tools) or None
