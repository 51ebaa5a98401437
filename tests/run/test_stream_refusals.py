"""Bad input that only a stream can find (a runtime's provider, the ONNX cache's
folders) is bad input as any other: one line, exit 2, no traceback, no
results.json left claiming "running"; and what a runtime stream says of its own
set-up phase (export, compilation, parity) on the console."""

from __future__ import annotations

import os
import textwrap
from types import SimpleNamespace

import pytest

from helpers import clean_env, run_harness
from rifebench.errors import UsageError
from rifebench.models.onnx_cache import CacheError
from rifebench.run.worker import StreamChannel

SMALL = ["--dummy", "--model", "null", "--null-ms", "1", "--data-height", "32", "--data-width", "32"]
SMALL += ["--num-inputs", "3", "--warmup", "1", "--precision", "fp32"]


class Conn:
    def __init__(self):
        self.sent = []

    def send(self, message):
        self.sent.append(message)


@pytest.mark.parametrize(
    "exc",
    [
        UsageError("--runtime/RUNTIME tensorrt: no TensorrtExecutionProvider (install: ...)"),
        CacheError("ONNX cache: no folder can take the export: '/m' is not writable (accepted: ...)"),
    ],
    ids=["usage", "onnx-cache"],
)
def test_a_usage_error_in_a_stream_is_its_one_line_flagged_usage(exc):
    channel = StreamChannel(Conn(), 0)  # only its send() is used
    try:
        raise exc
    except Exception as caught:  # noqa: BLE001 - what the stream's entry point does
        channel.error(caught)
    kind, payload = channel.conn.sent[-1]
    assert kind == "error" and payload["usage"] is True and payload["traceback"] == ""
    assert payload["error"] == str(exc)  # the line itself, not "CacheError: ..."
    assert isinstance(exc, UsageError)  # the cache's refusals are usage errors wherever they are found


# Makes the stream's build raise, in the stream process only (the launcher imports it too).
SITECUSTOMIZE = """
    import os, sys
    if os.environ.get("REFUSE_IN_STREAM") and "rifebench.run.worker" in " ".join(sys.orig_argv):
        import rifebench.backends.device as device

        def refuse(*args, **kwargs):
            from rifebench.errors import UsageError
            from rifebench.models.onnx_cache import CacheError
            kind = CacheError if os.environ["REFUSE_KIND"] == "cache" else UsageError
            raise kind(os.environ["REFUSE_IN_STREAM"])

        device.Backend.__init__ = refuse
"""


@pytest.mark.slow  # a launch: about 6 s on 2 cores
@pytest.mark.parametrize(
    "kind,line",
    [
        ("usage", "--runtime/RUNTIME tensorrt: ONNX Runtime here has no TensorrtExecutionProvider (install: ...)"),
        ("cache", "ONNX cache: no folder can take the export: '/m/onnx-cache' is not writable (accepted: ...)"),
    ],
)
def test_a_stream_that_finds_bad_input_makes_the_run_exit_2_in_one_line(tmp_path, kind, line):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE))
    env = clean_env(REFUSE_IN_STREAM=line, REFUSE_KIND=kind)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(site), env.get("PYTHONPATH"))))
    out = tmp_path / "out"
    proc = run_harness([*SMALL, "--output-dir", out], env=env, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr  # was 1, after a traceback
    assert proc.stderr == f"run_model.sh: error: {line}\n"
    assert "Traceback" not in proc.stdout
    assert not (out / "results.json").exists() and not (out / "results.yaml").exists()


def test_a_runtime_stream_names_its_set_up_phase_and_parity():
    from rifebench.report.console_summary import runtime_line

    rt = {
        "name": "openvino",
        "version": "2026.4.1",
        "graph_precision": "fp32",
        "setup_s": 48.2,
        "engines": [{"padded_hw": [64, 64], "build_s": 47.9}],
        "exports": [{"export_s": 23.5, "cached": False}],
        "parity": {"psnr_db": 52.3, "identical": False, "threshold_db": 50.0, "against": "PyTorch fp32"},
    }
    assert runtime_line(rt) == (
        "openvino 2026.4.1 (graph fp32): set-up 48.2 s (export 23.5 s, compile 24.4 s); "
        "parity 52.30 dB PSNR against PyTorch fp32 (needs >= 50 dB)"
    )
    cached = rt | {"exports": [{"export_s": None, "cached": True}], "engines": [{"build_s": 2.0}]}
    assert "(cached graph, compile 2.0 s)" in runtime_line(cached)
    int8 = rt | {
        "graph_precision": "int8",
        "int8": {"calibration_read_s": 0.4, "entries": [{"quantize_s": 15.6}, {"quantize_s": 3.0}]},
        "parity": rt["parity"]
        | {"psnr_db": 38.1, "threshold_db": 30.0, "check_pairs": {"pairs": 4, "psnr_db": 33.25, "scene": "moving"}},
    }
    assert runtime_line(int8) == (
        "openvino 2026.4.1 (graph int8): set-up 48.2 s (export 23.5 s, quantize 19.0 s, compile 5.4 s); "
        "parity 38.10 dB PSNR against PyTorch fp32, 33.25 dB on 4 check pairs (moving) (needs >= 30 dB)"
    )
    cached8 = int8 | {"exports": [{"export_s": None, "cached": True}], "engines": [{"build_s": 1.5}]}
    cached8["int8"] = {"calibration_read_s": 0.3, "entries": [{"quantize_s": None, "cached": True}]}
    assert "(cached graph, cached int8 graph, compile 1.2 s)" in runtime_line(cached8)


def test_the_ready_line_and_the_header_name_the_runtime_phase(monkeypatch):
    from rifebench.run import session
    from rifebench.run.launcher import Outcome
    from rifebench.run.watch import StreamProc, Watch
    from rifebench.status import Status

    said: list[str] = []
    watch = Watch(SimpleNamespace(), [], Outcome(Status.COMPLETED), None, said.append, None, None, None)
    ready = {"warmup": {"pairs": 2, "seconds": 0.5}, "setup_s": 2.8, "runtime_setup_s": 47.9}
    watch.handle(StreamProc(0, None, None), "ready", ready)
    assert said == ["stream 0 ready: set-up 2.8 s, runtime set-up 47.9 s, warm-up 2 pairs in 0.50 s"]
    monkeypatch.setattr("rifebench.runtimes.net.runtime_version", lambda name: "1.30.0")
    cfg = SimpleNamespace(
        model="4.0", mode_name="performance", mode="dummy", platform="cpu", precision="fp32", amp=False, streams=1
    )
    assert session.header(SimpleNamespace(**vars(cfg), runtime="onnxruntime")).endswith(
        ", 1 stream(s), runtime onnxruntime 1.30.0 (parity gate: >= 50 dB PSNR against PyTorch fp32 before timing)"
    )
    assert "runtime" not in session.header(SimpleNamespace(**vars(cfg), runtime="torch"))
