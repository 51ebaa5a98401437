"""The GPUs: what there is (`gpu_inventory`, for sysinfo) and what the GPUs of a
run did (`open_gpu_source`, sampled by telemetry.py in the timed window).

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

import csv
import json
import shutil
import subprocess
import threading

from rifebench.measure.topology import normalise_bus_id

TOOL_TIMEOUT_S = 20
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
NVIDIA_INVENTORY = "index,name,uuid,driver_version,vbios_version,memory.total,pci.bus_id"


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


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _run(cmd: list[str]) -> tuple[int | None, str, str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
        return proc.returncode, proc.stdout, proc.stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, "", f"{type(exc).__name__}: {exc}"


def _by_bus(gpus: list) -> dict:
    """normalised bus id -> torch index, for the GPUs whose bus id is known."""
    return {normalise_bus_id(g["pci_bus_id"]): g["index"] for g in gpus if g.get("pci_bus_id")}


# --- telemetry sources: sample() -> {torch index: fields} ------------------------------


class Nvml:
    name = "nvml"

    def __init__(self, gpus: list):
        import pynvml  # nvidia-ml-py

        self.nvml = pynvml
        pynvml.nvmlInit()
        self.handles = {idx: pynvml.nvmlDeviceGetHandleByPciBusId(bus) for bus, idx in _by_bus(gpus).items()}

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

    def energy_j(self) -> dict:
        out = {}
        for idx, h in self.handles.items():
            mj = self._try(self.nvml.nvmlDeviceGetTotalEnergyConsumption, h)
            out[idx] = None if mj is None else mj / 1000.0
        return out

    def close(self):
        self._try(self.nvml.nvmlShutdown)


class NvidiaSmi:
    """Every GPU in one query, each row matched to a torch index by its own
    pci.bus_id column, so nvidia-smi's order and `-i` numbering never matter."""

    name = "nvidia-smi"
    QUERY = "pci.bus_id,utilization.gpu,memory.used,power.draw,clocks.sm,clocks.mem,clocks_throttle_reasons.active"

    def __init__(self, gpus: list, exe: str):
        self.exe, self.by_bus = exe, _by_bus(gpus)

    def sample(self) -> dict:
        _, out, _ = _run([self.exe, f"--query-gpu={self.QUERY}", "--format=csv,noheader,nounits"])
        return parse_nvidia_smi(out, self.by_bus)

    def energy_j(self) -> dict:
        return {}

    def close(self):
        pass


def parse_nvidia_smi(text: str, by_bus: dict) -> dict:
    """One CSV row per GPU (the QUERY fields, no header, no units) -> {torch index: fields}."""
    out = {}
    rows = [[c.strip() for c in line.split(",")] for line in text.strip().splitlines() if line.count(",") >= 6]
    for r in rows:
        idx = by_bus.get(normalise_bus_id(r[0]))
        if idx is None:
            continue
        mem, mask = _num(r[2]), r[6]
        out[idx] = {
            "util_pct": _num(r[1]),
            "mem_used_bytes": None if mem is None else mem * 2**20,
            "power_w": _num(r[3]),
            "sm_clock_mhz": _num(r[4]),
            "mem_clock_mhz": _num(r[5]),
            "throttle": throttle_names(int(mask, 16)) if mask.lower().startswith("0x") else [],
        }
    return out


class XpuSmi:
    """Intel GPUs: a running `xpu-smi dump`, its CSV rows parsed by column name.
    `ids` maps xpu-smi device ids to torch xpu indices."""

    name = "xpu-smi"
    METRICS = "0,1,2,18"  # utilisation, power, frequency, memory used

    def __init__(self, ids: dict, exe: str):
        self.ids = ids
        self.proc = subprocess.Popen(
            [exe, "dump", "-d", ",".join(map(str, ids)), "-m", self.METRICS],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.latest, self.lock = {}, threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        header = None
        for line in self.proc.stdout:
            if "DeviceId" in line:
                header = [h.strip() for h in line.split(",")]
            elif header:
                row = parse_xpu_smi_row(header, line)
                if row is not None and row["device"] in self.ids:
                    with self.lock:
                        self.latest[self.ids[row.pop("device")]] = row

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
    return {
        "device": int(dev),
        "util_pct": find("GPU Utilization"),
        "power_w": find("Power"),
        "sm_clock_mhz": find("Frequency"),
        "mem_clock_mhz": None,
        "mem_used_bytes": None if mem is None else mem * 2**20,
        "throttle": [],
    }


def xpu_ids(gpus: list, listing: list) -> tuple[dict, str | None]:
    """{xpu-smi device id: torch index}: by PCI bus id where both sides know it,
    else the same number, which holds unless tiles are listed as devices."""
    bus_of_dev = {
        normalise_bus_id(d["pci_bdf_address"]): d.get("device_id")
        for d in listing
        if d.get("pci_bdf_address") and "device_id" in d
    }
    ids, guessed = {}, []
    for g in gpus:
        dev = bus_of_dev.get(normalise_bus_id(g["pci_bus_id"])) if g.get("pci_bus_id") else None
        if dev is None:
            dev = g["index"]
            guessed.append(g["index"])
        ids[int(dev)] = g["index"]
    note = f"xpu-smi device ids taken to be torch xpu indices for xpu {guessed}" if guessed else None
    return ids, note


def open_gpu_source(platform: str, gpus: list):
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


# --- the inventory ------------------------------------------------------------------------


def nvml_gpus() -> list[dict] | None:
    """Every NVIDIA GPU NVML sees, or None when NVML cannot be used here."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no module or no driver library: nvidia-smi may still answer
        return None
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)  # listing them all; the bus id is the identity
            gpus.append(
                {
                    "tool": "nvml",
                    "index": i,
                    "name": _text(pynvml.nvmlDeviceGetName(h)),
                    "uuid": _text(pynvml.nvmlDeviceGetUUID(h)),
                    "driver_version": driver,
                    "vbios_version": _text(pynvml.nvmlDeviceGetVbiosVersion(h)),
                    "memory_total_bytes": int(pynvml.nvmlDeviceGetMemoryInfo(h).total),
                    "pci_bus_id": normalise_bus_id(_text(pynvml.nvmlDeviceGetPciInfo(h).busId)),
                }
            )
        return gpus
    except Exception as exc:  # noqa: BLE001 - recorded, never raised
        return [{"tool": "nvml", "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}]
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def nvidia_smi_gpus() -> list[dict] | None:
    """The same record as nvml_gpus, from nvidia-smi; None when it is not on PATH."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    rc, out, err = _run([exe, f"--query-gpu={NVIDIA_INVENTORY}", "--format=csv,noheader,nounits"])
    if rc != 0:
        return [{"tool": "nvidia-smi", "error": (err.strip() or out.strip() or f"exit {rc}").splitlines()[-1]}]
    gpus = []
    for cells in csv.reader(out.strip().splitlines(), skipinitialspace=True):
        if len(cells) != 7:
            continue
        index, name, uuid, driver, vbios, mem, bus = (c.strip() for c in cells)
        mib = _num(mem)
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


def xpu_gpus() -> list[dict] | None:
    """xpu-smi's own JSON per device (name, driver, firmware versions, PCI
    address, ...), kept whole: its keys differ between xpu-smi releases."""
    exe = shutil.which("xpu-smi")
    if not exe:
        return None
    rc, out, err = _run([exe, "discovery", "-j"])
    try:
        listing = json.loads(out) if rc == 0 else None
    except ValueError:
        listing = None
    if not isinstance(listing, dict):
        return [{"tool": "xpu-smi", "error": (err.strip() or f"exit {rc}: unreadable output").splitlines()[-1]}]
    gpus = []
    for dev in listing.get("device_list", [])[:16]:
        detail = dev
        rc, out, _ = _run([exe, "discovery", "-d", str(dev.get("device_id", 0)), "-j"])
        if rc == 0:
            try:
                detail = {**dev, **json.loads(out)}
            except ValueError:
                pass
        gpus.append({"tool": "xpu-smi", **detail})
    return gpus


def gpu_inventory() -> tuple[list[dict], str | None]:
    """(the GPUs, the tools that listed them). NVIDIA's `index` is the driver's
    (PCI bus order), not torch's; `pci_bus_id` is what names a GPU."""
    gpus, tools = [], []
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
