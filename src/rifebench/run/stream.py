"""One inference stream: load, warm up, wait at the start barrier, run the timed
loop, return raw samples as plain data.

The stream knows the model and the clock, not processes or files: the launcher
hands it a `Link` (barrier, stop flag, progress counter, common start time) and
gets a dict back; the report writes the files. All window times are
time.monotonic(), one clock for every process on the machine, so windows of
different streams can be compared; what one submission costs is timed by
timer.PairTimer (host clock, and device events where the device has them).
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass
from typing import Any

from rifebench.run.timer import PairTimer


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
    from rifebench.backends.device import Backend, torch_dtype
    from rifebench.backends.knobs import probe_caps, resolve
    from rifebench.models.interp import Interpolator
    from rifebench.models.weights import load_model

    backend = Backend(cfg.platform, device_index)
    net = load_model(cfg.spec, cfg.load_path, {k: getattr(cfg, k) for k in cfg.spec.build_options})
    knobs = resolve(cfg, cfg.platform, probe_caps(cfg.platform, net, cfg))  # effective values + fallbacks
    if cfg.runtime != "torch":  # the exported graph in a runtime runs in the eager network's place
        from rifebench.runtimes.net import adopt

        net = adopt(net, cfg, knobs, device_index)
    backend.configure(knobs.values)
    dtype = getattr(net, "io_dtype", None) or torch_dtype(cfg.precision)  # a runtime's graph has its own I/O dtype
    interp = Interpolator(
        net,
        cfg.spec,
        backend.device,
        dtype,
        amp=cfg.amp,
        scale=cfg.scale,
        optimize=backend.optimizer(),
        **knobs.interpolator_options(),
    )
    interp.knobs = knobs
    return backend, interp


def make_source(cfg, interp, stream_id: int):
    if cfg.dummy:
        from rifebench.data.dummy import DummySource

        return DummySource(cfg, interp)
    if cfg.mode == "video":
        from rifebench.data.video import VideoSource

        return VideoSource(cfg, interp, stream_id)
    from rifebench.data.vimeo import DatasetSource

    return DatasetSource(cfg, interp, stream_id)


def should_stop(cfg, pairs: int, elapsed: float, total: int | None) -> bool:
    """The reference stop rule. Dummy: pairs >= NUM_INPUTS and t >= MIN, or
    t >= MAX (durations override the count). Dataset: the list is done."""
    if total is not None:
        return pairs >= total
    if cfg.max_test_duration is not None and elapsed >= cfg.max_test_duration:
        return True
    return pairs >= cfg.num_inputs and elapsed >= cfg.min_test_duration


def warm_up(cfg, source, interp, backend, total: int | None) -> dict:
    """The same work as the timed loop, outside it; compilation and graph capture
    (interp.warmup_needed) never land in the timed loop."""
    t0 = time.monotonic()
    calls = max(-(-cfg.warmup // cfg.batch_size), interp.warmup_needed)
    pairs = 0
    for i in range(calls):
        start = (i * cfg.batch_size) % total if total else 0
        batch = source.get(start, min(cfg.batch_size, total - start) if total else cfg.batch_size)
        interp.interpolate(batch.img0, batch.img1, cfg.interpolation)
        pairs += batch.size
    backend.sync()
    return {"pairs": pairs, "calls": calls, "seconds": time.monotonic() - t0}


@dataclass
class Timed:
    """What the timed loop measured."""

    status: str = "failed"  # completed | interrupted | failed
    end: float | None = None
    pairs: int = 0
    sizes: list | None = None  # pairs in each submission
    error: dict | None = None
    fingerprint: Any = None  # dummy mode: the first output frame, for --saveimages
    scored_end: float | None = None  # quality mode: when the scoring after the window ended


def timed_loop(cfg, link: Link, source, interp, backend, timer: PairTimer, start: float, total: int | None) -> Timed:
    """Submissions of BATCH_SIZE pairs until the stop rule says so. Dataset
    mode synchronises after every submission (the frames are scored) and
    scores outside the timed region."""
    out = Timed(sizes=[])
    keep_output = cfg.saveimages and cfg.dummy and link.stream_id == 0
    try:
        while not should_stop(cfg, out.pairs, time.monotonic() - start, total):
            if link.stop.is_set():
                raise StreamAborted("stopped by the launcher")
            want = min(cfg.batch_size, total - out.pairs) if total is not None else cfg.batch_size
            batch = source.get(out.pairs, want)
            outs = timer(
                lambda: interp.interpolate(batch.img0, batch.img1, cfg.interpolation), sync=source.checks_quality
            )
            if source.checks_quality:
                source.consume(batch, outs)  # scoring and saving, after the timed region
            if keep_output and out.fingerprint is None:
                out.fingerprint = outs[0][:1]  # its host copy is made after the window
            out.pairs += batch.size
            out.sizes.append(batch.size)
            link.progress[link.stream_id] = out.pairs
        backend.sync()  # drain queued work before reading the end time (ASYNC=0)
        out.status = "completed"
    except StreamAborted:
        backend.sync()
        out.status = "interrupted"
    except Exception as exc:
        if not source.checks_quality:
            raise
        # Dataset mode: a bad triplet mid-run fails the stream but keeps the frames
        # already measured (they go to results.json, marked incomplete).
        out.error = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    out.end = time.monotonic()
    return out


def _host_frame(frame):
    """1x3xHxW device tensor -> HxWx3 float32 numpy in [0, 1]: plain data for the report."""
    return frame[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def run_stream(cfg, link: Link, report) -> dict:
    """Runs in the stream's own process. `report(kind, payload)` sends a message
    to the launcher (ready/progress); the returned dict is the stream's result."""
    cpus = sorted(os.sched_getaffinity(0))  # read back, not just intended
    threads = link.threads or len(cpus)
    configure_threads(threads)
    result: dict = {"id": link.stream_id, "pid": os.getpid(), "status": "failed", "cpus": cpus, "threads": threads}
    t_setup = time.monotonic()
    backend, interp = build(cfg, link.device_index)
    source = make_source(cfg, interp, link.stream_id)
    result.update(device=backend.describe(), setup_s=time.monotonic() - t_setup)
    total = min(len(source), cfg.num_inputs) if source.checks_quality else None
    try:
        if cfg.runtime != "torch":  # the parity gate: before warm-up, never timed; below it the stream fails
            from rifebench.runtimes.net import parity

            report("warming", f"{cfg.runtime}: export (or its cache) and the parity check first")
            gate = parity(cfg, interp, source, total)
            result["runtime"] = interp.net.describe() | {"parity": gate}  # the warm-up's get(0) rereads pair 0
        # Warm-up can take tens of seconds (compilation, large frames): say so before, not only after.
        report(
            "warming",
            f"set-up {result['setup_s']:.1f} s; warming up"
            + (" (compiling first; this can take a minute)" if interp.warmup_needed else ""),
        )
        result["warmup"] = warm_up(cfg, source, interp, backend, total)
        if hasattr(source, "rewind"):  # a video decodes forward only: start its pass again from frame 0
            source.rewind()
        backend.reset_peak_memory()
        report("ready", {"warmup": result["warmup"], "setup_s": result["setup_s"]})
        link.barrier.wait(timeout=link.barrier_timeout)
        start = link.start_time.value
        timer = PairTimer(backend, cfg.async_)
        timed = timed_loop(cfg, link, source, interp, backend, timer, start, total)
        if source.checks_quality:
            _score_after_window(source, timed)
    finally:
        source.close()
    result.update(_measured(cfg, timed, timer, start, interp, backend))
    if source.checks_quality:
        result["quality"] = source.summary()
    return result


def _score_after_window(source, timed: Timed) -> None:
    """Quality mode: the kept predictions are scored and saved after the window
    (its end is already read); a scoring failure fails the stream, keeping the
    frames scored until then."""
    if timed.status != "interrupted":
        try:
            source.finish()
        except Exception as exc:  # noqa: BLE001 - reported as the stream's failure, with its frames
            timed.status = "failed"
            timed.error = timed.error or {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    timed.scored_end = time.monotonic()


def _measured(cfg, timed: Timed, timer: PairTimer, start: float, interp, backend) -> dict:
    """The loop's figures as plain data. Latency samples are per submission (a
    batch); `latency_per_pair_ms` divides each by its batch's size."""
    device_ms = timer.device_ms()
    latency = device_ms if device_ms is not None else list(timer.host_ms)
    out = {
        "status": timed.status,
        "frames": timed.pairs,
        "images": timed.pairs * cfg.interpolation,
        "batch_sizes": timed.sizes,
        "start": start,
        "end": timed.end,
        "scored_end": timed.scored_end,
        "latency_ms": latency,
        "latency_per_pair_ms": [x / n for x, n in zip(latency, timed.sizes)],
        "host_submit_ms": list(timer.host_ms) if device_ms is not None else None,
        "device_ms": device_ms,
        "latency_clock": "device events" if device_ms is not None else "host",
        "model_seconds": sum(latency) / 1000.0,
        "memory": backend.memory(),
        "large_motion_count": getattr(interp.net, "large_motion_count", None),
        "knobs": interp.knobs.to_dict() | {"runtime": interp.runtime()} if getattr(interp, "knobs", None) else None,
    }
    if timed.error:
        out.update(timed.error)
    if timed.fingerprint is not None:
        out["fingerprint"] = _host_frame(timed.fingerprint)
    return out


def stream_entry(cfg_fields: dict, link: Link, queue) -> None:
    """Process entry point (spawned). Every outcome ends in exactly one message."""
    from rifebench.config import Config

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
        report(
            "error",
            {
                "error": f"{type(exc).__name__}: {exc}".strip(),
                "traceback": traceback.format_exc(),
                "details": getattr(exc, "details", None),
            },
        )
