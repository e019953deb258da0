"""Revision 0005 (series ids, bucket counts as bytes) converts a store written by the previous
layout without losing or changing a number, on SQLite and PostgreSQL, and converts back."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from collector.store import HistogramRow, MetricsStore
from storage.codec import pack_counts, unpack_counts
from storage.database import MIGRATIONS, Database

INF = math.inf


def _alembic(db: Database, target: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, target)


def _old_rows(db: Database) -> None:
    """What the 0004 layout held: texts in every row, JSON counts, raw and rolled-up rows."""
    with db.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO bucket_layouts (id, bounds) VALUES (1, '[0.1,0.5,\"+Inf\"]')"))
        for suffix, step in (("", ""), ("_rollup", ", 60.0")):
            extra = ", step" if suffix else ""
            conn.execute(sa.text(
                f"INSERT INTO gauges{suffix} (ts, backend, model, signal, value{extra}) VALUES "
                f"(15.0, 'a', 'm1', 'queue_depth', 3.0{step}), (15.0, 'b', '', 'queue_depth', NULL{step}),"
                f"(30.0, 'a', 'm1', 'queue_depth', 4.5{step})"))
            conn.execute(sa.text(
                f"INSERT INTO counter_deltas{suffix} (ts, backend, model, signal, delta, interval_seconds{extra}) "
                f"VALUES (15.0, 'a', 'm1', 'requests_total', 7.0, 15.0{step}),"
                f"(30.0, 'a', 'm2', 'requests_total', 0.25, 14.5{step})"))
            conn.execute(sa.text(
                f"INSERT INTO histogram_deltas{suffix} (ts, backend, model, signal, layout_id, counts, sum, count, "
                f"interval_seconds{extra}) VALUES "
                f"(15.0, 'a', 'm1', 'ttft_seconds', 1, '[0,4,9]', 2.5, 9.0, 15.0{step}),"
                f"(30.0, 'b', '', 'ttft_seconds', 1, '[0.5,1.5,\"NaN\"]', NULL, 2.0, 15.0{step})"))


@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_upgrade_keeps_every_number_and_downgrade_restores_the_text(store_url: str) -> None:
    db = Database(store_url)
    try:
        _alembic(db, "0004")
        _old_rows(db)
        db.migrate()
        store = MetricsStore(db)
        # each raw row and its rolled-up twin: the reads sum or list both
        assert store.counter_totals(0.0, 30.0) == {("a", "requests_total", "m1"): (14.0, 30.0),
                                                   ("a", "requests_total", "m2"): (0.5, 29.0)}
        series = store.gauge_series("a", "queue_depth", 0.0, 30.0)
        assert series == [(15.0, "m1", 3.0), (15.0, "m1", 3.0), (30.0, "m1", 4.5), (30.0, "m1", 4.5)]
        latest = store.latest_gauges(0.0)
        assert latest["a"] == {("queue_depth", "m1"): (30.0, 4.5)} and math.isnan(latest["b"][("queue_depth", "")][1])
        rows = store.histogram_deltas(0.0, 30.0)
        bounds = (0.1, 0.5, INF)
        assert rows[:2] == [HistogramRow("a", "ttft_seconds", "m1", 15.0, bounds, (0.0, 4.0, 9.0), 2.5, 9.0)] * 2
        odd = rows[2]
        assert (odd.backend, odd.counts[:2], odd.count) == ("b", (0.5, 1.5), 2.0)
        assert math.isnan(odd.counts[2]) and math.isnan(odd.sum)
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM series")).scalar_one() == 6
            blobs = conn.execute(sa.text("SELECT counts FROM histogram_deltas ORDER BY ts")).scalars().all()
        assert bytes(blobs[0]) == pack_counts([0, 4, 9])
        # the store goes on writing into the converted tables with the series ids it finds
        from core.samples import GaugePoint, ScrapeRecord

        store.write([ScrapeRecord("a", 45.0, True, None, 0.1, gauges=(GaugePoint("queue_depth", "m1", 6.0),))])
        assert store.latest_gauges(30.0) == {"a": {("queue_depth", "m1"): (45.0, 6.0)}}

        _alembic(db, "0004", down=True)
        with db.engine.connect() as conn:
            assert conn.execute(sa.text(
                "SELECT counts FROM histogram_deltas WHERE backend = 'a' ORDER BY ts")).scalars().all() == ["[0,4,9]"]
            assert conn.execute(sa.text(
                "SELECT sum(delta) FROM counter_deltas_rollup WHERE model = 'm2'")).scalar_one() == 0.25
            assert not sa.inspect(conn).has_table("series")
    finally:
        db.close()


@pytest.mark.parametrize("counts", [
    [], [0, 0, 0], [30] * 22, [0, 0, 20, 30, 30], [0, 732, 3436, 3648, 3648], [0, 70000, 70000],
    [2**40, 2**41], [2**64 - 1], [2**64], [5, 3], [-1, 0], [0.5, 1.5], [1, INF], [math.nan],
])
def test_bucket_counts_bytes_round_trip(counts: list[float]) -> None:
    back = unpack_counts(pack_counts(counts))
    assert len(back) == len(counts)
    assert all(a == float(b) or (math.isnan(a) and math.isnan(b)) for a, b in zip(back, counts, strict=True))


def test_bucket_counts_bytes_are_small_for_cumulative_counts() -> None:
    # the vLLM TTFT delta of a 4-model bench scrape: 62 bytes of JSON text before
    ttft = [0] * 8 + [20] + [30] * 14
    assert len(pack_counts(ttft)) == 7
    assert len(pack_counts([0, 732, 3436, 3648] + [3648] * 16)) == 11  # two-byte increments
