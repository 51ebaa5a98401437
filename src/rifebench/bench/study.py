"""The optimisation study: every configuration's speed-up against its cost in
quality, measured in one run.

    python -m rifebench study [--sizes 448x256,1280x720] [--configs baseline,...]

(Two runs' output fingerprints are compared by `python -m rifebench compare A B`.)

Each configuration is a list of run_model.sh flags resolved by the harness's own
option table and knobs (so a row measures exactly what a run would), and lives in
its own process: torch's global switches (threads, cuDNN, denormals), compiled
code and peak memory stay its own. Workers warm up one after the other (compile
time is reported apart), then time their pairs in turn, round after round, in a
rotating order, so that drift and other load hit every configuration alike.

A timed pair is what a stream times (run.timer.PairTimer): the model call on
prepared frames, synchronised; preparing (copy, pad, cast; a reused frame is
free with REUSE_FRAMES) happens before it. The workers live in study_worker.py. Quality: each configuration's outputs for the sequence's pairs
against the baseline's (PSNR on the float output, SSIM on 8-bit rounded frames
as the RIFE evaluation computes it, max abs error).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from rifebench.bench.study_worker import _worker, study_precision
from rifebench.measure.quality import PSNR_CAP_DB, output_diff

CONFIGS = {
    "baseline": [],
    "channels_last": ["--channels-last", "yes"],
    "compile": ["--compile", "default"],
    "bf16": ["--precision", "bf16"],
    "fp16": ["--precision", "fp16"],
    "amp_bf16": ["--precision", "bf16", "--amp"],
    "reuse_frames": ["--reuse-frames", "yes"],
    "preallocate": ["--preallocate", "yes"],
    "optimized": ["--optimize", "optimized"],
    "optimized_bf16": ["--optimize", "optimized", "--precision", "bf16"],
    "optimized_fp16": ["--optimize", "optimized", "--precision", "fp16"],
}
DEFAULT_CONFIGS = "baseline,channels_last,compile,bf16,optimized"
ANSWER_TIMEOUT_S = 1800.0  # a worker's longest step: compile (max-autotune) and warm-up at 4K


# ------------------------------------------------------------------- parent side

class Worker:
    def __init__(self, ctx, name, flags, size, seed, threads):
        self.name, self.flags = name, flags
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, flags, size, seed, threads), daemon=True)
        self.proc.start()
        child.close()
        self.error = None

    def ask(self, cmd, arg=None, expect=None, timeout=ANSWER_TIMEOUT_S):
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

    def close(self):
        try:
            self.conn.send(("quit", None))
        except OSError:
            pass
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()


def run_size(size, names, flags_of, args, log) -> list[dict]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    workers = [Worker(ctx, n, args.common + flags_of[n], size, args.seed, args.threads) for n in names]
    rows = {w.name: {"size": f"{size[0]}x{size[1]}", "config": w.name, "flags": " ".join(w.flags)} for w in workers}
    try:
        for w in workers:
            info = w.ask(None, expect="ready")
            rows[w.name].update(info or {})
        for w in workers:  # one at a time: compilation and warm-up are not timed
            warm = w.ask("warmup", args.warmup, expect="warm")
            if warm:
                rows[w.name].update(warmup_s=warm["seconds"], first_pairs_s=warm["first_pairs_s"],
                                    outputs=warm["outputs"], latency_ms=[], cpu_ms=[])
                log(f"  {size[0]}x{size[1]} {w.name}: warm in {warm['seconds']:.1f} s")
        for r in range(args.rounds):
            order = workers[r % len(workers):] + workers[: r % len(workers)]
            for w in order:
                got = w.ask("time", args.pairs, expect="timed")
                if got:
                    rows[w.name]["latency_ms"].extend(got[0])
                    rows[w.name]["cpu_ms"].extend(got[1])
            log(f"  {size[0]}x{size[1]} round {r + 1}/{args.rounds} done")
        for w in workers:
            stats = w.ask("stats", expect="stats")
            rows[w.name].update(stats or {})
            if w.error:
                rows[w.name]["error"] = w.error
                log(f"  {size[0]}x{size[1]} {w.name}: FAILED: {w.error}")
    finally:
        for w in workers:
            w.close()
    scored = [score(rows[n], rows[names[0]]) for n in names]
    for r in scored:
        r.pop("outputs", None)
    return scored


def score(row: dict, base: dict) -> dict:
    """Speed and quality of one row against the first (the baseline)."""
    lat = row.get("latency_ms") or []
    if not lat or row.get("error"):
        return row
    row["ms_mean"], row["ms_p50"], row["ms_min"] = statistics.fmean(lat), statistics.median(lat), min(lat)
    row["fps"] = 1000.0 / row["ms_mean"]
    blat = base.get("latency_ms") or []
    ok = blat and not base.get("error")
    row["speedup_p50"] = statistics.median(blat) / row["ms_p50"] if ok else None
    # Other load only ever adds time: the fastest pair is the least disturbed estimate.
    row["speedup_min"] = min(blat) / row["ms_min"] if ok else None
    # CPU platform: process CPU time per pair, insensitive to time slicing by other
    # processes (not to cache or memory-bandwidth sharing).
    if ok and row.get("platform") == "cpu" and row.get("cpu_ms") and base.get("cpu_ms"):
        row["speedup_cpu_time"] = statistics.median(base["cpu_ms"]) / statistics.median(row["cpu_ms"])
    if base.get("outputs") and row.get("outputs"):
        scores = [output_diff(a, b) for a, b in zip(base["outputs"], row["outputs"])]
        row["quality"] = {"psnr_db": min(PSNR_CAP_DB, *(s["psnr_db"] for s in scores)), "ssim": min(s["ssim"] for s in scores),
                          "max_abs_err": max(s["max_abs_err"] for s in scores), "pairs": len(scores)}
    mem = row.get("memory") or {}
    # GPUs: the allocator's peak. CPUs: the process's peak RSS, and how much of it
    # the run added to the loaded model (torch alone is a few hundred MiB).
    row["peak_mem_bytes"] = mem.get("peak_allocated_bytes") or mem.get("peak_rss_bytes")
    if mem.get("peak_allocated_bytes") is None and mem.get("peak_rss_bytes") and row.get("rss_after_load_bytes"):
        row["peak_mem_added_bytes"] = mem["peak_rss_bytes"] - row["rss_after_load_bytes"]
    row["fallbacks"] = [f"{f['knob']}: {f['reason']}" for f in (row.get("knobs") or {}).get("fallbacks", [])]
    return row


def table(rows: list[dict]) -> str:
    def f(x, spec):
        return "n/a" if x is None else format(x, spec)

    out = ["| size | config | FPS | ms/pair p50 (min) | speed-up p50 / min / CPU time | PSNR dB vs baseline "
           "| SSIM | max abs "
           "| peak mem MiB (added) | warm-up s | fell back |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        q = r.get("quality") or {}
        if r.get("error"):
            out.append(f"| {r['size']} | {r['config']} | failed: {r['error']} ||||||||| |")
            continue
        mem, added = r.get("peak_mem_bytes"), r.get("peak_mem_added_bytes")
        out.append(f"| {r['size']} | {r['config']} ({r.get('precision')}) | {f(r.get('fps'), '.2f')} | "
                   f"{f(r.get('ms_p50'), '.0f')} ({f(r.get('ms_min'), '.0f')}) | "
                   f"{f(r.get('speedup_p50'), '.2f')}x / {f(r.get('speedup_min'), '.2f')}x / "
                   f"{f(r.get('speedup_cpu_time'), '.2f')}x | "
                   f"{f(q.get('psnr_db'), '.1f')} | {f(q.get('ssim'), '.5f')} | {f(q.get('max_abs_err'), '.2e')} | "
                   f"{f(mem / 2**20 if mem else None, '.0f')}"
                   f"{'' if added is None else f' (+{added / 2**20:.0f})'} | {f(r.get('warmup_s'), '.1f')} | "
                   f"{'; '.join(r.get('fallbacks') or []) or '-'} |")
    return "\n".join(out)


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    if not (w.isdigit() and h.isdigit() and int(w) >= 16 and int(h) >= 16):
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (accepted: WIDTHxHEIGHT, e.g. 448x256)")
    return int(w), int(h)


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m rifebench study", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Predefined configurations (run_model.sh flags): " + "; ".join(
                                    f"{k} = {' '.join(v) or '(none)'}" for k, v in CONFIGS.items())
                                + ". Add your own with --config NAME='FLAGS'. The first configuration is "
                                  "the reference of speed-up and quality.")
    p.add_argument("--sizes", default="448x256,1280x720", help="WxH list (default: %(default)s)")
    p.add_argument("--configs", default=DEFAULT_CONFIGS, help="names, first = reference (default: %(default)s)")
    p.add_argument("--config", action="append", default=[], metavar="NAME=FLAGS",
                   help="define a configuration, e.g. cl_bf16='--channels-last yes --precision bf16'")
    p.add_argument("--model", default="4.0")
    p.add_argument("--platform", default="cpu")
    p.add_argument("--pretrained-weights", default=None)
    p.add_argument("--rounds", type=int, default=8, help="timed rounds, configurations in rotating order "
                   "(default: %(default)s)")
    p.add_argument("--pairs", type=int, default=1, help="timed pairs per configuration and round; few pairs and "
                   "many rounds spread other load over every configuration (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="extra untimed pairs after the first ones")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="torch threads of each worker (default: the CPUs this process may use, %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="study.json", help="results file (written atomically)")
    args = p.parse_args(argv)
    flags_of = dict(CONFIGS)
    for spec in args.config:
        name, sep, flags = spec.partition("=")
        if not sep or not name:
            p.error(f"--config: invalid value {spec!r} (accepted: NAME='run_model.sh flags')")
        flags_of[name] = flags.split()
    args.names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in args.names if n not in flags_of]
    if unknown or len(set(args.names)) != len(args.names) or not args.names:
        p.error(f"--configs: invalid value {args.configs!r} (accepted: distinct names among "
                f"{', '.join(flags_of)})")
    try:
        args.sizes = [_size(s) for s in args.sizes.split(",")]
    except argparse.ArgumentTypeError as exc:
        p.error(f"--sizes: {exc}")
    for name in ("rounds", "pairs", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name}: must be >= 1, got {getattr(args, name)}")
    args.common = ["--model", args.model, "--platform", args.platform]  # a configuration's own flags win
    if args.pretrained_weights:
        args.common += ["--pretrained-weights", os.path.abspath(args.pretrained_weights)]
    args.flags_of = flags_of
    return args


def check_configs(args) -> None:
    """Every configuration resolves (flags, knobs) before any worker starts."""
    from rifebench.config import resolve
    from rifebench.backends.knobs import KnobError, preflight
    from rifebench.errors import UsageError
    from rifebench.options import flag_of

    for n in args.names:
        try:
            cfg = resolve(["--dummy", *args.common, *args.flags_of[n]], env={})
            preflight(cfg.replace(precision=study_precision(cfg)))
        except UsageError as exc:
            raise SystemExit(f"study: configuration {n!r}: {exc}") from None
        except KnobError as exc:
            raise SystemExit(f"study: configuration {n!r}: {flag_of(exc.knob)}: {exc}") from None
        if not os.path.isfile(cfg.load_path):
            raise SystemExit(f"study: weights {cfg.load_path} not found (accepted: an existing file; "
                             f"./get_model.sh --model {args.model} fetches it)")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    check_configs(args)
    from rifebench.measure.topology import cpu_model
    from rifebench.fsutil import atomic_write_text

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    started = time.time()
    rows = []
    for size in args.sizes:
        log(f"{size[0]}x{size[1]}: {', '.join(args.names)}")
        rows += run_size(size, args.names, args.flags_of, args, log)
        doc = {"command": "python -m rifebench study " + " ".join(argv), "cpu": cpu_model(),
               "threads": args.threads, "model": args.model, "rounds": args.rounds, "pairs": args.pairs,
               "started": started, "seconds": time.time() - started, "rows": rows,
               "complete": size == args.sizes[-1]}
        atomic_write_text(args.output, json.dumps(doc, indent=2, default=str) + "\n")  # after every size
    print(table(rows))
    failed = [r["config"] for r in rows if r.get("error") or not r.get("latency_ms")]
    if failed:
        log(f"study: failed configurations: {', '.join(sorted(set(failed)))}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
