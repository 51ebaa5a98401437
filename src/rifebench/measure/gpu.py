"""What the GPUs of a run did (`open_gpu_source`, sampled by telemetry.py in the
timed window); what GPUs there are is inventory.py's.

NVIDIA: NVML through nvidia-ml-py (imported as pynvml, optional), else the
`nvidia-smi` CLI. Intel: `xpu-smi`. A GPU is named by its PCI bus id, never by
its index: torch numbers CUDA devices in CUDA order (fastest first unless
CUDA_DEVICE_ORDER=PCI_BUS_ID, and only those in CUDA_VISIBLE_DEVICES) while NVML
and nvidia-smi number them in PCI bus order, so one index can name two GPUs.
The caller gives each torch index with its bus id (topology.gpu_identity);
samples come back keyed by the torch index. Sample fields: util_pct,
mem_used_bytes, power_w, sm_clock_mhz, mem_clock_mhz, throttle (the names of
the active clock-limiting reasons).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable
from typing import Any, Protocol

from rifebench.measure.inventory import GpuRecord, number, run_tool, xpu_gpus
from rifebench.measure.topology import normalise_bus_id

Sample = dict[str, Any]  # util_pct, mem_used_bytes, power_w, ... of one GPU

THROTTLE_BITS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}


def throttle_names(mask: int | None) -> list[str]:
    if not mask:
        return []
    names = [name for bit, name in THROTTLE_BITS.items() if mask & bit]
    rest = mask & ~sum(THROTTLE_BITS)
    return names + ([f"other_0x{rest:x}"] if rest else [])


def _by_bus(gpus: list[GpuRecord]) -> dict[str, int]:
    """normalised bus id -> torch index, for the GPUs whose bus id is known."""
    return {normalise_bus_id(g["pci_bus_id"]): g["index"] for g in gpus if g.get("pci_bus_id")}


# --- telemetry sources: sample() -> {torch index: fields} ------------------------------


class GpuSource(Protocol):
    name: str

    def sample(self) -> dict[int, Sample]: ...

    def energy_j(self) -> dict[int, float | None]: ...

    def close(self) -> None: ...


class Nvml:
    name = "nvml"

    def __init__(self, gpus: list[GpuRecord]):
        import pynvml  # nvidia-ml-py

        self.nvml = pynvml
        pynvml.nvmlInit()
        self.handles = {idx: pynvml.nvmlDeviceGetHandleByPciBusId(bus) for bus, idx in _by_bus(gpus).items()}

    def _try(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:  # noqa: BLE001 - NVMLError_NotSupported and friends: the field is unknown
            return None

    def sample(self) -> dict[int, Sample]:
        n, out = self.nvml, {}
        for idx, h in self.handles.items():
            util = self._try(n.nvmlDeviceGetUtilizationRates, h)
            mem = self._try(n.nvmlDeviceGetMemoryInfo, h)
            power = self._try(n.nvmlDeviceGetPowerUsage, h)
            reasons = self._try(
                getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None)
                or n.nvmlDeviceGetCurrentClocksThrottleReasons,
                h,
            )
            out[idx] = {
                "util_pct": getattr(util, "gpu", None),
                "mem_used_bytes": getattr(mem, "used", None),
                "power_w": None if power is None else power / 1000.0,
                "sm_clock_mhz": self._try(n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_SM),
                "mem_clock_mhz": self._try(n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_MEM),
                "throttle": throttle_names(reasons),
            }
        return out

    def energy_j(self) -> dict[int, float | None]:
        out = {}
        for idx, h in self.handles.items():
            mj = self._try(self.nvml.nvmlDeviceGetTotalEnergyConsumption, h)
            out[idx] = None if mj is None else mj / 1000.0
        return out

    def close(self) -> None:
        self._try(self.nvml.nvmlShutdown)


class NvidiaSmi:
    """Every GPU in one query, each row matched to a torch index by its own
    pci.bus_id column, so nvidia-smi's order and `-i` numbering never matter."""

    name = "nvidia-smi"
    QUERY = "pci.bus_id,utilization.gpu,memory.used,power.draw,clocks.sm,clocks.mem,clocks_throttle_reasons.active"

    def __init__(self, gpus: list[GpuRecord], exe: str):
        self.exe, self.by_bus = exe, _by_bus(gpus)

    def sample(self) -> dict[int, Sample]:
        _, out, _ = run_tool([self.exe, f"--query-gpu={self.QUERY}", "--format=csv,noheader,nounits"])
        return parse_nvidia_smi(out, self.by_bus)

    def energy_j(self) -> dict[int, float | None]:
        return {}

    def close(self) -> None:
        pass


def parse_nvidia_smi(text: str, by_bus: dict[str, int]) -> dict[int, Sample]:
    """One CSV row per GPU (the QUERY fields, no header, no units) -> {torch index: fields}."""
    out = {}
    rows = [[c.strip() for c in line.split(",")] for line in text.strip().splitlines() if line.count(",") >= 6]
    for r in rows:
        idx = by_bus.get(normalise_bus_id(r[0]))
        if idx is None:
            continue
        mem, mask = number(r[2]), r[6]
        out[idx] = {
            "util_pct": number(r[1]),
            "mem_used_bytes": None if mem is None else mem * 2**20,
            "power_w": number(r[3]),
            "sm_clock_mhz": number(r[4]),
            "mem_clock_mhz": number(r[5]),
            "throttle": throttle_names(int(mask, 16)) if mask.lower().startswith("0x") else [],
        }
    return out


class XpuSmi:
    """Intel GPUs: a running `xpu-smi dump`, its CSV rows parsed by column name.
    `ids` maps xpu-smi device ids to torch xpu indices."""

    name = "xpu-smi"
    METRICS = "0,1,2,18"  # utilisation, power, frequency, memory used

    def __init__(self, ids: dict[int, int], exe: str):
        self.ids = ids
        self.proc = subprocess.Popen(
            [exe, "dump", "-d", ",".join(map(str, ids)), "-m", self.METRICS],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.latest: dict[int, Sample] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        header = None
        assert self.proc.stdout is not None  # opened with stdout=PIPE
        for line in self.proc.stdout:
            if "DeviceId" in line:
                header = [h.strip() for h in line.split(",")]
            elif header:
                row = parse_xpu_smi_row(header, line)
                if row is not None and row["device"] in self.ids:
                    with self.lock:
                        self.latest[self.ids[row.pop("device")]] = row

    def sample(self) -> dict[int, Sample]:
        with self.lock:
            return {k: dict(v) for k, v in self.latest.items()}

    def energy_j(self) -> dict[int, float | None]:
        return {}

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def parse_xpu_smi_row(header: list[str], line: str) -> dict[str, Any] | None:
    cells = dict(zip(header, (c.strip() for c in line.split(",")), strict=False))  # a short row lacks its last cells
    dev = number(cells.get("DeviceId", ""))
    if dev is None:
        return None

    def find(word: str) -> float | None:
        return next((number(v) for k, v in cells.items() if word in k), None)

    mem = find("Memory Used")
    return {
        "device": int(dev),
        "util_pct": find("GPU Utilization"),
        "power_w": find("Power"),
        "sm_clock_mhz": find("Frequency"),
        "mem_clock_mhz": None,
        "mem_used_bytes": None if mem is None else mem * 2**20,
        "throttle": [],
    }


def xpu_ids(gpus: list[GpuRecord], listing: list[dict[str, Any]]) -> tuple[dict[int, int], str | None]:
    """{xpu-smi device id: torch index}: by PCI bus id where both sides know it,
    else the same number, which holds unless tiles are listed as devices."""
    bus_of_dev = {
        normalise_bus_id(d["pci_bdf_address"]): d.get("device_id")
        for d in listing
        if d.get("pci_bdf_address") and "device_id" in d
    }
    ids: dict[int, int] = {}
    guessed: list[int] = []
    for g in gpus:
        dev = bus_of_dev.get(normalise_bus_id(g["pci_bus_id"])) if g.get("pci_bus_id") else None
        if dev is None:
            dev = g["index"]
            guessed.append(g["index"])
        ids[int(dev)] = g["index"]
    note = f"xpu-smi device ids taken to be torch xpu indices for xpu {guessed}" if guessed else None
    return ids, note


def open_gpu_source(platform: str, gpus: list[GpuRecord]) -> tuple[GpuSource | None, str | None]:
    """The best telemetry source for these GPUs ({"index", "pci_bus_id"} each),
    and a note when there is none or some GPU cannot be told apart."""
    if not gpus:
        return None, None
    if platform == "cuda":
        named = [g for g in gpus if g.get("pci_bus_id")]
        unknown = [g["index"] for g in gpus if not g.get("pci_bus_id")]
        note = f"cuda {unknown} not sampled: torch gave no PCI bus id" if unknown else None
        try:
            return Nvml(named), note
        except Exception as exc:  # noqa: BLE001 - no module, no library, no permission: try the CLI
            why = f"{type(exc).__name__}: {exc}".splitlines()[0]
        exe = shutil.which("nvidia-smi")
        if exe:
            return NvidiaSmi(named, exe), note
        return None, f"no GPU telemetry: NVML unusable ({why}) and nvidia-smi not on PATH"
    if platform == "xpu":
        exe = shutil.which("xpu-smi")
        if exe:
            ids, note = xpu_ids(gpus, [g for g in xpu_gpus() or [] if "error" not in g])
            return XpuSmi(ids, exe), note
        return None, "no GPU telemetry: xpu-smi not on PATH"
    return None, None
