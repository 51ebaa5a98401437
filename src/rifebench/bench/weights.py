"""A benchmark's weights, fetched once per model.

A row whose model's official weights are missing would fetch them itself, and a
machine without the network would then try every source again for every row of
that model (seconds each). Here the first such row fetches them in the benchmark's
own process; when that fails, it and every later row of the model fail at once
with the same reason, which says how to put the file in place by hand and how to
measure speed without it (--random-weights)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rifebench.fetch.weights import FetchError, default_weights_path, fetch
from rifebench.models import zoo


class WeightsOnce:
    def __init__(self, log: Callable[[str], object]):
        self.log = log
        self.failed: dict[tuple[str, str], str] = {}  # (model, models folder) -> the reason, once

    def refusal(self, config: Mapping[str, Any]) -> str | None:
        """None when the row can run (weights present, fetched now, or not needed);
        else the reason its model's weights are not at hand, on one line."""
        spec = zoo.get(str(config["model"]))
        if spec.weights_file is None or config.get("random_weights") or not config.get("models_dir"):
            return None
        target = default_weights_path(spec, config["models_dir"])
        load = config.get("load_path")
        if (load and Path(load) != target) or target.exists():
            return None  # the row's own file, or one in place: the run checks it
        key = (spec.name, str(config["models_dir"]))
        if key not in self.failed:
            try:
                fetch(spec, config["models_dir"], log=self.log)
                return None
            except FetchError as exc:
                lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
                self.failed[key] = f"{lines[0]} {'; '.join(lines[1:])} (tried once for this benchmark)"
        return self.failed[key]
