"""benchmark.sh: run every row of a CSV profile, on bare metal or in a container.

Each row is a subprocess (`python -m rifebench` with this package, so an
installed copy works outside a checkout, or `docker run ... IMAGE
./run_model.sh` when IMAGE is set, with docker or podman) with the row's cells as environment
variables and OUTPUT_DIR=<benchmark folder>/test_<n>. The profile is checked
whole before anything runs; a row that fails is recorded and the next one
runs; the summary is rewritten after every row, so a later crash loses nothing.

Exit status: 0 every row passed, 1 a row failed, 2 bad profile or options
(nothing ran), 130 interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from rifebench import __version__, paths
from rifebench.bench import profiles
from rifebench.bench.container import choose_engine, container_sysinfo, inspect_image, run_command
from rifebench.bench.row import harness_command, run_row
from rifebench.bench.weights import WeightsOnce
from rifebench.console import error, log, now_iso
from rifebench.errors import UsageError
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
from rifebench.report import plots, summary
from rifebench.report.table import RowRecord
from rifebench.run.interrupts import Interrupted, raise_on_signals
from rifebench.run.prepare import refused
from rifebench.status import Exit, Status

PROG = paths.tool_name("bench")


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    p = argparse.ArgumentParser(
        prog=PROG,
        allow_abbrev=False,
        description="Run every row of a CSV profile (profiles/README.md) as one run of run_model.sh. "
        "Every option is also an environment variable (in brackets); a flag wins.",
        epilog="DOCKER_ARGS: extra `docker run`/`podman run` arguments with IMAGE "
        "(split like a shell would, never evaluated). "
        "Any option variable of run_model.sh --help set here applies to every row a profile cell does not set. "
        "Exit status: 0 every row passed, 1 a row failed, 2 bad profile or options, 130 interrupted.",
    )
    p.add_argument("--version", action="version", version=f"rifebench {__version__}")
    p.add_argument(
        "--profile",
        metavar="CSV",
        default=env.get("PROFILE"),
        help="[PROFILE] the profile to run: a CSV file, or a shipped profile by name, e.g. cpu (required)",
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
        help="[IMAGE] run every row in this local container image instead of bare metal",
    )
    p.add_argument(
        "--container-engine",
        metavar="ENGINE",
        default=env.get("CONTAINER_ENGINE") or None,
        help="[CONTAINER_ENGINE] docker or podman, for IMAGE (default: the first of them on PATH)",
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


def main(argv: list[str] | None = None) -> int:
    """Every check before the folder is made; a signal before the first row is one
    line and exit 130 (run/interrupts.py has the rule), a refusal or an
    interruption removes the folders this benchmark created and left empty."""
    raise_on_signals()
    try:
        args = build_parser().parse_args(argv)
        if not args.profile:
            raise UsageError(
                f"--profile/PROFILE: not given (accepted: a CSV file, or a shipped profile by name: "
                f"{', '.join(profiles.shipped())})"
            )
        args.profile = profiles.locate(args.profile)
        header, rows = profiles.read(args.profile)
        problems = profiles.validate(args.profile, rows, os.environ, startup=not args.image)
        if problems:
            for line in problems:
                error(PROG, line)
            return Exit.USAGE
        image = inspect_image(args.image, choose_engine(args.container_engine)) if args.image else None
        target = str(output_path(args.output_dir))
        with refused(target):
            bench = Benchmark(args, header, rows, prepare_output(target, args.force), image)
        return bench.run()
    except UsageError as exc:  # profiles.ProfileError among them
        error(PROG, str(exc))
        return Exit.USAGE
    except Interrupted as exc:  # Benchmark.run handles its own from its first row on
        error(PROG, f"interrupted by {exc} during start-up; no row ran")
        return Exit.INTERRUPTED


def output_path(requested: str | None) -> Path:
    """The benchmark folder asked for, or ./output/benchmark-<timestamp>."""
    if requested is not None and not requested.strip():
        raise UsageError(
            "--output-dir/OUTPUT_DIR: '' is empty (accepted: a folder path, or unset for "
            "./output/benchmark-<timestamp>)"
        )
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(requested or f"output/benchmark-{stamp}").expanduser().resolve()


def prepare_output(requested: str | None, force: bool) -> Path:
    """A new or empty folder; a non-empty one only when told, and then only the
    previous benchmark's own files go. Checked writable before anything runs."""
    out = output_path(requested)
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


# --- the run ----------------------------------------------------------------------------


class Benchmark:
    def __init__(
        self,
        args: argparse.Namespace,
        header: list[str],
        rows: list[profiles.Row],
        out: Path,
        image: dict[str, Any] | None,
    ):
        self.args, self.header, self.rows, self.out, self.image = args, header, rows, out, image
        self.meta: dict[str, Any] = {
            "profile": args.profile,
            "rows": len(rows),
            "mode": "in a container" if image else "on bare metal",
            "image": image,
            "output_dir": str(out),
            "command": [PROG, *sys.argv[1:]],
            "started": now_iso(),
        }
        self.system: dict[str, Any] = {}
        self.records: list[RowRecord] = []
        self.stop_reason: str | None = None
        self.foreign = set(os.listdir(out))  # kept by --force: not ours to list or remove
        self.weights = WeightsOnce(log)  # in an image the weights are the image's own

    def run(self) -> int:
        raise_on_signals()  # Ctrl-C, SIGTERM, SIGHUP: the running row is stopped and recorded
        self.note_outputs()  # before the first file: a crash at any point leaves it listed
        shutil.copyfile(self.args.profile, self.out / "profile.csv")
        atomic_write_text(self.out / "benchmark.json", json.dumps(self.meta, indent=2) + "\n")
        try:
            self.system = self.describe_system()
            log(f"{PROG}: {len(self.rows)} row(s) of {self.args.profile} {self.meta['mode']}; results in {self.out}")
            for row in self.rows:
                rec, stopped = self.run_row(row)
                self.records.append(rec)
                if stopped or rec.status == Status.INTERRUPTED:
                    self.stop_reason = "the benchmark was interrupted"
                    break
                self.write_summary(final=False)
        except KeyboardInterrupt:  # outside a row; a running row is stopped by bench.row
            self.stop_reason = "the benchmark was interrupted"
        for row in self.rows[len(self.records) :]:
            self.records.append(
                RowRecord(
                    row=row.number,
                    cells=dict(row.cells),
                    status=str(Status.NOT_RUN),
                    reason=self.stop_reason,
                    dir=f"test_{row.number}",
                )
            )
        self.write_summary(final=True)
        return self.exit_code()

    def exit_code(self) -> int:
        if self.stop_reason:
            return Exit.INTERRUPTED
        return Exit.PASS if all(r.status == Status.PASSED for r in self.records) else Exit.FAIL

    def describe_system(self) -> dict[str, Any]:
        info = sysinfo.collect() if not self.image else container_sysinfo(self.image)
        if not self.args.no_inventory and any(sysinfo.inventory_tools().values()):
            info["inventory"] = sysinfo.run_inventory(str(self.out / "inventory"), log=log)
        atomic_write_text(self.out / "sysinfo.json", json.dumps(info, indent=2, default=str) + "\n")
        return info

    def run_row(self, row: profiles.Row) -> tuple[RowRecord, bool]:
        """The row's record, and whether a signal came during it (the benchmark stops)."""
        test_dir = self.out / f"test_{row.number}"
        test_dir.mkdir()
        self.note_outputs()
        env = profiles.row_env(row, os.environ)
        config = profiles.resolved(row, os.environ, str(test_dir))
        refusal = None if self.image else self.weights.refusal(config)
        if refusal is not None:
            log(f"{PROG}: row {row.number}/{len(self.rows)}: {row.label()}: failed ({refusal})")
            rec = RowRecord(row.number, dict(row.cells), str(Status.FAILED), reason=refusal, dir=test_dir.name)
            rec.settings, rec.settings_from = summary.settings_of(config, profiles.origins(row, os.environ))
            return rec, False
        cmd = run_command(self.image, env, test_dir, config["platform"]) if self.image else harness_command()
        record = {
            "row": row.number,
            "line": row.line,
            "profile": self.args.profile,
            "cells": row.cells,
            "model_name": row.cells.get("model_name"),
            "env": env,
            "command": cmd,
            "resolved": config,
        }
        atomic_write_text(test_dir / "row.json", json.dumps(record, indent=2, default=str) + "\n")
        log(f"{PROG}: row {row.number}/{len(self.rows)}: {row.label()}")
        done = run_row(cmd, env, test_dir, echo=f"[row {row.number}] ")
        # GPU figures come from the run's own timed-window telemetry (results.json), not from here.
        where = profiles.origins(row, os.environ)  # what ran, and where each value came from
        rec = summary.row_record(row.number, row.cells, test_dir, done.exit_code, done.wall_s, where, config)
        tail = f"{rec.throughput_img_s:.2f} img/s" if rec.throughput_img_s is not None else str(rec.reason)
        if rec.valid is False:
            tail += f"; invalid: {', '.join(rec.validity_reasons)}"
        log(f"{PROG}: row {row.number}: {rec.status} ({tail})")
        return rec, done.interrupted is not None

    def note_outputs(self) -> None:
        """The manifest: this benchmark's files, all that OVERWRITE=1 may later remove."""
        names = set(os.listdir(self.out)) - self.foreign
        write_manifest(self.out, names | {"profile.csv", "benchmark.json"})

    def write_summary(self, final: bool) -> None:
        summary.add_reference(self.records, self.out)
        if final:
            self.meta["finished"] = now_iso()
        written = []
        if final:
            try:
                written = plots.write(self.out, self.records)
            except Exception as exc:  # noqa: BLE001 - a plotting problem must not lose the summary
                log(f"{PROG}: warning: plots not written: {type(exc).__name__}: {exc}")
        # Every row's resolved settings and where each came from, beside the summary's columns.
        self.meta["row_settings"] = [
            {"row": r.row, "dir": r.dir, "settings": r.settings, "from": r.settings_from} for r in self.records
        ]
        summary.write(self.out, self.meta, self.system, self.header, self.records, written)
        atomic_write_text(self.out / "benchmark.json", json.dumps(self.meta, indent=2) + "\n")
        self.note_outputs()
        if final:
            done = sum(r.status == Status.PASSED for r in self.records)
            log(f"{PROG}: {done}/{len(self.records)} row(s) passed; summary in {self.out / 'summary.md'}")


if __name__ == "__main__":
    sys.exit(main())
