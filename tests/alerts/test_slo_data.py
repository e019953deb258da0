"""SLO status from stored data: latency SLIs read at the threshold from bucket deltas (exact on a
bucket bound, interpolated and bounded inside a bucket), availability from request counters,
burn rates per window, and the error-budget burn-down over the SLO window (hand-computed
scenarios: the budget stays whole until errors start, then falls to the computed values)."""

from __future__ import annotations

import math

import pytest

from alerts.slo import SLO, error_budget
from alerts.slo_data import (
    BURN_DOWN_POINTS,
    burn_down,
    burn_down_ends,
    cumulative_events,
    events,
    slo_view,
)
from core.samples import CounterDelta, HistogramDelta, ScrapeRecord
from inferwatch.config import parse
from inferwatch.stores import Stores

INF = math.inf
NOW = 1_700_000_000.0


def _write(store: Stores, ts: float, counts: tuple[float, ...], requests: float, errors: float) -> None:
    store.metrics.write([ScrapeRecord(
        "a", ts, True, None, 0.01,
        counters=(CounterDelta("requests_total", "m", requests, 60.0), CounterDelta("request_errors_total", "m", errors, 60.0)),
        histograms=(HistogramDelta("ttft_seconds", "m", (0.5, 1.0, 2.5, INF), counts, 10.0, counts[-1], 60.0),),
    )])


@pytest.fixture
def cfg(store: Stores):  # type: ignore[no-untyped-def]
    return parse({"backends": [{"name": "a", "engine": "vllm", "url": "http://127.0.0.1:1"}]})


def test_latency_sli_exact_on_a_bucket_bound(store: Stores, cfg) -> None:  # type: ignore[no-untyped-def]
    _write(store, NOW - 120, (60, 90, 99, 100), 100, 1)
    _write(store, NOW - 60, (50, 80, 95, 100), 100, 3)
    e = events(SLO(name="t", objective=0.9, good="ttft_seconds < 1"), store.metrics, cfg.backends, NOW, 3600)
    assert (e.good, e.total, e.estimated) == (170.0, 200.0, False)
    assert e.bad_ratio == pytest.approx(0.15)


def test_latency_sli_inside_a_bucket_is_estimated_with_bounds(store: Stores, cfg) -> None:  # type: ignore[no-untyped-def]
    _write(store, NOW - 60, (60, 90, 99, 100), 100, 0)
    e = events(SLO(name="t", objective=0.9, good="ttft_seconds < 750ms"), store.metrics, cfg.backends, NOW, 3600)
    assert e.estimated is True
    assert (e.good, e.good_lower, e.good_upper) == (75.0, 60.0, 90.0)
    view = slo_view(SLO(name="t", objective=0.9, good="ttft_seconds < 750ms"), store.metrics, cfg, NOW)
    assert view["estimated"] is True and view["sli"] == pytest.approx(0.75)
    assert (view["sli_lower"], view["sli_upper"]) == (0.6, 0.9)


def test_availability_budget_and_burn_rates(store: Stores, cfg) -> None:  # type: ignore[no-untyped-def]
    # 2 % errors in the last minute against a 99 % objective: burn rate 2 in every window holding it
    _write(store, NOW - 60, (1, 1, 1, 1), 1000, 20)
    view = slo_view(SLO(name="avail", objective=0.99, good="availability"), store.metrics, cfg, NOW)
    assert view["events"] == {"good": 980.0, "total": 1000.0}
    assert view["error_budget"]["consumed"] == pytest.approx(2.0)
    assert view["error_budget"]["remaining"] == pytest.approx(-1.0)
    assert view["burn_rates"]["5m"] == pytest.approx(2.0) and view["burn_rates"]["1h"] == pytest.approx(2.0)
    burning = {a["kind"] for a in view["alerts"] if a["burning"]}
    assert burning == {"ticket_slow"}  # 1x over 3d and 6h; below 3x, 6x and 14.4x


def test_no_events_no_budget(store: Stores, cfg) -> None:  # type: ignore[no-untyped-def]
    view = slo_view(SLO(name="avail", objective=0.99, good="availability"), store.metrics, cfg, NOW)
    assert view["sli"] is None and view["error_budget"] is None
    assert all(v is None for v in view["burn_rates"].values())


async def test_slos_api_and_config_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import httpx

    from inferwatch.config import ConfigError
    from web.app import create_app

    cfg = parse({"storage": f"sqlite:///{tmp_path}/s.db",
                 "backends": [{"name": "a", "engine": "vllm", "url": "http://127.0.0.1:1"}],
                 "slos": [{"name": "avail", "objective": "99%", "good": "availability"}]})
    store = Stores.open(cfg.storage)
    store.migrate()
    _write(store, NOW - 60, (1, 1, 1, 1), 1000, 20)
    app = create_app(cfg, store.reads, store.alerts, store.silences, clock=lambda: NOW)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
        [view] = (await api.get("/api/v1/slos")).json()
    store.close()
    assert view["name"] == "avail" and view["sli"] == pytest.approx(0.98)
    # the burn-down travels with the view: [t, remaining] pairs over the SLO window, the last one now
    assert len(view["burn_down"]) == BURN_DOWN_POINTS and view["burn_down_step"] == 30 * 86400 / BURN_DOWN_POINTS
    assert view["burn_down"][-1] == [NOW, view["error_budget"]["remaining"]]
    assert view["burn_down"][-1][1] == pytest.approx(-1.0)
    with pytest.raises(ConfigError) as info:
        parse({"slos": [{"name": "x", "objective": 0.99, "good": "ttft < 1"}]})
    assert info.value.problems[0].startswith("slos[0].good: ")


# --- burn-down -------------------------------------------------------------------------------------
HOUR = 3600.0
SINCE = NOW - HOUR


def _check_against_events(slo: SLO, store: Stores, cfg, series) -> None:  # type: ignore[no-untyped-def]
    """Each point is the budget of ``events`` over (window start, t]: read separately per step."""
    for t, remaining in series:
        e = events(slo, store.metrics, cfg.backends, t, t - SINCE)
        b = error_budget(e.good, e.total, slo.objective)
        if b is None:
            assert remaining is None, t
        else:
            assert remaining == pytest.approx(b.remaining, abs=1e-12), t


def test_burn_down_ends_cover_the_window() -> None:
    ends = burn_down_ends(NOW, HOUR, 15.0)
    assert len(ends) == BURN_DOWN_POINTS and ends[0] == SINCE + 30 and ends[-1] == NOW
    assert all(b - a == pytest.approx(30.0) for a, b in zip(ends, ends[1:], strict=False))
    assert burn_down_ends(NOW, 300.0, 15.0) == [NOW - 300 + 15 * (i + 1) for i in range(20)]  # no step < scrape
    assert burn_down_ends(NOW, 30 * 86400.0, 15.0)[:2] == [NOW - 30 * 86400 + 21600, NOW - 30 * 86400 + 43200]
    assert burn_down_ends(NOW, 10.0, 15.0) == [NOW]  # a window shorter than a scrape: one step


def test_availability_burn_down_whole_until_the_errors_then_falls(store: Stores, cfg) -> None:  # type: ignore[no-untyped-def]
    # 99 % over 1h; one scrape a minute (k = 1..60 at SINCE + 60k), 100 requests each; none fail in
    # the first half-hour, 1 of 100 in every scrape of the second. A scrape at exactly the window's
    # start (not in it) with 100 errors must not count.
    _write(store, SINCE, (1, 1, 1, 1), 100, 100)
    for k in range(1, 61):
        _write(store, SINCE + 60 * k, (1, 1, 1, 1), 100, 0 if k <= 30 else 1)
    slo = SLO(name="avail", objective="99%", window="1h", good="availability")
    view = slo_view(slo, store.metrics, cfg, NOW)
    series = [(t, r) for t, r in view["burn_down"]]
    assert len(series) == 120 and view["burn_down_step"] == 30.0  # 15 s scrapes: 120 steps of 30 s
    for j, (t, remaining) in enumerate(series):
        assert t == SINCE + 30 * (j + 1)
        m = (j + 1) // 2  # scrapes so far (one every other step end)
        if m == 0:
            assert remaining is None  # no event yet: nothing to judge
        elif m <= 30:
            assert remaining == 1.0, (j, remaining)  # exactly whole before the first error
        else:
            # bad = m - 30, allowed = 1 % of 100 m requests = m
            assert remaining == pytest.approx(1 - (m - 30) / m, rel=1e-9), (j, remaining)
    assert series[61][1] == pytest.approx(1 - 1 / 31) and series[89][1] == pytest.approx(1 - 15 / 45)
    # the last point is the whole window's budget: half of it spent (30 bad of 60 allowed)
    assert series[-1][1] == view["error_budget"]["remaining"] == pytest.approx(0.5)
    assert view["events"] == {"good": 5970.0, "total": 6000.0}
    whole = events(slo, store.metrics, cfg.backends, NOW, HOUR)
    assert (whole.good, whole.total) == (5970.0, 6000.0)
    assert burn_down(slo, store.metrics, cfg, NOW) == series
    _check_against_events(slo, store, cfg, series[::7] + series[-3:])


def test_latency_burn_down_exact_and_interpolated(store: Stores, cfg) -> None:  # type: ignore[no-untyped-def]
    # 80 % of TTFTs <= 1s over 1h. First half-hour: 10 of 100 slower than 1s per scrape (half the
    # allowed 20 %); second half: 30 of 100.
    for k in range(1, 61):
        _write(store, SINCE + 60 * k, (60, 90, 99, 100) if k <= 30 else (50, 70, 95, 100), 100, 0)
    slo = SLO(name="ttft", objective=0.8, window="1h", good="ttft_seconds < 1")
    view = slo_view(slo, store.metrics, cfg, NOW)
    series = view["burn_down"]
    for j, (_, remaining) in enumerate(series):
        m = (j + 1) // 2
        if m == 0:
            assert remaining is None
        elif m <= 30:
            assert remaining == pytest.approx(0.5), j  # bad 10 m of allowed 20 m
        else:
            assert remaining == pytest.approx(1 - (10 * 30 + 30 * (m - 30)) / (20 * m)), j
    assert series[61][1] == pytest.approx(1 - 330 / 620)
    assert series[-1][1] == view["error_budget"]["remaining"] == pytest.approx(0.0, abs=1e-9)  # 1200 of 1200
    assert view["events"] == {"good": 4800.0, "total": 6000.0} and view["estimated"] is False
    _check_against_events(slo, store, cfg, series[::9] + series[-2:])

    # inside a bucket: interpolated per scrape (75 good of 100, then 60), the same read step by step
    est = SLO(name="ttft750", objective=0.8, window="1h", good="ttft_seconds < 750ms")
    v = slo_view(est, store.metrics, cfg, NOW)
    assert v["estimated"] is True and v["events"] == {"good": 4050.0, "total": 6000.0}
    assert v["burn_down"][59][1] == pytest.approx(1 - 25 / 20)  # 25 % bad of the 20 % allowed
    assert v["burn_down"][-1][1] == v["error_budget"]["remaining"] == pytest.approx(1 - 1950 / 1200)
    _check_against_events(est, store, cfg, v["burn_down"][::11] + v["burn_down"][-1:])


def test_up_burn_down_and_no_backend_selected(store: Stores, cfg) -> None:  # type: ignore[no-untyped-def]
    # 90 % of scrapes succeed over 10m; scrapes every 30 s, the last 4 fail
    for k in range(1, 21):
        store.metrics.write([ScrapeRecord("a", NOW - 600 + 30 * k, k <= 16, None if k <= 16 else "refused", 0.01)])
    slo = SLO(name="scrapes", objective=0.9, window="10m", good="up")
    view = slo_view(slo, store.metrics, cfg, NOW)
    series = view["burn_down"]
    assert len(series) == 40 and view["burn_down_step"] == 15.0  # 10m / 15 s scrapes
    assert [r for _, r in series[:32]] == [None] + [1.0] * 31  # 16 good scrapes so far
    assert series[33][1] == pytest.approx(1 - 1 / 1.7)  # 1 bad of 17, 1.7 allowed
    assert series[-1][1] == view["error_budget"]["remaining"] == pytest.approx(1 - 4 / 2)
    # a selector that matches no backend: no events anywhere
    none = SLO(name="n", objective=0.9, window="10m", good="up", selector={"backend": ["zzz"]})
    assert all(r is None for _, r in slo_view(none, store.metrics, cfg, NOW)["burn_down"])
    assert cumulative_events(none, store.metrics, cfg.backends, NOW, 600.0, [NOW])[0].total == 0.0
