"""histogram_quantile against hand-computed cases and the edge cases Prometheus documents."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.quantiles import histogram_quantile, merge, quantile_or_none

INF = math.inf
# 100 observations: 10 in (0,0.1], 40 in (0.1,0.5], 30 in (0.5,1], 15 in (1,2.5], 5 in (2.5,+Inf]
BOUNDS = (0.1, 0.5, 1.0, 2.5, INF)
CUM = (10.0, 50.0, 80.0, 95.0, 100.0)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.05, 0.05),  # rank 5 in first bucket: 0 + 0.1 * 5/10
        (0.10, 0.1),  # rank 10 exactly at the first bound
        (0.50, 0.5),  # rank 50: top of (0.1, 0.5]
        (0.30, 0.3),  # rank 30: 0.1 + 0.4 * 20/40
        (0.65, 0.75),  # rank 65: 0.5 + 0.5 * 15/30
        (0.90, 2.0),  # rank 90: 1 + 1.5 * 10/15
        (0.99, 2.5),  # rank 99 falls in +Inf bucket: highest finite bound
        (1.0, 2.5),
        (0.0, 0.0),
    ],
)
def test_hand_computed_quantiles(q: float, expected: float) -> None:
    assert histogram_quantile(q, BOUNDS, CUM) == pytest.approx(expected)


def test_out_of_range_and_nan_quantile() -> None:
    assert histogram_quantile(-0.1, BOUNDS, CUM) == -INF
    assert histogram_quantile(1.1, BOUNDS, CUM) == INF
    assert math.isnan(histogram_quantile(math.nan, BOUNDS, CUM))


def test_empty_window_is_nan_and_none_for_json() -> None:
    assert math.isnan(histogram_quantile(0.99, BOUNDS, (0, 0, 0, 0, 0)))
    assert quantile_or_none(0.99, BOUNDS, (0, 0, 0, 0, 0)) is None


def test_missing_inf_bucket_or_single_bucket_is_nan() -> None:
    assert math.isnan(histogram_quantile(0.5, (0.1, 0.5), (1.0, 2.0)))
    assert math.isnan(histogram_quantile(0.5, (INF,), (5.0,)))  # a mean-only histogram has no percentiles


def test_all_in_inf_bucket_returns_highest_finite_bound() -> None:
    assert histogram_quantile(0.5, BOUNDS, (0, 0, 0, 0, 7)) == 2.5


def test_first_bucket_with_negative_upper_bound_returns_that_bound() -> None:
    assert histogram_quantile(0.5, (-1.0, 0.0, INF), (4.0, 8.0, 8.0)) == -1.0


def test_non_monotonic_counts_are_repaired_like_prometheus() -> None:
    # the 1.0 bucket reads lower than the 0.5 bucket: forced up to 8, so rank 7 lands in (0.1, 0.5]
    assert histogram_quantile(0.7, (0.1, 0.5, 1.0, INF), (2.0, 8.0, 6.0, 10.0)) == pytest.approx(0.1 + 0.4 * 5 / 6)
    assert histogram_quantile(0.85, (0.1, 0.5, 1.0, INF), (2.0, 8.0, 6.0, 10.0)) == 1.0


def test_unsorted_and_duplicate_bounds() -> None:
    assert histogram_quantile(0.3, (1.0, INF, 0.5, 0.1), (80.0, 100.0, 50.0, 10.0)) == pytest.approx(0.3)
    # duplicated bound is coalesced (summed) as Prometheus does for two series with one le
    assert histogram_quantile(0.5, (1.0, 1.0, INF), (5.0, 5.0, 10.0)) == pytest.approx(0.5)


def test_merge_same_layout_is_sum_by_le() -> None:
    b, c = merge([(BOUNDS, CUM), (BOUNDS, (0, 0, 0, 0, 100.0))])  # type: ignore[misc]
    assert b == BOUNDS
    assert c == (10.0, 50.0, 80.0, 95.0, 200.0)
    assert histogram_quantile(0.5, b, c) == 2.5


def test_merge_different_layouts_uses_union_of_bounds() -> None:
    merged = merge([((1.0, INF), (4.0, 6.0)), ((0.5, 2.0, INF), (1.0, 3.0, 4.0))])
    assert merged == ((0.5, 1.0, 2.0, INF), (1.0, 5.0, 7.0, 10.0))
    assert merge([]) is None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(0.001, 1000.0), min_size=1, max_size=12, unique=True),
    st.lists(st.floats(0.0, 1e6), min_size=13, max_size=13),
    st.floats(0.0, 1.0),
    st.randoms(use_true_random=False),
)
def test_sorted_layouts_give_the_same_answer_as_shuffled_ones(
    finite: list[float], raw: list[float], q: float, rnd: random.Random
) -> None:
    """The sorted-bounds path (what every stored layout is) agrees with the sort-and-coalesce
    path that a shuffled copy of the same buckets takes, non-monotonic counts included."""
    bounds = [*sorted(finite), INF]
    counts = raw[: len(bounds)]
    pairs = list(zip(bounds, counts, strict=True))
    rnd.shuffle(pairs)
    shuffled_b, shuffled_c = zip(*pairs, strict=True)
    if list(shuffled_b) == bounds:  # the shuffle kept the order: force the other path with a duplicate
        shuffled_b, shuffled_c = (*shuffled_b, INF), (*shuffled_c, 0.0)
    expected = histogram_quantile(q, shuffled_b, shuffled_c)
    got = histogram_quantile(q, bounds, counts)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.floats(0.0, 1e9), min_size=4, max_size=4), min_size=1, max_size=20))
def test_merge_same_layout_equals_a_per_bucket_sum(rows: list[list[float]]) -> None:
    bounds = (0.1, 1.0, 10.0, INF)
    totals = [0.0] * 4
    for r in rows:
        for i, v in enumerate(r):
            totals[i] += v
    assert merge([(bounds, tuple(r)) for r in rows]) == (bounds, tuple(totals))
    with pytest.raises(ValueError, match="more or fewer counts"):
        merge([(bounds, (1.0, 2.0, 3.0, 4.0)), (bounds, (1.0, 2.0))])
