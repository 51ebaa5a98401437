"""One inference stream: load, warm up, wait at the start barrier, run the timed
loop, return raw samples as plain data.

The stream knows the model and the clock, not processes or files: the launcher
hands it a `Link` (its worker.StreamChannel: barrier and common start time,
stop flag, progress, the last word) and gets a StreamResult back, as plain
data; the report writes the files. All window times are
time.monotonic(), one clock for every process on the machine, so windows of
different streams can be compared; what one submission costs is timed by
timer.PairTimer (host clock, and device events where the device has them).
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from rifebench.measure.records import StreamResult
from rifebench.run.timer import PairTimer
from rifebench.run.worker import StreamAborted, StreamChannel


@dataclass
class Link:
    """What a stream is told by the launcher, and its channel back."""

    stream_id: int
    channel: StreamChannel
    barrier_timeout: float
    device_index: int = 0
    threads: int | None = None  # the stream's CPU share (None: its affinity mask)


def configure_threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def build(cfg: Any, device_index: int = 0) -> tuple[Any, Any]:
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


def make_source(cfg: Any, interp: Any, stream_id: int) -> Any:
    """The stream's pairs (data/source.py): the dummy source, or in quality and
    video mode a source with the scorer of its outputs (data.source.Scored)."""
    from rifebench.data.source import open_source

    return open_source(cfg, interp, stream_id)


def should_stop(cfg: Any, pairs: int, elapsed: float, total: int | None) -> bool:
    """The reference stop rule. Dummy: pairs >= NUM_INPUTS and t >= MIN, or
    t >= MAX (durations override the count). Dataset: the list is done."""
    if total is not None:
        return pairs >= total
    if cfg.max_test_duration is not None and elapsed >= cfg.max_test_duration:
        return True
    return bool(pairs >= cfg.num_inputs and elapsed >= cfg.min_test_duration)


def warm_up(cfg: Any, source: Any, interp: Any, backend: Any, total: int | None) -> dict[str, Any]:
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
    sizes: list[int] = field(default_factory=list)  # pairs in each submission
    error: dict[str, str] | None = None  # {error, traceback}
    fingerprint: Any = None  # dummy mode: the first output frame, for --saveimages
    scored_end: float | None = None  # quality mode: when the scoring after the window ended


def timed_loop(
    cfg: Any, link: Link, source: Any, interp: Any, backend: Any, timer: PairTimer, start: float, total: int | None
) -> Timed:
    """Submissions of BATCH_SIZE pairs until the stop rule says so. Dataset
    mode synchronises after every submission (the frames are scored) and
    scores outside the timed region."""
    out = Timed()
    keep_output = cfg.saveimages and cfg.dummy and link.stream_id == 0
    try:
        while not should_stop(cfg, out.pairs, time.monotonic() - start, total):
            if link.channel.stopped:
                raise StreamAborted("stopped by the launcher")
            want = min(cfg.batch_size, total - out.pairs) if total is not None else cfg.batch_size
            batch = source.get(out.pairs, want)
            outs = timer(
                lambda: interp.interpolate(batch.img0, batch.img1, cfg.interpolation),  # noqa: B023 - called at once
                sync=source.checks_quality,
            )
            if source.checks_quality:
                source.consume(batch, outs)  # scoring and saving, after the timed region
            if keep_output and out.fingerprint is None:
                out.fingerprint = outs[0][:1]  # its host copy is made after the window
            out.pairs += batch.size
            out.sizes.append(batch.size)
            link.channel.progress(out.pairs)
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


def _host_frame(frame: Any) -> Any:
    """1x3xHxW device tensor -> HxWx3 float32 numpy in [0, 1]: plain data for the report."""
    return frame[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def run_stream(cfg: Any, link: Link) -> StreamResult:
    """Runs in the stream's own process: set-up, warm-up, the barrier, the timed
    loop; the stream's result (its figures as far as it got)."""
    cpus = sorted(os.sched_getaffinity(0))  # read back, not just intended
    threads = link.threads or len(cpus)
    configure_threads(threads)
    result = StreamResult(id=link.stream_id, pid=os.getpid(), status="failed", cpus=cpus, threads=threads)
    t_setup = time.monotonic()
    backend, interp = build(cfg, link.device_index)
    source = make_source(cfg, interp, link.stream_id)
    result.device, result.setup_s = backend.describe(), time.monotonic() - t_setup
    total = min(len(source), cfg.num_inputs) if source.checks_quality else None
    try:
        _prepare(cfg, link, result, source, interp, backend, total)
        start = link.channel.wait_start(link.barrier_timeout)
        timer = PairTimer(backend, cfg.async_)
        timed = timed_loop(cfg, link, source, interp, backend, timer, start, total)
        if source.checks_quality:
            _score_after_window(source, timed)
    finally:
        source.close()
    _measured(result, cfg, timed, timer, start, interp, backend)
    if source.checks_quality:
        result.quality = source.summary()
    return result


def _prepare(
    cfg: Any, link: Link, result: StreamResult, source: Any, interp: Any, backend: Any, total: int | None
) -> None:
    """The parity gate of a runtime, the warm-up, then "ready"."""
    channel = link.channel
    if cfg.runtime != "torch":  # the parity gate: before warm-up, never timed; below it the stream fails
        from rifebench.report.console_summary import runtime_line
        from rifebench.runtimes.net import parity

        channel.warming(f"{cfg.runtime}: export (or its cache), compilation and the parity check first")
        t0 = time.monotonic()
        gate = parity(cfg, interp, source, total)
        # The runtime's own set-up phase (export, compile, parity), apart from set-up and warm-up.
        result.runtime = interp.net.describe() | {"parity": gate, "setup_s": time.monotonic() - t0}
        channel.warming(runtime_line(result.runtime))  # the warm-up's get(0) rereads pair 0
    # Warm-up can take tens of seconds (compilation, large frames): say so before, not only after.
    channel.warming(
        f"set-up {result.setup_s:.1f} s; warming up"
        + (" (compiling first; this can take a minute)" if interp.warmup_needed else "")
    )
    result.warmup = warm_up(cfg, source, interp, backend, total)
    if hasattr(source, "rewind"):  # a video decodes forward only: start its pass again from frame 0
        source.rewind()
    backend.reset_peak_memory()
    channel.ready(result.warmup, result.setup_s or 0.0, (result.runtime or {}).get("setup_s"))


def _score_after_window(scorer: Any, timed: Timed) -> None:
    """Quality mode: the kept predictions are scored and saved after the window
    (its end is already read) by the source's scorer (data.source.Scorer); a
    scoring failure fails the stream, keeping the frames scored until then."""
    if timed.status != "interrupted":
        try:
            scorer.finish()
        except Exception as exc:  # noqa: BLE001 - reported as the stream's failure, with its frames
            timed.status = "failed"
            timed.error = timed.error or {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    timed.scored_end = time.monotonic()


def _measured(
    r: StreamResult, cfg: Any, timed: Timed, timer: PairTimer, start: float, interp: Any, backend: Any
) -> None:
    """The loop's figures into the result. Latency samples are per submission
    (a batch); `latency_per_pair_ms` divides each by its batch's size."""
    device_ms = timer.device_ms()
    latency = device_ms if device_ms is not None else list(timer.host_ms)
    r.status, r.frames, r.images = timed.status, timed.pairs, timed.pairs * cfg.interpolation
    r.batch_sizes, r.start, r.end, r.scored_end = timed.sizes, start, timed.end, timed.scored_end
    r.latency_ms = latency
    r.latency_per_pair_ms = [x / n for x, n in zip(latency, timed.sizes, strict=False)]
    r.host_submit_ms = list(timer.host_ms) if device_ms is not None else None
    r.device_ms = device_ms
    r.latency_clock = "device events" if device_ms is not None else "host"
    r.model_seconds = sum(latency) / 1000.0
    r.memory = backend.memory()
    r.large_motion_count = getattr(interp.net, "large_motion_count", None)
    knobs = getattr(interp, "knobs", None)
    r.knobs = knobs.to_dict() | {"runtime": interp.runtime()} if knobs else None
    if timed.error:
        r.error, r.traceback = timed.error["error"], timed.error["traceback"]
    if timed.fingerprint is not None:
        r.fingerprint = _host_frame(timed.fingerprint)


def stream_entry(cfg_fields: dict[str, Any], link: Link) -> None:
    """Process entry point. Every outcome ends in exactly one message: a result or an error."""
    from rifebench.config import Config

    try:
        cfg = Config(**cfg_fields)
        link.channel.result(run_stream(cfg, link))
    except BaseException as exc:  # noqa: BLE001 - the launcher must hear about every failure
        link.channel.error(exc)
