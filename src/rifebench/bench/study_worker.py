"""The study's worker process: one configuration, its own torch state, timing
pairs of a short synthetic video on command. Only plain data crosses the pipe.

Each pair is timed as the streams time theirs (run.timer.PairTimer): the frames
are prepared first (copy, padding, cast; reused with REUSE_FRAMES), then the
model call is the timed submission, synchronised.
"""
from __future__ import annotations

import resource
import time

SEQUENCE = 3  # frames: pairs (0,1), (1,2), (2,0), (0,1), ... share one frame each step


def video_frames(height: int, width: int, count: int, seed: int):
    """`count` frames of one smooth random texture moving 3 px down and 3 px
    left per frame (float32, 1x3xHxW in [0, 1]); the same for every config."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    m = 3 * count + 8
    coarse = torch.rand(1, 3, (height + m) // 16 + 2, (width + m) // 16 + 2, generator=g)
    base = F.interpolate(coarse, size=(height + m, width + m), mode="bicubic", align_corners=False)
    base = (base + 0.05 * torch.rand(base.shape, generator=g)).clamp(0, 1)
    return [base[:, :, 4 + 3 * k: 4 + 3 * k + height, m - 4 - 3 * k: m - 4 - 3 * k + width].contiguous()
            for k in range(count)]


def study_precision(cfg) -> str:
    """The study's reference is fp32 on every platform (run_model.sh's auto
    means fp16 on GPUs); configurations name bf16/fp16 explicitly."""
    return "fp32" if cfg.precision == "auto" else cfg.precision


def pair_of(step: int) -> tuple[int, int]:
    """A forward video over SEQUENCE frames, wrapping around: each pair's left
    frame is the previous pair's right one."""
    return step % SEQUENCE, (step + 1) % SEQUENCE


# ------------------------------------------------------------------- worker side

def _worker(conn, flags: list, size: tuple, seed: int, threads: int) -> None:
    try:
        _serve(conn, flags, size, seed, threads)
    except BaseException as exc:  # noqa: BLE001 - the parent must hear about every failure
        conn.send(("error", f"{type(exc).__name__}: {exc}".splitlines()[0]))
    finally:
        conn.close()


def _serve(conn, flags, size, seed, threads) -> None:
    import torch

    from rifebench.backends.device import resolve_platform
    from rifebench.config import resolve
    from rifebench.run.stream import build
    from rifebench.run.timer import PairTimer

    torch.set_num_threads(threads)
    cfg = resolve(["--dummy", *flags], env={})
    platform = resolve_platform(cfg.platform)
    precision = study_precision(cfg)
    cfg = cfg.replace(platform=platform, precision=precision)
    backend, interp = build(cfg)
    frames = video_frames(size[1], size[0], SEQUENCE, seed)
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    done = [0]  # pairs so far: the video goes on across warm-up and rounds

    def prepared():
        i, j = pair_of(done[0])
        done[0] += 1
        return interp.prepare(frames[i], key=i), interp.prepare(frames[j], key=j)

    def step(timer=None):
        """One pair: frames prepared (reused with REUSE_FRAMES), then the timed
        submission as the streams define it (timer.PairTimer), synchronised."""
        a, b = prepared()
        call = lambda: interp.interpolate(a, b, 1)[0]  # noqa: E731
        if timer is None:
            out = call()
            backend.sync()
            return out
        return timer(call, sync=True)

    conn.send(("ready", {"precision": precision, "platform": platform}))
    while True:
        cmd, arg = conn.recv()
        if cmd == "warmup":  # every distinct pair once (their outputs are the quality sample), then more
            t0 = time.monotonic()
            outs = [step()[0].float().permute(1, 2, 0).cpu().numpy() for _ in range(SEQUENCE - 1)]
            first_s = time.monotonic() - t0
            for _ in range(arg):
                step()
            backend.reset_peak_memory()
            conn.send(("warm", {"seconds": time.monotonic() - t0, "first_pairs_s": first_s, "outputs": outs}))
        elif cmd == "time":
            timer, cpu = PairTimer(backend), []
            for _ in range(arg):
                c0 = time.process_time()
                step(timer)
                cpu.append((time.process_time() - c0) * 1000.0)
            conn.send(("timed", (timer.latency_ms(), cpu)))
        elif cmd == "stats":
            conn.send(("stats", {"memory": backend.memory(), "rss_after_load_bytes": rss_loaded,
                                 "knobs": interp.knobs.to_dict() | {"runtime": interp.runtime()},
                                 "device": backend.describe()}))
        else:
            return
