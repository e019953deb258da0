"""The live window answers exactly what the store would for every window it covers, and says
which windows it does not cover (those are read from the database)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.live import LiveWindow
from collector.query import Reads, WindowData
from core.samples import CounterDelta, GaugePoint, HistogramDelta, ScrapeRecord
from inferwatch.stores import Stores
from storage.retention import Retention

INF = math.inf
T0 = 1_700_000_000.0
BACKENDS = ("a", "b", "c")
SIGNALS = ("ttft_seconds", "e2e_latency_seconds")
MODELS = ("", "m1", "m2")
BOUNDS = ((0.1, 0.5, 1.0, INF), (0.25, 2.0, INF))

values = st.one_of(st.floats(0, 1e6), st.sampled_from([math.nan, INF, -INF, 0.0]))
finite = st.floats(0, 1e6)


@st.composite
def records(draw: st.DrawFn, taken: set[tuple[str, float]]) -> list[ScrapeRecord]:
    """Scrape records of a few backends; one scrape per backend and time, as the collector makes."""
    out = []
    for i in range(draw(st.integers(1, 25))):
        backend = draw(st.sampled_from(BACKENDS))
        ts = T0 + draw(st.integers(0, 600)) + draw(st.sampled_from([0.0, 0.25, 0.5]))
        if (backend, ts) in taken:
            continue
        taken.add((backend, ts))
        if draw(st.booleans()) and i % 5 == 4:
            out.append(ScrapeRecord(backend, ts, False, "connection refused", 0.5))
            continue
        # one value per series and scrape (a snapshot is a mapping)
        gauges = {(draw(st.sampled_from(("queue_depth", "kv_cache_usage_ratio"))), draw(st.sampled_from(MODELS))):
                  GaugePoint("", "", draw(values)) for _ in range(draw(st.integers(0, 3)))}
        counters = {(draw(st.sampled_from(("requests_total", "request_errors_total"))), draw(st.sampled_from(MODELS))):
                    (draw(values), draw(st.sampled_from([15.0, 15.004, INF]))) for _ in range(draw(st.integers(0, 3)))}
        hists = {}
        for _ in range(draw(st.integers(0, 3))):
            bounds = draw(st.sampled_from(BOUNDS))
            hists[(draw(st.sampled_from(SIGNALS)), draw(st.sampled_from(MODELS)))] = (
                bounds, tuple(draw(finite) for _ in bounds), draw(values), draw(st.one_of(finite, st.just(math.nan))))
        out.append(ScrapeRecord(
            backend, ts, True, None, 0.05,
            tuple(GaugePoint(s, m, g.value) for (s, m), g in gauges.items()),
            tuple(CounterDelta(s, m, d, i) for (s, m), (d, i) in counters.items()),
            tuple(HistogramDelta(s, m, b, cs, sm, n, 15.0) for (s, m), (b, cs, sm, n) in hists.items())))
    return out


def chained(batches: list[list[ScrapeRecord]]) -> list[list[ScrapeRecord]]:
    """The batches with each counter's interval as the collector makes it: at most the time since
    the backend's previous successful scrape (less after a reset)."""
    times: dict[str, list[float]] = {}
    for r in sorted((r for b in batches for r in b if r.up), key=lambda r: r.ts):
        times.setdefault(r.backend, []).append(r.ts)

    def fix(r: ScrapeRecord) -> ScrapeRecord:
        ts = times.get(r.backend, [])
        k = ts.index(r.ts) if r.up else 0
        if k == 0:
            return r
        gap = r.ts - ts[k - 1]
        return replace(r, counters=tuple(replace(c, interval=min(c.interval, gap)) for c in r.counters))

    return [[fix(r) for r in b] for b in batches]


def _same(a: WindowData, b: WindowData, gauges: bool = True) -> None:
    """The same figures: gauge points exactly; counter totals and merged histograms to the last
    few bits (the database adds them in its own order, the live window keeps running sums)."""
    assert {bk: a.models(bk) for bk in BACKENDS} == {bk: b.models(bk) for bk in BACKENDS}
    for backend in BACKENDS:
        for signal in SIGNALS:
            for model in (None, *MODELS):
                m1, m2 = a.merged(backend, signal, model), b.merged(backend, signal, model)
                assert (m1 is None) == (m2 is None), (backend, signal, model)
                if m1 is not None and m2 is not None:
                    assert m1.bounds == m2.bounds
                    assert m1.counts == pytest.approx(m2.counts, rel=1e-9, abs=1e-6, nan_ok=True)
                    assert (m1.sum, m1.count) == pytest.approx((m2.sum, m2.count), rel=1e-9, abs=1e-6, nan_ok=True)
    if not gauges:  # the store reads every backend's newest gauges; a summary reads its own
        a, b = replace(a, gauges={}), replace(b, gauges={})
    assert a.gauges.keys() == b.gauges.keys()
    for backend, series in a.gauges.items():
        assert series.keys() == b.gauges[backend].keys()
        for key, (ts, v) in series.items():
            ts2, v2 = b.gauges[backend][key]
            assert ts == ts2 and (v == v2 or (math.isnan(v) and math.isnan(v2))), (backend, key)
    assert a.counters.keys() == b.counters.keys()
    for backend, totals in a.counters.items():
        assert totals.keys() == b.counters[backend].keys()
        for key, (d, i) in totals.items():
            assert (d, i) == pytest.approx(b.counters[backend][key], rel=1e-9, abs=1e-6, nan_ok=True), (backend, key)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.shared(st.builds(set), key="taken").flatmap(
    lambda taken: st.lists(records(taken), min_size=1, max_size=3)), edges=st.lists(st.integers(-20, 620), min_size=2, max_size=2),
       only=st.sampled_from([None, ["a"], ["b", "c"]]))
def test_every_covered_window_equals_the_store(store: Stores, batches: list[list[ScrapeRecord]], edges: list[int],
                                               only: list[str] | None) -> None:

    with store.db.engine.begin() as conn:  # a fresh database per example
        for table in ("gauges", "counter_deltas", "histogram_deltas", "scrape_status", "backend_status", "cursors"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    live = LiveWindow(horizon=10_000.0, started=T0 - 60)
    batches = chained(batches)
    for batch in batches:  # committed batches, in the order the writer commits them
        store.metrics.write(batch)
        live.add(batch)
    since, until = T0 + min(edges), T0 + max(edges) + 0.5
    store_reads = Reads(store.metrics, store.observations)
    live_reads = Reads(store.metrics, store.observations, live)
    assert live.covers(since)
    from_store = WindowData.fetch(store_reads, until, until - since, only)
    from_live = WindowData.fetch(live_reads, until, until - since, only)
    if only is not None:  # the store reads every backend's newest gauges; a summary reads its own
        from_store = WindowData(from_store.since, from_store.until, from_store.status,
                                {b: g for b, g in from_store.gauges.items() if b in only},
                                from_store.counters, from_store.hists, from_store.probes)
    _same(from_live, from_store)
    # the span the running sums keep, ending at the newest scrape: read from them, not added up
    newest = max((r.ts for batch in batches for r in batch), default=T0)
    for since, until in ((newest - 300.0, newest), (newest - 290.0, newest - 10.0), (newest - 315.0, newest + 5)):
        _same(WindowData.fetch(live_reads, until, until - since, only),
              WindowData.fetch(store_reads, until, until - since, only), gauges=False)


def test_windows_before_the_start_or_beyond_the_horizon_are_not_covered() -> None:
    live = LiveWindow(horizon=300.0, started=T0)
    assert live.covers(T0) and not live.covers(T0 - 1)
    live.add([ScrapeRecord("a", T0 + ts, True, None, 0.01, (GaugePoint("queue_depth", "", ts),)) for ts in (10, 400, 700)])
    assert live.covered_from == T0 + 400  # the newest (700) minus the horizon
    assert not live.covers(T0 + 399) and live.covers(T0 + 400)
    assert live.summary_rows(T0 + 400, T0 + 1000).gauges == {"a": {("queue_depth", ""): (T0 + 700, 700.0)}}


def test_a_retried_batch_lands_in_time_order() -> None:
    live = LiveWindow(horizon=300.0, started=T0)
    h = lambda ts: HistogramDelta("ttft_seconds", "", (1.0, INF), (1.0, 1.0), 0.5, 1.0, 15.0)  # noqa: E731
    live.add([ScrapeRecord("a", T0 + 30, True, None, 0.01, histograms=(h(30),))])
    live.add([ScrapeRecord("a", T0 + 15, True, None, 0.01, histograms=(h(15),))])  # committed late
    rows = live.summary_rows(T0, T0 + 60)
    assert rows.merged["a"][("ttft_seconds", "")].counts == (2.0, 2.0)
    assert rows.ranges["a"] == (1, 2, 1)  # a new generation; first the late entry (seq 2), last seq 1
    assert live.summary_rows(T0 + 20, T0 + 60).merged["a"][("ttft_seconds", "")].counts == (1.0, 1.0)


def test_a_restart_warms_the_window_from_the_store(store: Stores) -> None:
    """What the store holds of the horizon is loaded at start: a window over it reads the same."""
    h = HistogramDelta("ttft_seconds", "m1", (0.5, INF), (3.0, 4.0), 1.25, 4.0, 15.0)
    batch = [ScrapeRecord(b, T0 + 15 * k, True, None, 0.01, (GaugePoint("queue_depth", "m1", float(k)),),
                          (CounterDelta("requests_total", "m1", 4.0, 15.0),), (h,))
             for k in range(1, 25) for b in ("a", "b")]
    batch.append(ScrapeRecord("c", T0 + 100, False, "connection refused", 2.0))
    store.metrics.write(batch)
    live = LiveWindow(horizon=300.0, started=T0 + 400)
    assert live.warm(store.metrics, now=T0 + 400)
    assert live.covers(T0 + 100) and not live.covers(T0 + 99)
    until = T0 + 400
    _same(WindowData.fetch(Reads(store.metrics, store.observations, live), until, 300.0),
          WindowData.fetch(Reads(store.metrics, store.observations), until, 300.0))


def test_no_warm_start_over_rolled_up_data(store: Stores) -> None:
    store.metrics.write([ScrapeRecord("a", T0 + 10, True, None, 0.01, (GaugePoint("queue_depth", "", 1.0),))])
    store.metrics.retention = Retention(raw_seconds=0.0, rollup_step=60.0)
    store.metrics.maintain(T0 + 120)  # the raw row is rolled up
    live = LiveWindow(horizon=300.0, started=T0 + 200)
    assert not live.warm(store.metrics, now=T0 + 200)
    assert not live.covers(T0 + 199) and live.covers(T0 + 200)


def test_summaries_from_memory_match_the_store_and_survive_late_batches(store: Stores) -> None:
    """A backend's latencies are kept per set of entries (``LiveWindow.memo``); a batch committed
    late changes that set, so a window read after it never gets the latencies of before."""
    from collector.query import BackendWindow

    h = lambda n: HistogramDelta("ttft_seconds", "m1", (0.5, 1.0, INF), (n, n + 1.0, n + 2.0), n, n + 2.0, 15.0)  # noqa: E731
    live = LiveWindow(horizon=600.0, started=T0)
    reads, plain = Reads(store.metrics, store.observations, live), Reads(store.metrics, store.observations)

    def commit(*recs: ScrapeRecord) -> None:
        store.metrics.write(list(recs))
        live.add(list(recs))

    for k in (1, 2, 4):
        commit(ScrapeRecord("a", T0 + 15 * k, True, None, 0.01, histograms=(h(float(k)),)))
    until = T0 + 100
    first = BackendWindow(WindowData.fetch(reads, until, 90), "a").latency("ttft_seconds")
    assert first == BackendWindow(WindowData.fetch(plain, until, 90), "a").latency("ttft_seconds")
    assert live.memo  # kept for the next reader
    commit(ScrapeRecord("a", T0 + 45, True, None, 0.01, histograms=(h(30.0),)))  # a retried batch
    after = BackendWindow(WindowData.fetch(reads, until, 90), "a").latency("ttft_seconds")
    assert after != first
    assert after == BackendWindow(WindowData.fetch(plain, until, 90), "a").latency("ttft_seconds")


@pytest.mark.parametrize("warm", [False, True], ids=["as written", "warmed at start"])
def test_the_fleet_chart_from_memory_equals_the_store(store: Stores, warm: bool) -> None:
    """The fleet's per-step TTFT sums kept in memory give the chart the store would, on the same
    fixed grid; after a restart they are loaded back for the whole hour."""
    from collector.live import FleetSteps
    from dashboards import data as d

    step, now = 15.0, T0 + 3000.0
    def ttft(k: int, i: int, model: str) -> HistogramDelta:
        bounds = BOUNDS[(k + i) % 2]  # the layouts differ between backends and over time
        counts = tuple(float((k * (i + 1)) % 7 + j) for j in range(len(bounds)))
        return HistogramDelta("ttft_seconds", model, bounds, counts, 0.5 * k, counts[-1], 15.0)

    batches = [[ScrapeRecord(b, T0 + 15.0 * k + 0.3 + i, True, None, 0.01,
                             histograms=(ttft(k, i, "m1"), ttft(k, i, "m2"))) for i, b in enumerate(BACKENDS)]
               for k in range(1, 190)]
    fleet = FleetSteps(step, 3600.0, ("ttft_seconds",), started=T0)
    live = LiveWindow(300.0, started=T0, fleet=fleet)
    for batch in batches:
        store.metrics.write(batch)
        if not warm:
            live.add(batch)
    if warm:
        live = LiveWindow(300.0, started=now, fleet=FleetSteps(step, 3600.0, ("ttft_seconds",), started=now))
        assert live.warm(store.metrics, now)
    from_memory = d.fleet_quantiles(Reads(store.metrics, store.observations, live), now, 1800.0, step)
    from_store = d.fleet_quantiles(Reads(store.metrics, store.observations), now, 1800.0, step)
    assert live.fleet_steps("ttft_seconds", step, int(now // step) - 119, int(now // step) + 1) is not None
    assert from_memory == from_store
    assert sum(v is not None for v in from_store[0.5]) > 100  # the chart has data to compare
