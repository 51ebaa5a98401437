"""fsutil: the output folder's checks say what is wrong and, in our images, how to fix it."""

from __future__ import annotations

import tempfile

import pytest

from rifebench import fsutil


def refuse_writes(monkeypatch) -> None:
    """As root every folder is writable: stand in for a folder this user cannot write."""

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", denied)


def test_an_unwritable_folder_on_bare_metal_says_what_is_accepted(tmp_path, monkeypatch):
    monkeypatch.delenv("RIFEBENCH_IMAGE_FLAVOUR", raising=False)
    refuse_writes(monkeypatch)
    with pytest.raises(fsutil.OutputDirError) as err:
        fsutil.prepare_dir(tmp_path / "out")
    message = str(err.value)
    assert "is not writable (Permission denied) (accepted: a folder this user can create and write)" in message
    assert "--user" not in message and "\n" not in message


def test_an_unwritable_folder_in_our_image_names_both_fixes(tmp_path, monkeypatch):
    monkeypatch.setenv("RIFEBENCH_IMAGE_FLAVOUR", "cpu")
    refuse_writes(monkeypatch)
    with pytest.raises(fsutil.OutputDirError) as err:
        fsutil.prepare_dir(tmp_path / "out")
    message = str(err.value)
    assert '--user "$(id -u):$(id -g)" -e HOME=/tmp' in message and "-v DIR:/tmp/output:U" in message
    assert "\n" not in message
