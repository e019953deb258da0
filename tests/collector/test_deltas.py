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


def _started(s: EngineSnapshot, at: float | None) -> EngineSnapshot:
    return EngineSnapshot(s.gauges, s.counters, s.histograms, started=at)


def test_a_reset_covers_only_the_time_since_the_engine_started() -> None:
    """Killed after the scrape at 0, restarted at 30, scraped at 35: the 40 requests came in 5 s,
    not in the 35 s since the last scrape."""
    before = _started(snap(1000, (10, 20, 30), 9.0), 0.0 - 3600)
    after = _started(snap(40, (4, 8, 10), 1.0), 30.0)
    counters, hists = diff((0.0, before), 35.0, after, reset_cap=15.0)
    assert [(c.delta, c.interval) for c in counters] == [(40, 5.0)]
    assert [(h.counts, h.interval) for h in hists] == [((4, 8, 10), 5.0)]


def test_without_a_start_time_the_scrape_after_a_reset_is_a_new_baseline() -> None:
    """Restarted at an unknown moment of the gap: no delta for the reset series (no time guessed);
    the next scrape diffs against this one as usual. Series that did not reset keep theirs."""
    before = EngineSnapshot(counters={("requests_total", "m"): 1000, ("request_errors_total", "m"): 5},
                            histograms=snap(0, (10, 20, 30), 9.0).histograms)
    after = EngineSnapshot(counters={("requests_total", "m"): 40, ("request_errors_total", "m"): 7},
                           histograms=snap(0, (4, 8, 10), 1.0).histograms)
    counters, hists = diff((0.0, before), 35.0, after, reset_cap=15.0)
    assert [(c.signal, c.delta, c.interval) for c in counters] == [("request_errors_total", 2, 35.0)]
    assert hists == ()
    counters, _ = diff((35.0, after), 50.0, snap(100, (5, 9, 12), 2.0), reset_cap=15.0)
    assert [(c.delta, c.interval) for c in counters] == [(60, 15.0)]
    # without a cap (no collector to say its interval): counted from zero over the interval
    counters, _ = diff((0.0, before), 35.0, after)
    assert [(c.signal, c.delta, c.interval) for c in counters][0] == ("requests_total", 40, 35.0)


def test_a_newer_start_time_is_a_restart_even_when_counters_climbed_past_their_old_values() -> None:
    before = _started(snap(10, (1, 2, 3), 1.0), 100.0)
    after = _started(snap(50, (5, 9, 12), 4.0), 200.0)  # restarted at 200: 50 requests since, not 40
    counters, hists = diff((150.0, before), 260.0, after, reset_cap=15.0)
    assert [(c.delta, c.interval) for c in counters] == [(50, 60.0)]
    assert [(h.counts, h.sum, h.interval) for h in hists] == [((5, 9, 12), 4.0, 60.0)]


def test_a_gap_without_a_reset_is_spread_over_the_whole_gap() -> None:
    """Paused (SIGSTOP) or only our scrapes failing: the counter went on, the delta covers the gap."""
    before = _started(snap(100, (1, 2, 3), 1.0), 50.0)
    after = _started(snap(160, (2, 4, 6), 2.0), 50.0)
    counters, hists = diff((100.0, before), 160.0, after, reset_cap=15.0)
    assert [(c.delta, c.interval) for c in counters] == [(60, 60.0)]
    assert [h.interval for h in hists] == [60.0]
