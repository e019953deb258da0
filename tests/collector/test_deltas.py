from __future__ import annotations

import math

from collector.deltas import diff
from core.samples import EngineSnapshot, Histogram

INF = math.inf


def snap(counter: float, hist_counts: tuple[float, ...], hsum: float) -> EngineSnapshot:
    return EngineSnapshot(
        gauges={("queue_depth", "m"): 3.0},
        counters={("requests_total", "m"): counter},
        histograms={("ttft_seconds", "m"): Histogram((0.1, 1.0, INF), hist_counts, hsum, hist_counts[-1])},
    )


def test_first_scrape_is_only_a_baseline() -> None:
    assert diff(None, 10.0, snap(5, (1, 2, 3), 1.0)) == ((), ())


def test_plain_increase() -> None:
    counters, hists = diff((10.0, snap(5, (1, 2, 3), 1.0)), 25.0, snap(12, (2, 6, 8), 4.5))
    assert counters[0].delta == 7 and counters[0].interval == 15.0
    assert hists[0].counts == (1, 4, 5) and hists[0].count == 5 and hists[0].sum == 3.5


def test_counter_reset_counts_from_zero_like_prometheus_rate() -> None:
    # engine restarted between scrapes: 100 -> 4 means 4 new requests, not -96
    counters, hists = diff((10.0, snap(100, (10, 20, 30), 9.0)), 25.0, snap(4, (1, 2, 2), 0.4))
    assert counters[0].delta == 4
    assert hists[0].counts == (1, 2, 2) and hists[0].sum == 0.4


def test_histogram_with_one_decreasing_bucket_is_a_reset() -> None:
    _, hists = diff((0.0, snap(1, (5, 6, 7), 1.0)), 15.0, snap(2, (1, 7, 8), 1.5))
    assert hists[0].counts == (1, 7, 8)


def test_new_series_after_baseline_counts_from_zero() -> None:
    before = EngineSnapshot(counters={("requests_total", "m"): 10.0})
    after = EngineSnapshot(counters={("requests_total", "m"): 12.0, ("request_errors_total", "m"): 3.0})
    counters, _ = diff((0.0, before), 15.0, after)
    assert {(c.signal, c.delta) for c in counters} == {("requests_total", 2.0), ("request_errors_total", 3.0)}


def test_stale_cursor_beyond_max_gap_is_a_new_baseline() -> None:
    assert diff((0.0, snap(1, (1, 1, 1), 0.1)), 7200.0, snap(50, (9, 9, 9), 3.0), max_gap=3600) == ((), ())
