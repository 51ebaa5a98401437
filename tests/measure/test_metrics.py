"""The measuring tools against known truths."""

import statistics
import time

import numpy as np
import pytest

from rifebench.measure.metrics import latency_stats, percentile, rate
from rifebench.measure.records import Latency, StreamResult
from rifebench.report.aggregate import aggregate
from rifebench.report.results import yaml_results


def test_percentiles_match_numpy():
    rng = np.random.default_rng(0)
    values = sorted(rng.exponential(10, size=101).tolist())
    for q in (50, 90, 99):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_latency_stats_known_values():
    s = latency_stats([3.0, 1.0, 2.0, 4.0])
    assert s.mean == 2.5 and s.p50 == 2.5 and s.min == 1.0 and s.max == 4.0
    assert s.stdev == pytest.approx(statistics.stdev([1, 2, 3, 4]))
    assert latency_stats([5.0]).stdev is None  # a statistic that does not exist is null, not 0
    assert latency_stats([]).mean is None
    assert rate(10, 0) is None and rate(10, 2.0) == 5.0


def test_latency_is_the_same_document_as_before():
    """to_dict() is results.json's latency object: the same keys in the same order,
    percentile_note only where a percentile is missing, and back again."""
    s = latency_stats([3.0, 1.0, 2.0, 4.0])
    assert list(s.to_dict()) == ["count", "mean", "p50", "p90", "p99", "min", "max", "stdev", "percentile_note"]
    assert s.to_dict()["percentile_note"] == "p90 needs >= 10 samples, p99 needs >= 100 samples; 4 measured"
    assert Latency.from_dict(s.to_dict()) == s
    assert "percentile_note" not in latency_stats([1.0] * 100).to_dict()
    empty = latency_stats([]).to_dict()
    assert empty == dict.fromkeys(("count", "mean", "p50", "p90", "p99", "min", "max", "stdev")) | {"count": 0}


def test_a_stream_result_crosses_the_process_boundary_as_plain_data():
    np = pytest.importorskip("numpy")
    frame = np.random.default_rng(0).random((4, 5, 3), dtype=np.float32)
    r = StreamResult(id=1, status="completed", latency_ms=[1.0, 2.0], start=1.0, end=2.0, fingerprint=frame)
    d = r.to_dict()
    assert isinstance(d["fingerprint"], bytes) and d["latency_ms"] == [1.0, 2.0]
    back = StreamResult.from_dict(d | {"new_key": 1})
    assert np.array_equal(back.fingerprint, frame) and back.extra == {"new_key": 1}
    back.fingerprint = r.fingerprint = None
    back.extra = {}
    assert back == r


def test_sleep_is_measured_as_sleep():
    t0 = time.monotonic()
    time.sleep(0.2)
    assert 0.18 <= time.monotonic() - t0 <= 0.5


def _stream(sid, start, end, frames, lat):
    return StreamResult(
        id=sid, start=start, end=end, frames=frames, images=frames, latency_ms=lat, warmup={"pairs": 2, "seconds": 0.1}
    )


def test_combined_throughput_is_frames_over_common_window_not_sum_of_rates():
    # Stream 0 runs 0..10 s, stream 1 runs 0..5 s: the sum of rates (10 + 10 = 20/s)
    # would flatter; honest combined = 150 frames / 10 s = 15/s.
    a = _stream(0, 100.0, 110.0, 100, [100.0] * 100)
    b = _stream(1, 100.0, 105.0, 50, [100.0] * 50)
    agg = aggregate([a, b], 1)
    assert agg.throughput == pytest.approx(15.0)
    assert agg.throughput <= 100 / 10 + 50 / 5
    assert agg.window.overlap_s == pytest.approx(5.0)
    assert agg.window.overlap_pct == pytest.approx(50.0)


def test_combined_percentiles_come_from_raw_samples():
    a = _stream(0, 0.0, 1.0, 4, [1.0, 1.0, 1.0, 1.0])
    b = _stream(1, 0.0, 1.0, 1, [100.0])
    agg = aggregate([a, b], 1)
    # The average of the per-stream means would be 50.5; the raw samples say 20.8.
    assert agg.latency_ms.mean == pytest.approx(20.8)
    assert agg.latency_ms.max == 100.0 and agg.latency_ms.count == 5


def test_interpolation_counts_images():
    s = _stream(0, 0.0, 2.0, 10, [1.0] * 10)
    s.images = 30
    agg = aggregate([s], 3)
    assert agg.throughput == 15.0 and agg.throughput_pairs_s == 5.0


def test_results_yaml_has_the_reference_shape():
    text = yaml_results(33.4812, 31.3911, 96.5517)
    assert text == (
        "results:\n- key: throughput\n  value: 33.48\n  unit: img/s\n- key: latency\n"
        "  value: 31.39\n  unit: ms\n- key: accuracy\n  value: 96.55\n  unit: percents\n"
    )
