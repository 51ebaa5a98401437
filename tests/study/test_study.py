"""The optimisation study: seeded inputs, the quality measures against known
truths, FPS and speed-up from one statistic with their intervals, the dispersion
warning, "identical" outputs, argument and output-folder errors, and one tiny
end-to-end study (64x64) whose table and JSON carry speed and quality against
the baseline."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import REPO, clean_env
from rifebench.data.dummy import dummy_frames
from rifebench.errors import UsageError
from rifebench.measure.quality import output_diff as compare
from rifebench.measure.stats import spread_pct
from rifebench.study.cli import main, parse
from rifebench.study.records import StudyRow
from rifebench.study.report import notes, table
from rifebench.study.score import quality, score, speed
from rifebench.study.worker import SEQUENCE, pair_of, video_frames


def test_inputs_are_seeded_and_move():
    a0, a1 = dummy_frames(40, 56, seed=3)
    b0, b1 = dummy_frames(40, 56, seed=3)
    assert torch.equal(a0, b0) and torch.equal(a1, b1) and not torch.equal(a0, dummy_frames(40, 56, seed=4)[0])
    frames = video_frames(48, 64, SEQUENCE, seed=1)
    assert [f.shape for f in frames] == [(1, 3, 48, 64)] * SEQUENCE
    assert torch.equal(frames[1], video_frames(48, 64, SEQUENCE, seed=1)[1])
    # 3 px down and 3 px left per frame: frame 1 shifted back matches frame 0.
    assert torch.equal(frames[1][..., :-3, 3:], frames[0][..., 3:, :-3])
    assert [pair_of(k) for k in range(4)] == [(0, 1), (1, 2), (2, 0), (0, 1)]  # one shared frame per step


def test_the_video_shares_one_frame_per_pair():
    from rifebench.models import zoo
    from rifebench.models.interp import Interpolator
    from rifebench.models.nets.ifnet_v4 import build_v46

    interp = Interpolator(build_v46(), zoo.get("4.6"), "cpu", "fp32", reuse_frames=True)
    frames = video_frames(32, 32, SEQUENCE, seed=0)
    for k in range(7):
        i, j = pair_of(k)
        interp.prepare(frames[i], key=i)
        interp.prepare(frames[j], key=j)
    assert (interp.reuse["hits"], interp.reuse["misses"]) == (6, 8)  # every pair after the first: one hit


def test_quality_measures_known_truths():
    rng = np.random.default_rng(0)
    ref = rng.random((32, 40, 3)).astype(np.float32)
    same = compare(ref, ref.copy())
    assert same == {"psnr_db": math.inf, "ssim": 1.0, "max_abs_err": 0.0}
    shifted = np.clip(ref + 0.01, 0, 1)
    exact = -10 * math.log10(float(np.mean((shifted.astype(np.float64) - ref) ** 2)))
    assert compare(ref, shifted)["psnr_db"] == pytest.approx(exact)
    assert compare(ref, shifted)["max_abs_err"] == pytest.approx(0.01, abs=1e-6)
    assert compare(ref, rng.random((32, 40, 3)))["ssim"] < 0.5


def test_arguments_are_checked():
    args = parse(["--sizes", "64x48", "--configs", "baseline,mine", "--config", "mine=--precision bf16"])
    assert args.sizes == [(64, 48)] and args.flags_of["mine"] == ["--precision", "bf16"]
    for bad in (
        ["--configs", "baseline,nope"],
        ["--sizes", "64by48"],
        ["--configs", "baseline,baseline"],
        ["--rounds", "0"],
        ["--config", "=x"],
    ):
        with pytest.raises(SystemExit):
            parse(bad)


def test_a_configuration_that_cannot_run_is_refused_before_any_worker(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    code = main(
        [
            "--configs",
            "baseline,x",
            "--config",
            "x=--compile default",
            "--sizes",
            "32x32",
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("study: error: configuration 'x'")
    assert "--compile/COMPILE: 'default' cannot run here" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # over 2 s on 2 cores: kept out of the fast tier
def test_a_bad_config_exits_2_like_every_tool(tmp_path, capsys):
    """A configuration whose flags the harness refuses is a usage error: one line, exit 2."""
    args = ["--configs", "baseline,x", "--config", "x=--fault nonsense", "--sizes", "32x32"]
    assert main([*args, "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("study: error: configuration 'x': --fault/FAULT")
    assert not (tmp_path / "out").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "rifebench", "study", *args, "--output-dir", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        cwd=REPO,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "configuration 'x'" in proc.stderr


@pytest.mark.parametrize("kind", ["file", "used folder"])
def test_an_output_folder_that_would_lose_results_is_refused(tmp_path, weights_40, kind, capsys):
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("x")
    else:
        out.mkdir()
        (out / "study.json").write_text("{}")
    code = main(
        [
            "--configs",
            "baseline",
            "--sizes",
            "32x32",
            "--pretrained-weights",
            str(weights_40),
            "--output-dir",
            str(out),
        ]
    )
    assert code == 2
    assert re.search(r"^study: error: --output-dir: .*(is a file|is not empty).*accepted", capsys.readouterr().err)
    assert out.is_file() if kind == "file" else (out / "study.json").read_text() == "{}"


def test_fps_and_speedup_come_from_the_same_statistic():
    """One disturbed round moves the mean, not the median: FPS and speed-up
    both follow the median, so the speed-up is the ratio of the FPS."""
    ref_rounds = [[100.0], [110.0], [90.0], [105.0], [95.0]]
    rounds = [[50.0], [60.0], [45.0], [400.0], [55.0]]
    ref, row = speed(ref_rounds, ref_rounds), speed(rounds, ref_rounds)
    assert row["ms_p50"] == 55.0 and row["ms_min"] == 45.0 and row["fps"] == pytest.approx(1000 / 55)
    assert row["speedup"] == pytest.approx(100 / 55) == pytest.approx(row["fps"] / ref["fps"])
    assert ref["speedup"] == 1.0 and ref["speedup_ci95"] == [1.0, 1.0]
    lo, hi = row["fps_ci95"]
    assert lo <= row["fps"] <= hi and lo < hi
    lo, hi = row["speedup_ci95"]  # per-round ratios: 2.0, 1.83, 2.0, 0.26, 1.73
    assert lo <= row["speedup"] <= hi and lo < hi
    one = speed([[50.0, 52.0]], [[100.0, 98.0]])  # one round: no interval, not a zero-width one
    assert one["fps_ci95"] is None and one["speedup_ci95"] is None and one["speedup"] == pytest.approx(99 / 51)
    assert speed(rounds, None)["speedup"] is None


def test_a_configuration_whose_pairs_vary_gets_a_dispersion_warning():
    assert spread_pct([90.0, 100.0, 110.0]) == pytest.approx(16.0)  # deciles 92 and 108 over 100
    assert spread_pct([100.0]) is None
    base = StudyRow(config="baseline", size="64x64", rounds_ms=[[100.0, 101.0], [99.0, 100.0], [102.0, 98.0]])
    noisy = StudyRow(config="bf16", size="64x64", rounds_ms=[[60.0, 90.0], [70.0, 62.0], [95.0, 66.0]])
    rows = [score(base, base), score(noisy, base)]
    assert rows[0].spread_pct < 20 and rows[0].warnings == []
    assert rows[1].spread_pct > 20 and [w["code"] for w in rows[1].warnings] == ["DISPERSION"]
    assert "bf16 at 64x64" in rows[1].warnings[0]["message"] and "--rounds" in rows[1].warnings[0]["remedy"]
    assert sum("[DISPERSION]" in n for n in notes(rows)) == 1 and "median" in notes(rows)[0]
    assert "| 64x64 | bf16 (None) |" in table(rows) and "x [" in table(rows)


def test_identical_outputs_are_shown_as_identical():
    rng = np.random.default_rng(0)
    outs = [rng.random((16, 16, 3)).astype(np.float32) for _ in range(2)]
    same, close = quality(outs, [o.copy() for o in outs]), quality(outs, [o + 1e-3 for o in outs])
    assert same == {"identical": True, "psnr_db": None, "ssim": 1.0, "max_abs_err": 0.0, "pairs": 2}
    assert close["identical"] is False and close["psnr_db"] == pytest.approx(60.0, abs=0.01)
    json.dumps([same, close], allow_nan=False)  # JSON has no infinity
    row = StudyRow(config="c", size="16x16", precision="fp32", fps=1.0, quality=same)
    assert "| identical |" in table([row]) and "inf" not in table([row]) and "100.0" not in table([row])


@pytest.mark.slow
def test_tiny_study_end_to_end(tmp_path, weights_40):
    """Three configurations and one that fails in its worker (4.6 given 4.0's
    weights): the others are measured, the failure is a row, the exit status 1;
    study.json and study.md land in the output folder."""
    out = tmp_path / "study"
    cmd = [
        sys.executable,
        "-m",
        "rifebench.study.cli",
        "--sizes",
        "64x64",
        "--configs",
        "baseline,channels_last,bf16,broken",
        "--config",
        "broken=--model 4.6",
        "--rounds",
        "2",
        "--pairs",
        "1",
        "--warmup",
        "0",
        "--threads",
        "1",
        "--pretrained-weights",
        str(weights_40),
        "--output-dir",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=clean_env(), cwd=REPO)
    assert proc.returncode == 1, proc.stderr
    assert "study: failed configurations: broken" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["study.json", "study.md"]
    doc = json.loads(out.joinpath("study.json").read_text())
    started, finished = (dt.datetime.fromisoformat(doc[k]) for k in ("started", "finished"))
    assert started.utcoffset() == dt.timedelta(0) and started <= finished and doc["duration_s"] >= 0
    assert doc["complete"] and [r["config"] for r in doc["rows"]] == ["baseline", "channels_last", "bf16", "broken"]
    base, cl, bf16, broken = doc["rows"]
    assert "4.6" in broken["error"] and "| 64x64 | broken | failed:" in proc.stdout
    for r in (base, cl, bf16):
        assert [len(x) for x in r["rounds_ms"]] == [1, 1] and len(r["cpu_ms"]) == 2
        assert r["fps"] == pytest.approx(1000 / r["ms_p50"]) and len(r["fps_ci95"]) == 2
        assert r["speedup"] == pytest.approx(r["fps"] / base["fps"]) and len(r["speedup_ci95"]) == 2
        assert "outputs" not in r and r["knobs"]["preset"] == "baseline"
    assert base["speedup"] == 1.0 and base["quality"]["identical"] and base["quality"]["psnr_db"] is None
    assert cl["knobs"]["effective"]["channels_last"] is True
    assert cl["quality"]["identical"] or cl["quality"]["psnr_db"] >= 50
    assert bf16["precision"] == "bf16" and not bf16["quality"]["identical"] and bf16["quality"]["psnr_db"] >= 35
    assert "| 64x64 | channels_last (fp32) |" in proc.stdout and "speed-up [95% CI]" in proc.stdout
    assert "| identical |" in proc.stdout and "| 64x64 | baseline (fp32) |" in out.joinpath("study.md").read_text()


def test_a_study_row_round_trips_without_its_outputs():
    row = StudyRow(size="64x64", config="bf16", precision="bf16", rounds_ms=[[1.0, 2.0]], fps=500.0, outputs=[b"x"])
    doc = json.loads(json.dumps(row.to_dict()))
    assert "outputs" not in doc and StudyRow.from_dict(doc) == StudyRow(**{**vars(row), "outputs": []})


# --- issue 21 -----------------------------------------------------------------------------


def test_the_null_model_needs_no_weights():
    """`study --model null` crashed on os.path.isfile(None): the null model has no weights file."""
    from rifebench.study.cli import check_configs

    check_configs(parse(["--model", "null", "--configs", "baseline,channels_last", "--sizes", "32x32"]))


@pytest.mark.parametrize(
    "spec, words",
    [
        ("x=--fault 5:1", "--fault/FAULT: invalid value '5:1'"),
        ("x=--fault", "--fault"),
        ("x=--bogus 1", "unrecognized arguments: --bogus 1"),
        ("x=--precision int3", "--precision: invalid value 'int3'"),
    ],
)
def test_a_bad_config_or_fault_is_exit_2_in_process(tmp_path, capsys, spec, words):
    """Issue 21, item 31 (the issue-20 refactor made it exit 2; this keeps it so)."""
    code = main(["--model", "null", "--configs", "baseline,x", "--config", spec, "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("study: error: configuration 'x': ") and words in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, "5"])
def test_a_pair_time_that_is_no_finite_number_fails_its_row_with_the_reason(tmp_path, bad):
    """A NaN pair time went into the median and the interval, and study.json
    (written with allow_nan=False) then crashed the study after every worker ran."""
    from rifebench.study.report import write

    base = StudyRow(config="baseline", size="16x16", rounds_ms=[[10.0], [11.0]], cpu_ms=[10.0, 11.0])
    row = StudyRow(config="bf16", size="16x16", rounds_ms=[[5.0], [bad]], cpu_ms=[5.0, 5.0])
    rows = [score(base, base), score(row, base)]
    assert rows[1].error.startswith("the worker measured round 2: a pair time of") and rows[1].fps is None
    assert rows[0].fps == pytest.approx(1000 / 10.5) and "| 16x16 | bf16 | failed: the worker measured" in table(rows)
    doc = {"started": "s", "finished": "f", "command": "c", "cpu": "x", "model": "4.0", "threads": 1}
    write(tmp_path, doc | {"rounds": 2, "pairs": 1, "complete": True, "rows": [r.to_dict() for r in rows]}, rows)
    assert json.loads((tmp_path / "study.json").read_text())["rows"][1]["fps"] is None


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # NaN to 8 bits, for SSIM
def test_outputs_that_hold_nan_fail_the_row_instead_of_the_study():
    rng = np.random.default_rng(0)
    outs = [rng.random((8, 8, 3)).astype(np.float32) for _ in range(2)]
    nan = [o.copy() for o in outs]
    nan[1][0, 0, 0] = np.nan
    base = StudyRow(config="baseline", size="8x8", rounds_ms=[[10.0]], outputs=outs)
    row = StudyRow(config="fp16", size="8x8", rounds_ms=[[5.0]], outputs=nan)
    score(base, base)
    scored = score(row, base)
    assert "hold NaN values" in scored.error and scored.quality is None
    json.dumps(scored.to_dict(), allow_nan=False)


# --- issue 23: models crossed with the configurations ----------------------------------------


def test_models_are_parsed_and_all_means_every_model_with_weights(capsys):
    from rifebench.models import zoo

    args = parse(["--models", "all", "--random-weights"])
    assert args.models == [n for n in zoo.MODELS if n != "null"] and len(args.models) == 38
    assert parse(["--models", "4.25, 3.6"]).models == ["4.25", "3.6"]
    assert parse([]).models == ["4.0"]  # --model alone, as before
    for bad, words in (
        (["--models", "4.25,4.99"], "--models: invalid value '4.99'"),
        (["--models", "4.25,4.25"], "--models: invalid value '4.25,4.25'"),
        (["--models", "4.0,4.6", "--pretrained-weights", "w.pkl"], "one file cannot hold the weights"),
        (["--max-workers", "0"], "--max-workers: must be >= 1"),
    ):
        with pytest.raises(SystemExit) as info:
            parse(bad)
        assert info.value.code == 2 and words in capsys.readouterr().err


def test_cells_cross_models_with_configurations_and_say_what_the_weights_are(tmp_path):
    from rifebench.study.cells import cells, groups

    (tmp_path / "rife-4.25").mkdir()
    torch.save({"x": torch.zeros(1)}, tmp_path / "rife-4.25" / "flownet.pkl")  # present: used, not verified here
    args = parse(["--models", "4.25,4.6", "--configs", "baseline,bf16", "--models-dir", str(tmp_path)])
    with pytest.raises(UsageError, match=r"^model 4\.6: weights not found at .*rife-4\.6/flownet\.pkl \(accepted: "):
        cells(args)
    args.random_weights = True
    got = cells(args)
    assert [c.key for c in got] == ["4.25 baseline", "4.25 bf16", "4.6 baseline", "4.6 bf16"]
    assert [c.weights for c in got] == ["given", "given", "random", "random"]  # no lock, no published sha: given
    assert got[3].flags[-2:] == ("--precision", "bf16") and "--random-weights" in got[3].flags
    assert [[c.key for c in g] for g in groups(got, 3)] == [
        ["4.25 baseline", "4.25 bf16"],
        ["4.6 baseline", "4.6 bf16"],
    ]
    assert len(groups(got, 4)) == 1 and len(groups(got, 1)) == 2  # a model is never split


def test_random_weights_are_written_before_any_worker(tmp_path):
    from rifebench.study.cli import check_configs

    args = parse(["--models", "4.22.lite,null", "--random-weights", "--models-dir", str(tmp_path), "--sizes", "32x32"])
    check_configs(args)
    assert (tmp_path / "rife-4.22.lite" / "random-seed0.pkl").is_file()
    assert [c.weights for c in args.cells] == ["random"] * 5 + ["none"] * 5


def test_the_pareto_front_and_the_chart(tmp_path):
    from rifebench.study.chart import draw_charts, front
    from rifebench.study.report import table

    def row(model, config, fps, psnr, weights="official"):
        q = {"psnr_db": psnr, "ssim": 0.9, "triplets": 3} if psnr is not None else None
        return StudyRow(size="64x64", config=config, model=model, weights=weights, fps=fps, dataset_quality=q)

    rows = [
        row("4.0", "baseline", 10.0, 30.0),
        row("4.0", "bf16", 15.0, 29.0),
        row("3.6", "baseline", 8.0, 29.5),  # slower and worse than 4.0 baseline: off the front
        row("3.6", "bf16", 16.0, 28.0),
        row("4.25", "baseline", 20.0, None, "random"),
    ]
    assert [(r.model, r.config) for r in front(rows[:4])] == [("3.6", "bf16"), ("4.0", "bf16"), ("4.0", "baseline")]
    assert draw_charts(tmp_path, rows) == ["study-64x64.png"]
    assert (tmp_path / "study-64x64.png").read_bytes()[:4] == b"\x89PNG"
    assert [r.pareto for r in rows] == [True, True, False, True, None]
    text = table(rows)
    assert "| 64x64 | 4.25 baseline (None, random weights) |" in text and "| speed only |" in text
    assert "| 30.00 (0.9000) Pareto |" in text and "| 29.50 (0.9000) |" in text


@pytest.mark.slow
def test_a_tiny_model_sweep_end_to_end(tmp_path, weights_40):
    """4.0 with its official weights and 4.25.lite with random ones, two configurations,
    quality on a tiny dataset: four rows, the random ones speed only, a chart."""
    import shutil

    from helpers import sibling_module

    models = tmp_path / "models"
    (models / "rife-4.0").mkdir(parents=True)
    shutil.copy(weights_40, models / "rife-4.0" / "flownet.pkl")
    data = sibling_module("runtimes", "test_runtimes_e2e").tiny_vimeo(tmp_path / "ds", n=2, h=64, w=64)
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "rifebench", "study", "--models", "4.0,4.25.lite", "--random-weights"]
    cmd += ["--models-dir", str(models), "--data", str(data), "--data-triplets", "2", "--sizes", "64x64"]
    cmd += ["--configs", "baseline,channels_last", "--rounds", "2", "--warmup", "0", "--threads", "1"]
    proc = subprocess.run(
        [*cmd, "--output-dir", str(out)], capture_output=True, text=True, timeout=600, env=clean_env()
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["study-64x64.png", "study.json", "study.md"]
    doc = json.loads((out / "study.json").read_text())
    assert doc["models"] == ["4.0", "4.25.lite"] and doc["weights"] == {"4.0": "official", "4.25.lite": "random"}
    rows = {(r["model"], r["config"]): r for r in doc["rows"]}
    assert len(rows) == 4 and all(r["fps"] > 0 for r in rows.values())
    for config in ("baseline", "channels_last"):
        official, random = rows[("4.0", config)], rows[("4.25.lite", config)]
        assert official["dataset_quality"]["triplets"] == 2 and official["dataset_quality"]["psnr_db"] > 20
        assert random["weights"] == "random" and random["dataset_quality"] is None and random["pareto"] is None
    assert rows[("4.25.lite", "channels_last")]["speedup"] is not None  # against its own model's baseline
    assert "| 64x64 | 4.25.lite baseline (fp32, random weights) |" in proc.stdout
    assert "![speed vs quality](study-64x64.png)" in (out / "study.md").read_text()


def test_a_worker_failure_keeps_its_cause_on_one_line():
    from rifebench.study.worker import one_line

    ov = "Exception from src/inference/src/cpp/infer_request.cpp:224:\nCheck 'shape' failed:\n  batch 2 != 1\n"
    assert one_line(f"RuntimeError: {ov}") == (
        "RuntimeError: Exception from src/inference/src/cpp/infer_request.cpp:224: Check 'shape' failed: batch 2 != 1"
    )
    long = one_line("x" * 2000)
    assert len(long) == 600 and long.endswith("...")
