"""One inference stream: load, warm up, wait at the start barrier, run the timed
loop, return raw samples as plain data.

The stream knows the model and the clock, not processes or files: the launcher
hands it a `Link` (barrier, stop flag, progress counter, common start time) and
gets a dict back. All times are time.monotonic(), one clock for every process
on the machine, so windows of different streams can be compared.
"""
from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass
from typing import Any


@dataclass
class Link:
    """What a stream shares with the launcher. Only these cross the boundary."""

    stream_id: int
    barrier: Any  # wait(timeout) until the launcher releases all streams (worker.Gate)
    start_time: Any  # .value: the common start time the launcher stamped
    stop: Any  # .is_set(): stop early (Ctrl-C, another stream failed)
    progress: Any  # progress[stream_id] = pairs done
    barrier_timeout: float
    device_index: int = 0
    threads: int | None = None  # the stream's CPU share (None: its affinity mask)


class StreamAborted(RuntimeError):
    pass


def configure_threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def build(cfg, device_index: int = 0):
    """Backend, model and inference wrapper for this stream, all from the config."""
    from .backends import Backend, torch_dtype
    from .interp import Interpolator
    from .knobs import probe_caps, resolve
    from .weights import load_model

    backend = Backend(cfg.platform, device_index)
    net = load_model(cfg.spec, cfg.load_path)
    knobs = resolve(cfg, cfg.platform, probe_caps(cfg.platform, net, cfg))  # effective values + fallbacks
    backend.configure(knobs.values)
    interp = Interpolator(net, cfg.spec, backend.device, torch_dtype(cfg.precision), amp=cfg.amp,
                          scale=cfg.scale, optimize=backend.optimizer(), **knobs.interpolator_options())
    interp.knobs = knobs
    return backend, interp


def make_source(cfg, interp, stream_id: int):
    if cfg.dummy:
        from .sources import DummySource

        return DummySource(cfg, interp)
    from .dataset import DatasetSource

    return DatasetSource(cfg, interp, stream_id)


def should_stop(cfg, frames: int, elapsed: float, total: int | None) -> bool:
    """The reference stop rule. Dummy: frames >= NUM_INPUTS and t >= MIN, or
    t >= MAX (durations override the count). Dataset: the list is done."""
    if total is not None:
        return frames >= total
    if cfg.max_test_duration is not None and elapsed >= cfg.max_test_duration:
        return True
    return frames >= cfg.num_inputs and elapsed >= cfg.min_test_duration


def run_stream(cfg, link: Link, report) -> dict:
    """Runs in the stream's own process. `report(kind, payload)` sends a message
    to the launcher (ready/progress); the returned dict is the stream's result."""
    result: dict = {"id": link.stream_id, "pid": os.getpid(), "status": "failed"}
    cpus = sorted(os.sched_getaffinity(0))  # read back, not just intended
    result["cpus"] = cpus
    configure_threads(link.threads or len(cpus))
    result["threads"] = link.threads or len(cpus)
    t_setup = time.monotonic()
    backend, interp = build(cfg, link.device_index)
    source = make_source(cfg, interp, link.stream_id)
    result["device"] = backend.describe()
    result["setup_s"] = time.monotonic() - t_setup
    n_frames = cfg.interpolation
    total = len(source) if source.checks_quality else None
    if total is not None:
        total = min(total, cfg.num_inputs)

    # Warm-up: the same work as the timed loop, outside it.
    t0 = time.monotonic()
    warmup = max(cfg.warmup, interp.warmup_needed)  # compile/graph capture never land in the timed loop
    for i in range(warmup):
        a, b, _ = source.get(i % total if total else i)
        interp.interpolate(a, b, n_frames)
    backend.sync()
    result["warmup"] = {"pairs": warmup, "seconds": time.monotonic() - t0}
    backend.reset_peak_memory()

    report("ready", {"warmup": result["warmup"], "setup_s": result["setup_s"]})
    link.barrier.wait(timeout=link.barrier_timeout)
    start = link.start_time.value
    latencies: list[float] = []
    frames = 0
    sync_every = cfg.async_
    try:
        while not should_stop(cfg, frames, time.monotonic() - start, total):
            if link.stop.is_set():
                raise StreamAborted("stopped by the launcher")
            a, b, meta = source.get(frames)
            t_before = time.monotonic()
            outs = interp.interpolate(a, b, n_frames)
            if source.checks_quality or (sync_every and (frames + 1) % sync_every == 0):
                backend.sync()
            latencies.append((time.monotonic() - t_before) * 1000.0)
            if source.checks_quality:
                source.consume(frames, meta, outs)  # scoring and saving, after the timed region
            frames += 1
            link.progress[link.stream_id] = frames
        if source.checks_quality:
            source.drain()  # the last pairs' scoring belongs to the end-to-end time
        backend.sync()  # drain queued work before reading the end time (ASYNC=0)
        end = time.monotonic()
        result["status"] = "completed"
    except StreamAborted:
        backend.sync()
        end = time.monotonic()
        result["status"] = "interrupted"
    except Exception as exc:
        if not source.checks_quality:
            raise
        # Dataset mode: a bad triplet mid-run fails the stream but keeps the frames
        # already measured (they go to results.json, marked incomplete).
        end = time.monotonic()
        result["status"] = "failed"
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
    finally:
        if cfg.saveimages and cfg.dummy and link.stream_id == 0:
            a, b, _ = source.get(0)
            _save_fingerprint(cfg, interp.interpolate(a, b, n_frames)[0])
        source.close()
    result.update(
        frames=frames,
        images=frames * n_frames,
        start=start,
        end=end,
        latency_ms=latencies,
        model_seconds=sum(latencies) / 1000.0,
        memory=backend.memory(),
        knobs=interp.knobs.to_dict() | {"runtime": interp.runtime()} if getattr(interp, "knobs", None) else None,
    )
    if source.checks_quality:
        result["quality"] = source.summary()
    return result


def _save_fingerprint(cfg, frame) -> None:
    """The output frame (t = 1/(N+1)) of the dummy pair, as 8-bit PNG and a
    lossless float copy, so two runs of any configuration can be compared for
    quality. Made after the timed loop."""
    import numpy as np

    from .imageio import save_png

    folder = os.path.join(cfg.output_dir, "images")
    os.makedirs(folder, exist_ok=True)
    arr = frame[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    np.save(os.path.join(folder, "dummy_0.npy"), arr)
    save_png(os.path.join(folder, "dummy_0.png"), arr)


def stream_entry(cfg_fields: dict, link: Link, queue) -> None:
    """Process entry point (spawned). Every outcome ends in exactly one message."""
    from .config import Config

    def report(kind, payload):
        queue.put((kind, link.stream_id, payload))

    try:
        cfg = Config(**cfg_fields)
        result = run_stream(cfg, link, report)
        report("result", result)
    except BaseException as exc:  # noqa: BLE001 - the launcher must hear about every failure
        try:
            link.barrier.abort()  # wake the others: no stream waits for a dead one
        except Exception:
            pass
        report("error", {"error": f"{type(exc).__name__}: {exc}".strip(), "traceback": traceback.format_exc()})
