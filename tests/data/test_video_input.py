"""Video files that are not what they claim (issue 21): a truncated or damaged file
fails where its frames run out instead of passing as a shorter complete video, a
variable frame rate is refused for frame dropping, a link's own name decides the
mode, a FIFO, a device or a huge declared size is named for what it is, and every
start-up message says what is accepted once."""

from __future__ import annotations

import json
import os
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from helpers import sibling_module
from rifebench.data import video_io, video_probe
from rifebench.data.scoring import scored_video
from rifebench.data.video import check, merge_quality

av = pytest.importorskip("av")
base = sibling_module("data", "test_video")
pattern, write_video, cfg_for, null_interp, cli = (
    base.pattern,
    base.write_video,
    base.cfg_for,
    base.null_interp,
    base.cli,
)


def run_until_failure(src) -> dict:
    """The stream's loop: pairs in order until the source fails, then score what was kept."""
    i = 0
    try:
        while i < len(src):
            got = src.get(i)
            src.consume(got, src.source.interp.interpolate(got.img0, got.img1, src.scorer.n))
            i += got.size
    except video_io.VideoError:
        pass
    src.finish()
    src.close()
    return src.summary()


def thirty(tmp_path: Path, name: str = "v.mkv") -> Path:
    return write_video(tmp_path / name, pattern(40, 72, 30))


def truncated(tmp_path: Path) -> Path:
    data = thirty(tmp_path).read_bytes()
    out = tmp_path / "truncated.mkv"
    out.write_bytes(data[: int(len(data) * 0.6)])
    return out


def damaged(tmp_path: Path) -> Path:
    """400 random bytes over the Matroska block of frame 18: the demuxer resyncs at the
    next cluster, the decoder never complains, and six frames are gone."""
    path = thirty(tmp_path)
    with av.open(str(path)) as c:
        pos = [p.pos for p in c.demux(c.streams.video[0]) if p.size][18]
    data = bytearray(path.read_bytes())
    data[pos - 5 : pos + 395] = np.random.default_rng(1).integers(0, 256, 400, dtype=np.uint8).tobytes()
    out = tmp_path / "damaged.mkv"
    out.write_bytes(bytes(data))
    return out


def startup(path, *extra) -> str:
    """The start-up checks' one line for `--data path` (a UsageError's message)."""
    from rifebench.config import resolve
    from rifebench.errors import UsageError
    from rifebench.run.startup import startup_checks

    args = ["--model", "null", "--platform", "cpu", "--pin", "none", "--data", str(path)]
    with pytest.raises(UsageError) as err:
        startup_checks(resolve([*args, "--output-dir", str(Path(path).parent / "out"), *map(str, extra)], env={}))
    return str(err.value)


# --- truncated and damaged files: item 8 ---------------------------------------------------


@pytest.mark.parametrize(
    "make, found, consumed, words",
    [
        (truncated, 17, 8, "ended after 17 frames where its DURATION tag (1.250 s) declares 30: the file is truncated"),
        (damaged, 24, 8, "6 frame(s) missing after frame 17 (timestamps 0.708 s -> 1.000 s at 24.000 fps)"),
    ],
)
def test_a_truncated_or_damaged_mkv_fails_where_its_frames_run_out(tmp_path, make, found, consumed, words):
    video = make(tmp_path)
    # What a check of the packets alone sees: a shorter video that decodes without a single error.
    assert len(base.decode_all(video)) == found
    s = run_until_failure(scored_video(cfg_for(video, tmp_path), null_interp(), 0))
    assert s["complete"] is False and words in (s["error"] or "")
    assert s["planned"] == 14 and s["consumed"] == consumed and s["scored"] == consumed
    info = video_probe.probe(str(video))
    assert info.frames == found and info.declared_frames == 30 and info.declared_from == "its DURATION tag (1.250 s)"
    q = merge_quality(cfg_for(video, tmp_path), [s])
    assert q["verdict"] == "incomplete" and q["tested"] == consumed
    # The frames before the failure are scored as in the intact file.
    whole = run_until_failure(scored_video(cfg_for(thirty(tmp_path, "whole.mkv"), tmp_path), null_interp(), 0))
    assert whole["complete"] and [f["psnr"] for f in whole["frames"][:consumed]] == [f["psnr"] for f in s["frames"]]


def test_an_intact_video_declares_what_it_holds_in_every_container(tmp_path):
    for ext in (".mkv", ".mp4", ".avi", ".y4m"):
        info = video_probe.probe(str(write_video(tmp_path / f"v{ext}", pattern(40, 72, 12))))
        assert info.frames == 12 and info.declared_frames == 12 and not info.variable_rate, (ext, info)
    # 23.976 fps in Matroska's 1 ms ticks: 41/42 ms steps, one rate, nothing missing.
    info = video_probe.probe(str(write_video(tmp_path / "ntsc.mkv", pattern(40, 72, 48), rate=Fraction(24000, 1001))))
    assert (
        info.declared_frames == 48 and not info.variable_rate and info.frame_interval_s == pytest.approx(1001 / 24000)
    )


def test_a_truncated_avi_names_the_frames_its_header_declares(tmp_path):
    data = write_video(tmp_path / "v.avi", pattern(40, 72, 30)).read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: int(len(data) * 0.6)])
    line = startup(tmp_path / "cut.avi")
    assert "has 1 frame(s) of the 30 its frame count declares (truncated or damaged)" in line
    assert line.count("(accepted:") == 1


def test_an_avi_that_lost_frames_to_damage_fails_at_its_declared_count(tmp_path):
    path = write_video(tmp_path / "v.avi", pattern(40, 72, 30))
    with av.open(str(path)) as c:
        pos = [p.pos for p in c.demux(c.streams.video[0]) if p.size][10]
    data = bytearray(path.read_bytes())
    data[pos - 5 : pos + 395] = np.random.default_rng(1).integers(0, 256, 400, dtype=np.uint8).tobytes()
    (tmp_path / "damaged.avi").write_bytes(bytes(data))
    assert len(base.decode_all(tmp_path / "damaged.avi")) == 27  # three frames gone, not a word from FFmpeg
    s = run_until_failure(scored_video(cfg_for(tmp_path / "damaged.avi", tmp_path), null_interp(), 0))
    assert not s["complete"] and s["consumed"] == 13
    assert "ended after 27 frames where its frame count declares 30: the file is truncated or damaged" in s["error"]


def concealed(tmp_path: Path, frame: int) -> Path:
    """An MPEG-4 video with 8 bytes overwritten in the middle of one frame: it decodes
    without an error, the decoder flagging that frame damaged (errors concealed)."""
    path = write_video(tmp_path / "v.mp4", pattern(40, 72, 30))
    with av.open(str(path)) as c:
        pos, size = next((p.pos, p.size) for i, p in enumerate(c.demux(c.streams.video[0])) if i == frame)
    data = bytearray(path.read_bytes())
    data[pos + size // 2 : pos + size // 2 + 8] = np.random.default_rng(1).integers(0, 256, 8, dtype=np.uint8).tobytes()
    out = tmp_path / f"concealed{frame}.mp4"
    out.write_bytes(bytes(data))
    return out


def test_a_frame_the_decoder_flags_damaged_is_never_scored(tmp_path):
    video = concealed(tmp_path, 12)
    s = run_until_failure(scored_video(cfg_for(video, tmp_path), null_interp(), 0))
    assert not s["complete"] and s["consumed"] == 5 and [f["index"] for f in s["frames"]] == [1, 3, 5, 7, 9]
    assert "cannot decode frame 12 (the decoder found it damaged)" in s["error"]
    # Among the first frames, the start-up check finds it (exit 2).
    line = startup(concealed(tmp_path, 1))
    assert "concealed1.mp4: cannot decode frame 1 (the decoder found it damaged) (accepted: a video file" in line


@pytest.mark.slow
def test_a_truncated_video_run_exits_1_incomplete_without_results_yaml(tmp_path):
    out, video = tmp_path / "out", truncated(tmp_path)
    proc = cli(["--model", "null", "--data", video, "--output-dir", out], timeout=120)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "ended after 17 frames where its DURATION tag (1.250 s) declares 30" in proc.stdout + proc.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["status"] == "failed" and doc["quality"]["verdict"] == "incomplete" and not doc["quality"]["complete"]
    assert doc["video"]["input"]["declared_frames"] == 30 and not (out / "results.yaml").exists()
    # What compare tells two videos apart by (issue 21 item 11) is in results.json.
    assert doc["video"]["input"]["fingerprint"] == video_probe.probe(str(video)).fingerprint


# --- variable frame rate: item 9 ----------------------------------------------------------


def write_timed(path: Path, steps_ms: list[int]) -> Path:
    """An FFV1 Matroska video whose frames lie `steps_ms` apart (a 1 ms time base)."""
    frames = pattern(40, 72, len(steps_ms) + 1)
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.height, s.width, s.pix_fmt = 40, 72, "bgr0"
        s.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for f, step in zip(frames, [*steps_ms, 0], strict=True):
            vf = av.VideoFrame.from_ndarray(f, format="bgr24")
            vf.pts, vf.time_base = t, Fraction(1, 1000)
            t += step
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_a_variable_frame_rate_is_refused_for_frame_dropping(tmp_path):
    video = write_timed(tmp_path / "vfr.mkv", [30, 50] * 6)  # 25 fps on average, never 40 ms apart
    line = startup(video)
    assert line.startswith("--data/DATASET_DIR: ") and "has a variable frame rate (frames 30 to 50 ms apart)" in line
    assert "(accepted: a constant-frame-rate video, or --video-gt none" in line and line.count("(accepted:") == 1
    info = video_probe.probe(str(video))
    assert info.variable_rate and info.interval_range_ms == (30.0, 50.0) and info.declared_frames is None
    # VIDEO_GT=none scores nothing, so nothing is scored at the wrong time: accepted, every pair.
    assert check(cfg_for(video, tmp_path, gt="none")).variable_rate
    s = run_until_failure(scored_video(cfg_for(video, tmp_path, gt="none"), null_interp(), 0))
    assert s["complete"] and s["consumed"] == 12


def test_frames_missing_on_a_constant_grid_fail_where_the_hole_is(tmp_path):
    video = write_timed(tmp_path / "holes.mkv", [40] * 5 + [120] + [40] * 5)  # frames 6 and 7 of 14 missing
    s = run_until_failure(scored_video(cfg_for(video, tmp_path), null_interp(), 0))
    assert not s["complete"] and "2 frame(s) missing after frame 5" in (s["error"] or "") and s["consumed"] == 2
    info = video_probe.probe(str(video))
    assert not info.variable_rate and info.frames == 12 and info.declared_frames == 14


def test_reordered_and_spliced_timestamps_keep_one_rate():
    # Decode order with B-frames (I0 P3 B1 B2 P6 B4 B5 ...): one timeline at 25 fps.
    order = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8]
    t = video_probe.timing([k * 0.04 for k in order], 0.001)
    assert t.timelines == 1 and not t.variable and t.missing == 0 and t.interval_s == pytest.approx(0.04)
    # Two files spliced: the timestamps start again, which is no change of rate.
    t = video_probe.timing([k * 0.04 for k in [*range(6), *range(6)]], 0.001)
    assert t.timelines == 2 and not t.variable and t.missing == 0
    assert video_probe.timing([0.0, 0.03, 0.08, 0.11, 0.16], 0.001).variable


# --- the path as given: items 10 and 27 ----------------------------------------------------


def test_a_link_named_like_a_video_is_a_video(tmp_path):
    from rifebench.config import resolve

    blob = tmp_path / "blob"
    blob.write_bytes(thirty(tmp_path).read_bytes())
    (tmp_path / "clip.mp4").symlink_to(blob)
    cfg = resolve(["--model", "null", "--data", str(tmp_path / "clip.mp4")], env={})
    assert cfg.mode == "video" and cfg.dataset_dir == str(tmp_path / "clip.mp4")
    assert check(cfg).frames == 30  # FFmpeg reads the content, whatever the target's name
    # The other way round: a link without an extension is a dataset folder, and it names what it is.
    (tmp_path / "noext").symlink_to(tmp_path / "v.mkv")
    line = startup(tmp_path / "noext")
    assert f"'{tmp_path / 'noext'}' is a link to {tmp_path / 'v.mkv'}, a regular file, not a folder" in line
    assert "or a video file (.mp4 .mkv .webm .mov .avi .y4m) named so" in line


def test_what_is_not_a_regular_file_is_named_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    (tmp_path / "noise.mp4").symlink_to("/dev/urandom")
    (tmp_path / "folder.mkv").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tri_testlist.txt").symlink_to("/dev/urandom")
    expect = {
        fifo: "is a FIFO (named pipe), not a regular file",
        tmp_path / "noise.mp4": "is a link to /dev/urandom, a character device, not a regular file",
        tmp_path / "folder.mkv": "is a folder, not a regular file",
        tmp_path / "data": "holds a tri_testlist.txt that is a link to /dev/urandom, a character device, not a regular",
    }
    for path, words in expect.items():
        line = startup(path)
        assert words in line and line.count("(accepted:") == 1 and "does not exist" not in line, line
    # Below the option check too (memory sizing, the decoding thread): the FIFO is never opened.
    got: list = []
    t = threading.Thread(target=lambda: got.append(video_io.frame_size(str(fifo))), daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive() and got == [None]
    with pytest.raises(video_io.VideoError, match="is a FIFO"):
        video_probe.probe(str(fifo))


# --- sizes and messages: items 21 and 22 ---------------------------------------------------


def test_a_huge_declared_size_is_refused_by_name(tmp_path):
    big = tmp_path / "big.y4m"
    big.write_bytes(b"YUV4MPEG2 W30000 H30000 F25:1 Ip A1:1 C444\nFRAME\n" + bytes(3000))
    line = startup(big)
    assert "big.y4m declares 30000x30000 frames (accepted: frames of at most 15360x8640 or 8640x15360" in line
    assert "Device or resource busy" not in line and line.count("(accepted:") == 1
    assert video_io.size_problem(15360, 8640) is None and video_io.size_problem(8640, 15360) is None
    assert video_io.size_problem(15361, 100) and video_io.size_problem(12000, 12000)


@pytest.mark.parametrize("n, frames, need", [(1, 2, 3), (3, 4, 5)])
def test_a_frame_count_error_says_what_is_accepted_once(tmp_path, n, frames, need):
    video = write_video(tmp_path / "short.mkv", pattern(39, 71, frames))
    line = startup(video, "--interpolation", n)
    assert line == f"--data/DATASET_DIR: {video} has {frames} frame(s) (accepted: a video of at least {need} frames)"


def test_the_first_frames_fingerprint_is_recorded(tmp_path):
    a = video_probe.probe(str(thirty(tmp_path, "a.mkv")))
    same = video_probe.probe(str(thirty(tmp_path, "b.mkv")))
    other = video_probe.probe(str(write_video(tmp_path / "c.mkv", pattern(40, 72, 30, seed=1))))
    assert a.fingerprint == same.fingerprint != other.fingerprint and len(a.fingerprint or "") == 16
    s = run_until_failure(scored_video(cfg_for(tmp_path / "a.mkv", tmp_path), null_interp(), 0))
    assert s["video"]["fingerprint"] == a.fingerprint and s["video"]["frames"] == 30
