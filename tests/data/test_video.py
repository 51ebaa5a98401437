"""Video mode: generated videos (a moving textured pattern written with PyAV) of
sizes that are not multiples of the model's modulus, both VIDEO_GT modes,
INTERPOLATION 1 and 3, the output video, equality with quality mode, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from rifebench.data import video_io, video_probe  # PyAV is imported where a video is opened: these import without it
from rifebench.data.scoring import scored_video
from rifebench.data.video import merge_quality, output_rate

av = pytest.importorskip("av")

REPO = Path(__file__).resolve().parents[2]


# --- generated videos -----------------------------------------------------------------


def pattern(h: int, w: int, n: int, shift: int = 2, seed: int = 0) -> list[np.ndarray]:
    """n uint8 BGR frames of a smooth textured scene panning left by `shift` px a frame."""
    rng = np.random.default_rng(seed)
    wide = w + shift * n + 8
    coarse = rng.random((h // 6 + 2, wide // 6 + 2, 3))
    big = cv2.resize(coarse, (wide, h), interpolation=cv2.INTER_CUBIC)
    u8 = np.rint(np.clip(big, 0, 1) * 255).astype(np.uint8)
    return [np.ascontiguousarray(u8[:, i * shift : i * shift + w]) for i in range(n)]


# mkv: FFV1 bgr0 (lossless, odd sizes); mp4, avi: MPEG-4 Part 2 4:2:0 (lossy, even sizes); y4m: raw 4:4:4
FORMATS = {
    ".mkv": ("ffv1", "bgr0"),
    ".mp4": ("mpeg4", "yuv420p"),
    ".y4m": ("rawvideo", "yuv444p"),
    ".avi": ("mpeg4", "yuv420p"),
}


def write_video(path: Path, frames, rate=24, fmt=None) -> Path:
    codec, pix = FORMATS[path.suffix.lower()] if fmt is None else fmt
    with av.open(str(path), "w", format="mpegts" if fmt else None) as c:
        s = c.add_stream(codec, rate=rate)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = pix
        if codec == "mpeg4":
            s.options = {"qscale": "2"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(c.streams.video[0])]


def null_interp(reuse=False):
    import torch

    from rifebench.models.interp import Interpolator
    from rifebench.models.weights import load_model
    from rifebench.models.zoo import get

    spec = get("null")
    return Interpolator(load_model(spec, None, {"null_ms": 0.0}), spec, "cpu", torch.float32, reuse_frames=reuse)


def cfg_for(video, out, n=1, gt="drop", save=False, num_inputs=100, batch_size=1):
    return SimpleNamespace(
        dataset_dir=str(video),
        output_dir=str(out),
        interpolation=n,
        video_gt=gt,
        saveimages=False,
        save_video=save,
        num_inputs=num_inputs,
        batch_size=batch_size,
        min_psnr_db=25.0,
        min_pass_pct=95.0,
    )


def run_source(src, batch=1, warm=0):
    for i in range(warm):
        got = src.get(i % len(src), 1)
        src.source.interp.interpolate(got.img0, got.img1, src.scorer.n)
    if warm:
        src.source.rewind(wait_s=1.0)
    i = 0
    while i < len(src):
        got = src.get(i, batch)
        src.consume(got, src.source.interp.interpolate(got.img0, got.img1, src.scorer.n))
        i += got.size
    src.finish()
    src.close()
    return src.summary()


def cli(args, timeout=300):
    from rifebench.options import OPTIONS

    env = {k: v for k, v in os.environ.items() if k not in {o.env for o in OPTIONS}}
    cmd = [
        sys.executable,
        "-m",
        "rifebench",
        "--platform",
        "cpu",
        "--precision",
        "fp32",
        "--warmup",
        "1",
        "--pin",
        "none",
        *map(str, args),
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


# --- probe and the source, with the null model ------------------------------------------


@pytest.mark.parametrize("ext,size", [(".mkv", (39, 71)), (".mp4", (40, 72)), (".y4m", (37, 53))])
def test_probe_reads_size_rate_and_frame_count(tmp_path, ext, size):
    path = write_video(tmp_path / f"v{ext}", pattern(*size, 5), rate=Fraction(30000, 1001))
    info = video_probe.probe(str(path))
    assert (info.height, info.width) == size and info.frames == 5
    assert info.fps == pytest.approx(30000 / 1001, rel=1e-3)
    assert video_io.is_video_path(path) and not video_io.is_video_path(tmp_path)


@pytest.mark.parametrize(
    "n,gt,pairs,scored", [(1, "drop", 4, 4), (3, "drop", 2, 6), (1, "none", 8, 0), (3, "none", 8, 0)]
)
def test_pairs_ground_truth_and_output_video(tmp_path, n, gt, pairs, scored):
    frames = pattern(39, 71, 9)  # 9 frames, odd size
    video = write_video(tmp_path / "v.mkv", frames, rate=24)
    src = scored_video(cfg_for(video, tmp_path, n=n, gt=gt, save=True), null_interp(), 0)
    s = run_source(src, warm=2)
    assert s["complete"] and s["planned"] == pairs and s["scored"] == scored
    step = n + 1 if gt == "drop" else 1
    if gt == "drop":  # every frame between two inputs is scored, each at its own t
        assert [f["index"] for f in s["frames"]] == [i for i in range(1, pairs * step) if i % step]
        assert [f["t"] for f in s["frames"][:n]] == [k / (n + 1) for k in range(1, n + 1)]
    out = s["output"]
    assert out["read_back"]["ok"] and out["codec"] == "ffv1" and out["lossless"]
    assert out["frames"] == pairs * (n + 1) + 1
    assert Fraction(out["rate"]) == Fraction(24) * (n + 1) / step
    written = decode_all(tmp_path / "interpolated.mkv")
    assert len(written) == out["frames"] and written[0].shape == frames[0].shape
    for p in range(pairs + 1):  # the inputs, in place and bit-exact (lossless output)
        assert np.array_equal(written[p * (n + 1)], frames[p * step])
    mean = (frames[0].astype(np.float32) + frames[step].astype(np.float32)) / 2  # the null model's output
    assert np.abs(written[1].astype(np.float32) - mean).max() <= 1


def test_a_full_backlog_is_scored_inside_the_window_with_the_same_figures(tmp_path):
    video = write_video(tmp_path / "v.mkv", pattern(39, 71, 9))
    after = run_source(scored_video(cfg_for(video, tmp_path / "a"), null_interp(), 0))
    src = scored_video(cfg_for(video, tmp_path / "b"), null_interp(), 0)
    src.scorer._backlog.limit = 1  # every pair's frames exceed it: scored as soon as they are kept
    inside = run_source(src)
    assert "4 pairs inside it" in inside["scoring"] and "inside it" not in after["scoring"]
    assert [f["psnr"] for f in inside["frames"]] == [f["psnr"] for f in after["frames"]]
    assert src.scorer._backlog.nbytes == 0 and len(src.scorer._backlog) == 0


def test_reuse_frames_prepares_each_frame_once(tmp_path):
    video = write_video(tmp_path / "v.mkv", pattern(39, 71, 9))
    s = run_source(scored_video(cfg_for(video, tmp_path, gt="none"), null_interp(reuse=True), 0), warm=3)
    assert s["reuse_frames"] == {"hits": 7, "misses": 9, "enabled": True}  # 8 pairs: 16 frames, 9 distinct
    s = run_source(scored_video(cfg_for(video, tmp_path, gt="none"), null_interp(reuse=False), 0))
    assert s["reuse_frames"]["enabled"] is False and s["reuse_frames"]["hits"] == 0


def test_batches_and_num_inputs(tmp_path):
    video = write_video(tmp_path / "v.mkv", pattern(39, 71, 9))
    s = run_source(scored_video(cfg_for(video, tmp_path, num_inputs=3), null_interp(), 0), batch=2)
    assert s["complete"] and s["planned"] == 3 and [f["index"] for f in s["frames"]] == [1, 3, 5]


def test_merge_makes_quality_mode_verdict_over_every_frame(tmp_path):
    video = write_video(tmp_path / "v.mkv", pattern(39, 71, 9))
    cfg = cfg_for(video, tmp_path, n=3)
    s = run_source(scored_video(cfg, null_interp(), 0))
    q = merge_quality(cfg, [s, s])
    assert q["tested"] == 6 and q["planned"] == 6 and q["checked_frame_per_pair"] == "all"
    assert q["verdict"] in ("pass", "fail") and q["complete"]
    assert merge_quality(cfg_for(video, tmp_path, gt="none"), [s]) is None
    assert output_rate(video_probe.probe(str(video)), cfg) == 24


def test_size_change_mid_video_keeps_the_frames_before(tmp_path):
    a = write_video(tmp_path / "a.ts", pattern(40, 72, 6), fmt=("mpeg2video", "yuv420p"))
    b = write_video(tmp_path / "b.ts", pattern(48, 64, 6, seed=1), fmt=("mpeg2video", "yuv420p"))
    video = tmp_path / "changing.mkv"  # MPEG-TS inside, whatever the name: FFmpeg probes the content
    video.write_bytes(a.read_bytes() + b.read_bytes())
    src = scored_video(cfg_for(video, tmp_path, gt="none", save=True), null_interp(), 0)
    # The splice drops the first part's last frame (decoder delay): frame 5 is the first 64x48 one.
    with pytest.raises(video_io.VideoError, match="frame 5 is 64x48, the frames before it 72x40"):
        for i in range(len(src)):
            got = src.get(i)
            src.consume(got, src.source.interp.interpolate(got.img0, got.img1))
    src.finish()
    src.close()
    s = src.summary()
    assert not s["complete"] and s["consumed"] == 4 and "64x48" in s["error"]
    assert s["output"]["frames"] == 9 and s["output"]["complete"] is False  # the part that was made is kept


# --- bad input through the CLI ----------------------------------------------------------


def _unsupported(tmp_path: Path) -> Path:
    """An AVI whose codec tag (FourCC) no decoder knows."""
    data = write_video(tmp_path / "ok.avi", pattern(40, 72, 4)).read_bytes()
    assert data.count(b"FMP4") == 2  # the stream header's handler and the bitmap header's compression
    out = tmp_path / "unknown.avi"
    out.write_bytes(data.replace(b"FMP4", b"ZQZQ"))
    return out


BAD = {
    "text": "is not a video FFmpeg can open",
    "codec": "has no decoder in PyAV's FFmpeg",
    "short": "has 2 frame(s) (accepted: a video of at least 3 frames)",
    "short3": "has 3 frame(s) (accepted: a video of at least 5 frames)",
    "missing": "does not exist",
}


def bad_video(tmp_path: Path, case: str) -> tuple[Path, list]:
    path = {
        "text": tmp_path / "text.mp4",
        "short": tmp_path / "short.mkv",
        "short3": tmp_path / "short3.mkv",
        "missing": tmp_path / "absent.webm",
        "codec": None,
    }[case]
    if case == "text":
        path.write_text("not a video\n" * 20)
    elif case in ("short", "short3"):
        write_video(path, pattern(39, 71, 2 if case == "short" else 3))
    elif case == "codec":
        path = _unsupported(tmp_path)
    return path, ["--interpolation", "3"] if case == "short3" else []


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_refused_at_start_up(tmp_path, case):
    """Start-up checks (as run_model.sh and benchmark.sh run them, before any model loads)."""
    from rifebench.config import resolve
    from rifebench.errors import UsageError
    from rifebench.run.startup import startup_checks

    path, extra = bad_video(tmp_path, case)
    with pytest.raises(UsageError) as err:
        startup_checks(
            resolve(
                [
                    "--model",
                    "null",
                    "--platform",
                    "cpu",
                    "--pin",
                    "none",
                    "--data",
                    str(path),
                    "--output-dir",
                    str(tmp_path / "out"),
                    *extra,
                ],
                env={},
            )
        )
    assert str(err.value).startswith("--data/DATASET_DIR:") and BAD[case] in str(err.value)
    assert str(err.value).count("(accepted:") == 1  # said once (issue 21 item 21)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["codec", "short"])
def test_bad_input_exits_2_with_one_line(tmp_path, case):
    path, extra = bad_video(tmp_path, case)
    proc = cli(["--model", "null", "--data", path, "--output-dir", tmp_path / "out", *extra], timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("run_model.sh: error: --data/DATASET_DIR:") and BAD[case] in line
    assert "stream 0" not in proc.stdout  # nothing was launched


def test_config_names_video_mode(tmp_path):
    from rifebench.config import resolve
    from rifebench.errors import UsageError

    video = write_video(tmp_path / "v.MKV", pattern(39, 71, 3))
    cfg = resolve(["--data", str(video), "--model", "null"], env={})
    assert cfg.mode == "video" and cfg.mode_name == "video" and cfg.video_gt == "drop" and not cfg.save_video
    cfg = resolve(["--data", str(video), "--video-gt", "NONE", "--save-video"], env={})
    assert cfg.video_gt == "none" and cfg.save_video
    with pytest.raises(UsageError, match="--video-gt: invalid value 'all' \\(accepted: drop, none\\)"):
        resolve(["--data", str(video), "--video-gt", "all"], env={})


def test_memory_check_sizes_a_video_run_by_the_video_not_data_height(tmp_path):
    from rifebench.config import resolve
    from rifebench.run import memory

    video = write_video(tmp_path / "v.mkv", pattern(39, 71, 3))
    cfg = resolve(["--data", str(video), "--model", "4.6", "--data-height", "720", "--data-width", "1280"], env={})
    h, w, source = memory.frame_size(cfg)
    assert (h, w) == (39, 71) and "v.mkv" in source


def test_an_earlier_runs_output_video_is_set_aside(tmp_path):
    from rifebench.report.previous import set_aside_previous

    (tmp_path / "results.json").write_text("{}")
    (tmp_path / "interpolated.mkv").write_bytes(b"old")
    folder = set_aside_previous(str(tmp_path))
    assert (folder / "interpolated.mkv").read_bytes() == b"old" and not (tmp_path / "interpolated.mkv").exists()


# --- end to end, with a real model ------------------------------------------------------


@pytest.mark.slow
def test_first_interpolated_frame_equals_quality_mode(tmp_path, weights_40):
    """The same pair through video mode and, saved as PNG, through quality mode:
    the same model input, so the same prediction and the same scores."""
    import torch

    from rifebench.data.scoring import scored_dataset, to_uint8_device
    from rifebench.models.interp import Interpolator
    from rifebench.models.weights import load_model
    from rifebench.models.zoo import get

    video = write_video(tmp_path / "v.mp4", pattern(40, 72, 5))  # lossy 4:2:0; 40x72 is not a multiple of 64
    decoded = decode_all(video)
    d = tmp_path / "vimeo" / "sequences" / "00001" / "0001"
    d.mkdir(parents=True)
    for k in range(3):
        assert cv2.imwrite(str(d / f"im{k + 1}.png"), decoded[k])
    (tmp_path / "vimeo" / "tri_testlist.txt").write_text("00001/0001\n")
    spec = get("4.0")
    interp = Interpolator(load_model(spec, str(weights_40)), spec, "cpu", torch.float32)
    vs = scored_video(cfg_for(video, tmp_path / "o1", num_inputs=1), interp, 0)
    a = vs.get(0)
    pred_video = to_uint8_device(interp.interpolate(a.img0, a.img1, 1)[0][0])
    qs = scored_dataset(
        SimpleNamespace(
            dataset_dir=str(tmp_path / "vimeo"),
            num_inputs=1,
            interpolation=1,
            output_dir=str(tmp_path / "o2"),
            saveimages=False,
        ),
        interp,
        0,
    )
    b = qs.get(0)
    pred_quality = to_uint8_device(interp.interpolate(b.img0, b.img1, 1)[0][0])
    assert np.array_equal(pred_video, pred_quality)
    vs.consume(a, [pred_to_tensor(pred_video)])
    qs.consume(b, [pred_to_tensor(pred_quality)])
    for src in (vs, qs):
        src.finish()
        src.close()
    fv, fq = vs.summary()["frames"][0], qs.summary()["frames"][0]
    assert fv["psnr"] == fq["psnr"] > 25 and fv["ssim"] == fq["ssim"]


def pred_to_tensor(u8: np.ndarray):
    import torch

    return torch.from_numpy(u8.transpose(2, 0, 1).astype(np.float32) / 255.0).unsqueeze(0)


@pytest.mark.slow
def test_cli_drop_mode_scores_and_writes_the_video(tmp_path, weights_40, n=3):
    video = write_video(tmp_path / "v.mkv", pattern(39, 71, 9))
    out = tmp_path / "out"
    proc = cli(
        [
            "--data",
            video,
            "--interpolation",
            n,
            "--saveimages",
            "--reuse-frames",
            "yes",
            "--pretrained-weights",
            weights_40,
            "--output-dir",
            out,
        ]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((out / "results.json").read_text())
    q, v = doc["quality"], doc["video"]
    assert doc["mode"] == "video" and q["verdict"] == "pass" and q["tested"] == 6
    assert q["psnr_mean"] > 30 and doc["metrics"]["accuracy_pct"] == q["pass_pct"]
    assert v["output"]["frames"] == 9 and Fraction(v["output"]["rate"]) == 24
    assert v["output"]["read_back"]["ok"] and len(decode_all(out / "interpolated.mkv")) == 9
    r = v["rates"]
    assert all(r[k] > 0 for k in ("decode_fps", "model_fps", "score_fps", "encode_fps", "end_to_end_output_fps"))
    assert r["reuse_frames"]["hits"] == r["pairs"] - 1
    assert "output video:" in proc.stdout and "verdict pass" in proc.stdout


@pytest.mark.slow
def test_cli_none_mode_and_size_change_mid_run(tmp_path):
    video = write_video(tmp_path / "v.y4m", pattern(37, 53, 5))
    out = tmp_path / "out"
    proc = cli(
        [
            "--model",
            "null",
            "--data",
            video,
            "--video-gt",
            "none",
            "--interpolation",
            3,
            "--save-video",
            "--output-dir",
            out,
        ]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["quality"] is None and doc["metrics"]["accuracy_pct"] == 0.0
    assert doc["video"]["output"]["frames"] == 17 and Fraction(doc["video"]["output"]["rate"]) == 96
    assert "accuracy: 0 (VIDEO_GT=none" in proc.stdout
    a = write_video(tmp_path / "a.ts", pattern(40, 72, 6), fmt=("mpeg2video", "yuv420p"))
    b = write_video(tmp_path / "b.ts", pattern(48, 64, 6, seed=1), fmt=("mpeg2video", "yuv420p"))
    bad = tmp_path / "changing.mkv"
    bad.write_bytes(a.read_bytes() + b.read_bytes())
    out = tmp_path / "out2"
    proc = cli(["--model", "null", "--data", bad, "--output-dir", out])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads((out / "results.json").read_text())
    q = doc["quality"]
    assert doc["status"] == "failed" and q["complete"] is False and q["verdict"] == "incomplete"
    assert [f["entry"] for f in q["frames"]] == ["frame 1", "frame 3"]  # pairs (0, 2), (2, 4) before frame 5
    assert any("64x48" in f["reason"] for f in doc["failures"])
    assert not (out / "results.yaml").exists()


def test_video_section_rates_and_console_lines(tmp_path):
    from rifebench.fsutil import umask
    from rifebench.report import video as video_report

    video = write_video(tmp_path / "v.mkv", pattern(39, 71, 9))
    cfg = cfg_for(video, tmp_path, n=1, save=True)
    s = run_source(scored_video(cfg, null_interp(reuse=True), 0))
    assert (tmp_path / "interpolated.mkv").stat().st_mode & 0o777 == 0o666 & ~umask()
    from rifebench.measure.records import StreamResult
    from rifebench.report.schema import RunResult

    stream = StreamResult(id=0, frames=4, images=4, model_seconds=0.5, start=10.0, end=11.0, scored_end=12.0, quality=s)
    doc = RunResult(status="passed", exit_code=0)
    video_report.add(doc, SimpleNamespace(mode="video", interpolation=1, video_gt="drop"), [stream])
    r = doc.video["rates"]
    assert r["output_frames"] == 9 and r["end_to_end_output_fps"] == pytest.approx(9 / 2.0)
    assert r["model_fps"] == pytest.approx(8.0) and r["decode_fps"] > 0 and r["encode_fps"] > 0
    assert r["reuse_frames"]["hits"] == 3  # 4 pairs, 5 distinct frames
    text = "\n".join(video_report.lines(doc))
    assert "71x39 ffv1" in text and "REUSE_FRAMES: 3 hits" in text and "9 frames at 24 fps, checked" in text
