"""The log-linear histogram: bucket bounds, accuracy, exact merge, lossless JSON."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from mrapsim.load.histogram import Histogram, bucket_bounds, bucket_index

values = st.lists(st.integers(min_value=0, max_value=120_000_000), max_size=300)


def histogram_of(items: list[int]) -> Histogram:
    h = Histogram()
    for v in items:
        h.record(v)
    return h


@given(st.integers(min_value=0, max_value=1 << 40))
def test_value_lies_in_its_bucket_within_one_in_a_thousand(value: int) -> None:
    low, high = bucket_bounds(bucket_index(value))
    assert low <= value <= high
    assert high - low <= max(0, value) / 1000


def test_buckets_are_contiguous() -> None:
    previous_high = -1
    for index in range(0, 40_000):
        low, high = bucket_bounds(index)
        assert low == previous_high + 1
        previous_high = high


@given(values, values)
def test_merge_equals_recording_both_streams(a: list[int], b: list[int]) -> None:
    merged = histogram_of(a)
    merged.merge(histogram_of(b))
    assert merged == histogram_of(a + b)


@given(values)
def test_json_round_trip_is_lossless(items: list[int]) -> None:
    h = histogram_of(items)
    assert Histogram.from_json(h.to_json()) == h


def test_percentiles_are_within_resolution() -> None:
    rng = random.Random(7)
    items = [int(rng.lognormvariate(8, 1.5)) for _ in range(20_000)]
    h = histogram_of(items)
    ordered = sorted(items)
    for p in (50.0, 90.0, 99.0, 99.9):
        exact = ordered[max(0, int(p / 100 * len(ordered) + 0.5) - 1)]
        assert abs(h.percentile(p) - exact) <= exact / 1000 + 1
        assert h.percentiles([p])[p] == h.percentile(p)
    assert h.percentile(100) == max(items)
    assert h.min == min(items) and h.total == len(items) and h.sum == sum(items)


def test_empty_histogram_reports_zeros() -> None:
    h = Histogram()
    assert h.percentile(99) == 0 and h.mean == 0.0 and h.percentiles([50.0]) == {50.0: 0}
