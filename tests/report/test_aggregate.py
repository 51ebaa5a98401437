"""Combining streams honestly, on known truths: total frames over (last end -
first start), percentiles from all raw samples, windows and their overlap."""

from __future__ import annotations

import pytest

from rifebench.measure.metrics import latency_stats
from rifebench.measure.records import StreamResult
from rifebench.report.aggregate import aggregate, stream_summary


def stream(sid, start, end, frames, samples=None, interpolation=1, **extra):
    return StreamResult(
        id=sid,
        start=start,
        end=end,
        frames=frames,
        images=frames * interpolation,
        latency_ms=samples if samples is not None else [1000.0 * (end - start) / frames] * frames,
        model_seconds=end - start,
        status="completed",
        **extra,
    )


def test_combined_throughput_is_total_over_the_union_window():
    a, b = stream(0, 100.0, 110.0, 100), stream(1, 105.0, 115.0, 100)  # staggered by 5 s
    out = aggregate([a, b], 1)
    assert out.duration_s == pytest.approx(15.0)
    assert out.throughput == pytest.approx(200 / 15)
    per_stream = [stream_summary(r, 100.0).throughput for r in (a, b)]
    assert per_stream == [pytest.approx(10.0), pytest.approx(10.0)]
    # The reference summed per-stream rates (20/s): that overstates by a third here.
    assert out.throughput < sum(per_stream)
    assert out.window.overlap_s == pytest.approx(5.0)
    assert out.window.overlap_pct == pytest.approx(100 * 5 / 15)


def test_aligned_windows_sum_exactly():
    a, b = stream(0, 0.0, 10.0, 50), stream(1, 0.0, 10.0, 70)
    out = aggregate([a, b], 1)
    assert out.throughput == pytest.approx(12.0)
    assert out.window.overlap_pct == pytest.approx(100.0)


def test_disjoint_windows_have_no_overlap():
    out = aggregate([stream(0, 0.0, 1.0, 10), stream(1, 2.0, 3.0, 10)], 1)
    assert out.window.overlap_s == 0.0 and out.throughput == pytest.approx(20 / 3)


def test_percentiles_come_from_all_raw_samples_not_averages():
    fast = stream(0, 0.0, 1.0, 90, samples=[10.0] * 90)
    slow = stream(1, 0.0, 1.0, 10, samples=[100.0] * 10)
    lat = aggregate([fast, slow], 1).latency_ms
    assert lat.count == 100
    assert lat.mean == pytest.approx((90 * 10 + 10 * 100) / 100)  # 19, not (10 + 100) / 2
    assert lat.p50 == pytest.approx(10.0) and lat.p99 == pytest.approx(100.0)
    assert lat == latency_stats([10.0] * 90 + [100.0] * 10)


def test_interpolation_counts_images_and_pairs_apart():
    out = aggregate([stream(0, 0.0, 2.0, 10, interpolation=3)], 3)
    assert out.images == 30 and out.frames == 10
    assert out.throughput == pytest.approx(15.0) and out.throughput_pairs_s == pytest.approx(5.0)


def test_streams_without_a_window_are_left_out_and_nothing_is_zero_when_empty():
    dead = StreamResult(id=1, status="failed")
    out = aggregate([stream(0, 0.0, 2.0, 10), dead], 1)
    assert out.frames == 10 and out.duration_s == pytest.approx(2.0)
    empty = aggregate([dead], 1)
    assert empty.throughput is None and empty.latency_ms.count == 0 and empty.latency_ms.p50 is None


def test_stream_summary_offsets_on_the_common_clock():
    r = stream(1, 1000.5, 1010.5, 20, cpus=[2, 3], threads=2)
    s = stream_summary(r, 1000.0)
    assert s.start_offset_s == pytest.approx(0.5) and s.end_offset_s == pytest.approx(10.5)
    assert s.cpus == [2, 3] and s.threads == 2
    assert s.throughput == pytest.approx(2.0) and len(s.latency_samples_ms) == 20
