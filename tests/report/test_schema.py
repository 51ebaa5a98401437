"""results.json as a typed, versioned record: every reader loads it through
schema.load_results, which gives back the same document and refuses, in one
line, a file that is not a finished run's results of a known schema_version."""

from __future__ import annotations

import json

import pytest

from rifebench.errors import UsageError
from rifebench.measure.metrics import latency_stats
from rifebench.measure.records import Latency
from rifebench.report import schema
from rifebench.report.schema import RunNotFinished, RunResult, SchemaError, load_results

LAT = latency_stats([10.0, 12.0, 11.0]).to_dict()


def document(version: str = "3") -> dict:
    """A results.json in the shape finish() writes (its keys in their order), trimmed."""
    stream = {"id": 0, "status": "completed", "frames": 3, "images": 3, "latency_ms": LAT, "latency_samples_ms": [1.0]}
    return {
        "status": "passed",
        "exit_code": 0,
        "schema_version": version,
        "harness": {"name": "rifebench", "version": "0", "git_revision": None},
        "mode": "dummy",
        "config": {"streams": 1},
        "metrics": {
            "throughput_img_s": 90.0,
            "latency_ms": LAT,
            "latency_per_pair_ms": LAT,
            "host_submit_ms": None,
            "window": {"first_start": 1.0, "last_end": 2.0, "overlap_s": 1.0, "overlap_pct": 100.0},
            "ci95": {"n": 1},
        },
        "validity": {
            "valid": True,
            "reasons": [],
            "checks": [{"code": "TOO_FEW_SAMPLES", "triggered": False, "value": 3, "threshold": 1, "detail": "d"}],
            "repetitions_valid": [True],
        },
        "repetitions": [
            {
                "index": 0,
                "status": "passed",
                "throughput_img_s": 90.0,
                "latency_ms": LAT,
                "frames": 3,
                "duration_s": 1.0,
                "validity": {"valid": True, "reasons": []},
            }
        ],
        "streams": [stream],
        "failures": [],
        "a_key_of_a_later_version": {"kept": True},
    }


def test_the_document_comes_back_as_it_was_read_with_typed_figures(tmp_path):
    doc = RunResult.from_dict(document()).to_dict()  # every key of the schema, in finish()'s order
    assert doc["metrics"]["latency_ms"] == LAT and doc["streams"][0]["frames"] == 3
    assert list(doc)[:3] == ["status", "exit_code", "schema_version"] and list(doc)[-1] == "a_key_of_a_later_version"
    (tmp_path / "results.json").write_text(json.dumps(doc))
    run = load_results(tmp_path)  # the folder, or the file itself
    assert load_results(tmp_path / "results.json") == run and run.path == tmp_path / "results.json"
    assert json.dumps(run.to_dict()) == json.dumps(doc)  # the same keys in the same order
    assert isinstance(run.metrics.latency_ms, Latency) and run.metrics.latency_ms.p50 == 11.0
    assert run.metrics.window.overlap_pct == 100.0 and run.streams[0].latency_ms.count == 3
    assert run.repetitions[0].validity.valid and run.validity.checks[0].code == "TOO_FEW_SAMPLES"
    assert run.extra == {"a_key_of_a_later_version": {"kept": True}}  # a later version's key is kept
    assert run.to_dict()["metrics"]["host_submit_ms"] is None and "video" not in run.to_dict()


def test_schema_2_is_still_read():
    run = RunResult.from_dict(document("2"), "x/results.json")
    assert run.schema_version == "2" and run.validity.settings is None
    assert "settings" not in run.to_dict()["validity"]


@pytest.mark.parametrize(
    "doc,error,words",
    [
        ({**document(), "schema_version": "9"}, SchemaError, "schema_version '9' is not one this rifebench reads "),
        ({"status": "passed"}, SchemaError, "schema_version None is not one"),
        ({"status": "running", "created": "t"}, RunNotFinished, "the run has not finished (status 'running'"),
        ([1, 2], SchemaError, "the document is list, not an object"),
        ({**document(), "metrics": 3}, SchemaError, "not a valid schema 3 document (metrics is int"),
    ],
)
def test_what_is_not_a_known_results_json_is_one_line_and_a_usage_error(tmp_path, doc, error, words):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(error) as got:
        load_results(path)
    text = str(got.value)
    assert issubclass(error, UsageError) and "\n" not in text
    assert text.startswith(f"results.json at {path}: ") and words in text
    if error is SchemaError and "schema_version" in words:
        assert text.endswith("(accepted: 2, 3)")


def test_a_missing_or_broken_file_is_a_schema_error(tmp_path):
    with pytest.raises(SchemaError, match=r"results.json at .*: not readable \(FileNotFoundError\)"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(SchemaError, match=r"results.json at .*: not JSON"):
        load_results(tmp_path)
    assert schema.SCHEMA_VERSION in schema.READABLE_SCHEMAS == ("2", "3")
