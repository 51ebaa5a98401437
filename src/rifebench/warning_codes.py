"""Warnings are data: a fixed registry of codes, each with a message template
and a remedy. Every layer makes warnings through `warning(CODE, **fields)`;
results.json holds them as {code, message, remedy}, the console prints them,
and summaries read the codes. The README lists every code (a test checks it).

`note` entries are information the user asked for or can ignore (recorded
apart, under `notes`); `warning` entries say a figure may be wrong or worse
than the machine can do.
"""

from __future__ import annotations

from dataclasses import dataclass

from rifebench.errors import RifebenchError


@dataclass(frozen=True)
class Code:
    code: str
    message: str  # str.format template over the fields given to warning()
    remedy: str
    level: str = "warning"  # warning | note


REGISTRY: dict[str, Code] = {
    c.code: c
    for c in (
        Code(
            "CPU_CONTENTION",
            "other processes used up to {pct:.0f}% of the CPUs of stream(s) {streams} during the timed window "
            "(allowed <= {limit:g}%): the machine was not quiet and the figures understate it",
            "find the other processes with top and rerun on a quiet machine",
        ),
        Code(
            "WEIGHTS_NOT_OFFICIAL",
            "weights {path} match the architecture of model {model} but are not the official file (sha256 {sha256})",
            "fetch the official weights with ./get_model.sh (installed: rifebench fetch-model), "
            "or ignore this for a speed-only run",
        ),
        Code(
            "RANDOM_WEIGHTS",
            "model {model} ran with seeded random weights of its official shapes (seed {seed}): no quality is "
            "scored, and the speed is the release's only where its work does not depend on the weights (4.0's "
            "large-motion re-run does)",
            "fetch the official weights with ./get_model.sh --model {model} (installed: rifebench fetch-model) "
            "and rerun without --random-weights",
        ),
        Code(
            "INT8_SYNTHETIC_CALIBRATION",
            "PRECISION=int8 is calibrated on {pairs} pairs of synthetic frames (no --calibration, no dataset or "
            "video in this run, no bundled triplets beside the checkout): activation ranges from a synthetic "
            "texture need not fit real video, so the INT8 figures may understate its quality",
            "give real frames of your content with --calibration DIR (a Vimeo-90K triplet folder) or a video file",
        ),
        Code(
            "PIN_FALLBACK",
            "{why}: pinning by CPU affinity instead, memory not bound",
            "in a container add --cap-add SYS_NICE; install numactl; or set PIN=affinity to silence this",
        ),
        Code(
            "CPU_QUOTA",
            "the cgroup CPU quota allows {quota:g} CPUs of the {cpus} in the affinity mask: streams are pinned to "
            "{share} of them",
            "give the container more CPUs (docker --cpus) to use all of them",
        ),
        Code(
            "STREAMS_OVERSUBSCRIBED",
            "{streams} streams on {cpus} usable CPUs: streams share CPUs round-robin, one CPU and one thread each; "
            "per-stream throughput drops and latency includes waiting for a CPU",
            "use STREAMS <= {cpus} for a clean measurement",
        ),
        Code(
            "KNOB_FALLBACK",
            "knob {knob}: {wanted} -> {effective}: {reason}",
            "set the knob explicitly to insist (the run then fails with the reason), or to its fallback to silence "
            "this",
        ),
        Code(
            "SOCKET_SEND_FAILED",
            "telemetry socket {path}: could not send {word!r}: {why}",
            "check that the collector listens on SOCKET for the whole run",
        ),
        Code(
            "GPU_SAMPLING_STOPPED",
            "GPU telemetry stopped during the run: {why}",
            "check the driver (nvidia-smi / xpu-smi); the measurement itself is not affected",
        ),
        Code(
            "HOST_BOUND",
            "{what} for only {busy_pct:.0f}% of the timed window (needs >= {limit:g}%): the host's kernel launches, "
            "not the device, limit this run",
            "OPTIMIZE=optimized (compiled graphs), a larger BATCH_SIZE, or more STREAMS",
        ),
        Code(
            "DISPERSION",
            "configuration {config}: pair times vary by {spread_pct:.0f}% ((p90 - p10) / median of {pairs} pairs): "
            "its FPS and speed-up are uncertain; see their 95% intervals",
            "quiet the machine, more rounds (--rounds) or pairs (--pairs)",
        ),
        Code(
            "TOO_FEW_SAMPLES",
            "too few timed submissions for a trustworthy figure: {detail}",
            "more timed submissions per stream: {how} (MIN_SAMPLES sets the bar)",
        ),
        Code(
            "THROTTLED",
            "the GPU's clocks were held down during the timed window: {detail}",
            "cool the device or raise its power limit, and rerun; compare only runs under the same limits",
        ),
        Code(
            "WINDOWS_MISALIGNED",
            "the streams' timed windows did not overlap enough: {detail}",
            "check that every stream started together (BARRIER_TIMEOUT) and ran the same work",
        ),
        Code(
            "NO_STEADY_STATE",
            "latency drifted during the timed window: {detail}",
            "warm up longer (WARMUP) or run longer, and check the clocks and other load",
        ),
        Code(
            "IMAGE_CONVERTED",
            "dataset image {path}: {what} (said once per stream for each kind of conversion)",
            "convert the dataset to 8-bit 3-channel PNGs to score exactly what the reference scores",
        ),
        Code(
            "SHARED_CORES",
            "{streams} streams on {cores} physical cores: streams get single hardware threads and may share a core",
            "use STREAMS <= {cores} for streams that do not share cores",
            level="note",
        ),
        Code(
            "NUMA_SPAN",
            "stream(s) {spanning} span NUMA nodes: a share of {share} {what} does not fit one node (nodes {nodes})",
            "use a multiple of {n_nodes} streams to keep each stream on one node",
            level="note",
        ),
        Code(
            "NUMA_GPU_NODE",
            "GPU streams are kept on their GPU's NUMA node: {fit} of {share} possible {what} each; the other nodes' "
            "CPUs stay idle",
            "set PIN=affinity or PIN=none to use every CPU",
            level="note",
        ),
        Code(
            "NUMA_GPU_MISMATCH",
            "stream {stream}'s GPU is on NUMA node {gpu_node}, but its CPUs are on node(s) {cpu_nodes}",
            "use fewer streams per GPU node, or DEVICES to choose GPUs on the streams' nodes",
            level="note",
        ),
        Code(
            "CPUS_IDLE",
            "CPUs {cpus} stay idle so that every stream gets the same share",
            "choose STREAMS dividing the number of usable CPUs",
            level="note",
        ),
        Code(
            "DEVICES_IGNORED",
            "DEVICES is ignored on the CPU platform",
            "unset DEVICES, or choose PLATFORM=cuda or xpu",
            level="note",
        ),
        Code(
            "PIN_NONE",
            "PIN=none: streams are not pinned; each uses its CPU share as its thread count",
            "PIN=auto pins each stream to its own CPUs",
            level="note",
        ),
        Code(
            "PIN_FALLBACK_QUIET",
            "{why}: pinning by CPU affinity instead (one NUMA node: nothing to bind)",
            "install numactl to pin with it",
            level="note",
        ),
    )
}


class UnknownWarning(RifebenchError, KeyError):
    pass


def warning(code: str, **fields) -> dict:
    """A warning as plain data: {code, message, remedy, level} (crosses process boundaries as is)."""
    try:
        c = REGISTRY[code]
    except KeyError:
        raise UnknownWarning(f"warning code {code!r} is not in the registry") from None
    return {
        "code": c.code,
        "message": c.message.format(**fields),
        "remedy": c.remedy.format(**fields),
        "level": c.level,
    }


def split(items: list[dict]) -> tuple[list[dict], list[dict]]:
    """(warnings, notes)."""
    return [w for w in items if w["level"] == "warning"], [w for w in items if w["level"] != "warning"]


def line(w: dict) -> str:
    """How the console shows one: `warning [CODE]: message (remedy: ...)`."""
    return f"{w['level']} [{w['code']}]: {w['message']} (remedy: {w['remedy']})"


def markdown_table() -> str:
    """The README's table of codes, generated from the registry."""
    rows = ["| code | level | what it says | remedy |", "|---|---|---|---|"]
    for c in REGISTRY.values():
        rows.append(f"| `{c.code}` | {c.level} | {c.message} | {c.remedy} |")
    return "\n".join(rows)
