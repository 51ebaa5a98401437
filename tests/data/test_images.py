"""Frames as datasets hold them: 16-bit, RGBA and grayscale images are converted to
8-bit BGR with one warning per kind of conversion, through a whole run as well."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from helpers import run_harness
from rifebench.data import images


@pytest.fixture
def fresh_reports(monkeypatch):
    monkeypatch.setattr(images, "_reported", set())


def test_16_bit_png_is_scaled_with_rounding(tmp_path, capsys, fresh_reports):
    values = np.array([0, 128, 255, 257, 32767, 32896, 65406, 65535], dtype=np.uint16)
    frame = np.stack([np.tile(values, (4, 1))] * 3, axis=2)
    path = str(tmp_path / "deep.png")
    assert cv2.imwrite(path, frame)
    got = images.read_image(path)
    assert got.dtype == np.uint8 and got.shape == (4, 8, 3)
    expected = np.round(values / 257.0).astype(np.uint8)  # >> 8 gives 0, 0, 0, 1, 127, 128, 255, 255
    assert got[0, :, 0].tolist() == expected.tolist() == [0, 0, 1, 1, 127, 128, 254, 255]
    err = capsys.readouterr().err
    assert "[IMAGE_CONVERTED]" in err and "16-bit samples scaled to 8 bits" in err and path in err


def test_rgba_and_grayscale_are_converted_with_one_warning_each(tmp_path, capsys, fresh_reports):
    rng = np.random.default_rng(1)
    bgra = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    gray = rng.integers(0, 256, (6, 5), dtype=np.uint8)
    for name, data in (("a.png", bgra), ("b.png", bgra), ("g.png", gray)):
        assert cv2.imwrite(str(tmp_path / name), data)
    assert np.array_equal(images.read_image(str(tmp_path / "a.png")), bgra[:, :, :3])
    assert np.array_equal(images.read_image(str(tmp_path / "b.png")), bgra[:, :, :3])
    assert np.array_equal(images.read_image(str(tmp_path / "g.png")), np.stack([gray] * 3, axis=2))
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2  # once per kind of conversion, not once per image
    assert "alpha channel dropped" in err[0] and "a.png" in err[0]
    assert "grayscale expanded to 3 channels" in err[1] and "g.png" in err[1]
    plain = tmp_path / "plain.png"
    cv2.imwrite(str(plain), bgra[:, :, :3])
    assert np.array_equal(images.read_image(str(plain)), bgra[:, :, :3])
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_a_run_on_such_a_dataset_says_so_and_saves_visible_images(tmp_path):
    """BOM, trailing slash and 16-bit RGBA frames through a whole (null-model) run."""
    data, out = tmp_path / "data", tmp_path / "out"
    rng = np.random.default_rng(0)
    for part, name in (("input", "im1.png"), ("target", "im2.png"), ("input", "im3.png")):
        (data / part / "00001" / "0001").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(data / part / "00001" / "0001" / name), rng.integers(0, 65536, (32, 32, 4), dtype=np.uint16))
    (data / "tri_testlist.txt").write_bytes("\ufeff00001/0001/\n".encode())
    proc = run_harness(
        ["--model", "null", "--null-ms", "1", "--data", data, "--saveimages", "--warmup", "0", "--output-dir", out]
    )
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr  # 1: noise fails PSNR
    assert [p.name for p in (out / "images" / "00001").iterdir()] == ["0001.png"]
    log = (out / "output.log").read_text()
    assert log.count("[IMAGE_CONVERTED]") == 1 and "16-bit samples scaled to 8 bits; alpha channel dropped" in log
