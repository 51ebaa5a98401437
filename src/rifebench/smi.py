"""nvidia-smi and xpu-smi: what GPUs there are (for sysinfo) and what they did
while a benchmark row ran (telemetry, one sample a second).

The tools are optional: when one is not on PATH, or fails, the answer is empty
and says why; it never fails a run. Telemetry files are the tools' own CSV,
kept as written, and summarised per device column by column.
"""
from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
from pathlib import Path

QUERY_TIMEOUT_S = 20
NVIDIA_INVENTORY = "index,name,uuid,driver_version,vbios_version,memory.total,pci.bus_id"
NVIDIA_TELEMETRY = ("timestamp,index,utilization.gpu,utilization.memory,memory.used,memory.total,power.draw,"
                    "temperature.gpu,clocks.sm,clocks.mem")
# xpu-smi dump metric ids (stable across xpu-smi 1.x and 2.x): utilisation, power,
# frequency, core temperature, memory utilisation, memory used.
XPU_METRICS = "0,1,2,3,5,18"
# Column-name fragments (lower case) of the headline figures, for both tools.
HEADLINES = {
    "util_pct_mean": ("utilization.gpu", "gpu utilization"),
    "power_w_mean": ("power.draw", "gpu power"),
    "mem_used_mib_max": ("memory.used", "gpu memory used"),
}
DEVICE_COLUMNS = ("index", "deviceid")


def _run(cmd: list[str]) -> tuple[int | None, str, str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S)
        return proc.returncode, proc.stdout, proc.stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, "", f"{type(exc).__name__}: {exc}"


def nvidia_gpus() -> list[dict] | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    fields = NVIDIA_INVENTORY.split(",")
    rc, out, err = _run([exe, f"--query-gpu={NVIDIA_INVENTORY}", "--format=csv,noheader,nounits"])
    if rc != 0:
        return [{"tool": "nvidia-smi", "error": (err.strip() or out.strip() or f"exit {rc}").splitlines()[-1]}]
    gpus = []
    for row in csv.reader(out.strip().splitlines(), skipinitialspace=True):
        if len(row) == len(fields):
            gpus.append({"tool": "nvidia-smi", **dict(zip(fields, (c.strip() for c in row)))})
    return gpus


def xpu_gpus() -> list[dict] | None:
    """xpu-smi's own JSON per device (name, driver, firmware versions, ...), kept
    whole: its keys differ between xpu-smi releases."""
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
    gpus, tools = [], []
    for name, query in (("nvidia-smi", nvidia_gpus), ("xpu-smi", xpu_gpus)):
        found = query()
        if found is not None:
            tools.append(name)
            gpus.extend(found)
    return gpus, ",".join(tools) or None


class Telemetry:
    """Background samplers for one benchmark row; files go into `folder`."""

    def __init__(self, folder: Path, platform: str, devices: str | None = None):
        self.folder = Path(folder)
        self.jobs: list[tuple[list[str], Path]] = []
        self.procs: list[tuple[subprocess.Popen, object]] = []
        nvidia, xpu = shutil.which("nvidia-smi"), shutil.which("xpu-smi")
        if nvidia and platform in ("cuda", "auto"):
            cmd = [nvidia, f"--query-gpu={NVIDIA_TELEMETRY}", "--format=csv,nounits", "-l", "1"]
            self.jobs.append((cmd + (["-i", devices] if devices else []), self.folder / "telemetry-nvidia.csv"))
        if xpu and platform in ("xpu", "auto"):
            ids = devices.split(",") if devices else _xpu_ids()
            for d in ids:
                self.jobs.append(([xpu, "dump", "-d", d.strip(), "-m", XPU_METRICS],
                                  self.folder / f"telemetry-xpu{d.strip()}.csv"))

    def __bool__(self) -> bool:
        return bool(self.jobs)

    def start(self) -> None:
        for cmd, path in self.jobs:
            out = open(path, "w")
            try:
                self.procs.append((subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT), out))
            except OSError as exc:
                out.write(f"could not start {cmd[0]}: {exc}\n")
                out.close()

    def stop(self) -> dict | None:
        for proc, out in self.procs:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out.close()
        if not self.jobs:
            return None
        return summarise([path for _, path in self.jobs], self.jobs[0][0][0])


def _xpu_ids() -> list[str]:
    gpus = xpu_gpus() or []
    ids = [str(g["device_id"]) for g in gpus if "device_id" in g]
    return ids or ["0"]


def _number(text: str) -> float | None:
    try:
        value = float(text.strip().split()[0])
    except (ValueError, IndexError):
        return None
    return value if math.isfinite(value) else None


def read_samples(path: Path) -> dict[str, dict[str, list[float]]]:
    """{device: {column: [values]}} from a tool's CSV; lines that are not data
    (a repeated header, a message from the tool) are skipped."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return {}
    rows = list(csv.reader(lines, skipinitialspace=True))
    if not rows:
        return {}
    header = [h.strip() for h in rows[0]]
    dev_col = next((i for i, h in enumerate(header) if h.lower() in DEVICE_COLUMNS), None)
    out: dict[str, dict[str, list[float]]] = {}
    for row in rows[1:]:
        if len(row) != len(header) or [c.strip() for c in row] == header:
            continue
        device = row[dev_col].strip() if dev_col is not None else "0"
        cols = out.setdefault(device, {})
        for i, (name, cell) in enumerate(zip(header, row)):
            value = _number(cell)
            if i != dev_col and "timestamp" not in name.lower() and value is not None:
                cols.setdefault(name, []).append(value)
    return out


def summarise(paths: list[Path], tool: str) -> dict:
    devices: dict[str, dict[str, dict]] = {}
    samples = 0
    for path in paths:
        for dev, cols in read_samples(path).items():
            samples = max(samples, max((len(v) for v in cols.values()), default=0))
            devices[dev] = {c: {"mean": sum(v) / len(v), "min": min(v), "max": max(v), "count": len(v)}
                            for c, v in cols.items()}
    summary = {"tool": Path(tool).name, "files": [Path(p).name for p in paths], "samples": samples,
               "devices": devices}
    for key, fragments in HEADLINES.items():
        stats = [s for cols in devices.values() for c, s in cols.items()
                 if any(f in c.lower() for f in fragments)]
        if not stats:
            summary[key] = None
        elif key == "util_pct_mean":  # average over devices
            summary[key] = sum(s["mean"] for s in stats) / len(stats)
        elif key == "power_w_mean":  # the devices draw together
            summary[key] = sum(s["mean"] for s in stats)
        else:
            summary[key] = max(s["max"] for s in stats)
    return summary
