"""Will the run fit in memory? An estimate made before any stream starts.

A run that does not fit is killed by the kernel part-way (the launcher itself
among the candidates), leaving no result and no message; refusing it at start
costs a second. The estimate is

    streams x (base + (2 inputs + INTERPOLATION outputs) x BATCH_SIZE x frame bytes
               x working-set factor + dataset read-ahead)

against the memory the run may use: the cgroup limit (a container's) or, below
it, what the kernel says is available now (MemAvailable).

Host memory only: on CUDA and XPU the frames and activations live in the
device's memory, which is the device's business (out of scope here).

Afterwards, `exit_reason` tells the launcher whether a stream SIGKILLed by
nobody in particular was the OOM killer's doing.
"""

from __future__ import annotations

import os
import signal
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rifebench.errors import UsageError
from rifebench.measure import topology

if TYPE_CHECKING:
    from rifebench.config import Config

MB = 1 << 20

# Peak resident memory of one stream process (ru_maxrss, as results.json's
# streams[].memory.peak_rss_bytes reports it), measured once with STREAMS=1 on
# the 2-core CPU machine this was written on (torch 2.13 CPU, fp32, batch 1,
# INTERPOLATION=1, DUMMY):
#   null model: 240 MB at 64x64, 341 MB at 1024x1024
#   model 4.0:  393 MB at 64x64, 823 MB at 1024x1024, 1753 MB at 2048x2048
# The 64x64 figure is the base (interpreter, torch, the network's weights).
# What grows with the frame, per pair's 3 frames (2 in, 1 out) of 3 x H x W
# float32 (12.6 MB at 1024x1024, 50 MB at 2048x2048), is the working-set
# factor: 11.4 at 1024 and 9.0 at 2048 for RIFE's activations, so 10 (within
# about 10% of both); (341 - 240) / 37.7 = 2.7 for the null model (input
# copies and padding only). Other RIFE versions are taken to be like 4.0.
BASE_BYTES = {"null": 240 * MB, "rife": 393 * MB}
WORKING_SET_FACTOR = {"null": 2.7, "rife": 10.0}
BYTES_PER_VALUE = 4  # counted as float32 whatever PRECISION: lower precisions need less, so it errs high


@dataclass(frozen=True)
class Estimate:
    height: int  # the frame as the run sees it (DATA_HEIGHT x DATA_WIDTH, or the dataset's)
    width: int
    per_stream_bytes: int
    total_bytes: int
    source: str  # where the frame size came from


def png_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(height, width) from a PNG's header (IHDR), without decoding it."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return height, width


def frame_size(cfg: Config) -> tuple[int, int, str]:
    """The run's frame: DATA_HEIGHT x DATA_WIDTH in dummy mode, the dataset's first image otherwise."""
    root = cfg.dataset_dir  # set in video and quality mode (config.validate)
    if root is not None and cfg.mode == "video":
        from rifebench.data.video_io import frame_size as video_size

        size = video_size(root)
        if size is not None:
            return size[0], size[1], f"the video's frames ({os.path.basename(root)})"
    elif root is not None and not cfg.dummy:
        from rifebench.data.vimeo import DatasetError, triplets

        first: Path | None
        try:
            first = triplets(root, 1)[2][0].first
        except DatasetError:
            first = None
        if first is not None and (size := png_size(first)) is not None:
            return size[0], size[1], f"the dataset's frames ({first.name} of its first entry)"
    return cfg.data_height, cfg.data_width, "--data-height/DATA_HEIGHT x --data-width/DATA_WIDTH"


def estimate(cfg: Config) -> Estimate:
    from rifebench.data import vimeo
    from rifebench.data.batch import PENDING_BYTES

    kind = "null" if cfg.spec.weights_file is None else "rife"
    h, w, source = frame_size(cfg)
    ph, pw = cfg.spec.padded_size(h, w, cfg.scale)
    frame = 3 * ph * pw * BYTES_PER_VALUE
    work = (2 + cfg.interpolation) * cfg.batch_size * frame * WORKING_SET_FACTOR[kind]
    data = 0
    if not cfg.dummy:
        # Read-ahead: two float32 inputs and the 8-bit ground truth per triplet, as many
        # as vimeo's _ahead keeps beside the batch in hand; plus the 8-bit
        # predictions kept for scoring, up to PENDING_BYTES.
        triplet = 2 * 3 * h * w * 4 + 3 * h * w
        ahead = min(cfg.num_inputs, vimeo.PREFETCH, max(1, vimeo.PREFETCH_BYTES // triplet))
        kept = min(PENDING_BYTES, cfg.num_inputs * 3 * h * w)
        data = (ahead + cfg.batch_size) * triplet + kept
    per_stream = int(BASE_BYTES[kind] + work + data)
    return Estimate(h, w, per_stream, cfg.streams * per_stream, source)


def available() -> tuple[int | None, str]:
    """Bytes the run may still use and where that was read: MemAvailable, capped
    by the cgroup's limit (memory.max / memory.limit_in_bytes) when there is one."""
    mem = topology.read_meminfo().get("MemAvailable")
    limit = topology.read_memory_limit()
    if limit is not None and (mem is None or limit[0] < mem):
        return limit[0], f"the cgroup limit, {limit[1]}"
    return mem, "MemAvailable in /proc/meminfo"


def gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def check(cfg: Config, free: tuple[int | None, str] | None = None) -> Estimate:
    """Raise UsageError when the estimate exceeds what is available. `free`:
    (bytes, where read), for tests; by default read from the kernel."""
    est = estimate(cfg)
    free_bytes, where = available() if free is None else free
    if free_bytes is not None and est.total_bytes > free_bytes:
        raise UsageError(
            f"--streams/STREAMS {cfg.streams} x frames of {est.height}x{est.width} ({est.source}) x "
            f"--batch-size/BATCH_SIZE {cfg.batch_size}: the run needs about {gb(est.total_bytes)} of memory "
            f"({gb(est.per_stream_bytes)} per stream, model {cfg.model}) but {gb(free_bytes)} is available "
            f"({where}) (accepted: fewer --streams/STREAMS, smaller --data-height/DATA_HEIGHT and "
            f"--data-width/DATA_WIDTH, or a smaller --batch-size/BATCH_SIZE)"
        )
    return est


OOM_REASON = "out of memory (killed by the kernel's OOM killer)"
LOW_MEMORY_PCT = 5.0  # MemAvailable under this share of MemTotal: the machine is out of memory


def oom_kills() -> int | None:
    found = topology.read_oom_kills()
    return None if found is None else found[0]


def exit_reason(code: int, oom_before: int | None) -> str:
    """Why a stream ended without a result. SIGKILL from nobody in particular is
    the OOM killer's when its counter moved since the launch (the cgroup's, else
    the machine's) or, with no counter to read, when memory is nearly gone."""
    if code >= 0:
        return f"exited with status {code} without a result"
    if code == -signal.SIGKILL:
        now = oom_kills()
        if now is not None and oom_before is not None:
            if now > oom_before:
                return OOM_REASON
        else:
            mem = topology.read_meminfo()
            total = mem.get("MemTotal")
            if total and mem.get("MemAvailable", total) < total * LOW_MEMORY_PCT / 100:
                return OOM_REASON
    return f"killed by signal {signal.Signals(-code).name}"
