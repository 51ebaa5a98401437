"""The option table drives parsing, environment variables, validation and docs/options.md."""

import re

import pytest

from helpers import REPO
from rifebench.config import resolve
from rifebench.options import BY_ENV, OPTIONS, UsageError, markdown_table


def test_reference_interface_is_complete():
    # Every flag/variable pair of the reference harness's table keeps its name.
    reference = {
        "--ipex": "IPEX",
        "--data": "DATASET_DIR",
        "--modelsdir": "MODELS_DIR",
        "--dummy": "DUMMY",
        "--data-channels": "DATA_CHANNELS",
        "--data-height": "DATA_HEIGHT",
        "--data-width": "DATA_WIDTH",
        "--pretrained-weights": "LOAD_PATH",
        "--num-inputs": "NUM_INPUTS",
        "--async": "ASYNC",
        "--precision": "PRECISION",
        "--amp": "AMP",
        "--streams": "STREAMS",
        "--interpolation": "INTERPOLATION",
        "--output-dir": "OUTPUT_DIR",
        "--platform": "PLATFORM",
        "--warmup": "WARMUP",
        "--saveimages": "SAVEIMAGES",
        "--psnr-threshold": "MIN_PSNR_DB",
        "--min-pass-pct": "MIN_PASS_PCT",
        "--min-test-duration": "MIN_TEST_DURATION",
        "--max-test-duration": "MAX_TEST_DURATION",
        "--socket": "SOCKET",
        "--model": "MODEL",
    }
    flags = {o.flag: o.env for o in OPTIONS}
    for flag, env in reference.items():
        assert flags.get(flag) == env, flag


def test_reference_defaults():
    cfg = resolve(["--dummy"], env={})
    assert (cfg.num_inputs, cfg.async_, cfg.streams, cfg.interpolation, cfg.warmup) == (100, 0, 1, 1, 10)
    assert (cfg.data_channels, cfg.data_height, cfg.data_width) == (3, 720, 1280)
    assert (cfg.min_psnr_db, cfg.min_pass_pct, cfg.min_test_duration) == (25.0, 95.0, 0.0)
    assert cfg.max_test_duration is None and cfg.ipex == "yes" and cfg.model == "4.0"
    assert cfg.platform == "auto" and cfg.output_dir.endswith("/output")
    assert cfg.load_path.endswith("model/rife-4.0/flownet.pkl")


def test_flag_beats_variable_beats_default():
    env = {"NUM_INPUTS": "7", "WARMUP": "3"}
    cfg = resolve(["--dummy", "--num-inputs", "9"], env=env)
    assert cfg.num_inputs == 9 and cfg.origin["num_inputs"] == "flag"
    assert cfg.warmup == 3 and cfg.origin["warmup"] == "env"
    assert cfg.streams == 1 and cfg.origin["streams"] == "default"


def test_switches_from_variables():
    assert resolve([], env={"DUMMY": "yes", "AMP": "1"}).amp is True
    assert resolve(["--dummy"], env={"AMP": "off"}).amp is False
    with pytest.raises(UsageError, match=r"^AMP: invalid value 'maybe' \(accepted: a switch"):
        resolve(["--dummy"], env={"AMP": "maybe"})


@pytest.mark.parametrize(
    "name,value,accepted",
    [
        ("PLATFORM", "tpu", "auto, cpu, cuda, xpu"),
        ("PRECISION", "fp8", "auto, fp16, bf16, fp32, int8"),
        (
            "MODEL",
            "9.9",
            "4.0, 4.1, 4.2, 4.3, 4.4, 4.5, 4.6, 4.7, 4.8, 4.9, 4.10, 4.11, 4.12, 4.12.lite, 4.13, "
            "4.13.lite, 4.14, 4.14.lite, 4.15, 4.15.lite, 4.16.lite, 4.17, 4.17.lite, 4.18, 4.19, 4.20, 4.21, 4.22, "
            "4.22.lite, 4.23, 4.24, 4.25, 4.25.lite, 4.25.heavy, 4.26, 4.26.heavy, 3.6, paper, null",
        ),
        ("IPEX", "maybe", "yes, no"),
    ],
)
def test_bad_choice_names_option_value_and_accepted(name, value, accepted):
    with pytest.raises(UsageError) as e:
        resolve(["--dummy"], env={name: value})
    assert str(e.value) == f"{name}: invalid value {value!r} (accepted: {accepted})"


def test_platform_names_case_insensitive_flex_max_mean_xpu():
    assert resolve(["--dummy", "--platform", "Flex"], env={}).platform == "xpu"
    assert resolve(["--dummy", "--platform", "MAX"], env={}).platform == "xpu"
    assert resolve(["--dummy", "--platform", "CUDA"], env={}).platform == "cuda"
    assert resolve(["--dummy", "--platform", "Cpu"], env={}).platform == "cpu"


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--num-inputs", "0"),
        ("--num-inputs", "ten"),
        ("--streams", "0"),
        ("--streams", "1.5"),
        ("--warmup", "-1"),
        ("--async", "-2"),
        ("--interpolation", "0"),
        ("--data-height", "8"),
        ("--data-width", "x"),
        ("--data-channels", "4"),
        ("--psnr-threshold", "abc"),
        ("--psnr-threshold", "101"),
        ("--min-pass-pct", "100.5"),
        ("--min-pass-pct", "nan"),
        ("--min-test-duration", "-1"),
        ("--max-test-duration", "0"),
    ],
)
def test_out_of_range_numbers(flag, value):
    with pytest.raises(UsageError) as e:
        resolve(["--dummy", flag, value], env={})
    msg = str(e.value)
    assert msg.startswith(f"{flag}: ") and repr(value) in msg and "accepted:" in msg and "\n" not in msg


def test_float_thresholds_and_durations():
    cfg = resolve(
        ["--dummy", "--psnr-threshold", "27.5", "--min-test-duration", "0.5", "--max-test-duration", "1.25"], env={}
    )
    assert (cfg.min_psnr_db, cfg.min_test_duration, cfg.max_test_duration) == (27.5, 0.5, 1.25)
    assert resolve(["--dummy"], env={"MAX_TEST_DURATION": "unlimited"}).max_test_duration is None


def test_cross_option_checks(tmp_path):
    with pytest.raises(UsageError, match="cannot be combined"):
        resolve(["--dummy", "--data", str(tmp_path)], env={})
    with pytest.raises(UsageError, match="does not exist"):
        resolve(["--data", str(tmp_path / "nope")], env={})
    with pytest.raises(UsageError, match="no workload"):
        resolve([], env={})
    with pytest.raises(UsageError, match="greater than"):
        resolve(["--dummy", "--min-test-duration", "5", "--max-test-duration", "2"], env={})
    with pytest.raises(UsageError, match=r"2\^k - 1"):
        resolve(["--dummy", "--model", "paper", "--interpolation", "2"], env={})
    assert resolve(["--dummy", "--model", "paper", "--interpolation", "3"], env={}).interpolation == 3
    assert resolve(["--dummy", "--model", "4.6", "--interpolation", "2"], env={}).interpolation == 2
    with pytest.raises(UsageError, match="DEVICES"):
        resolve(["--dummy", "--devices", "0,a"], env={})


def test_every_option_has_help_with_default():
    from rifebench.config import build_parser

    text = " ".join(build_parser().format_help().split())  # undo line wrapping
    for o in OPTIONS:
        assert o.flag in text and f"[{o.env}]" in text
    assert "default: 100" in text and "default: unlimited" in text


def test_docs_option_table_is_generated_from_the_table():
    page = (REPO / "docs" / "options.md").read_text()
    assert markdown_table() in page, "docs/options.md is stale: run `python -m rifebench.docsgen`"


def test_variables_are_unique():
    assert len(BY_ENV) == len(OPTIONS)
    assert len({o.flag for o in OPTIONS}) == len(OPTIONS)
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", o.env) for o in OPTIONS)


# --- strict numbers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "env,raw",
    [
        ("NUM_INPUTS", "1_0"),
        ("NUM_INPUTS", "\uff11\uff10"),
        ("NUM_INPUTS", "1.0"),
        ("NUM_INPUTS", "\u0661\u0660"),
        ("SCALE", "0_5"),
        ("SCALE", "\uff11.5"),
        ("SCALE", "1.5_0"),
        ("MIN_PSNR_DB", "2_5"),
    ],
)
def test_lenient_numbers_are_refused(env, raw):
    with pytest.raises(UsageError) as info:
        BY_ENV[env].parse(raw, "env")
    message = str(info.value)
    assert message.startswith(f"{env}: invalid value {raw!r}") and "accepted:" in message and "\n" not in message


@pytest.mark.parametrize(
    "env,raw,value",
    [
        ("NUM_INPUTS", " 10 ", 10),
        ("NUM_INPUTS", "+10", 10),
        ("SEED", "007", 7),
        ("SCALE", "0.5", 0.5),
        ("SCALE", ".5", 0.5),
        ("SCALE", "1.", 1.0),
        ("SCALE", "5e-1", 0.5),
        ("SCALE", "+1E0", 1.0),
        ("MAX_TEST_DURATION", "unlimited", None),
    ],
)
def test_plain_numbers_still_parse(env, raw, value):
    assert BY_ENV[env].parse(raw, "env") == value
