"""The study's worker processes: one configuration each, its own torch state,
timing pairs of a short synthetic video on command; and the parent side that
starts them and times them in rotating rounds. Only plain data crosses the pipe.

Each pair is timed as the streams time theirs (run.timer.PairTimer): the frames
are prepared first (copy, padding, cast; reused with REUSE_FRAMES), then the
model call is the timed submission, synchronised.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from rifebench.study.cells import Cell
from rifebench.study.records import StudyRow

ANSWER_TIMEOUT_S = 1800.0  # a worker's longest step: compile (max-autotune) and warm-up at 4K
SEQUENCE = 3  # frames: pairs (0,1), (1,2), (2,0), (0,1), ... share one frame each step


def video_frames(height: int, width: int, count: int, seed: int) -> list[Any]:
    """`count` frames of one smooth random texture moving 3 px down and 3 px
    left per frame (float32, 1x3xHxW in [0, 1]); the same for every config."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    m = 3 * count + 8
    coarse = torch.rand(1, 3, (height + m) // 16 + 2, (width + m) // 16 + 2, generator=g)
    base = F.interpolate(coarse, size=(height + m, width + m), mode="bicubic", align_corners=False)
    base = (base + 0.05 * torch.rand(base.shape, generator=g)).clamp(0, 1)
    return [
        base[:, :, 4 + 3 * k : 4 + 3 * k + height, m - 4 - 3 * k : m - 4 - 3 * k + width].contiguous()
        for k in range(count)
    ]


def study_precision(cfg: Any) -> str:
    """The study's reference is fp32 on every platform (run_model.sh's auto
    means fp16 on GPUs); configurations name bf16/fp16 explicitly."""
    return "fp32" if cfg.precision == "auto" else cfg.precision


def pair_of(step: int) -> tuple[int, int]:
    """A forward video over SEQUENCE frames, wrapping around: each pair's left
    frame is the previous pair's right one."""
    return step % SEQUENCE, (step + 1) % SEQUENCE


# ------------------------------------------------------------------- parent side


class Worker:
    def __init__(self, ctx: Any, name: str, flags: list[str], size: tuple[int, int], seed: int, threads: int):
        self.name, self.flags = name, flags
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, flags, size, seed, threads), daemon=True)
        self.proc.start()
        child.close()
        self.error: str | None = None

    def ask(
        self, cmd: str | None, arg: Any = None, expect: str | None = None, timeout: float = ANSWER_TIMEOUT_S
    ) -> Any:
        """Send a command and wait for its answer; None (and self.error) when the
        worker failed, died or stayed silent: one bad row never hangs the study."""
        if self.error:
            return None
        try:
            if cmd is not None:
                self.conn.send((cmd, arg))
            if self.conn.poll(timeout):
                kind, payload = self.conn.recv()
            else:
                kind, payload = "error", f"no answer to {cmd or 'start'} in {timeout:.0f} s"
                self.proc.kill()
        except (EOFError, OSError) as exc:
            kind, payload = "error", f"worker died ({type(exc).__name__}, exit code {self.proc.exitcode})"
        if kind != expect:
            self.error = payload if kind == "error" else f"unexpected answer {kind!r} to {cmd!r}"
            return None
        return payload

    def close(self) -> None:
        with contextlib.suppress(OSError):  # a dead worker cannot be told
            self.conn.send(("quit", None))
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()


def run_size(
    size: tuple[int, int], cells: list[Cell], args: argparse.Namespace, log: Callable[[str], None]
) -> list[StudyRow]:
    """The unscored rows of one size, in the order of `cells`: each keeps its
    pair times per round (`rounds_ms`), so that rounds can be paired later."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    workers = [Worker(ctx, c.key, list(c.flags), size, args.seed, args.threads) for c in cells]
    label = f"{size[0]}x{size[1]}"
    rows = {
        c.key: StudyRow(size=label, config=c.config, flags=" ".join(c.flags), model=c.model, weights=c.weights)
        for c in cells
    }
    try:
        for w in workers:
            rows[w.name].update(w.ask(None, expect="ready") or {})
        for w in workers:  # one at a time: compilation and warm-up are not timed
            warm = w.ask("warmup", args.warmup, expect="warm")
            if warm:
                rows[w.name].update(warm)
                log(f"  {label} {w.name}: warm in {warm['warmup_s']:.1f} s")
        _rounds(workers, rows, args, label, log)
        for c, w in zip(cells, workers, strict=True):
            if args.data and not c.speed_only:  # untimed, after the rounds: ground truth of real triplets
                rows[w.name].update(w.ask("dataset", (args.data, args.data_triplets), expect="scored") or {})
            rows[w.name].update(w.ask("stats", expect="stats") or {})
            if w.error:
                rows[w.name].error = w.error
                log(f"  {label} {w.name}: FAILED: {w.error}")
    finally:
        for w in workers:
            w.close()
    return [rows[c.key] for c in cells]


def _rounds(workers: list[Worker], rows: dict[str, StudyRow], args, label: str, log: Callable[[str], None]) -> None:
    """The timed rounds: every worker in turn, in an order that rotates each round."""
    for r in range(args.rounds):
        order = workers[r % len(workers) :] + workers[: r % len(workers)]
        for w in order:
            got = w.ask("time", args.pairs, expect="timed")
            if got:
                rows[w.name].rounds_ms.append(got[0])
                rows[w.name].cpu_ms.extend(got[1])
        log(f"  {label} round {r + 1}/{args.rounds} done")


# ------------------------------------------------------------------- worker side
# Only plain data crosses the pipe: each answer is a dict of StudyRow fields.


def one_line(text: str, limit: int = 600) -> str:
    """A failure's whole message on one line: runtimes (OpenVINO) put the cause on the
    lines after a bare "Exception from <file>:<line>:" header."""
    joined = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."


def _worker(conn: Connection, flags: list[str], size: tuple[int, int], seed: int, threads: int) -> None:
    try:
        _serve(conn, flags, size, seed, threads)
    except BaseException as exc:  # noqa: BLE001 - the parent must hear about every failure
        conn.send(("error", one_line(f"{type(exc).__name__}: {exc}")))
    finally:
        conn.close()


class _Model:
    """One configuration's model on its synthetic video, in the worker process."""

    def __init__(self, flags: list[str], size: tuple[int, int], seed: int):
        from rifebench.backends.device import resolve_platform
        from rifebench.config import resolve
        from rifebench.run.stream import build

        cfg = resolve(["--dummy", *flags], env={})
        self.platform = resolve_platform(cfg.platform)
        self.precision = study_precision(cfg)
        self.backend, self.interp = build(cfg.replace(platform=self.platform, precision=self.precision))
        # BATCH_SIZE pairs a submission (the same pair repeated); times are per pair (time()).
        self.batch = cfg.batch_size
        self.frames = [f.repeat(self.batch, 1, 1, 1) for f in video_frames(size[1], size[0], SEQUENCE, seed)]
        self.rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.done = 0  # pairs so far: the video goes on across warm-up and rounds

    def step(self, timer: Any = None) -> Any:
        """One pair: frames prepared (reused with REUSE_FRAMES), then the timed
        submission as the streams define it (timer.PairTimer), synchronised."""
        i, j = pair_of(self.done)
        self.done += 1
        a, b = self.interp.prepare(self.frames[i], key=i), self.interp.prepare(self.frames[j], key=j)

        def call() -> Any:
            return self.interp.interpolate(a, b, 1)[0]

        if timer is None:
            out = call()
            self.backend.sync()
            return out
        return timer(call, sync=True)

    def warmup(self, extra: int) -> dict[str, Any]:
        """Every distinct pair once (their outputs are the quality sample), then more."""
        t0 = time.monotonic()
        outs = [self.step()[0].float().permute(1, 2, 0).cpu().numpy() for _ in range(SEQUENCE - 1)]
        first_s = time.monotonic() - t0
        for _ in range(extra):
            self.step()
        self.backend.reset_peak_memory()
        return {"warmup_s": time.monotonic() - t0, "first_pairs_s": first_s, "outputs": outs}

    def time(self, pairs: int) -> tuple[list[float], list[float]]:
        from rifebench.run.timer import PairTimer

        timer, cpu = PairTimer(self.backend), []
        for _ in range(pairs):
            c0 = time.process_time()
            self.step(timer)
            cpu.append((time.process_time() - c0) * 1000.0)
        return [t / self.batch for t in timer.latency_ms()], [t / self.batch for t in cpu]

    def dataset(self, what: tuple[str, int]) -> dict[str, Any]:
        """PSNR and SSIM against the ground truth of the first `count` triplets of a
        Vimeo-90K folder, as quality mode scores them. Untimed, and after the rounds:
        its frames pass through the same input buffers as the timed video's."""
        from rifebench.data.vimeo import load, to_model_input, triplets
        from rifebench.measure.quality import psnr, ssim, to_uint8

        root, count = what
        t0, scores = time.monotonic(), []
        for t in triplets(root, count)[2]:
            f0, gt, f1 = load(t)
            a, b = self.interp.prepare(to_model_input(f0)), self.interp.prepare(to_model_input(f1))
            pred = to_uint8(self.interp.interpolate(a, b, 1)[0][0].float().permute(1, 2, 0).cpu().numpy())
            scores.append((psnr(gt, pred), ssim(gt, pred)))
        return {
            "dataset_quality": {
                "psnr_db": sum(p for p, _ in scores) / len(scores),
                "ssim": sum(s for _, s in scores) / len(scores),
                "triplets": len(scores),
                "dataset": root,
                "seconds": time.monotonic() - t0,
            }
        }

    def stats(self) -> dict[str, Any]:
        net = self.interp.net
        return {
            "memory": self.backend.memory(),
            "rss_after_load_bytes": self.rss_loaded,
            "knobs": self.interp.knobs.to_dict() | {"runtime": self.interp.runtime()},
            "runtime": net.describe() if hasattr(net, "describe") else None,
            "device": self.backend.describe(),
        }


def _serve(conn: Connection, flags: list[str], size: tuple[int, int], seed: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    model = _Model(flags, size, seed)
    conn.send(("ready", {"precision": model.precision, "platform": model.platform}))
    answers: dict[str, tuple[str, Callable[[Any], Any]]] = {
        "warmup": ("warm", model.warmup),
        "time": ("timed", model.time),
        "stats": ("stats", lambda _: model.stats()),
        "dataset": ("scored", model.dataset),
    }
    while True:
        cmd, arg = conn.recv()
        if cmd not in answers:
            return
        kind, answer = answers[cmd]
        conn.send((kind, answer(arg)))
