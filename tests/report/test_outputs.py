"""The output folder under faults and hostile contents (issue 12): one run per
folder, a full disk, planted symlinks, an empty OUTPUT_DIR, earlier runs' result
sets moved aside whole, and result files readable as the umask says."""

import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

from helpers import REPO, clean_env, run_harness
from rifebench import fsutil
from rifebench.errors import UsageError
from rifebench.measure.records import StreamResult
from rifebench.report import previous, results
from rifebench.run.startup import check_output_dir

SMALL = [
    "--dummy",
    "--data-height",
    "64",
    "--data-width",
    "64",
    "--num-inputs",
    "2",
    "--warmup",
    "0",
    "--precision",
    "fp32",
    "--model",
    "null",
    "--null-ms",
    "1",
]


def one_error_line(proc, code=2):
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("run_model.sh: error: --output-dir/OUTPUT_DIR: "), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return lines[0]


# --- 1. one run per folder ---------------------------------------------------------------


@pytest.mark.slow  # over 2 s on 2 cores: kept out of the fast tier
def test_a_second_run_into_a_locked_folder_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.yaml").write_text("the first run's")
    with fsutil.OutputLock(out):  # this process plays the first run
        line = one_error_line(run_harness([*SMALL, "--output-dir", out]))
        assert str(out) in line and f"PID {os.getpid()}" in line
        with pytest.raises(fsutil.LockedError, match=f"PID {os.getpid()}"):
            fsutil.OutputLock(out).acquire()
    assert (out / "results.yaml").read_text() == "the first run's"  # refused before anything moved
    proc = run_harness([*SMALL, "--output-dir", out])  # released: the next run goes ahead
    assert proc.returncode == 0, proc.stderr
    with fsutil.OutputLock(out):  # and the run released its lock at exit
        pass


# --- 3. a full disk ----------------------------------------------------------------------


def test_too_little_free_space_is_refused_at_start(tmp_path, monkeypatch):
    monkeypatch.setattr(fsutil.shutil, "disk_usage", lambda p: SimpleNamespace(free=1 << 20, total=1 << 30))
    with pytest.raises(UsageError, match=r"^--output-dir/OUTPUT_DIR: '.*out' has 1 MiB free \(accepted: "):
        check_output_dir(str(tmp_path / "out"))


def test_a_log_that_cannot_be_written_stops_the_log_not_the_run():
    # /dev/full fails every write with ENOSPC, as output.log on a full disk does.
    script = textwrap.dedent("""
        import subprocess, sys
        from rifebench.run.teelog import Tee
        with Tee("/dev/full"):
            print("launcher line", flush=True)
            subprocess.run([sys.executable, "-c", "print('stream line')"])
        print("after")
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=clean_env(), cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["launcher", "line", "stream", "line", "after"]
    assert "Traceback" not in proc.stderr and "Exception in thread" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "/dev/full: not written from here on" in proc.stderr


@pytest.mark.slow
def test_results_that_cannot_be_written_at_the_end_leave_nothing_running(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"status": "passed", "created": "2026-01-02T03:04:05+00:00"}))
    script = textwrap.dedent(f"""
        import errno, sys
        from rifebench.report import results
        real = results.atomic_write_text
        def full_after_start(path, text):  # the disk fills during the run
            if '"running"' not in text:
                raise OSError(errno.ENOSPC, "No space left on device")
            real(path, text)
        results.atomic_write_text = full_after_start
        from rifebench.__main__ import main
        sys.exit(main({[*SMALL, "--output-dir", str(out)]!r}))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=clean_env(), cwd=REPO
    )
    assert proc.returncode == 1, proc.stderr
    errors = [x for x in proc.stderr.splitlines() if "error" in x]
    assert errors == [
        f"run_model.sh: error: --output-dir/OUTPUT_DIR: results not written in {str(out)!r} "
        "(No space left on device); earlier runs' results are kept in its previous/ folder"
    ]
    assert "Traceback" not in proc.stderr
    assert not (out / "results.json").exists() and not (out / "results.yaml").exists()
    kept = out / "previous" / "20260102T030405Z" / "results.json"
    assert json.loads(kept.read_text())["status"] == "passed"


# --- 4. symlinks planted in the folder ---------------------------------------------------


@pytest.mark.slow  # over 2 s on 2 cores: kept out of the fast tier
@pytest.mark.parametrize("name", ["output.log", "results.json", "results.yaml", "images", "previous"])
def test_a_symlinked_output_file_is_refused(tmp_path, name):
    out, target = tmp_path / "out", tmp_path / "victim"
    out.mkdir()
    target.write_text("precious")
    (out / name).symlink_to(target)
    with pytest.raises(UsageError, match=f"OUTPUT_DIR: '.*/out/{name}' is a symlink"):
        check_output_dir(str(out))
    if name == "output.log":
        assert name in one_error_line(run_harness([*SMALL, "--output-dir", out]))
    assert target.read_text() == "precious"


def test_the_log_is_never_opened_through_a_symlink(tmp_path):
    from rifebench.run.teelog import Tee

    target = tmp_path / "victim"
    target.write_text("precious")
    (tmp_path / "output.log").symlink_to(target)
    with pytest.raises(OSError), Tee(str(tmp_path / "output.log")):
        pass
    assert target.read_text() == "precious"


def test_images_and_fingerprint_replace_planted_links_not_their_targets(tmp_path):
    from rifebench.data.images import save_png

    images, target = tmp_path / "images", tmp_path / "victim"
    images.mkdir()
    target.write_text("precious")
    for name in ("dummy_0.png.tmp.png", "dummy_0.png", "dummy_0.npy", "frame.png.tmp.png"):
        (images / name).symlink_to(target)
    frame = np.random.default_rng(0).random((8, 8, 3), dtype=np.float32)
    results.write_fingerprint(SimpleNamespace(output_dir=str(tmp_path)), [StreamResult(id=0, fingerprint=frame)])
    save_png(str(images / "frame.png"), frame)
    assert target.read_text() == "precious"
    assert not (images / "dummy_0.npy").is_symlink() and np.array_equal(np.load(images / "dummy_0.npy"), frame)
    assert (images / "dummy_0.png").read_bytes().startswith(b"\x89PNG")
    assert (images / "frame.png").read_bytes().startswith(b"\x89PNG")
    assert not [p for p in images.iterdir() if p.name.endswith(".tmp")]


# --- 7. an empty OUTPUT_DIR --------------------------------------------------------------


def test_an_empty_output_dir_is_refused(tmp_path):
    proc = run_harness(SMALL, env=clean_env(OUTPUT_DIR=""), cwd=tmp_path)
    assert "'' is empty" in one_error_line(proc)
    assert list(tmp_path.iterdir()) == []  # not the current folder either
    with pytest.raises(UsageError, match=r"^--output-dir: '' is empty"):  # the study exits 2 with it, as the rest
        from rifebench.study.cli import prepare_output

        prepare_output("", force=False)


# --- 9. earlier runs' result sets --------------------------------------------------------


def fake_run(out, started: str, tag: str) -> None:
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "images" / "dummy_0.png").write_text(tag)
    (out / "output.log").write_text(tag)
    (out / "results.yaml").write_text(tag)
    (out / "results.json").write_text(json.dumps({"status": "passed", "started": started, "tag": tag}))


def test_previous_result_sets_move_aside_together_and_only_five_are_kept(tmp_path):
    out = tmp_path / "out"
    for day in range(1, 8):
        fake_run(out, f"2026-03-0{day}T10:00:00+00:00", f"run {day}")
        folder = previous.set_aside_previous(str(out))
        assert folder == out / "previous" / f"2026030{day}T100000Z"
        assert sorted(p.name for p in folder.iterdir()) == ["images", "output.log", "results.json", "results.yaml"]
        assert {(folder / n).read_text() for n in ("output.log", "results.yaml", "images/dummy_0.png")} == {
            f"run {day}"
        }
        assert not any((out / n).exists() for n in previous.RESULT_SET)
    kept = sorted(p.name for p in (out / "previous").iterdir())
    assert kept == [f"2026030{d}T100000Z" for d in range(3, 8)]
    assert previous.set_aside_previous(str(out)) is None  # nothing to move: nothing made
    fake_run(out, "2026-03-07T10:00:00+00:00", "same second")  # two runs in one second: both kept
    assert previous.set_aside_previous(str(out)).name == "20260307T100000Z~2"


# --- 11. the umask -----------------------------------------------------------------------


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_result_files_honour_the_umask(tmp_path, mask, mode):
    from rifebench.data.images import save_png

    old = os.umask(mask)
    try:
        results.write_json(str(tmp_path), {"status": "passed"})
        results.write_yaml(str(tmp_path), "results: []\n")
        save_png(str(tmp_path / "frame.png"), np.zeros((4, 4, 3), np.uint8))
    finally:
        os.umask(old)
    for name in ("results.json", "results.yaml", "frame.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


# --- 20. previous/ holds the user's folders too ---------------------------------------------


def test_the_rotation_prunes_only_the_folders_it_made(tmp_path):
    out = tmp_path / "out"
    mine = out / "previous" / "00_my_baseline"
    mine.mkdir(parents=True)
    (mine / "results.json").write_text("kept by hand")
    (out / "previous" / "notes.txt").write_text("mine too")
    (out / "previous" / "20990101T000000Z-copy").mkdir()  # looks like a stamp, is not one
    for day in range(1, 8):
        fake_run(out, f"2026-03-0{day}T10:00:00+00:00", f"run {day}")
        previous.set_aside_previous(str(out))
    names = sorted(p.name for p in (out / "previous").iterdir())
    assert names == sorted(
        ["00_my_baseline", "20990101T000000Z-copy", "notes.txt", *(f"2026030{d}T100000Z" for d in range(3, 8))]
    )
    assert (mine / "results.json").read_text() == "kept by hand"
    assert [p.name for p in previous.kept_runs(str(out))] == [f"2026030{d}T100000Z" for d in range(3, 8)]


# --- 23. a full disk on a first run -----------------------------------------------------------


def test_a_full_disk_on_a_first_run_claims_no_earlier_results(tmp_path, monkeypatch):
    from rifebench.run import session

    out = tmp_path / "out"
    out.mkdir()
    cfg = SimpleNamespace(output_dir=str(out))
    said: list[str] = []
    monkeypatch.setattr(session, "error", lambda prog, msg: said.append(msg))

    def lost() -> str:
        assert session.results_lost(cfg, OSError(28, "No space left on device"), session.Deferred()) == 1
        return said[-1]

    assert lost().endswith("(No space left on device)")  # a first run: nothing earlier to speak of
    (out / "previous" / "my-notes").mkdir(parents=True)  # not an earlier run's results either
    assert "previous" not in lost()
    (out / "previous" / "20260102T030405Z").mkdir()
    assert lost().endswith("; earlier runs' results are kept in its previous/ folder")


# --- 25. a refused run leaves no folder it made -----------------------------------------------


def test_a_run_refused_by_memory_admission_removes_only_the_folders_it_made(tmp_path, monkeypatch, capsys):
    from rifebench.__main__ import main
    from rifebench.run import memory

    def no_memory(cfg):
        raise UsageError("--streams/STREAMS 1 x frames of 64x64: the run needs about 9 GB of memory (accepted: ...)")

    monkeypatch.setattr(memory, "check", no_memory)
    (tmp_path / "there").mkdir()
    assert main([*SMALL, "--output-dir", str(tmp_path / "there" / "a" / "b")]) == 2
    assert "of memory" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [tmp_path / "there"] and list((tmp_path / "there").iterdir()) == []
    assert main([*SMALL, "--output-dir", str(tmp_path / "there")]) == 2  # not made by this run: kept
    assert (tmp_path / "there").is_dir()


# --- 27. what sits at the lock's name -----------------------------------------------------------


@pytest.mark.parametrize("kind,what", [("fifo", "a FIFO (named pipe)"), ("folder", "a folder")])
def test_a_fifo_or_folder_at_the_lock_is_named(tmp_path, kind, what):
    from rifebench.run.prepare import lock_output_dir

    lock = tmp_path / fsutil.LOCK_NAME
    os.mkfifo(lock) if kind == "fifo" else lock.mkdir()
    with pytest.raises(UsageError) as info:
        lock_output_dir(str(tmp_path))
    assert str(info.value) == (
        f"--output-dir/OUTPUT_DIR: {str(lock)!r} is {what}, not the run lock file this harness keeps there "
        "(accepted: a regular file or nothing at that name: remove it)"
    )
    (tmp_path / "fresh").mkdir()
    lock_output_dir(str(tmp_path / "fresh")).release()  # a regular one is taken as ever
