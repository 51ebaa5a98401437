"""RIFE inference benchmark harness."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path


def _version() -> str:
    """The version pyproject.toml declares, defined there only.

    In a checkout (PYTHONPATH=src, or the editable install setup.sh makes) the
    pyproject.toml beside src/ is read: an editable install's metadata keeps the
    version of the day it was installed. Installed from a wheel, there is no
    pyproject.toml beside the package, and the installed metadata says it."""
    try:
        with open(Path(__file__).resolve().parents[2] / "pyproject.toml", "rb") as f:
            project = tomllib.load(f).get("project", {})
        if project.get("name") == "rifebench" and project.get("version"):
            return str(project["version"])
    except (OSError, tomllib.TOMLDecodeError):
        pass
    try:
        return metadata.version("rifebench")
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _version()
