"""The one option table.

Every option of the harness is one row here. The row drives the command-line
flag, the environment variable, parsing and range checks, ``--help`` and the
option table of docs/options.md (``python -m rifebench.docsgen``). A flag wins
over the variable, the variable over the default. Checks that involve more
than one option live in config.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from rifebench.errors import UsageError
from rifebench.models import zoo

TRUE_WORDS = ("1", "yes", "true", "on", "y")
FALSE_WORDS = ("0", "no", "false", "off", "n", "")
# int() and float() also take "1_0" and non-ASCII digits (fullwidth "10", U+FF11 U+FF10); a profile cell
# or variable spelt that way is a typo, not a number.
INT_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)
FLOAT_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)


@dataclass(frozen=True)
class Option:
    name: str  # attribute of Config
    flag: str
    env: str
    kind: str  # int | float | choice | switch | path | text
    default: Any
    help: str
    group: str
    choices: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()  # accepted spelling -> canonical choice
    minimum: float | None = None
    maximum: float | None = None
    none_words: tuple[str, ...] = ()  # spellings that mean "unset" (e.g. unlimited)
    default_text: str | None = None  # how --help and the README show the default
    alias_flags: tuple[str, ...] = ()  # other spellings of the flag (another tool of the reference uses them)

    def accepted(self) -> str:
        if self.kind == "choice":
            return ", ".join(self.choices)
        if self.kind == "switch":
            return "a switch (variable: 1/0, yes/no, true/false, on/off)"
        if self.kind in ("int", "float"):
            what = "an integer" if self.kind == "int" else "a number"
            lo = "" if self.minimum is None else f">= {_num(self.minimum)}"
            hi = "" if self.maximum is None else f"<= {_num(self.maximum)}"
            rng = " and ".join(x for x in (lo, hi) if x)
            extra = f" or {'/'.join(self.none_words)}" if self.none_words else ""
            return f"{what}{' ' + rng if rng else ''}{extra}"
        return "a path" if self.kind == "path" else "text"

    def shown_default(self) -> str:
        if self.default_text is not None:
            return self.default_text
        if self.kind == "switch":
            return "off"
        return "none" if self.default is None else str(self.default)

    def parse(self, raw: Any, source: str) -> Any:
        """Turn a flag or variable value into a typed value, or raise UsageError."""
        where = self.flag if source == "flag" else self.env
        if isinstance(raw, str):
            text = raw.strip()
        else:
            return raw  # already typed (switch flags, programmatic use)
        if self.kind == "switch":
            low = text.lower()
            if low in TRUE_WORDS:
                return True
            if low in FALSE_WORDS:
                return False
            raise UsageError(f"{where}: invalid value {raw!r} (accepted: {self.accepted()})")
        if self.none_words and text.lower() in self.none_words:
            return None
        if self.kind == "choice":
            low = text.lower()
            canon = {c.lower(): c for c in self.choices}
            canon.update({a.lower(): c for a, c in self.aliases})
            if low in canon:
                return canon[low]
            raise UsageError(f"{where}: invalid value {raw!r} (accepted: {self.accepted()})")
        if self.kind in ("int", "float"):
            if not (INT_RE if self.kind == "int" else FLOAT_RE).fullmatch(text):
                raise UsageError(f"{where}: invalid value {raw!r} (accepted: {self.accepted()})")
            try:
                value = int(text, 10) if self.kind == "int" else float(text)
            except ValueError:
                raise UsageError(f"{where}: invalid value {raw!r} (accepted: {self.accepted()})") from None
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"{where}: invalid value {raw!r} (accepted: {self.accepted()})")
            if (self.minimum is not None and value < self.minimum) or (
                self.maximum is not None and value > self.maximum
            ):
                raise UsageError(f"{where}: value {raw!r} out of range (accepted: {self.accepted()})")
            return value
        if text == "" and self.default is None:
            return None
        return text


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _yes_no(name, flag, env, help, group, default="auto", extra=("auto",)):
    return Option(name, flag, env, "choice", default, help, group, choices=(*extra, "yes", "no"))


# One row per option, one line per field group: a table is read across, so the formatter leaves it.
# fmt: off
OPTIONS: tuple[Option, ...] = (
    # -- what to run
    Option("model", "--model", "MODEL", "choice", zoo.DEFAULT_MODEL,
           "RIFE model: 4.0 ... 4.26 with .lite/.heavy variants = the Practical-RIFE releases under vs-rife's "
           "names (4.0 is the default); 3.6 = the ECCV2022-RIFE HD model; paper = the ECCV2022 paper model; null = "
           "no network, NULL_MS of host busy-wait per frame (measures the harness itself). `rifebench models` lists "
           "each with its architecture, parameters, GFLOP and weights",
           "run", choices=tuple(zoo.MODELS)),
    Option("null_ms", "--null-ms", "NULL_MS", "float", 5.0,
           "null model only (ignored by the others): host busy-wait per generated frame of each pair, in ms "
           "(so per pair at INTERPOLATION=1). It measures the harness, not a device: on GPU platforms the "
           "wait still runs on the host",
           "run", minimum=0, maximum=60000),
    Option("platform", "--platform", "PLATFORM", "choice", "auto",
           "device: auto picks XPU if usable, else CUDA, else CPU; Flex and Max mean XPU (case-insensitive)",
           "run", choices=("auto", "cpu", "cuda", "xpu"), aliases=(("flex", "xpu"), ("max", "xpu"), ("gpu", "cuda"))),
    Option("ipex", "--ipex", "IPEX", "choice", "yes",
           "XPU: yes = Intel Extension for PyTorch (ipex.optimize), no = PyTorch's own torch.xpu. CPU: the "
           "optimized preset uses the extension when it imports; IPEX=yes set explicitly insists, IPEX=no never",
           "run", choices=("yes", "no")),
    Option("precision", "--precision", "PRECISION", "choice", "auto",
           "compute precision; the warp always runs in fp32. auto = fp16 on GPUs (the reference default), "
           "fp32 on CPUs (CPU fp16 convolutions are ~60x slower than fp32 in torch 2.13). int8 = NNCF "
           "post-training quantization in RUNTIME=openvino on the CPU, calibrated on CALIBRATION, parity gate "
           ">= 30 dB against PyTorch fp32 (see docs/runtimes.md)", "run",
           choices=("auto", "fp16", "bf16", "fp32", "int8")),
    Option("amp", "--amp", "AMP", "switch", False,
           "keep fp32 weights and run under torch.autocast in PRECISION (mixed precision)", "run"),
    Option("runtime", "--runtime", "RUNTIME", "choice", "torch",
           "what runs the network: torch (eager PyTorch), or its ONNX export (cached beside the weights) in "
           "onnxruntime, openvino or tensorrt, parity-checked against PyTorch fp32 before timing (see "
           "docs/runtimes.md)", "run", choices=("torch", "onnxruntime", "openvino", "tensorrt")),
    Option("calibration", "--calibration", "CALIBRATION", "path", None,
           "PRECISION=int8 only: the frames the quantization is calibrated on (24 pairs spread over the set): a "
           "Vimeo-90K triplet folder or a video file. The quantized graphs are cached, keyed by the frames' "
           "sha256", "run",
           default_text="the run's dataset or video, else ../shared/data/mixed_448x256 beside a checkout, else "
           "synthetic frames (warning INT8_SYNTHETIC_CALIBRATION)"),
    Option("dummy", "--dummy", "DUMMY", "switch", False,
           "performance mode: the same seeded random pair every submission; accuracy is 0 and no verdict is made",
           "run"),
    Option("dataset_dir", "--data", "DATASET_DIR", "path", None,
           "quality mode: a Vimeo-90K triplet test folder (tri_testlist.txt with sequences/ or input/+target/); "
           "durations are ignored and a stream tests min(NUM_INPUTS, list size) triplets. Video mode: a video file "
           "(.mp4 .mkv .webm .mov .avi .y4m), min(NUM_INPUTS, pairs in the video) pairs per stream (see VIDEO_GT)",
           "run"),
    Option("models_dir", "--modelsdir", "MODELS_DIR", "path", None,
           "where weights live (MODELS_DIR/rife-<model>/flownet.pkl)", "run",
           default_text="./model in a checkout, else $XDG_CACHE_HOME/rifebench", alias_flags=("--models-dir",)),
    Option("load_path", "--pretrained-weights", "LOAD_PATH", "path", None,
           "weights file; missing default weights are fetched as by get_model.sh", "run",
           default_text="MODELS_DIR/rife-<model>/flownet.pkl"),
    Option("random_weights", "--random-weights", "RANDOM_WEIGHTS", "switch", False,
           "speed only: seeded random weights of the model's official shapes (written once to "
           "MODELS_DIR/rife-<model>/random-seed0.pkl) in place of its weights file, for a release not at hand; "
           "recorded in results.json; refused where quality is scored (quality mode, video mode with VIDEO_GT=drop)",
           "run"),
    Option("output_dir", "--output-dir", "OUTPUT_DIR", "path", "./output",
           "where output.log, results.yaml and results.json go", "run"),
    # -- workload
    Option("num_inputs", "--num-inputs", "NUM_INPUTS", "int", 100,
           "input pairs per stream (dummy: at least this many unless MAX_TEST_DURATION ends the run)",
           "workload", minimum=1, maximum=10**9),
    Option("batch_size", "--batch-size", "BATCH_SIZE", "int", 1,
           "pairs per forward call (the reference has no batching: 1). Dummy: the seeded pair repeated, whole "
           "batches; dataset: consecutive triplets of one size, a smaller last batch allowed; every pair is "
           "still counted and scored on its own", "workload", minimum=1, maximum=4096),
    Option("interpolation", "--interpolation", "INTERPOLATION", "int", 1,
           "frames generated per pair at t = i/(N+1); the paper model needs N = 2^k - 1 (recursive bisection)",
           "workload", minimum=1, maximum=255),
    Option("warmup", "--warmup", "WARMUP", "int", 10,
           "pairs run before timing starts, reported apart", "workload", minimum=0, maximum=10**6),
    Option("async_", "--async", "ASYNC", "int", 0,
           "how often the host waits for the device: every N submissions; 0 = once at the end. GPU latency is "
           "measured with device events whatever ASYNC is (see docs/measurement.md)",
           "workload", minimum=0, maximum=10**9),
    Option("data_channels", "--data-channels", "DATA_CHANNELS", "int", 3,
           "dummy frame channels (RIFE takes RGB)", "workload", minimum=3, maximum=3),
    Option("data_height", "--data-height", "DATA_HEIGHT", "int", 720,
           "dummy frame height in pixels", "workload", minimum=16, maximum=8640),
    Option("data_width", "--data-width", "DATA_WIDTH", "int", 1280,
           "dummy frame width in pixels", "workload", minimum=16, maximum=15360),
    Option("scale", "--scale", "SCALE", "float", 1.0,
           "RIFE flow scale (0.5 for 4K content); changes the padding modulus", "workload",
           minimum=0.25, maximum=4.0),
    Option("seed", "--seed", "SEED", "int", 0, "seed of the dummy frames", "workload", minimum=0, maximum=2**31 - 1),
    Option("min_test_duration", "--min-test-duration", "MIN_TEST_DURATION", "float", 0.0,
           "dummy mode: run at least this many seconds (overrides NUM_INPUTS)", "workload", minimum=0),
    Option("max_test_duration", "--max-test-duration", "MAX_TEST_DURATION", "float", None,
           "dummy mode: stop after this many seconds even before NUM_INPUTS", "workload",
           minimum=0.001, none_words=("unlimited", "inf", "none"), default_text="unlimited"),
    # -- quality
    Option("saveimages", "--saveimages", "SAVEIMAGES", "switch", False,
           "write interpolated frames to OUTPUT_DIR/images (off the timed path)", "quality"),
    Option("min_psnr_db", "--psnr-threshold", "MIN_PSNR_DB", "float", 25.0,
           "PSNR in dB for one frame to pass", "quality", minimum=0, maximum=100),
    Option("min_pass_pct", "--min-pass-pct", "MIN_PASS_PCT", "float", 95.0,
           "percentage of checked frames that must pass for the run to pass", "quality", minimum=0, maximum=100),
    Option("video_gt", "--video-gt", "VIDEO_GT", "choice", "drop",
           "video mode: drop = every (INTERPOLATION+1)-th frame is an input and the frames between are the ground "
           "truth of the interpolated ones (scored); none = every consecutive pair of the full-rate video, "
           "nothing scored (accuracy 0)", "quality", choices=("drop", "none")),
    Option("save_video", "--save-video", "SAVE_VIDEO", "switch", False,
           "video mode: write OUTPUT_DIR/interpolated.mkv (FFV1, lossless), inputs and interpolated frames in "
           "order at (INTERPOLATION+1)x the input rate; --saveimages does the same in video mode", "quality"),
    # -- streams
    Option("streams", "--streams", "STREAMS", "int", 1,
           "parallel inference processes, each pinned to its own CPUs", "streams", minimum=1, maximum=1024),
    Option("pin", "--pin", "PIN", "choice", "auto",
           "stream pinning: auto (numactl if usable, else CPU affinity), numactl or affinity (insist, fail "
           "if impossible), none", "streams", choices=("auto", "numactl", "affinity", "none")),
    Option("devices", "--devices", "DEVICES", "text", None,
           "GPU/XPU indices the streams are spread over round-robin, e.g. 0,1 (default: all visible)",
           "streams", default_text="all"),
    Option("barrier_timeout", "--barrier-timeout", "BARRIER_TIMEOUT", "float", 600.0,
           "seconds a stream may take to load and warm up before the run is failed", "streams",
           minimum=1, maximum=86400),
    Option("socket", "--socket", "SOCKET", "path", None,
           "Unix socket of a telemetry collector: sends start when all streams are timed, stop at the end",
           "streams"),
    Option("fault", "--fault", "FAULT", "text", None,
           "testing: stream STREAM raises at timed pair PAIR (or exits with status 3 with :exit, or with "
           "STREAM:hold never says ready), to check failure handling; form STREAM:PAIR[:exit] or STREAM:hold",
           "streams"),
    # -- optimisation knobs; auto = what the OPTIMIZE preset says
    Option("optimize", "--optimize", "OPTIMIZE", "choice", "baseline",
           "preset: baseline (eager, contiguous, no autotuning: the reference) or optimized "
           "(everything that helps on the platform)", "optimisation", choices=("baseline", "optimized")),
    _yes_no("channels_last", "--channels-last", "CHANNELS_LAST", "channels_last memory format", "optimisation"),
    Option("compile", "--compile", "COMPILE", "choice", "auto", "torch.compile mode", "optimisation",
           choices=("auto", "none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")),
    _yes_no("cudnn_benchmark", "--cudnn-benchmark", "CUDNN_BENCHMARK", "CUDA: cudnn.benchmark autotuning",
            "optimisation"),
    _yes_no("tf32", "--tf32", "TF32", "CUDA: TF32 matmul/conv for fp32", "optimisation"),
    _yes_no("cuda_graphs", "--cuda-graphs", "CUDA_GRAPHS", "CUDA: capture the model in a CUDA graph",
            "optimisation"),
    _yes_no("preallocate", "--preallocate", "PREALLOCATE", "pre-allocated, pinned input buffers", "optimisation"),
    _yes_no("reuse_frames", "--reuse-frames", "REUSE_FRAMES",
            "video sequences: reuse the shared frame's device copy between consecutive pairs", "optimisation"),
    Option("ov_hint", "--ov-hint", "OV_HINT", "choice", "latency",
           "RUNTIME=openvino only: latency = one infer request on one OpenVINO stream with all the stream's CPUs "
           "(STREAMS is the parallelism); throughput = OpenVINO's THROUGHPUT hint, its own streams inside this "
           "stream, the pairs of a submission spread over its infer requests (use BATCH_SIZE >= their number, "
           "recorded in results.json)", "optimisation", choices=("latency", "throughput")),
    Option("repeat", "--repeat", "REPEAT", "int", 1,
           "repetitions of the timed measurement, each in fresh stream processes with its own warm-up; the "
           "headline figures are their medians with 95% bootstrap intervals", "run", minimum=1, maximum=100),
    Option("min_samples", "--min-samples", "MIN_SAMPLES", "int", 30,
           "timed submissions per stream below which the run is not valid (TOO_FEW_SAMPLES)", "run",
           minimum=1, maximum=10**9),
    Option("validity", "--validity", "VALIDITY", "choice", "report",
           "report = an invalid measurement is said (validity in results.json, a verdict line) but the exit status "
           "follows the run; strict = an invalid measurement fails the run (exit 1)", "run",
           choices=("report", "strict")),
    Option("measure_peak", "--measure-peak", "MEASURE_PEAK", "choice", "auto",
           "the device's peak TFLOP/s for the share-of-peak figure: auto = from the table of known GPUs, else a "
           "1-second matrix-product measurement on GPUs; yes = always measure; no = table only", "run",
           choices=("auto", "yes", "no")),
)
# fmt: on

BY_NAME = {o.name: o for o in OPTIONS}
BY_ENV = {o.env: o for o in OPTIONS}
GROUPS = ("run", "workload", "quality", "streams", "optimisation")


def flag_of(name: str) -> str:
    """How errors name an option: `--flag/VARIABLE`."""
    o = BY_NAME[name]
    return f"{o.flag}/{o.env}"


def markdown_table() -> str:
    """The option table of docs/options.md, generated from OPTIONS."""
    rows = ["| flag | variable | values | default | meaning |", "|---|---|---|---|---|"]
    for o in OPTIONS:
        flags = " ".join(f"`{f}`" for f in (o.flag, *o.alias_flags))
        rows.append(f"| {flags} | `{o.env}` | {o.accepted()} | {o.shown_default()} | {o.help} |")
    return "\n".join(rows)
