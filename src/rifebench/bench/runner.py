"""benchmark.sh: run every row of a CSV profile, on bare metal or in a container.

Each row is a subprocess (`python -m rifebench` with this package, so an
installed copy works outside a checkout, or `docker run ... IMAGE
./run_model.sh` when IMAGE is set) with the row's cells as environment
variables and OUTPUT_DIR=<benchmark folder>/test_<n>. The profile is checked
whole before anything runs; a row that fails is recorded and the next one
runs; the summary is rewritten after every row, so a later crash loses nothing.

Exit status: 0 every row passed, 1 a row failed, 2 bad profile or options
(nothing ran), 130 interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from rifebench import __version__
from rifebench.bench import profiles
from rifebench.fsutil import (
    MANIFEST_NAME,
    OutputDirError,
    atomic_write_text,
    prepare_dir,
    remove_manifest_files,
    write_manifest,
)
from rifebench.measure import sysinfo
from rifebench.options import TRUE_WORDS
from rifebench.paths import checkout_root
from rifebench.report import plots, summary
from rifebench.run.worker import kill_with_parent
from rifebench.status import Exit, Status

PROG = "benchmark.sh"
# The folder holding the rifebench package, put first on a row's PYTHONPATH.
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
CONTAINER_OUTPUT = "/tmp/output"
CONTAINER_DATA = "/data"


class UsageError(ValueError):
    """One-line message; exit 2 before anything runs."""


def log(msg: str) -> None:
    print(msg, flush=True)


def error(msg: str) -> None:
    print(f"{PROG}: error: {msg}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    p = argparse.ArgumentParser(
        prog=PROG,
        allow_abbrev=False,
        description="Run every row of a CSV profile (profiles/README.md) as one run of run_model.sh. "
        "Every option is also an environment variable (in brackets); a flag wins.",
        epilog="DOCKER_ARGS: extra `docker run` arguments with IMAGE (split like a shell would, never evaluated). "
        "Any option variable of run_model.sh --help set here applies to every row a profile cell does not set. "
        "Exit status: 0 every row passed, 1 a row failed, 2 bad profile or options, 130 interrupted.",
    )
    p.add_argument("--version", action="version", version=f"rifebench {__version__}")
    p.add_argument(
        "--profile",
        metavar="CSV",
        default=env.get("PROFILE"),
        help="[PROFILE] the profile to run, e.g. profiles/cpu.csv (required)",
    )
    p.add_argument(
        "--output-dir",
        metavar="DIR",
        default=env.get("OUTPUT_DIR"),
        help="[OUTPUT_DIR] benchmark folder (default ./output/benchmark-<timestamp>)",
    )
    p.add_argument(
        "--image",
        metavar="IMAGE",
        default=env.get("IMAGE") or None,
        help="[IMAGE] run every row in this local container image (docker) instead of bare metal",
    )
    p.add_argument(
        "--force",
        action="store_true",
        default=env.get("OVERWRITE", "").lower() in TRUE_WORDS,
        help="[OVERWRITE=1] reuse a non-empty folder, removing the previous benchmark's files",
    )
    p.add_argument(
        "--no-inventory",
        action="store_true",
        default=env.get("INVENTORY", "").lower() == "no",
        help="[INVENTORY=no] do not run svr-info / PerfSpect even when on PATH",
    )
    return p


def _shipped_profiles() -> str:
    """The checkout's own profiles as examples (an installed package has none)."""
    root = checkout_root()
    found = sorted(str(p.relative_to(root)) for p in (root / "profiles").glob("*.csv")) if root else []
    return f", e.g. {', '.join(found)}" if found else ""


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if not args.profile:
            raise UsageError(f"--profile/PROFILE: not given (accepted: a CSV profile{_shipped_profiles()})")
        header, rows = profiles.read(args.profile)
        problems = profiles.validate(args.profile, rows, os.environ, startup=not args.image)
        if problems:
            for line in problems:
                error(line)
            return 2
        out = prepare_output(args.output_dir, args.force)
        image = inspect_image(args.image) if args.image else None
    except (UsageError, profiles.ProfileError) as exc:
        error(str(exc))
        return 2
    return Benchmark(args, header, rows, out, image).run()


def prepare_output(requested: str | None, force: bool) -> Path:
    """A new or empty folder; a non-empty one only when told, and then only the
    previous benchmark's own files go. Checked writable before anything runs."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if requested is not None and not requested.strip():
        raise UsageError(
            "--output-dir/OUTPUT_DIR: '' is empty (accepted: a folder path, or unset for "
            "./output/benchmark-<timestamp>)"
        )
    out = Path(requested or f"output/benchmark-{stamp}").expanduser().resolve()
    try:
        if out.is_dir() and any(out.iterdir()):
            if not force:
                raise UsageError(
                    f"--output-dir/OUTPUT_DIR: {str(out)!r} is not empty and would be overwritten "
                    "(accepted: a new or empty folder, or --force/OVERWRITE=1 to replace the "
                    "previous benchmark's files there)"
                )
            try:
                removed = remove_manifest_files(out)
            except OutputDirError as exc:
                raise UsageError(
                    f"--output-dir/OUTPUT_DIR: {exc} (accepted: a new or empty folder, or with "
                    "--force/OVERWRITE=1 one holding a benchmark's files and its manifest)"
                ) from None
            log(f"{PROG}: --force: removed {removed} file(s) the previous benchmark listed in {out / MANIFEST_NAME}")
        return prepare_dir(out)
    except OutputDirError as exc:
        raise UsageError(f"--output-dir/OUTPUT_DIR: {exc}") from None


# --- containers -------------------------------------------------------------------------


def inspect_image(name: str) -> dict:
    docker = shutil.which("docker")
    if not docker:
        raise UsageError(
            f"--image/IMAGE: {name!r} given but docker is not on PATH "
            "(accepted: unset IMAGE for bare metal, or install docker)"
        )
    proc = subprocess.run([docker, "image", "inspect", "--format", "{{json .}}", name], capture_output=True, text=True)
    try:
        info = json.loads(proc.stdout) if proc.returncode == 0 else None
    except ValueError:
        info = None
    if not isinstance(info, dict):
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(
            f"--image/IMAGE: {name!r} is not a local image ({why}) "
            "(accepted: an image built or pulled on this host; see docker/README.md)"
        )
    digests = info.get("RepoDigests") or []
    return {
        "name": name,
        "id": info.get("Id"),
        "digest": digests[0] if digests else None,
        "labels": (info.get("Config") or {}).get("Labels") or {},
    }


def device_flags(platform: str) -> list[str]:
    """`--gpus all` for CUDA, /dev/dri plus its render groups for Intel GPUs
    (a non-root user in the container needs the group of the render nodes)."""
    dri = sorted(glob.glob("/dev/dri/renderD*"))
    if platform == "cuda" or (platform == "auto" and not dri and shutil.which("nvidia-smi")):
        return ["--gpus", "all"]
    if platform == "xpu" or (platform == "auto" and dri):
        flags = ["--device", "/dev/dri"]
        for gid in sorted({os.stat(p).st_gid for p in dri}):
            flags += ["--group-add", str(gid)]
        return flags
    return []


def docker_command(image: dict, env: dict[str, str], test_dir: Path, platform: str) -> list[str]:
    """The documented line (--ipc=host for the streams' shared memory, SYS_NICE
    for numactl), run as the calling user so the results belong to them."""
    cmd = [
        "docker",
        "run",
        "--rm",
        "--ipc=host",
        "--cap-add",
        "SYS_NICE",
        *device_flags(platform),
        "--user",
        f"{os.getuid()}:{os.getgid()}",
        "-e",
        "HOME=/tmp",
        "-v",
        f"{test_dir}:{CONTAINER_OUTPUT}",
        "-e",
        f"OUTPUT_DIR={CONTAINER_OUTPUT}",
    ]
    env = dict(env)
    if env.get("DATASET_DIR"):
        cmd += ["-v", f"{Path(env['DATASET_DIR']).expanduser().resolve()}:{CONTAINER_DATA}:ro"]
        env["DATASET_DIR"] = CONTAINER_DATA
    for key, value in [
        ("RIFEBENCH_IMAGE", image["name"]),
        ("RIFEBENCH_IMAGE_ID", image.get("id")),
        ("RIFEBENCH_IMAGE_DIGEST", image.get("digest")),
        *sorted(env.items()),
    ]:
        if value:
            cmd += ["-e", f"{key}={value}"]
    cmd += shlex.split(os.environ.get("DOCKER_ARGS", ""))
    return cmd + [image["name"], "./run_model.sh"]


# --- the run ----------------------------------------------------------------------------


class Benchmark:
    def __init__(self, args, header, rows, out: Path, image: dict | None):
        self.args, self.header, self.rows, self.out, self.image = args, header, rows, out, image
        self.meta = {
            "profile": args.profile,
            "rows": len(rows),
            "mode": "in a container" if image else "on bare metal",
            "image": image,
            "output_dir": str(out),
            "command": [PROG, *sys.argv[1:]],
            "started": _now(),
        }
        self.system: dict = {}
        self.records: list[dict] = []
        self.stop_reason: str | None = None
        self.foreign = set(os.listdir(out))  # kept by --force: not ours to list or remove

    def run(self) -> int:
        signal.signal(signal.SIGTERM, _raise_interrupt)
        self.note_outputs()  # before the first file: a crash at any point leaves it listed
        shutil.copyfile(self.args.profile, self.out / "profile.csv")
        atomic_write_text(self.out / "benchmark.json", json.dumps(self.meta, indent=2) + "\n")
        try:
            self.system = self.describe_system()
            log(f"{PROG}: {len(self.rows)} row(s) of {self.args.profile} {self.meta['mode']}; results in {self.out}")
            for row in self.rows:
                rec = self.run_row(row)
                self.records.append(rec)
                if rec["status"] == "interrupted":
                    self.stop_reason = "the benchmark was interrupted"
                    break
                self.write_summary(final=False)
        except KeyboardInterrupt:  # outside a row; a running row is stopped by _run_logged
            self.stop_reason = "the benchmark was interrupted"
        for row in self.rows[len(self.records) :]:
            self.records.append(
                {
                    "row": row.number,
                    "cells": dict(row.cells),
                    "status": "not run",
                    "reason": self.stop_reason,
                    "dir": f"test_{row.number}",
                }
            )
        self.write_summary(final=True)
        return self.exit_code()

    def exit_code(self) -> int:
        if self.stop_reason:
            return Exit.INTERRUPTED
        return Exit.PASS if all(r["status"] == Status.PASSED for r in self.records) else Exit.FAIL

    def describe_system(self) -> dict:
        info = sysinfo.collect() if not self.image else self.container_sysinfo()
        if not self.args.no_inventory and any(sysinfo.inventory_tools().values()):
            info["inventory"] = sysinfo.run_inventory(str(self.out / "inventory"), log=log)
        atomic_write_text(self.out / "sysinfo.json", json.dumps(info, indent=2, default=str) + "\n")
        return info

    def container_sysinfo(self) -> dict:
        """The machine as a row sees it: collected inside the image."""
        platform = os.environ.get("PLATFORM", "auto").lower()
        cmd = [
            "docker",
            "run",
            "--rm",
            *device_flags(platform),
            "-e",
            f"RIFEBENCH_IMAGE={self.image['name']}",
            "-e",
            f"RIFEBENCH_IMAGE_DIGEST={self.image.get('digest') or ''}",
            self.image["name"],
            ".venv/bin/python",
            "-m",
            "rifebench.measure.sysinfo",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        try:
            return json.loads(proc.stdout) | {"image": self.image}
        except ValueError:
            host = sysinfo.collect()
            host["note"] = f"collected on the host: the image's own description failed (exit {proc.returncode})"
            return host | {"image": self.image}

    def run_row(self, row) -> dict:
        test_dir = self.out / f"test_{row.number}"
        test_dir.mkdir()
        self.note_outputs()
        env = profiles.row_env(row, os.environ)
        config = profiles.resolved(row, os.environ, str(test_dir))
        cmd = (
            docker_command(self.image, env, test_dir, config["platform"])
            if self.image
            else [sys.executable, "-m", "rifebench"]
        )
        child_env = {k: v for k, v in os.environ.items() if k != "OUTPUT_DIR"} | env | {"OUTPUT_DIR": str(test_dir)}
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p)
        atomic_write_text(
            test_dir / "row.json",
            json.dumps(
                {
                    "row": row.number,
                    "line": row.line,
                    "profile": self.args.profile,
                    "cells": row.cells,
                    "model_name": row.cells.get("model_name"),
                    "env": env,
                    "command": cmd,
                    "resolved": config,
                },
                indent=2,
                default=str,
            )
            + "\n",
        )
        log(f"{PROG}: row {row.number}/{len(self.rows)}: {row.label()}")
        t0 = time.monotonic()
        code = _run_logged(cmd, child_env, test_dir / "console.log", f"[row {row.number}] ")
        wall = time.monotonic() - t0
        # GPU figures come from the run's own timed-window telemetry (results.json), not from here.
        rec = summary.row_record(row, test_dir, code, wall)
        tail = f"{rec['throughput_img_s']:.2f} img/s" if rec.get("throughput_img_s") is not None else rec["reason"]
        if rec.get("valid") is False:
            tail += f"; invalid: {', '.join(rec.get('validity_reasons') or [])}"
        log(f"{PROG}: row {row.number}: {rec['status']} ({tail})")
        return rec

    def note_outputs(self) -> None:
        """The manifest: this benchmark's files, all that OVERWRITE=1 may later remove."""
        names = set(os.listdir(self.out)) - self.foreign
        write_manifest(self.out, names | {"profile.csv", "benchmark.json"})

    def write_summary(self, final: bool) -> None:
        summary.add_reference(self.records, self.out)
        if final:
            self.meta["finished"] = _now()
        written = []
        if final:
            try:
                written = plots.write(self.out, self.records)
            except Exception as exc:  # a plotting problem must not lose the summary
                log(f"{PROG}: warning: plots not written: {type(exc).__name__}: {exc}")
        summary.write(self.out, self.meta, self.system, self.header, self.records, written)
        self.note_outputs()
        if final:
            atomic_write_text(self.out / "benchmark.json", json.dumps(self.meta, indent=2) + "\n")
            done = sum(r["status"] == Status.PASSED for r in self.records)
            log(f"{PROG}: {done}/{len(self.records)} row(s) passed; summary in {self.out / 'summary.md'}")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _run_logged(cmd: list[str], env: dict, log_path: Path, prefix: str) -> int | None:
    """Run one row, echoing its output (prefixed) and keeping it in console.log.
    Ctrl-C / SIGTERM is passed on and the row given time to stop cleanly."""
    with open(log_path, "wb") as logf:
        try:
            proc = subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=kill_with_parent
            )  # the row dies with benchmark.sh
        except OSError as exc:
            logf.write(f"error: cannot start {cmd[0]}: {exc}\n".encode())
            return None
        try:
            for line in proc.stdout:
                logf.write(line)
                logf.flush()
                sys.stdout.write(prefix + line.decode(errors="replace"))
                sys.stdout.flush()
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            try:
                logf.write(proc.communicate(timeout=60)[0] or b"")
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return Exit.INTERRUPTED


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


if __name__ == "__main__":
    sys.exit(main())
