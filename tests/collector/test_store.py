"""The store on SQLite and PostgreSQL: exact read-back, cursors across restarts, atomic batches,
migrations, retention and downsampling, non-finite numbers."""

from __future__ import annotations

import asyncio
import math
import threading
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from collector.store import HistogramRow, StatusRow
from core.samples import (
    CounterDelta,
    EngineSnapshot,
    GaugePoint,
    Histogram,
    HistogramDelta,
    ScrapeRecord,
)
from inferwatch.stores import Stores
from storage.database import MIGRATIONS, metadata
from storage.retention import Retention

INF = math.inf
BOUNDS = (0.1, 0.5, 1.0, INF)
T0 = 1_700_000_040.0  # a multiple of 60


def ok(backend: str, ts: float, **kw) -> ScrapeRecord:
    return ScrapeRecord(backend=backend, ts=ts, up=True, reason=None, duration=0.05, **kw)


def down(backend: str, ts: float, reason: str = "timeout") -> ScrapeRecord:
    return ScrapeRecord(backend=backend, ts=ts, up=False, reason=reason, duration=2.0)


def snapshot(n: float) -> EngineSnapshot:
    return EngineSnapshot(
        gauges={("queue_depth", ""): n, ("kv_cache_usage_ratio", "llama"): 0.25},
        counters={("requests_total", "llama"): 100.0 + n, ("prompt_tokens_total", ""): 1e12},
        histograms={
            ("ttft_seconds", "llama"): Histogram(
                bounds=BOUNDS, counts=(1.0, 2.0, 3.0, 4.0 + n), sum=1.5, count=4.0 + n
            ),
            ("e2e_latency_seconds", ""): Histogram.mean_only(12.25, 7.0),
        },
    )


def count_rows(store: Stores, table: str) -> int:
    with store.db.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


# --- write and read back ---------------------------------------------------------------------


def test_latest_gauges_per_series(store: Stores) -> None:
    store.metrics.write(
        [
            ok(
                "a",
                100.0,
                gauges=(GaugePoint("queue_depth", "", 1.0), GaugePoint("queue_depth", "m2", 7.0)),
            ),
            ok("a", 115.0, gauges=(GaugePoint("queue_depth", "", 2.0),)),
            ok("b", 110.0, gauges=(GaugePoint("requests_running", "", 5.0),)),
        ]
    )
    store.metrics.write([ok("a", 130.0, gauges=(GaugePoint("queue_depth", "", 3.5),))])
    assert store.metrics.latest_gauges(since=0.0) == {
        "a": {("queue_depth", ""): (130.0, 3.5), ("queue_depth", "m2"): (100.0, 7.0)},
        "b": {("requests_running", ""): (110.0, 5.0)},
    }
    # only points with ts > since
    assert store.metrics.latest_gauges(since=110.0) == {"a": {("queue_depth", ""): (130.0, 3.5)}}
    assert store.metrics.gauge_series("a", "queue_depth", 100.0, 130.0) == [
        (115.0, "", 2.0),
        (130.0, "", 3.5),
    ]
    assert store.metrics.gauge_series("a", "queue_depth", 99.0, 115.0) == [
        (100.0, "", 1.0),
        (100.0, "m2", 7.0),
        (115.0, "", 2.0),
    ]


def test_failed_scrape_stores_status_but_no_samples(store: Stores) -> None:
    rec = ScrapeRecord(
        backend="a",
        ts=10.0,
        up=False,
        reason="connect refused",
        duration=0.5,
        gauges=(GaugePoint("queue_depth", "", 1.0),),
        counters=(CounterDelta("requests_total", "", 5.0, 15.0),),
    )
    store.metrics.write([rec])
    assert store.metrics.latest_gauges(since=0.0) == {}
    assert store.metrics.counter_totals(0.0, 100.0) == {}
    assert store.metrics.status_series("a", 0.0, 100.0) == [(10.0, False, "connect refused")]


def test_counter_totals_window_boundaries(store: Stores) -> None:
    records = [
        ok(
            "a",
            t,
            counters=(
                CounterDelta("requests_total", "m", d, 15.0),
                CounterDelta("request_errors_total", "m", 1.0, 15.0),
            ),
        )
        for t, d in [(15.0, 10.0), (30.0, 20.0), (45.0, 40.0), (60.0, 80.0)]
    ]
    records.append(ok("b", 30.0, counters=(CounterDelta("requests_total", "", 3.0, 30.0),)))
    store.metrics.write(records)
    # since < ts <= until: 15 excluded, 45 included
    assert store.metrics.counter_totals(15.0, 45.0) == {
        ("a", "requests_total", "m"): (60.0, 30.0),
        ("a", "request_errors_total", "m"): (2.0, 30.0),
        ("b", "requests_total", ""): (1.5, 15.0),  # its (0, 30] is half inside (15, 45]: half of it
    }
    assert store.metrics.counter_totals(0.0, 60.0, backends=["a"]) == {
        ("a", "requests_total", "m"): (150.0, 60.0),
        ("a", "request_errors_total", "m"): (4.0, 60.0),
    }
    assert store.metrics.counter_totals(0.0, 60.0, backends=[]) == {}
    only = store.metrics.counter_totals(0.0, 60.0, backends=["a"], signals=["requests_total"])
    assert only and {s for (_, s, _) in only} == {"requests_total"}
    assert only == {k: v for k, v in store.metrics.counter_totals(0.0, 60.0, backends=["a"]).items() if k[1] == "requests_total"}
    assert store.metrics.counter_totals(60.0, 1000.0) == {}
    assert store.metrics.counter_series("a", "requests_total", 14.0, 30.0) == [
        (15.0, "m", 10.0, 15.0),
        (30.0, "m", 20.0, 15.0),
    ]


def test_counter_totals_many_backends(store: Stores) -> None:
    names = [f"b{i:04d}" for i in range(1200)]
    store.metrics.write(
        [ok(n, 15.0, counters=(CounterDelta("requests_total", "", 1.0, 15.0),)) for n in names]
    )
    totals = store.metrics.counter_totals(0.0, 15.0, backends=names[:1100])
    assert len(totals) == 1100
    assert totals[("b1099", "requests_total", "")] == (1.0, 15.0)
    assert len(store.metrics.histogram_deltas(0.0, 15.0, backends=names)) == 0


def test_histogram_deltas_with_layouts_and_inf(store: Stores) -> None:
    other = (0.005, 0.025, INF)
    store.metrics.write(
        [
            ok(
                "a",
                15.0,
                histograms=(
                    HistogramDelta(
                        "ttft_seconds", "m", BOUNDS, (1.0, 3.0, 4.0, 5.0), 2.5, 5.0, 15.0
                    ),
                    HistogramDelta("itl_seconds", "m", other, (10.0, 20.0, 20.0), 0.3, 20.0, 15.0),
                ),
            ),
            ok(
                "b",
                30.0,
                histograms=(
                    HistogramDelta(
                        "ttft_seconds", "", BOUNDS, (0.0, 0.0, 0.5, 1.0), 0.75, 1.0, 15.0
                    ),
                    HistogramDelta("e2e_latency_seconds", "", (INF,), (3.0,), 9.0, 3.0, 15.0),
                ),
            ),
        ]
    )
    rows = store.metrics.histogram_deltas(0.0, 30.0)
    assert rows == [
        HistogramRow("a", "itl_seconds", "m", 15.0, other, (10.0, 20.0, 20.0), 0.3, 20.0),
        HistogramRow("a", "ttft_seconds", "m", 15.0, BOUNDS, (1.0, 3.0, 4.0, 5.0), 2.5, 5.0),
        HistogramRow("b", "e2e_latency_seconds", "", 30.0, (INF,), (3.0,), 9.0, 3.0),
        HistogramRow("b", "ttft_seconds", "", 30.0, BOUNDS, (0.0, 0.0, 0.5, 1.0), 0.75, 1.0),
    ]
    assert [r.backend for r in store.metrics.histogram_deltas(15.0, 30.0)] == ["b", "b"]
    assert store.metrics.histogram_deltas(0.0, 30.0, backends=["a"], signals=["ttft_seconds"]) == [rows[1]]
    assert store.metrics.histogram_deltas(0.0, 30.0, signals=["e2e_latency_seconds"]) == [rows[2]]
    assert count_rows(store, "bucket_layouts") == 3

    # a fresh store (empty layout cache) reads the same rows and reuses the stored layouts
    again = Stores.open(str(store.db.engine.url.render_as_string(hide_password=False)))
    try:
        assert again.metrics.histogram_deltas(0.0, 30.0) == rows
        again.metrics.write(
            [
                ok(
                    "c",
                    45.0,
                    histograms=(
                        HistogramDelta(
                            "ttft_seconds", "", BOUNDS, (1.0, 1.0, 1.0, 1.0), 0.05, 1.0, 15.0
                        ),
                    ),
                )
            ]
        )
        assert count_rows(again, "bucket_layouts") == 3
        assert store.metrics.histogram_deltas(30.0, 45.0)[0].bounds == BOUNDS
    finally:
        again.close()


def test_status_and_last_success(store: Stores) -> None:
    store.metrics.write([ok("a", 10.0), down("a", 25.0, "timeout"), down("b", 12.0, "refused")])
    assert store.metrics.latest_status() == {
        "a": StatusRow(ts=25.0, up=False, reason="timeout", duration=2.0, last_success_ts=10.0),
        "b": StatusRow(ts=12.0, up=False, reason="refused", duration=2.0, last_success_ts=None),
    }
    store.metrics.write([down("a", 40.0, "HTTP 503"), ok("b", 27.0)])
    status = store.metrics.latest_status()
    assert status["a"] == StatusRow(40.0, False, "HTTP 503", 2.0, 10.0)
    assert status["b"] == StatusRow(27.0, True, None, 0.05, 27.0)
    # an out-of-order (older) record does not overwrite the latest status
    store.metrics.write([ok("a", 30.0)])
    assert store.metrics.latest_status()["a"].ts == 40.0
    assert store.metrics.status_series("a", 10.0, 40.0) == [
        (25.0, False, "timeout"),
        (30.0, True, None),
        (40.0, False, "HTTP 503"),
    ]


# --- cursors -----------------------------------------------------------------------------------


def test_cursor_round_trip_across_restart(store_url: str) -> None:
    first = Stores.open(store_url)
    first.migrate()
    first.metrics.write([ok("a", 15.0, cursor=snapshot(1.0)), ok("b", 15.0, cursor=EngineSnapshot())])
    first.metrics.write([ok("a", 30.0, cursor=replace(snapshot(2.0), started=1_700_000_000.25)), down("b", 30.0)])
    first.close()

    restarted = Stores.open(store_url)
    try:
        restarted.migrate()
        cursors = restarted.metrics.load_cursors()
    finally:
        restarted.close()
    # the engine's start time survives too: a restart of the engine while we were down is still seen
    assert cursors == {"a": (30.0, replace(snapshot(2.0), started=1_700_000_000.25)), "b": (15.0, EngineSnapshot())}
    hist = cursors["a"][1].histograms[("ttft_seconds", "llama")]
    assert hist.bounds[-1] == INF and cursors["a"][1].counters[("prompt_tokens_total", "")] == 1e12


def test_cursor_keeps_the_newest_of_a_batch(store: Stores) -> None:
    store.metrics.write([ok("a", 45.0, cursor=snapshot(3.0)), ok("a", 30.0, cursor=snapshot(2.0))])
    store.metrics.write([ok("a", 15.0, cursor=snapshot(1.0))])  # older: ignored
    assert store.metrics.load_cursors() == {"a": (45.0, snapshot(3.0))}


# --- atomicity ---------------------------------------------------------------------------------


def _all_counts(store: Stores) -> dict[str, int]:
    return {t: count_rows(store, t) for t in metadata.tables}


def test_batch_is_atomic_on_database_error(store: Stores) -> None:
    store.metrics.write([ok("a", 15.0, cursor=snapshot(1.0))])
    before = _all_counts(store)
    bad = ScrapeRecord(
        backend="b",
        ts=30.0,
        up=True,
        reason=None,
        duration=0.1,
        gauges=(GaugePoint(None, "", 1.0),),
    )  # type: ignore[arg-type]
    new_layout = (0.25, 2.5, INF)
    batch = [
        ok(
            "a",
            30.0,
            cursor=snapshot(2.0),
            counters=(CounterDelta("requests_total", "", 1.0, 15.0),),
            histograms=(
                HistogramDelta("ttft_seconds", "", new_layout, (1.0, 1.0, 1.0), 0.1, 1.0, 15.0),
            ),
        ),
        bad,  # NOT NULL violation while inserting gauges: after status and histogram rows
    ]
    with pytest.raises(sa.exc.IntegrityError):
        store.metrics.write(batch)
    assert _all_counts(store) == before
    assert store.metrics.load_cursors() == {"a": (15.0, snapshot(1.0))}
    assert store.metrics.latest_status()["a"].ts == 15.0
    # the rolled-back layout id was not cached: the same layout works in the next batch
    store.metrics.write(batch[:1])
    assert store.metrics.histogram_deltas(15.0, 30.0)[0].bounds == new_layout
    assert store.metrics.load_cursors()["a"] == (30.0, snapshot(2.0))


def test_batch_is_atomic_on_serialisation_error(store: Stores) -> None:
    broken = EngineSnapshot(counters={("requests_total", ""): "many"})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        store.metrics.write(
            [
                ok("a", 15.0, counters=(CounterDelta("requests_total", "", 1.0, 15.0),)),
                ok("b", 15.0, cursor=broken),
            ]
        )
    assert sum(_all_counts(store).values()) == 0


# --- migrations --------------------------------------------------------------------------------


def test_migrate_is_idempotent_and_matches_metadata(store: Stores) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store.metrics.write([ok("a", 15.0, gauges=(GaugePoint("queue_depth", "", 1.0),))])
    store.migrate()
    store.migrate()
    assert store.metrics.latest_gauges(0.0) == {"a": {("queue_depth", ""): (15.0, 1.0)}}
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    with store.db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_memory_sqlite_and_plain_postgres_urls() -> None:
    s = Stores.open("sqlite:///:memory:")
    try:
        s.migrate()
        s.metrics.write([ok("a", 15.0, counters=(CounterDelta("requests_total", "", 2.0, 15.0),))])
        assert s.metrics.counter_totals(0.0, 15.0) == {("a", "requests_total", ""): (2.0, 15.0)}
    finally:
        s.close()
    assert Stores.open("postgresql://u@h/db").db.engine.url.drivername == "postgresql+psycopg"
    with pytest.raises(ValueError):
        Stores.open("mysql://u@h/db")


# --- threads -----------------------------------------------------------------------------------


async def test_writes_from_a_worker_thread_while_reading(store: Stores) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                store.metrics.counter_totals(0.0, 1e9)
                store.metrics.latest_status()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(1, 21):
            batch = [
                ok(
                    f"b{j}",
                    15.0 * i,
                    counters=(CounterDelta("requests_total", "", 1.0, 15.0),),
                    cursor=snapshot(float(i)),
                )
                for j in range(20)
            ]
            await asyncio.to_thread(store.metrics.write, batch)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    totals = store.metrics.counter_totals(0.0, 1e9)
    assert len(totals) == 20 and all(v == (20.0, 300.0) for v in totals.values())


# --- retention and downsampling ----------------------------------------------------------------


def _fleet_records(start: float, end: float, step: float = 15.0) -> list[ScrapeRecord]:
    """Two backends scraped every ``step`` seconds in (start, end], with varying numbers."""
    out = []
    i = 0
    t = start + step
    while t <= end:
        i += 1
        for b, k in (("a", 1.0), ("b", 2.0)):
            if b == "b" and i % 7 == 0:
                out.append(down(b, t, "timeout"))
                t_ok = False
            else:
                t_ok = True
            if not t_ok:
                continue
            out.append(
                ok(
                    b,
                    t,
                    gauges=(GaugePoint("queue_depth", "", float(i % 5) * k),),
                    counters=(
                        CounterDelta("requests_total", "m", float(i % 3) + k, step),
                        CounterDelta("request_errors_total", "m", float(i % 2), step),
                    ),
                    histograms=(
                        HistogramDelta(
                            "ttft_seconds",
                            "m",
                            BOUNDS,
                            (float(i % 2), float(i % 3), float(i % 4), float(i % 4) + k),
                            0.5 * i,
                            float(i % 4) + k,
                            step,
                        ),
                        HistogramDelta("e2e_latency_seconds", "", (INF,), (k,), 2.0 * k, k, step),
                    ),
                )
            )
        t += step
    return out


def _hist_totals(rows: list[HistogramRow]) -> dict[tuple[str, str, str], tuple]:
    acc: dict[tuple[str, str, str], list] = {}
    for r in rows:
        held = acc.setdefault((r.backend, r.signal, r.model), [[0.0] * len(r.counts), 0.0, 0.0])
        held[0] = [a + b for a, b in zip(held[0], r.counts, strict=True)]
        held[1] += r.sum
        held[2] += r.count
    return {k: (tuple(v[0]), v[1], v[2]) for k, v in acc.items()}


def test_maintain_rolls_up_and_preserves_window_totals(store_url: str) -> None:
    retention = Retention(raw_seconds=3600.0, rollup_seconds=4 * 3600.0, rollup_step=60.0)
    store = Stores.open(store_url, retention)
    try:
        store.migrate()
        start, end = T0, T0 + 3 * 3600.0
        store.metrics.write(_fleet_records(start, end))
        windows = [
            (start, end),
            (start, start + 60.0),
            (start + 600.0, start + 4200.0),
            (start + 1800.0, end - 1800.0),
        ]
        before_c = [store.metrics.counter_totals(a, b) for a, b in windows]
        before_h = [_hist_totals(store.metrics.histogram_deltas(a, b)) for a, b in windows]
        raw_before = count_rows(store, "counter_deltas")

        now = end + 60.0  # raw kept for (now - 3600, now]: two hours get rolled up
        store.maintain(now)
        assert [store.metrics.counter_totals(a, b) for a, b in windows] == before_c
        assert [_hist_totals(store.metrics.histogram_deltas(a, b)) for a, b in windows] == before_h

        cut = now - 3600.0
        assert count_rows(store, "counter_deltas") < raw_before
        with store.db.engine.connect() as conn:
            oldest_raw = conn.execute(sa.text("SELECT min(ts) FROM counter_deltas")).scalar()
            rolled_ts = conn.execute(sa.text("SELECT ts FROM counter_deltas_rollup")).scalars()
            assert oldest_raw > cut
            assert all(ts % 60.0 == 0 and ts <= cut for ts in rolled_ts)
        # 4 raw points per minute became one rollup point per series
        series = store.metrics.counter_series("a", "requests_total", start, start + 600.0)
        assert [s[0] for s in series] == [start + 60.0 * k for k in range(1, 11)]
        assert all(interval == 60.0 for _, _, _, interval in series)
        # gauges are averaged per bucket
        g = store.metrics.gauge_series("a", "queue_depth", start, start + 60.0)
        assert g == [(start + 60.0, "", (1.0 + 2.0 + 3.0 + 4.0) / 4)]
        # status: a bucket is up only if every scrape in it was
        st = store.metrics.status_series("b", start, start + 120.0)
        assert st == [(start + 60.0, True, None), (start + 120.0, False, "timeout")]

        # idempotent: running again changes nothing
        rollup_rows = count_rows(store, "histogram_deltas_rollup")
        store.maintain(now)
        assert count_rows(store, "histogram_deltas_rollup") == rollup_rows
        assert [store.metrics.counter_totals(a, b) for a, b in windows] == before_c
        assert [_hist_totals(store.metrics.histogram_deltas(a, b)) for a, b in windows] == before_h

        # late raw data in an already rolled-up bucket is added, not lost or doubled
        store.metrics.write(
            [ok("a", start + 30.0, counters=(CounterDelta("requests_total", "m", 100.0, 15.0),))]
        )
        store.maintain(now)
        late = store.metrics.counter_totals(start, start + 60.0)[("a", "requests_total", "m")]
        assert late[0] == before_c[1][("a", "requests_total", "m")][0] + 100.0

        # retention: rollups older than rollup_seconds are deleted, raw ones too
        store.maintain(start + 4 * 3600.0 + 1800.0)
        assert store.metrics.counter_totals(0.0, start + 1800.0) == {}
        assert store.metrics.histogram_deltas(0.0, start + 1800.0) == []
        assert store.metrics.status_series("a", 0.0, start + 1800.0) == []
        assert store.metrics.counter_totals(start + 1800.0, end) != {}
        store.maintain(end + 10 * 86400.0)
        assert sum(_all_counts(store).values()) - count_rows(store, "bucket_layouts") == 0  # series too
        # a backend heard from again gets its series back (not ids cached from before)
        late_ts = end + 10 * 86400.0 + 15.0
        store.metrics.write([ok("a", late_ts, counters=(CounterDelta("requests_total", "m", 3.0, 15.0),))])
        assert store.metrics.counter_totals(late_ts - 15.0, late_ts) == {("a", "requests_total", "m"): (3.0, 15.0)}
    finally:
        store.close()


# --- non-finite numbers ------------------------------------------------------------------------


def test_nan_and_inf_gauges(store: Stores) -> None:
    store.metrics.write(
        [
            ok(
                "a",
                15.0,
                gauges=(
                    GaugePoint("queue_depth", "", math.nan),
                    GaugePoint("requests_running", "", INF),
                    GaugePoint("kv_cache_usage_ratio", "", -INF),
                ),
            )
        ]
    )
    latest = store.metrics.latest_gauges(0.0)["a"]
    assert latest[("queue_depth", "")][0] == 15.0 and math.isnan(latest[("queue_depth", "")][1])
    assert latest[("requests_running", "")] == (15.0, INF)
    assert latest[("kv_cache_usage_ratio", "")] == (15.0, -INF)
    (point,) = store.metrics.gauge_series("a", "queue_depth", 0.0, 15.0)
    assert math.isnan(point[2])
    # a NaN point does not poison the rollup average
    store.metrics.write([ok("a", 30.0, gauges=(GaugePoint("queue_depth", "", 4.0),))])
    store.metrics.retention = Retention(raw_seconds=0.0, rollup_step=60.0)
    store.maintain(60.0)
    assert store.metrics.gauge_series("a", "queue_depth", 0.0, 60.0) == [(60.0, "", 4.0)]


def test_non_finite_deltas_are_dropped(store: Stores) -> None:
    store.metrics.write(
        [
            ok(
                "a",
                15.0,
                counters=(
                    CounterDelta("requests_total", "", math.nan, 15.0),
                    CounterDelta("request_errors_total", "", 1.0, 15.0),
                ),
                histograms=(
                    HistogramDelta("ttft_seconds", "", BOUNDS, (0, 0, 0, 1), math.nan, 1.0, 15.0),
                    HistogramDelta("itl_seconds", "", BOUNDS, (0, 0, 0, 1), 0.0, INF, 15.0),
                ),
            )
        ]
    )
    assert store.metrics.counter_totals(0.0, 15.0) == {("a", "request_errors_total", ""): (1.0, 15.0)}
    (row,) = store.metrics.histogram_deltas(0.0, 15.0)
    assert row.signal == "ttft_seconds" and math.isnan(row.sum) and row.count == 1.0


def _reference_steps(store: Stores, backend: str, signal: str, since: float, until: float, step: float,
                     n: int) -> dict[tuple[int, str], Any]:
    """What the SQL per-step reduction must equal: the raw rows slotted in Python."""

    def slot(ts: float) -> int:
        return min(n - 1, max(0, math.ceil((ts - since) / step) - 1))

    out: dict[tuple[int, str], Any] = {}
    if signal == "queue_depth":
        for ts, m, v in store.metrics.gauge_series(backend, signal, since, until):
            out[(slot(ts), m)] = v  # rows come in time order: the last one stays
    else:
        for ts, m, d, iv in store.metrics.counter_series(backend, signal, since, until):
            d0, iv0 = out.get((slot(ts), m), (0.0, 0.0))
            out[(slot(ts), m)] = (d0 + d, iv0 + iv)
    return out


@pytest.mark.parametrize(("offset", "window", "step"), [(0.0, 900.0, 60.0), (7.5, 1000.0, 60.0), (0.0, 600.0, 15.0)])
def test_per_step_reductions_in_sql_equal_python_slotting(store: Stores, offset: float, window: float, step: float) -> None:
    """Rows exactly on step ends belong to the step they end (half-open ``(t - step, t]``), the
    same in SQLite and PostgreSQL as in Python; windows that are not a multiple of the step, rows
    of another backend and outside the window are left out; rolled-up rows count too."""
    import random

    rnd = random.Random(42)
    since = T0 + offset
    until = since + window
    n = math.ceil(window / step)
    times = sorted({since + step * k for k in range(n + 2)} | {since + rnd.uniform(0, window) for _ in range(60)}
                   | {since, since - 1.0, until + 1.0})
    records = []
    for ts in times:
        for backend in ("a", "b"):
            records.append(ok(backend, ts,
                              gauges=(GaugePoint("queue_depth", "m1", float(rnd.randint(0, 50))),
                                      GaugePoint("queue_depth", "m2", float(rnd.randint(0, 50)))),
                              counters=(CounterDelta("requests_total", "m1", float(rnd.randint(0, 9)), 3.0),
                                        CounterDelta("requests_total", "m2", rnd.random(), 5.0))))
    store.metrics.write(records)
    for rolled_up in (False, True):
        if rolled_up:  # a day later every raw row is a 1-minute rollup row stamped at its minute's end
            store.maintain(now=until + 86400.0 + 120.0)
            assert store.metrics.gauge_series("a", "queue_depth", since - 60.0, until + 60.0)[0][0] % 60.0 == 0.0
        gauges = store.metrics.gauge_steps("a", ["queue_depth"], since, until, step, n)["queue_depth"]
        assert gauges and {(i, m): v for i, m, v in gauges} == _reference_steps(
            store, "a", "queue_depth", since, until, step, n)
        counters = store.metrics.counter_steps("a", ["requests_total"], since, until, step, n)["requests_total"]
        ref = _reference_steps(store, "a", "requests_total", since, until, step, n)
        assert {(i, m) for i, m, _, _ in counters} == set(ref)
        for i, m, d, iv in counters:
            assert (d, iv) == pytest.approx(ref[(i, m)], rel=1e-12), (i, m)
        assert all(0 <= i < n for i, _, _ in gauges)
