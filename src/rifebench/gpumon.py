"""GPU telemetry sources, each `sample() -> {torch index: fields}`:
NVML through nvidia-ml-py, else `nvidia-smi`, on NVIDIA; `xpu-smi dump` on
Intel GPUs. Fields: util_pct, mem_used_bytes, power_w, sm_clock_mhz,
mem_clock_mhz, throttle (names of the active clock-limiting reasons).
"""
from __future__ import annotations

import shutil
import subprocess
import threading

THROTTLE_BITS = {0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
                 0x10: "sync_boost", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown",
                 0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting"}
GPU_FIELDS = ("util_pct", "mem_used_bytes", "power_w", "sm_clock_mhz", "mem_clock_mhz")


def throttle_names(mask: int | None) -> list[str]:
    if not mask:
        return []
    names = [name for bit, name in THROTTLE_BITS.items() if mask & bit]
    rest = mask & ~sum(THROTTLE_BITS)
    return names + ([f"other_0x{rest:x}"] if rest else [])


def _num(text: str) -> float | None:
    try:
        return float(text.strip().split()[0])
    except (ValueError, IndexError):
        return None  # "[N/A]", "N/A", "" and the like


class Nvml:
    """NVIDIA GPUs through NVML; handles found by PCI bus id, because NVML's
    indices ignore CUDA_VISIBLE_DEVICES and torch's do not."""

    name = "nvml"

    def __init__(self, gpus: list, nvml=None):
        if nvml is None:
            import pynvml as nvml  # nvidia-ml-py
        self.nvml = nvml
        nvml.nvmlInit()
        self.handles = {}
        for g in gpus:
            if g.get("pci_bus_id"):
                self.handles[g["index"]] = nvml.nvmlDeviceGetHandleByPciBusId(g["pci_bus_id"])
            else:
                self.handles[g["index"]] = nvml.nvmlDeviceGetHandleByIndex(g["index"])

    def _try(self, fn, *args):
        try:
            return fn(*args)
        except Exception:  # noqa: BLE001 - NVMLError_NotSupported and friends: the field is unknown
            return None

    def sample(self) -> dict:
        n, out = self.nvml, {}
        for idx, h in self.handles.items():
            util = self._try(n.nvmlDeviceGetUtilizationRates, h)
            mem = self._try(n.nvmlDeviceGetMemoryInfo, h)
            power = self._try(n.nvmlDeviceGetPowerUsage, h)
            reasons = self._try(getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None)
                                or n.nvmlDeviceGetCurrentClocksThrottleReasons, h)
            out[idx] = {"util_pct": getattr(util, "gpu", None), "mem_used_bytes": getattr(mem, "used", None),
                        "power_w": None if power is None else power / 1000.0,
                        "sm_clock_mhz": self._try(n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_SM),
                        "mem_clock_mhz": self._try(n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_MEM),
                        "throttle": throttle_names(reasons)}
        return out

    def energy_j(self) -> dict:
        out = {}
        for idx, h in self.handles.items():
            mj = self._try(self.nvml.nvmlDeviceGetTotalEnergyConsumption, h)
            out[idx] = None if mj is None else mj / 1000.0
        return out

    def close(self):
        self._try(self.nvml.nvmlShutdown)


class NvidiaSmi:
    name = "nvidia-smi"
    QUERY = ("pci.bus_id,utilization.gpu,memory.used,power.draw,clocks.sm,clocks.mem,"
             "clocks_throttle_reasons.active")

    def __init__(self, gpus: list, exe: str):
        from .topology import normalise_bus_id

        self.exe = exe
        self.by_bus = {normalise_bus_id(g["pci_bus_id"]): g["index"] for g in gpus if g.get("pci_bus_id")}
        self.indices = [g["index"] for g in gpus]

    def sample(self) -> dict:
        cmd = [self.exe, f"--query-gpu={self.QUERY}", "--format=csv,noheader,nounits"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return parse_nvidia_smi(proc.stdout, self.by_bus, self.indices)

    def energy_j(self) -> dict:
        return {}

    def close(self):
        pass


def parse_nvidia_smi(text: str, by_bus: dict, indices: list) -> dict:
    """One CSV row per GPU (the QUERY fields, no header, no units) -> by torch index.
    Without bus ids, rows are taken in nvidia-smi's order."""
    from .topology import normalise_bus_id

    out = {}
    rows = [[c.strip() for c in line.split(",")] for line in text.strip().splitlines() if line.count(",") >= 6]
    for pos, r in enumerate(rows):
        idx = by_bus.get(normalise_bus_id(r[0])) if by_bus else (indices[pos] if pos < len(indices) else None)
        if idx is None:
            continue
        mem = _num(r[2])
        mask = r[6].strip()
        out[idx] = {"util_pct": _num(r[1]), "mem_used_bytes": None if mem is None else mem * 2**20,
                    "power_w": _num(r[3]), "sm_clock_mhz": _num(r[4]), "mem_clock_mhz": _num(r[5]),
                    "throttle": throttle_names(int(mask, 16)) if mask.lower().startswith("0x") else []}
    return out


class XpuSmi:
    """Intel GPUs: a running `xpu-smi dump`, its CSV rows parsed by column name.
    Assumes xpu-smi's device ids are torch's xpu indices (true without tiles
    exposed as separate devices); the summary says so."""

    name = "xpu-smi"
    METRICS = "0,1,2,18"  # utilisation, power, frequency, memory used

    def __init__(self, gpus: list, exe: str):
        ids = ",".join(str(g["index"]) for g in gpus)
        self.proc = subprocess.Popen([exe, "dump", "-d", ids, "-m", self.METRICS], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        self.latest, self.lock = {}, threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        header = None
        for line in self.proc.stdout:
            if "DeviceId" in line:
                header = [h.strip() for h in line.split(",")]
            elif header:
                row = parse_xpu_smi_row(header, line)
                if row is not None:
                    with self.lock:
                        self.latest[row.pop("device")] = row

    def sample(self) -> dict:
        with self.lock:
            return {k: dict(v) for k, v in self.latest.items()}

    def energy_j(self) -> dict:
        return {}

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def parse_xpu_smi_row(header: list, line: str) -> dict | None:
    cells = dict(zip(header, (c.strip() for c in line.split(","))))
    dev = _num(cells.get("DeviceId", ""))
    if dev is None:
        return None

    def find(word):
        return next((_num(v) for k, v in cells.items() if word in k), None)

    mem = find("Memory Used")
    return {"device": int(dev), "util_pct": find("GPU Utilization"), "power_w": find("Power"),
            "sm_clock_mhz": find("Frequency"), "mem_clock_mhz": None,
            "mem_used_bytes": None if mem is None else mem * 2**20, "throttle": []}


def open_gpu_source(platform: str, gpus: list):
    """The best GPU telemetry source here, and a note when there is none."""
    if platform == "cuda":
        try:
            return Nvml(gpus), None
        except Exception as exc:  # noqa: BLE001 - no module, no library, no permission: try the CLI
            why = f"{type(exc).__name__}: {exc}".splitlines()[0]
        exe = shutil.which("nvidia-smi")
        if exe:
            return NvidiaSmi(gpus, exe), None
        return None, f"no GPU telemetry: NVML unusable ({why}) and nvidia-smi not on PATH"
    if platform == "xpu":
        exe = shutil.which("xpu-smi")
        if exe:
            return XpuSmi(gpus, exe), "xpu-smi device ids are taken to be torch xpu indices"
        return None, "no GPU telemetry: xpu-smi not on PATH"
    return None, None
