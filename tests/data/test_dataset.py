"""Quality mode end to end: both Vimeo-90K layouts, the saved frames, the verdict and
its exit status, clear errors for broken datasets, and partial results kept when a
triplet fails mid-run. Generated triplets cover every path; the real ones in
../shared/data are used on top where present."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import yaml

from rifebench.data import vimeo as ds
from rifebench.data.scoring import scored_dataset

REPO = Path(__file__).resolve().parents[2]


# --- generated datasets ----------------------------------------------------------------


def moving_triplet(h: int, w: int, seed: int, shift: int = 4):
    """Three uint8 BGR frames of a smooth textured scene panning right by `shift` px
    per frame pair; the middle one is the exact ground truth at t = 0.5."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((h // 6 + 2, (w + 2 * shift) // 6 + 2, 3))
    big = cv2.resize(coarse, (w + 2 * shift, h), interpolation=cv2.INTER_CUBIC)
    big = np.clip(big + 0.04 * rng.random(big.shape), 0, 1)
    u8 = np.rint(big * 255).astype(np.uint8)
    return u8[:, 2 * shift :], u8[:, shift : shift + w], u8[:, :w]


def write_png(path: Path, img) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def make_dataset(root: Path, layout: str = "sequences", n: int = 3, size=(40, 56), sizes=None) -> list[str]:
    """A Vimeo-90K-style test folder; sizes are not multiples of the padding modulus."""
    entries = [f"00001/{i + 1:04d}" for i in range(n)]
    for i, entry in enumerate(entries):
        h, w = (sizes or {}).get(i, size)
        f0, gt, f1 = moving_triplet(h, w, seed=i)
        if layout == "sequences":
            d = root / "sequences" / entry
            write_png(d / "im1.png", f0), write_png(d / "im2.png", gt), write_png(d / "im3.png", f1)
        else:
            write_png(root / "input" / entry / "im1.png", f0)
            write_png(root / "input" / entry / "im3.png", f1)
            write_png(root / "target" / entry / "im2.png", gt)
    (root / "tri_testlist.txt").write_text("\n".join(entries) + "\n\n")  # a trailing blank line is fine
    return entries


def split_layout_copy(src: Path, dst: Path) -> None:
    """The same triplets rearranged as vimeo_interp_test.zip has them (input/ + target/)."""
    for entry in ds.read_list(src):
        d = src / "sequences" / entry[1]
        for name, part in (("im1.png", "input"), ("im3.png", "input"), ("im2.png", "target")):
            (dst / part / entry[1]).mkdir(parents=True, exist_ok=True)
            shutil.copy(d / name, dst / part / entry[1] / name)
    shutil.copy(src / "tri_testlist.txt", dst / "tri_testlist.txt")


def psnr_by_hand(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2)
    return -10 * math.log10(mse)


# --- running the harness ---------------------------------------------------------------


def run(args, weights, timeout=300):
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
        "--pretrained-weights",
        str(weights),
        *map(str, args),
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


# --- the dataset reader ----------------------------------------------------------------


def test_list_and_layouts(tmp_path):
    seq, split = tmp_path / "seq", tmp_path / "split"
    entries = make_dataset(seq, "sequences", n=3)
    make_dataset(split, "input+target", n=3)
    for root, kind in ((seq, "sequences"), (split, "input+target")):
        got_kind, size, chosen = ds.triplets(root, limit=2)
        assert (got_kind, size) == (kind, 3)
        assert [t.entry for t in chosen] == entries[:2]  # min(NUM_INPUTS, list size), in list order
    _, _, chosen = ds.triplets(split)
    assert chosen[0].first == split / "input" / entries[0] / "im1.png"
    assert chosen[0].middle == split / "target" / entries[0] / "im2.png"


@pytest.mark.parametrize(
    "breakage,needle",
    [
        ("no_folder", "no folder"),
        ("no_image", "missing image"),
        ("empty_list", "lists no triplets"),
        ("bad_entry", "not a relative"),
        ("no_layout", "neither a sequences/"),
    ],
)
def test_broken_dataset_errors_name_the_file(tmp_path, breakage, needle):
    entries = make_dataset(tmp_path, n=2)
    bad = tmp_path / "sequences" / entries[1]
    if breakage == "no_folder":
        shutil.rmtree(bad)
    elif breakage == "no_image":
        (bad / "im3.png").unlink()
    elif breakage == "empty_list":
        (tmp_path / "tri_testlist.txt").write_text("\n  \n")
    elif breakage == "bad_entry":
        (tmp_path / "tri_testlist.txt").write_text("00001/0001\n../../etc\n")
    elif breakage == "no_layout":
        (tmp_path / "sequences").rename(tmp_path / "elsewhere")
    with pytest.raises(ds.DatasetError, match=needle) as err:
        ds.triplets(tmp_path)
    if breakage in ("no_folder", "no_image"):
        assert str(bad) in str(err.value) and "line 2" in str(err.value)


def test_unreadable_and_mismatched_images(tmp_path):
    make_dataset(tmp_path, n=2, sizes={1: (40, 60)})
    _, _, chosen = ds.triplets(tmp_path)
    (chosen[1].middle).write_bytes(b"\x89PNG not really")
    with pytest.raises(ds.DatasetError, match=f"unreadable image: {chosen[1].middle}"):
        ds.load(chosen[1])
    write_png(chosen[1].middle, np.zeros((40, 56, 3), np.uint8))
    with pytest.raises(ds.DatasetError, match="differ in size") as err:
        ds.load(chosen[1])
    assert "im2.png is 56x40" in str(err.value) and "im1.png is 60x40" in str(err.value)


def test_frames_are_read_in_file_order_and_converted_once(tmp_path):
    make_dataset(tmp_path, n=1)
    t = ds.triplets(tmp_path)[2][0]
    f0, _, _ = ds.load(t)
    assert np.array_equal(f0, cv2.imread(str(t.first)))  # OpenCV's BGR, as the models were trained
    x = ds.to_model_input(f0)
    assert x.shape == (1, 3, 40, 56) and x.dtype.is_floating_point
    assert np.array_equal(x[0].numpy(), f0.transpose(2, 0, 1).astype(np.float32) / np.float32(255))


# --- the source against the real model, in process -------------------------------------


def make_interp(weights):
    import torch

    from rifebench.models.interp import Interpolator
    from rifebench.models.weights import load_model
    from rifebench.models.zoo import get

    spec = get("4.0")
    return Interpolator(load_model(spec, str(weights)), spec, "cpu", torch.float32)


def source_cfg(root, out, n_inputs=100, interpolation=1, saveimages=False, batch_size=1):
    return SimpleNamespace(
        dataset_dir=str(root),
        num_inputs=n_inputs,
        interpolation=interpolation,
        output_dir=str(out),
        saveimages=saveimages,
        batch_size=batch_size,
    )


def run_source(src, order=None, batch=1):
    order = list(order or range(0, len(src), batch))
    for i in order:
        got = src.get(i, batch)
        src.consume(got, src.source.interp.interpolate(got.img0, got.img1, src.scorer.n))
    src.finish()
    src.close()
    return src.summary()


@pytest.mark.slow
def test_both_layouts_agree(tmp_path, weights_40):
    seq, split = tmp_path / "seq", tmp_path / "split"
    make_dataset(seq, n=3, sizes={2: (37, 61)})  # sizes change between pairs: padding per pair
    split_layout_copy(seq, split)
    interp = make_interp(weights_40)
    a = run_source(scored_dataset(source_cfg(seq, tmp_path / "o1"), interp, 0))
    b = run_source(scored_dataset(source_cfg(split, tmp_path / "o2"), interp, 0))
    assert a["layout"] == "sequences" and b["layout"] == "input+target"
    assert a["complete"] and b["complete"] and a["scored"] == 3
    assert a["frames"] == b["frames"]
    assert all(f["psnr"] > 25 for f in a["frames"])  # the model really interpolates the pan


@pytest.mark.slow
def test_batches_of_consecutive_triplets_score_every_frame_like_single_pairs(tmp_path, weights_40):
    """BATCH_SIZE in quality mode: consecutive triplets of one size form a batch,
    a size change starts a new one, and every frame is scored on its own exactly
    as when it runs alone."""
    make_dataset(tmp_path / "d", n=5, sizes={2: (37, 61)})
    interp = make_interp(weights_40)
    single = run_source(scored_dataset(source_cfg(tmp_path / "d", tmp_path / "o1"), interp, 0))
    src = scored_dataset(source_cfg(tmp_path / "d", tmp_path / "o2", batch_size=2), interp, 0)
    sizes, i = [], 0
    while i < len(src):
        got = src.get(i, 2)
        sizes.append(got.size)
        src.consume(got, interp.interpolate(got.img0, got.img1, src.scorer.n))
        i += got.size
    src.finish()
    src.close()
    batched = src.summary()
    assert sizes == [2, 1, 2]  # [0, 1], then 2 alone (another size), then [3, 4]
    assert batched["complete"] and batched["scored"] == 5
    for a, b in zip(single["frames"], batched["frames"], strict=True):
        assert a["entry"] == b["entry"] and abs(a["psnr"] - b["psnr"]) < 0.01


@pytest.mark.slow
def test_prefetch_serves_any_order_and_never_decodes_during_inference(tmp_path, weights_40):
    make_dataset(tmp_path, n=6)
    interp = make_interp(weights_40)
    src = scored_dataset(source_cfg(tmp_path, tmp_path / "o"), interp, 0)
    names = [t.entry for t in src.source.triplets]
    warm = [src.get(i % 6).metas[0]["entry"] for i in range(8)]  # a warm-up longer than the list wraps around
    assert warm == names + names[:2]
    submitted = []
    submit = src.source._loader.submit
    src.source._loader.submit = lambda fn, t: submitted.append(t.entry) or submit(fn, t)
    for i in range(6):  # the timed loop: get, (timed inference), consume
        before = len(submitted)
        got = src.get(i)
        if i > 0:
            assert len(submitted) == before  # get() queued nothing: no decoding next to the timed inference
        src.consume(got, interp.interpolate(got.img0, got.img1))
    assert submitted[-1] == names[-1] and len(src.source._loads) == 0  # nothing decoded past the end
    src.finish()
    src.close()
    s = src.summary()
    assert s["complete"] and [f["index"] for f in s["frames"]] == list(range(6))


def test_unwritable_images_fail_the_source(tmp_path, weights_40):
    make_dataset(tmp_path / "data", n=2)
    (tmp_path / "out").write_text("a file where the output folder should be")
    cfg = source_cfg(tmp_path / "data", tmp_path / "out", saveimages=True)
    src = scored_dataset(cfg, make_interp(weights_40), 0)
    got = src.get(0)
    with pytest.raises(ds.DatasetError, match="cannot write"):
        src.consume(got, src.source.interp.interpolate(got.img0, got.img1))
        src.finish()
    src.close()
    s = src.summary()
    assert s["complete"] is False and "cannot write" in s["error"] and s["saved_images"] == 0


# --- end to end through the CLI ----------------------------------------------------------


@pytest.mark.slow
def test_saved_frames_are_the_scored_frames(tmp_path, weights_40):
    data, out = tmp_path / "data", tmp_path / "out"
    entries = make_dataset(data, "input+target", n=3)
    proc = run(["--data", data, "--num-inputs", 2, "--saveimages", "--output-dir", out], weights_40)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    doc = results(out)
    q = doc["quality"]
    assert doc["status"] == "passed" and q["verdict"] == "pass" and q["tested"] == 2  # min(NUM_INPUTS, list)
    for frame, entry in zip(q["frames"], entries[:2], strict=True):  # the third is past NUM_INPUTS
        saved = cv2.imread(str(out / "images" / f"{entry}.png"))
        gt = cv2.imread(str(data / "target" / entry / "im2.png"))
        assert frame["entry"] == entry
        assert frame["psnr"] == pytest.approx(psnr_by_hand(saved, gt), abs=1e-9)
    assert not (out / "images" / f"{entries[2]}.png").exists()
    passed = sum(f["psnr"] >= q["threshold_db"] for f in q["frames"])
    assert q["pass_pct"] == pytest.approx(100 * passed / len(q["frames"]))
    assert yaml.safe_load((out / "results.yaml").read_text())["results"][2]["value"] == round(q["pass_pct"], 2)
    m = doc["metrics"]
    # One throughput definition in both modes: images over the timed window; the
    # scoring and saving after the window only lower the end-to-end figure.
    assert m["throughput_img_s"] == pytest.approx(m["images"] / m["duration_s"])
    assert m["model_throughput_img_s"] >= m["throughput_img_s"] > m["end_to_end_throughput_img_s"] > 0
    assert doc["streams"][0]["end_offset_s"] is not None and q["per_stream"][0]["io"]["score_s"] > 0
    assert "verdict pass" in proc.stdout and "end to end" in proc.stdout


@pytest.mark.slow
def test_failed_verdict_exits_nonzero_with_all_results(tmp_path, weights_40):
    data, out = tmp_path / "data", tmp_path / "out"
    make_dataset(data, n=2)
    proc = run(["--data", data, "--psnr-threshold", 99.5, "--output-dir", out], weights_40)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    doc = results(out)
    assert doc["status"] == "failed" and doc["exit_code"] == 1
    assert doc["quality"]["verdict"] == "fail" and doc["quality"]["passed"] == 0
    assert len(doc["quality"]["frames"]) == 2
    assert yaml.safe_load((out / "results.yaml").read_text())["results"][2]["value"] == 0.0
    assert "verdict fail" in proc.stdout


@pytest.mark.slow
def test_interpolation_3_checks_and_saves_the_middle_frame(tmp_path, weights_40):
    data, out = tmp_path / "data", tmp_path / "out"
    entries = make_dataset(data, n=1)
    proc = run(["--data", data, "--interpolation", 3, "--saveimages", "--output-dir", out], weights_40)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    q = results(out)["quality"]
    assert q["tested"] == 1 and q["checked_frame_per_pair"] == 2 and "not checked" in q["note"]
    saved = sorted(p.name for p in (out / "images" / "00001").iterdir())
    assert saved == ["0001_1.png", "0001_2.png", "0001_3.png"]
    gt = cv2.imread(str(data / "sequences" / entries[0] / "im2.png"))
    mid = cv2.imread(str(out / "images" / "00001" / "0001_2.png"))
    assert q["frames"][0]["psnr"] == pytest.approx(psnr_by_hand(mid, gt), abs=1e-9)


@pytest.mark.slow
def test_broken_dataset_is_refused_before_running(tmp_path, weights_40):
    data, out = tmp_path / "data", tmp_path / "out"
    entries = make_dataset(data, n=2)
    shutil.rmtree(data / "sequences" / entries[1])
    proc = run(["--data", data, "--output-dir", out], weights_40)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("run_model.sh: error: --data/DATASET_DIR:") and entries[1] in line
    assert str(data / "sequences" / entries[1]) in line and "accepted:" in line


@pytest.mark.slow
def test_bad_triplet_mid_run_keeps_measured_frames(tmp_path, weights_40):
    data, out = tmp_path / "data", tmp_path / "out"
    entries = make_dataset(data, n=4)
    bad = data / "sequences" / entries[2] / "im2.png"
    bad.write_bytes(b"not a png")  # exists, so only decoding finds it
    proc = run(["--data", data, "--output-dir", out], weights_40)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    doc = results(out)
    q = doc["quality"]
    assert doc["status"] == "failed"
    assert q["verdict"] == "incomplete" and q["complete"] is False
    assert [f["entry"] for f in q["frames"]] == entries[:2]
    assert any(str(bad) in f["reason"] for f in doc["failures"])
    assert str(bad) in proc.stdout + proc.stderr
    assert not (out / "results.yaml").exists()  # a partial run must not look like a result


# --- the real triplets ----------------------------------------------------------------


@pytest.mark.slow
def test_real_triplets_both_layouts_and_saved_frames(tmp_path, shared_data, weights_40):
    """Middlebury, DAVIS and Big Buck Bunny crops at the Vimeo-90K size, in both layouts."""
    src = shared_data / "mixed_448x256"
    picked = ["00001/0002", "00002/0003"]
    seq, split = tmp_path / "seq", tmp_path / "split"
    for e in picked:
        shutil.copytree(src / "sequences" / e, seq / "sequences" / e)
    (seq / "tri_testlist.txt").write_text("\n".join(picked) + "\n")
    split_layout_copy(seq, split)
    interp = make_interp(weights_40)
    cfg_a = source_cfg(seq, tmp_path / "o1", saveimages=True)
    a = run_source(scored_dataset(cfg_a, interp, 0))
    b = run_source(scored_dataset(source_cfg(split, tmp_path / "o2"), interp, 0))
    assert a["frames"] == b["frames"] and a["saved_images"] == 2
    for f in a["frames"]:
        saved = cv2.imread(str(tmp_path / "o1" / "images" / f"{f['entry']}.png"))
        gt = cv2.imread(str(src / "sequences" / f["entry"] / "im2.png"))
        assert f["psnr"] == pytest.approx(psnr_by_hand(saved, gt), abs=1e-9)
    assert a["frames"][0]["psnr"] > 30  # Middlebury Dimetrodon: small motion


def test_backlog_counts_bytes_and_releases_each_item_as_it_is_scored():
    from rifebench.data.batch import Backlog

    log = Backlog(limit=10)
    log.add("a", {0: np.zeros(4, np.uint8)}, 4)
    log.add("b", {0: np.zeros(8, np.uint8)}, 8)
    assert log.full and log.nbytes == 12 and len(log) == 2
    items = log.drain()
    assert next(items)[0] == "a" and log.nbytes == 8 and not log.full  # "b" stays if scoring "a" fails
    assert [m for m, _ in items] == ["b"] and log.nbytes == 0 and len(log) == 0


# --- the list file -----------------------------------------------------------------------


def test_list_with_a_bom_reads_its_first_entry(tmp_path):
    (tmp_path / "tri_testlist.txt").write_bytes("\ufeff00001/0389\r\n00001/0402\r\n".encode())
    assert ds.read_list(tmp_path) == [(1, "00001/0389"), (2, "00001/0402")]


def test_trailing_slash_names_the_clip_not_a_hidden_png(tmp_path):
    (tmp_path / "tri_testlist.txt").write_text("00001/0389/\n00001//0402\n")
    assert ds.read_list(tmp_path) == [(1, "00001/0389"), (2, "00001/0402")]
    assert ds.image_name("00001/0389/", 1, 1) == "00001/0389.png"
    assert ds.image_name("00001/0389/", 2, 3) == "00001/0389_2.png"
