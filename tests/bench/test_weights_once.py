"""A benchmark fetches a model's missing weights once: when that fails, every row
of that model fails at once with the reason (how to get the file by hand, how to
measure without it), instead of trying every source again per row."""

from __future__ import annotations

import csv

from rifebench.bench import runner
from rifebench.bench import weights as bench_weights
from rifebench.fetch.weights import FetchError
from rifebench.options import BY_ENV


def test_missing_weights_are_fetched_once_per_benchmark(tmp_path, monkeypatch):
    for var in {*BY_ENV, "PROFILE", "IMAGE", "OVERWRITE", "CONTAINER_ENGINE"}:  # a developer's exports
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("INVENTORY", "no")
    calls = []

    def offline(spec, models_dir, log=print, **kwargs):
        calls.append((spec.name, str(models_dir)))
        raise FetchError(
            f"could not fetch weights for model {spec.name}:\n  url: no network\n"
            f"  by hand: download https://example.invalid/flownet.pkl and save it as {models_dir}/x.pkl"
        )

    monkeypatch.setattr(bench_weights, "fetch", offline)
    profile = tmp_path / "p.csv"
    models = tmp_path / "models"
    profile.write_text(
        "MODEL,DUMMY,MODELS_DIR,DATA_HEIGHT,DATA_WIDTH,STREAMS\n"
        + "".join(f"4.6,1,{models},64,64,{n}\n" for n in (1, 2, 1))
    )
    out = tmp_path / "out"
    assert runner.main(["--profile", str(profile), "--output-dir", str(out)]) == 1
    assert calls == [("4.6", str(models))]  # one attempt for three rows
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["failed"] * 3
    for r in rows:
        assert r["reason"].startswith("could not fetch weights for model 4.6: url: no network; by hand: download")
        assert "tried once for this benchmark" in r["reason"] and "\n" not in r["reason"]
    assert rows[1]["ran:STREAMS"] == "2"  # what the row would have run is still recorded
