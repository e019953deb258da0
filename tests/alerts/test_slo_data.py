"""SLO status from stored data: latency SLIs read at the threshold from bucket deltas (exact on a
bucket bound, interpolated and bounded inside a bucket), availability from request counters,
burn rates per window."""

from __future__ import annotations

import math

import pytest

from alerts.slo import SLO
from alerts.slo_data import events, slo_view
from collector.config import parse
from collector.samples import CounterDelta, HistogramDelta, ScrapeRecord
from collector.store import Store

INF = math.inf
NOW = 1_700_000_000.0


def _write(store: Store, ts: float, counts: tuple[float, ...], requests: float, errors: float) -> None:
    store.write([ScrapeRecord(
        "a", ts, True, None, 0.01,
        counters=(CounterDelta("requests_total", "m", requests, 60.0), CounterDelta("request_errors_total", "m", errors, 60.0)),
        histograms=(HistogramDelta("ttft_seconds", "m", (0.5, 1.0, 2.5, INF), counts, 10.0, counts[-1], 60.0),),
    )])


@pytest.fixture
def cfg(store: Store):  # type: ignore[no-untyped-def]
    return parse({"backends": [{"name": "a", "engine": "vllm", "url": "http://127.0.0.1:1"}]})


def test_latency_sli_exact_on_a_bucket_bound(store: Store, cfg) -> None:  # type: ignore[no-untyped-def]
    _write(store, NOW - 120, (60, 90, 99, 100), 100, 1)
    _write(store, NOW - 60, (50, 80, 95, 100), 100, 3)
    e = events(SLO(name="t", objective=0.9, good="ttft_seconds < 1"), store, cfg.backends, NOW, 3600)
    assert (e.good, e.total, e.estimated) == (170.0, 200.0, False)
    assert e.bad_ratio == pytest.approx(0.15)


def test_latency_sli_inside_a_bucket_is_estimated_with_bounds(store: Store, cfg) -> None:  # type: ignore[no-untyped-def]
    _write(store, NOW - 60, (60, 90, 99, 100), 100, 0)
    e = events(SLO(name="t", objective=0.9, good="ttft_seconds < 750ms"), store, cfg.backends, NOW, 3600)
    assert e.estimated is True
    assert (e.good, e.good_lower, e.good_upper) == (75.0, 60.0, 90.0)
    view = slo_view(SLO(name="t", objective=0.9, good="ttft_seconds < 750ms"), store, cfg, NOW)
    assert view["estimated"] is True and view["sli"] == pytest.approx(0.75)
    assert (view["sli_lower"], view["sli_upper"]) == (0.6, 0.9)


def test_availability_budget_and_burn_rates(store: Store, cfg) -> None:  # type: ignore[no-untyped-def]
    # 2 % errors in the last minute against a 99 % objective: burn rate 2 in every window holding it
    _write(store, NOW - 60, (1, 1, 1, 1), 1000, 20)
    view = slo_view(SLO(name="avail", objective=0.99, good="availability"), store, cfg, NOW)
    assert view["events"] == {"good": 980.0, "total": 1000.0}
    assert view["error_budget"]["consumed"] == pytest.approx(2.0)
    assert view["error_budget"]["remaining"] == pytest.approx(-1.0)
    assert view["burn_rates"]["5m"] == pytest.approx(2.0) and view["burn_rates"]["1h"] == pytest.approx(2.0)
    burning = {a["kind"] for a in view["alerts"] if a["burning"]}
    assert burning == {"ticket_slow"}  # 1x over 3d and 6h; below 3x, 6x and 14.4x


def test_no_events_no_budget(store: Store, cfg) -> None:  # type: ignore[no-untyped-def]
    view = slo_view(SLO(name="avail", objective=0.99, good="availability"), store, cfg, NOW)
    assert view["sli"] is None and view["error_budget"] is None
    assert all(v is None for v in view["burn_rates"].values())


async def test_slos_api_and_config_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import httpx

    from collector.config import ConfigError
    from web.app import create_app

    cfg = parse({"storage": f"sqlite:///{tmp_path}/s.db",
                 "backends": [{"name": "a", "engine": "vllm", "url": "http://127.0.0.1:1"}],
                 "slos": [{"name": "avail", "objective": "99%", "good": "availability"}]})
    store = Store(cfg.storage)
    store.migrate()
    _write(store, NOW - 60, (1, 1, 1, 1), 1000, 20)
    app = create_app(cfg, store, clock=lambda: NOW)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
        [view] = (await api.get("/api/v1/slos")).json()
    store.close()
    assert view["name"] == "avail" and view["sli"] == pytest.approx(0.98)
    with pytest.raises(ConfigError) as info:
        parse({"slos": [{"name": "x", "objective": 0.99, "good": "ttft < 1"}]})
    assert info.value.problems[0].startswith("slos[0].good: ")
