"""What `rifebench tune` searches: runtime x precision x knobs x streams x batch.

A Candidate is one configuration as run_model.sh flags. Candidates that differ only in
STREAMS or BATCH_SIZE compute the same outputs, so they share a quality group (scored
once). The first candidate is the reference: eager PyTorch fp32, one stream, batch 1.
Every candidate is resolved by the harness's own option table and knob preflight before
anything runs; one that cannot run here (a runtime not installed, a precision the model
or the runtime does not take) is left out with its one-line reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from rifebench.errors import UsageError
from rifebench.runtimes import registry

# Knobs each runtime is tried with (run_model.sh flags; () = the runtime's defaults).
KNOBS: dict[str, list[tuple[str, ...]]] = {
    "torch": [(), ("--channels-last", "yes")],
    "onnxruntime": [()],
    "openvino": [(), ("--ov-hint", "throughput")],
    "tensorrt": [()],
}
LABELS: dict[tuple[str, ...], str] = {("--channels-last", "yes"): "cl", ("--ov-hint", "throughput"): "tp"}
BATCHED_ONLY = {("--ov-hint", "throughput")}  # a lane runs one pair: only worth trying with batches
# fp16 convolutions on a CPU are tens of times slower than fp32 (torch 2.13): not searched there.
SLOW = {"cpu": {"fp16"}}


@dataclass(frozen=True)
class Candidate:
    runtime: str
    precision: str
    knobs: tuple[str, ...] = ()
    streams: int = 1
    batch: int = 1

    @property
    def name(self) -> str:
        knobs = f"-{LABELS.get(self.knobs, '-'.join(self.knobs[1::2]))}" if self.knobs else ""
        return f"{self.runtime}-{self.precision}{knobs}-s{self.streams}-b{self.batch}"

    @property
    def group(self) -> tuple[str, str, tuple[str, ...]]:
        """What decides the outputs: candidates of one group are scored once."""
        return self.runtime, self.precision, self.knobs

    def flags(self) -> list[str]:
        """The run_model.sh flags of one stream (STREAMS is the number of such processes)."""
        return ["--runtime", self.runtime, "--precision", self.precision, *self.knobs, "--batch-size", str(self.batch)]

    def to_dict(self) -> dict:
        return {"name": self.name, "flags": self.flags(), "streams": self.streams, "batch": self.batch}


REFERENCE = Candidate("torch", "fp32")


def candidates(
    runtimes: list[str], precisions: list[str], streams: list[int], batches: list[int], platform: str
) -> list[Candidate]:
    """The search space, the reference first; each candidate once."""
    out = [REFERENCE]
    for runtime in runtimes:
        spec = registry.RUNTIMES[runtime]
        for precision in precisions:
            if precision not in spec.precisions or precision in SLOW.get(platform, set()):
                continue
            for knobs in KNOBS[runtime]:
                for s in streams:
                    for b in batches:
                        if knobs in BATCHED_ONLY and b < 2:
                            continue
                        c = Candidate(runtime, precision, knobs, s, b)
                        if c not in out:
                            out.append(c)
    return out


def runnable(cands: list[Candidate], common: list[str]) -> tuple[list[Candidate], dict[str, str]]:
    """The candidates this machine can run, and why each other one cannot (one line)."""
    from rifebench.backends.knobs import KnobError, preflight
    from rifebench.config import resolve

    kept, left_out = [], {}
    for c in cands:
        try:
            cfg = resolve(["--dummy", *common, *c.flags(), "--streams", str(c.streams)], env={})
            preflight(cfg.replace(precision="fp32" if cfg.precision == "auto" else cfg.precision))
        except (UsageError, KnobError) as exc:
            if c == REFERENCE:
                raise UsageError(f"the reference (eager PyTorch fp32) cannot run: {exc}") from None
            left_out[c.name] = str(exc)
            continue
        kept.append(c)
    return kept, left_out
