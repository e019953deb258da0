"""The metrics store: what the collector writes and the query layer reads, on SQLite or
PostgreSQL (SQLAlchemy 2.x Core), over the shared ``storage.database.Database``.

Layout (created by the Alembic migrations in ``storage/migrations``, run by ``Database.migrate``):

* ``scrape_status``: one row per scrape (ts, backend, up, reason, duration).
* ``series``: one row per (backend, signal, model), written once; every data row below names
  its series by this integer id instead of repeating the three texts (the ``(series_id, ts)``
  index is a third the size of a ``(backend, signal, ts)`` one).
* ``gauges``: (ts, series_id, value) of successful scrapes.
* ``counter_deltas``: (ts, series_id, delta, interval_seconds).
* ``histogram_deltas``: bucket deltas as bytes (``storage.codec.pack_counts``: the occupied
  buckets' increments in the narrowest integer width, 7-12 bytes for a vLLM histogram where JSON
  text took 60-100) plus ``layout_id`` into ``bucket_layouts`` (the bounds, written once per
  distinct layout, cached in memory).
* ``<table>_rollup``: the same four tables downsampled by ``maintain`` (extra ``step`` column).
  Raw and rolled-up rows live in separate tables so that the hot raw tables stay small and a
  rollup pass finds its work through the ``ts`` index; every read is a ``UNION ALL`` of both.
* ``backend_status``: the latest status per backend plus ``last_success_ts`` (upserted by
  ``write``, so ``latest_status`` never scans history).
* ``cursors``: per backend, the cumulative ``EngineSnapshot`` the next deltas are taken against,
  upserted in the same transaction as the deltas it produced.

Time semantics: every read takes half-open windows ``since < ts <= until``. A rollup row covers
``((k-1)*step, k*step]`` and is stamped ``k*step`` (the end of its bucket), so any window whose
edges are multiples of ``rollup_step`` returns exactly the same totals before and after
``maintain``.

Non-finite numbers: a NaN gauge (or duration, or histogram sum) is stored as NULL and read back as
``math.nan``; ``±inf`` is stored as is (both databases support it). Counter deltas whose delta or
interval is not finite, and histogram deltas whose count is not finite, carry no usable
information and are dropped. JSON text (cursors and bucket bounds) spells ``+Inf``,
``-Inf`` and ``NaN`` as strings, as the Prometheus exposition format does.

>>> from storage.database import Database
>>> db = Database("sqlite:///:memory:"); db.migrate()
>>> store = MetricsStore(db)
>>> store.write([ScrapeRecord(backend="a", ts=15.0, up=True, reason=None, duration=0.1,
...                           gauges=(GaugePoint("queue_depth", "", 3.0),))])
>>> store.latest_gauges(since=0.0)
{'a': {('queue_depth', ''): (15.0, 3.0)}}
>>> db.close()
"""

from __future__ import annotations

import json
import math
import operator
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from core.numbers import nan_to_none
from core.samples import (
    CounterDelta,
    EngineSnapshot,
    GaugePoint,
    Histogram,
    HistogramDelta,
    ScrapeRecord,
)
from storage.codec import dumps_floats, enc, loads_floats, null_to_nan, pack_counts, unpack_counts
from storage.database import IN_CHUNK, Database, in_chunks, metadata
from storage.retention import Retention

__all__ = ["HistogramRow", "MetricsStore", "StatusRow"]

#: ``maintain`` rolls raw data up in transactions of about this many seconds of data.
_SLICE_SECONDS = 300.0


@dataclass(frozen=True)
class StatusRow:
    """The latest scrape of one backend; ``last_success_ts`` is None if it never succeeded."""

    ts: float
    up: bool
    reason: str | None
    duration: float
    last_success_ts: float | None


class HistogramRow(NamedTuple):
    """One stored histogram delta (raw, or a rollup stamped at its bucket end). A named tuple:
    dashboards build tens of thousands per page, at a third of a frozen dataclass's cost."""

    backend: str
    signal: str
    model: str
    ts: float
    bounds: tuple[float, ...]
    counts: tuple[float, ...]
    sum: float
    count: float  # type: ignore[assignment]  # the field shadows tuple.count, on purpose


# --- schema (mirrors migrations/versions; tests check that they agree) ------------------------

bucket_layouts = sa.Table(
    "bucket_layouts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("bounds", sa.Text, nullable=False, unique=True),
)
backend_status = sa.Table(
    "backend_status",
    metadata,
    sa.Column("backend", sa.Text, primary_key=True),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("up", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("duration", sa.Double, nullable=True),
    sa.Column("last_success_ts", sa.Double, nullable=True),
)
cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("backend", sa.Text, primary_key=True),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("snapshot", sa.Text, nullable=False),
)


def _step(suffix: str) -> list[sa.Column[Any]]:
    return [sa.Column("step", sa.Double, nullable=False)] if suffix else []


#: (backend, signal, model): what a row of ``series`` names, and every data row refers to by id
SeriesKey = tuple[str, str, str]

series = sa.Table(
    "series",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("backend", sa.Text, nullable=False),
    sa.Column("signal", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.UniqueConstraint("backend", "signal", "model", name="uq_series_key"),
)


def _series_indexes(name: str) -> list[sa.Index]:
    return [
        sa.Index(f"ix_{name}_series", "series_id", "ts"),
        sa.Index(f"ix_{name}_ts", "ts"),
    ]


def _tables(suffix: str) -> tuple[sa.Table, sa.Table, sa.Table, sa.Table]:
    status = sa.Table(
        f"scrape_status{suffix}",
        metadata,
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("backend", sa.Text, nullable=False),
        sa.Column("up", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("duration", sa.Double, nullable=True),
        *_step(suffix),
        sa.Index(f"ix_scrape_status{suffix}_backend_ts", "backend", "ts"),
        sa.Index(f"ix_scrape_status{suffix}_ts", "ts"),
    )
    gauges = sa.Table(
        f"gauges{suffix}",
        metadata,
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("series_id", sa.Integer, nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        *_step(suffix),
        *_series_indexes(f"gauges{suffix}"),
    )
    counters = sa.Table(
        f"counter_deltas{suffix}",
        metadata,
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("series_id", sa.Integer, nullable=False),
        sa.Column("delta", sa.Double, nullable=False),
        sa.Column("interval_seconds", sa.Double, nullable=False),
        *_step(suffix),
        *_series_indexes(f"counter_deltas{suffix}"),
    )
    histograms = sa.Table(
        f"histogram_deltas{suffix}",
        metadata,
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("series_id", sa.Integer, nullable=False),
        sa.Column("layout_id", sa.Integer, sa.ForeignKey("bucket_layouts.id"), nullable=False),
        sa.Column("counts", sa.LargeBinary, nullable=False),
        sa.Column("sum", sa.Double, nullable=True),
        sa.Column("count", sa.Double, nullable=False),
        sa.Column("interval_seconds", sa.Double, nullable=False),
        *_step(suffix),
        *_series_indexes(f"histogram_deltas{suffix}"),
    )
    return status, gauges, counters, histograms


scrape_status, gauges, counter_deltas, histogram_deltas = _tables("")
(scrape_status_rollup, gauges_rollup, counter_deltas_rollup, histogram_deltas_rollup) = _tables(
    "_rollup"
)


# --- number and JSON helpers -----------------------------------------------------------------


def _whole(values: Sequence[float]) -> list[float] | list[int]:
    """The values as JSON writes them fastest: integers when every one is whole (cumulative
    counts are), else floats; ``_decode_snapshot`` reads both back as the same floats."""
    floats = list(map(float, values))
    return list(map(int, floats)) if all(map(float.is_integer, floats)) else floats


def _encode_snapshot(snapshot: EngineSnapshot) -> str:
    fast: dict[str, Any] = {
        "gauges": [[s, m, float(v)] for (s, m), v in snapshot.gauges.items()],
        "counters": [[s, m, int(v) if float(v).is_integer() else float(v)] for (s, m), v in snapshot.counters.items()],
        "histograms": [
            [
                s,
                m,
                list(map(float, h.bounds)),
                _whole(h.counts),
                float(h.sum),
                float(h.count),
            ]
            for (s, m), h in snapshot.histograms.items()
        ],
    }
    if snapshot.started is not None:
        fast["started"] = float(snapshot.started)
    try:  # no non-finite value but the +Inf bounds: encode those alone
        for entry in fast["histograms"]:
            if entry[2] and entry[2][-1] == math.inf and all(map(math.isfinite, entry[2][:-1])):
                entry[2][-1] = "+Inf"
        return json.dumps(fast, separators=(",", ":"), allow_nan=False)
    except ValueError:
        pass
    doc = {
        "gauges": [[s, m, enc(v)] for (s, m), v in snapshot.gauges.items()],
        "counters": [[s, m, enc(v)] for (s, m), v in snapshot.counters.items()],
        "histograms": [
            [
                s,
                m,
                [enc(b) for b in h.bounds],
                [enc(c) for c in h.counts],
                enc(h.sum),
                enc(h.count),
            ]
            for (s, m), h in snapshot.histograms.items()
        ],
    }
    if snapshot.started is not None:
        doc["started"] = enc(snapshot.started)
    return json.dumps(doc, separators=(",", ":"), allow_nan=False)


def _decode_snapshot(text: str) -> EngineSnapshot:
    doc = json.loads(text)
    return EngineSnapshot(
        gauges={(s, m): float(v) for s, m, v in doc.get("gauges", ())},
        counters={(s, m): float(v) for s, m, v in doc.get("counters", ())},
        histograms={
            (s, m): Histogram(
                bounds=tuple(float(b) for b in bounds),
                counts=tuple(float(c) for c in counts),
                sum=float(total),
                count=float(count),
            )
            for s, m, bounds, counts, total, count in doc.get("histograms", ())
        },
        started=float(doc["started"]) if doc.get("started") is not None else None,
    )


def _bucket_end(ts: float, step: float) -> float:
    """End of the rollup bucket ``((k-1)*step, k*step]`` holding ``ts``."""
    return math.ceil(ts / step) * step


#: the column order of the rows ``write`` builds as tuples
_STATUS_COLUMNS = ("ts", "backend", "up", "reason", "duration")
_GAUGE_COLUMNS = ("ts", "series_id", "value")
_COUNTER_COLUMNS = ("ts", "series_id", "delta", "interval_seconds")
_HIST_COLUMNS = ("ts", "series_id", "layout_id", "counts", "sum", "count", "interval_seconds")


def _of_series(t: sa.Table, backends: Sequence[str] | None, signals: Sequence[str] | None
               ) -> sa.ColumnElement[bool]:
    """``t``'s rows of the series of these backends and signals (None: any); ``true`` if both None."""
    where = []
    if backends is not None:
        where.append(series.c.backend.in_(list(dict.fromkeys(backends))))
    if signals is not None:
        where.append(series.c.signal.in_(list(dict.fromkeys(signals))))
    return t.c.series_id.in_(sa.select(series.c.id).where(*where)) if where else sa.true()


#: the order ``histogram_deltas`` returns rows in
_row_order = operator.attrgetter("ts", "backend", "signal", "model")
#: per-signal lists of (step or ts, model, …) are ordered by their first two fields
_first_two = operator.itemgetter(0, 1)


# --- the store ---------------------------------------------------------------------------------


class MetricsStore:
    """Scrape records in, windows and series out; rollups and retention of both.

    Thread-safe: the collector writes from a worker thread while the web app reads.
    """

    def __init__(self, db: Database, retention: Retention | None = None) -> None:
        self.db = db
        self.retention = retention if retention is not None else Retention()
        self._lock = threading.Lock()  # guards the layout caches (the writer thread and readers)
        self._layout_ids: dict[tuple[float, ...], int] = {}
        self._layout_bounds: dict[int, tuple[float, ...]] = {}
        #: the ``series`` rows this process has written or read (the writer resolves each
        #: (backend, signal, model) once; readers map ids back); committed rows only
        self._series_ids: dict[SeriesKey, int] = {}
        self._series_keys: dict[int, SeriesKey] = {}

    # --- writing -----------------------------------------------------------------------------

    def write(self, records: Sequence[ScrapeRecord]) -> None:
        """Store a batch of scrape records in ONE transaction: all of it, or (on error) none."""
        if not records:
            return
        ids = self._series_ids  # this batch keeps this dict even if ``maintain`` swaps in a new one
        missing: set[SeriesKey] = set()
        for r in records:
            if r.up:
                b = r.backend
                missing.update(k for k in ((b, p.signal, p.model) for p in r.gauges) if k not in ids)
                missing.update(k for k in ((b, p.signal, p.model) for p in r.counters) if k not in ids)
                missing.update(k for k in ((b, p.signal, p.model) for p in r.histograms) if k not in ids)
        new_layouts: dict[tuple[float, ...], int] = {}
        new_series: dict[SeriesKey, int] = {}
        with self.db.engine.begin() as conn:
            if missing:
                new_series = self._resolve_series(conn, missing)
                ids = {**ids, **new_series}
            self._write_rows(conn, records, ids, new_layouts)
        # only once committed: a rolled-back id must not be cached
        with self._lock:
            for bounds, layout_id in new_layouts.items():
                self._layout_ids[bounds] = layout_id
                self._layout_bounds[layout_id] = bounds
            for key, series_id in new_series.items():
                self._series_ids[key] = series_id
                self._series_keys[series_id] = key

    def _write_rows(self, conn: sa.Connection, records: Sequence[ScrapeRecord], ids: dict[SeriesKey, int],
                    new_layouts: dict[tuple[float, ...], int]) -> None:
        status_rows: list[tuple[float, str, bool, str | None, float | None]] = []
        gauge_rows: list[tuple[float, int, float | None]] = []
        counter_rows: list[tuple[float, int, float, float]] = []
        #: (bounds, the row with the layout id to fill in at index 2)
        hist_rows: list[tuple[tuple[float, ...], list[Any]]] = []
        latest: dict[str, ScrapeRecord] = {}
        last_success: dict[str, float] = {}
        newest_cursor: dict[str, ScrapeRecord] = {}
        isfinite = math.isfinite
        for r in records:
            ts = float(r.ts)
            backend = r.backend
            status_rows.append((ts, backend, bool(r.up), r.reason, nan_to_none(r.duration)))
            prev = latest.get(backend)
            if prev is None or ts >= prev.ts:
                latest[backend] = r
            if r.up:
                if ts > last_success.get(backend, -math.inf):
                    last_success[backend] = ts
                gauge_rows.extend((ts, ids[(backend, g.signal, g.model)], nan_to_none(g.value)) for g in r.gauges)
                for c in r.counters:
                    delta, interval = float(c.delta), float(c.interval)
                    if isfinite(delta) and isfinite(interval):
                        counter_rows.append((ts, ids[(backend, c.signal, c.model)], delta, interval))
                for h in r.histograms:
                    count = float(h.count)
                    if isfinite(count):
                        hist_rows.append((tuple(h.bounds), [ts, ids[(backend, h.signal, h.model)], 0,
                                                            pack_counts(h.counts), nan_to_none(h.sum), count,
                                                            float(h.interval)]))
            if r.cursor is not None:
                held = newest_cursor.get(backend)
                if held is None or ts >= held.ts:
                    newest_cursor[backend] = r
        cursor_rows = {b: {"backend": b, "ts": float(r.ts), "snapshot": _encode_snapshot(r.cursor)}
                       for b, r in newest_cursor.items() if r.cursor is not None}
        latest_rows = [
            {
                "backend": b,
                "ts": float(r.ts),
                "up": bool(r.up),
                "reason": r.reason,
                "duration": nan_to_none(r.duration),
                "last_success_ts": last_success.get(b),
            }
            for b, r in latest.items()
        ]

        if hist_rows:
            layout_ids = self._resolve_layouts(conn, {b for b, _ in hist_rows}, new_layouts)
            for bounds, row in hist_rows:
                row[2] = layout_ids[bounds]
            self.db.bulk_insert(conn, histogram_deltas, _HIST_COLUMNS, [tuple(row) for _, row in hist_rows])
        self.db.bulk_insert(conn, scrape_status, _STATUS_COLUMNS, status_rows)
        self.db.bulk_insert(conn, gauges, _GAUGE_COLUMNS, gauge_rows)
        self.db.bulk_insert(conn, counter_deltas, _COUNTER_COLUMNS, counter_rows)
        ins = self.db.upsert(backend_status)
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=["backend"],
                set_={
                    "ts": ins.excluded.ts,
                    "up": ins.excluded.up,
                    "reason": ins.excluded.reason,
                    "duration": ins.excluded.duration,
                    "last_success_ts": sa.func.coalesce(
                        ins.excluded.last_success_ts, backend_status.c.last_success_ts
                    ),
                },
                where=backend_status.c.ts <= ins.excluded.ts,
            ),
            latest_rows,
        )
        if cursor_rows:
            ins = self.db.upsert(cursors)
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["backend"],
                    set_={"ts": ins.excluded.ts, "snapshot": ins.excluded.snapshot},
                    where=cursors.c.ts <= ins.excluded.ts,
                ),
                list(cursor_rows.values()),
            )

    def _resolve_series(self, conn: sa.Connection, keys: set[SeriesKey]) -> dict[SeriesKey, int]:
        """The ids of ``keys`` in ``series``, inserting those not there yet (inside ``conn``'s
        transaction: a batch that rolls back leaves no id behind)."""
        rows = [{"backend": b, "signal": s, "model": m} for b, s, m in sorted(keys, key=repr)]
        conn.execute(
            self.db.upsert(series).on_conflict_do_nothing(index_elements=["backend", "signal", "model"]), rows
        )
        found: dict[SeriesKey, int] = {}
        for chunk in in_chunks(sorted({k[0] for k in keys})):
            assert chunk is not None
            q = sa.select(series.c.id, series.c.backend, series.c.signal, series.c.model).where(
                series.c.backend.in_(chunk))
            found.update(((b, sig, m), i) for i, b, sig, m in conn.execute(q))
        return {k: found[k] for k in keys}

    def _keys_of(self, conn: sa.Connection, ids: set[int]) -> dict[int, SeriesKey]:
        """(backend, signal, model) of each series id (an id whose row is gone is left out)."""
        known = self._series_keys
        found = {i: known[i] for i in ids if i in known}
        missing = sorted(ids - found.keys())
        for i in range(0, len(missing), IN_CHUNK):
            rows = conn.execute(
                sa.select(series.c.id, series.c.backend, series.c.signal, series.c.model).where(
                    series.c.id.in_(missing[i : i + IN_CHUNK]))
            )
            fresh = {series_id: (b, sig, m) for series_id, b, sig, m in rows}
            found.update(fresh)
            with self._lock:  # committed rows: safe to cache
                self._series_keys.update(fresh)
        return found

    def _resolve_layouts(
        self,
        conn: sa.Connection,
        needed: set[tuple[float, ...]],
        new_layouts: dict[tuple[float, ...], int],
    ) -> dict[tuple[float, ...], int]:
        with self._lock:
            known = {b: self._layout_ids[b] for b in needed if b in self._layout_ids}
        missing = {b: dumps_floats(b) for b in needed if b not in known}
        if missing:
            texts = sorted(set(missing.values()))
            conn.execute(
                self.db.upsert(bucket_layouts).on_conflict_do_nothing(index_elements=["bounds"]),
                [{"bounds": t} for t in texts],
            )
            ids: dict[str, int] = {}
            for chunk in in_chunks(texts):
                assert chunk is not None
                rows = conn.execute(
                    sa.select(bucket_layouts.c.bounds, bucket_layouts.c.id).where(
                        bucket_layouts.c.bounds.in_(chunk)
                    )
                )
                ids.update((text, layout_id) for text, layout_id in rows)
            for bounds, text in missing.items():
                known[bounds] = new_layouts[bounds] = ids[text]
        return known

    # --- reading -----------------------------------------------------------------------------

    def load_cursors(self) -> dict[str, tuple[float, EngineSnapshot]]:
        """backend -> (ts, last cumulative snapshot): where the collector resumes after a restart."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(sa.select(cursors.c.backend, cursors.c.ts, cursors.c.snapshot))
            return {b: (float(ts), _decode_snapshot(text)) for b, ts, text in rows}

    def raw_records(self, since: float) -> list[ScrapeRecord] | None:
        """The successful scrapes after ``since`` as the writer was given them (gauges, counter and
        histogram deltas; no cursor), from the raw tables; None when some of that span has been
        rolled up already (the raw rows no longer tell each scrape apart)."""
        by_scrape: dict[tuple[str, float], tuple[list[GaugePoint], list[CounterDelta], list[HistogramDelta]]] = {}

        def slot(backend: str, ts: float) -> tuple[list[GaugePoint], list[CounterDelta], list[HistogramDelta]]:
            return by_scrape.setdefault((backend, float(ts)), ([], [], []))

        with self.db.engine.connect() as conn:
            for t in (gauges_rollup, counter_deltas_rollup, histogram_deltas_rollup):
                if conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.ts > since)).scalar_one():
                    return None
            g, c, h = gauges, counter_deltas, histogram_deltas
            gauge_rows = conn.execute(sa.select(g.c.series_id, g.c.ts, g.c.value).where(g.c.ts > since)).all()
            counter_rows = conn.execute(sa.select(c.c.series_id, c.c.ts, c.c.delta, c.c.interval_seconds)
                                        .where(c.c.ts > since)).all()
            hist_rows = conn.execute(sa.select(h.c.series_id, h.c.ts, h.c.layout_id, h.c.counts, h.c.sum,
                                               h.c.count, h.c.interval_seconds).where(h.c.ts > since)).all()
            keys = self._keys_of(conn, {r[0] for rows in (gauge_rows, counter_rows, hist_rows) for r in rows})
            bounds_of = self._layouts_by_id(conn, {r[2] for r in hist_rows})
        for sid, ts, v in gauge_rows:
            if sid in keys:
                b, sig, m = keys[sid]
                slot(b, ts)[0].append(GaugePoint(sig, m, null_to_nan(v)))
        for sid, ts, d, i in counter_rows:
            if sid in keys:
                b, sig, m = keys[sid]
                slot(b, ts)[1].append(CounterDelta(sig, m, float(d), float(i)))
        for sid, ts, layout_id, counts, total, count, interval in hist_rows:
            if sid in keys:
                b, sig, m = keys[sid]
                slot(b, ts)[2].append(HistogramDelta(sig, m, bounds_of[layout_id], unpack_counts(counts),
                                                     null_to_nan(total), float(count), float(interval)))
        return [ScrapeRecord(b, ts, True, None, math.nan, tuple(gs), tuple(cs), tuple(hs))
                for (b, ts), (gs, cs, hs) in sorted(by_scrape.items())]

    def latest_status(self) -> dict[str, StatusRow]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(sa.select(backend_status))
            return {
                r.backend: StatusRow(
                    ts=float(r.ts),
                    up=bool(r.up),
                    reason=r.reason,
                    duration=null_to_nan(r.duration),
                    last_success_ts=None if r.last_success_ts is None else float(r.last_success_ts),
                )
                for r in rows
            }

    def latest_gauges(self, since: float) -> dict[str, dict[tuple[str, str], tuple[float, float]]]:
        """backend -> {(signal, model): (ts, value)}: the newest point of each series with
        ``ts > since`` (NaN where the value was NaN)."""

        def part(t: sa.Table) -> sa.Select[Any]:
            return sa.select(t.c.series_id, t.c.ts, t.c.value).where(t.c.ts > since)

        u = sa.union_all(part(gauges), part(gauges_rollup)).subquery()
        # ``+ 0``: partitioned by an expression, not the column, or SQLite would walk the whole
        # (series_id, ts) index in order instead of the window's range of the ts index
        ranked = sa.select(
            u, sa.func.row_number().over(partition_by=u.c.series_id + 0, order_by=u.c.ts.desc()).label("rn")
        ).subquery()
        q = sa.select(ranked.c.series_id, ranked.c.ts, ranked.c.value).where(ranked.c.rn == 1)
        out: dict[str, dict[tuple[str, str], tuple[float, float]]] = {}
        with self.db.engine.connect() as conn:
            rows = conn.execute(q).all()
            keys = self._keys_of(conn, {r[0] for r in rows})
        for sid, ts, value in rows:
            if sid in keys:
                backend, signal, model = keys[sid]
                out.setdefault(backend, {})[(signal, model)] = (float(ts), null_to_nan(value))
        return out

    def gauge_series(
        self, backend: str, signal: str, since: float, until: float
    ) -> list[tuple[float, str, float]]:
        """(ts, model, value) of one gauge signal of one backend, ``since < ts <= until``."""

        def part(t: sa.Table) -> sa.Select[Any]:
            return sa.select(t.c.ts, t.c.series_id, t.c.value).where(
                _of_series(t, [backend], [signal]), t.c.ts > since, t.c.ts <= until
            )

        q = sa.union_all(part(gauges), part(gauges_rollup))
        with self.db.engine.connect() as conn:
            rows = conn.execute(q).all()
            keys = self._keys_of(conn, {r[1] for r in rows})
        return sorted((float(ts), keys[sid][2], null_to_nan(v)) for ts, sid, v in rows if sid in keys)

    def gauge_steps(
        self, backend: str, signals: Sequence[str], since: float, until: float, step: float, n: int
    ) -> dict[str, list[tuple[int, str, float]]]:
        """Per signal, ``(step index, model, last value in that step)`` of one backend over the
        ``n`` steps of ``step`` seconds after ``since`` (``since < ts <= until``), reduced in SQL."""

        def part(t: sa.Table) -> sa.Select[Any]:
            return sa.select(t.c.series_id, t.c.ts, t.c.value).where(
                _of_series(t, [backend], signals), t.c.ts > since, t.c.ts <= until
            )

        u = sa.union_all(part(gauges), part(gauges_rollup)).subquery()
        slot = self._step_index(u.c.ts, since, step, n).label("slot")
        q: sa.Select[Any]
        if self.db.dialect == "sqlite":
            # SQLite documents it: with max(), bare columns come from the row holding the maximum
            q = sa.select(u.c.series_id, slot, u.c.value, sa.func.max(u.c.ts)).group_by(u.c.series_id, slot)
        else:
            q = (sa.select(u.c.series_id, slot, u.c.value)
                 .ext(postgresql.distinct_on(u.c.series_id, slot))
                 .order_by(u.c.series_id, slot, u.c.ts.desc()))
        out: dict[str, list[tuple[int, str, float]]] = {s: [] for s in signals}
        with self.db.engine.connect() as conn:
            rows = conn.execute(q).all()
            keys = self._keys_of(conn, {r[0] for r in rows})
        for sid, i, v, *_ in rows:
            if sid in keys:
                _, sig, m = keys[sid]
                out[sig].append((int(i), m, null_to_nan(v)))
        for values in out.values():
            values.sort(key=_first_two)
        return out

    def counter_totals(
        self,
        since: float,
        until: float,
        backends: Sequence[str] | None = None,
        signals: Sequence[str] | None = None,
    ) -> dict[tuple[str, str, str], tuple[float, float]]:
        """(backend, signal, model) -> (sum of deltas, sum of intervals), ``since < ts <= until``;
        optionally only some backends and signals (with either, the read is ranges of the
        ``(series_id, ts)`` index instead of every row of the window).

        A delta whose interval began before ``since`` (the first of the window, or one that
        spans a gap) counts only its share inside the window, as if it grew evenly over its
        interval: a window never counts time outside it."""
        sums: list[tuple[int, float, float]] = []
        start = sa.literal(since, sa.Double)
        with self.db.engine.connect() as conn:
            for chunk in in_chunks(backends):

                def part(t: sa.Table, chunk: Sequence[str] | None = chunk) -> sa.Select[Any]:
                    return sa.select(t.c.series_id, t.c.ts, t.c.delta, t.c.interval_seconds).where(
                        _of_series(t, chunk, signals), t.c.ts > since, t.c.ts <= until)

                u = sa.union_all(part(counter_deltas), part(counter_deltas_rollup)).subquery()
                straddles = u.c.ts - u.c.interval_seconds < start
                inside = u.c.ts - start
                # (a delta below 1e-200 is kept whole: PostgreSQL raises on a subnormal product)
                share = sa.and_(straddles, sa.func.abs(u.c.delta) >= 1e-200)
                delta = sa.case((share, u.c.delta * (inside / u.c.interval_seconds)), else_=u.c.delta)
                interval = sa.case((straddles, inside), else_=u.c.interval_seconds)
                q = sa.select(u.c.series_id, sa.func.sum(delta), sa.func.sum(interval)).group_by(u.c.series_id)
                sums.extend(conn.execute(q).all())
            keys = self._keys_of(conn, {r[0] for r in sums})
        return {keys[sid]: (float(delta), float(interval)) for sid, delta, interval in sums if sid in keys}

    def counter_series(
        self, backend: str, signal: str, since: float, until: float
    ) -> list[tuple[float, str, float, float]]:
        """(ts, model, delta, interval) of one counter of one backend, ``since < ts <= until``."""
        return self.counter_series_many(backend, [signal], since, until).get(signal, [])

    def counter_series_many(
        self, backend: str, signals: Sequence[str], since: float, until: float
    ) -> dict[str, list[tuple[float, str, float, float]]]:
        """Like ``counter_series`` for several signals of one backend, in one read."""

        def part(t: sa.Table) -> sa.Select[Any]:
            return sa.select(t.c.series_id, t.c.ts, t.c.delta, t.c.interval_seconds).where(
                _of_series(t, [backend], signals), t.c.ts > since, t.c.ts <= until
            )

        q = sa.union_all(part(counter_deltas), part(counter_deltas_rollup))
        out: dict[str, list[tuple[float, str, float, float]]] = {s: [] for s in signals}
        with self.db.engine.connect() as conn:
            rows = conn.execute(q).all()
            keys = self._keys_of(conn, {r[0] for r in rows})
        for sid, ts, d, i in rows:
            if sid in keys:
                _, sig, m = keys[sid]
                out[sig].append((float(ts), m, float(d), float(i)))
        for values in out.values():
            values.sort(key=_first_two)
        return out

    def counter_steps(
        self, backend: str, signals: Sequence[str], since: float, until: float, step: float, n: int
    ) -> dict[str, list[tuple[int, str, float, float]]]:
        """Per signal, ``(step index, model, sum of deltas, sum of intervals)`` of one backend over
        the ``n`` steps of ``step`` seconds after ``since`` (``since < ts <= until``), summed in SQL."""

        def part(t: sa.Table) -> sa.Select[Any]:
            return sa.select(t.c.series_id, t.c.ts, t.c.delta, t.c.interval_seconds).where(
                _of_series(t, [backend], signals), t.c.ts > since, t.c.ts <= until
            )

        u = sa.union_all(part(counter_deltas), part(counter_deltas_rollup)).subquery()
        slot = self._step_index(u.c.ts, since, step, n).label("slot")
        q = sa.select(u.c.series_id, slot, sa.func.sum(u.c.delta), sa.func.sum(u.c.interval_seconds)
                      ).group_by(u.c.series_id, slot)
        out: dict[str, list[tuple[int, str, float, float]]] = {s: [] for s in signals}
        with self.db.engine.connect() as conn:
            rows = conn.execute(q).all()
            keys = self._keys_of(conn, {r[0] for r in rows})
        for sid, i, d, iv in rows:
            if sid in keys:
                _, sig, m = keys[sid]
                out[sig].append((int(i), m, float(d), float(iv)))
        for values in out.values():
            values.sort(key=_first_two)
        return out

    def _step_index(self, ts: sa.ColumnElement[float], since: float, step: float, n: int) -> sa.ColumnElement[int]:
        """SQL for the step holding ``ts`` (``collector.query``'s ``slot``): ``ceil((ts - since) /
        step) - 1`` clamped to ``[0, n - 1]``, in the same double arithmetic as Python (SQLite
        without its optional math functions: CAST truncation is floor, as ``ts > since``)."""
        x = (ts - sa.literal(since, sa.Double)) / sa.literal(step, sa.Double)
        floor = self.db.floor(x)
        ceil_minus_1 = sa.case((floor < x, floor), else_=floor - 1)
        return sa.case((ceil_minus_1 < 0, 0), (ceil_minus_1 > n - 1, n - 1), else_=ceil_minus_1)

    def histogram_deltas(
        self,
        since: float,
        until: float,
        backends: Sequence[str] | None = None,
        signals: Sequence[str] | None = None,
    ) -> list[HistogramRow]:
        """Every histogram delta with ``since < ts <= until``, ordered by ts, backend, signal,
        model; optionally only some backends and signals."""
        raw: list[tuple[int, float, int, bytes, float | None, float]] = []
        with self.db.engine.connect() as conn:
            for chunk in in_chunks(backends):

                def part(t: sa.Table, chunk: Sequence[str] | None = chunk) -> sa.Select[Any]:
                    return sa.select(t.c.series_id, t.c.ts, t.c.layout_id, t.c.counts, t.c.sum, t.c.count).where(
                        _of_series(t, chunk, signals), t.c.ts > since, t.c.ts <= until)

                raw.extend(conn.execute(sa.union_all(part(histogram_deltas), part(histogram_deltas_rollup))).all())
            keys = self._keys_of(conn, {r[0] for r in raw})
            bounds_of = self._layouts_by_id(conn, {r[2] for r in raw})
        nan = math.nan
        rows = [
            HistogramRow(*keys[sid], float(ts), bounds_of[layout_id], unpack_counts(counts),
                         nan if total is None else float(total), float(count))
            for sid, ts, layout_id, counts, total, count in raw if sid in keys
        ]
        rows.sort(key=_row_order)
        return rows

    def _layouts_by_id(self, conn: sa.Connection, ids: set[int]) -> dict[int, tuple[float, ...]]:
        with self._lock:
            found = {i: self._layout_bounds[i] for i in ids if i in self._layout_bounds}
        missing = sorted(ids - found.keys())
        for i in range(0, len(missing), IN_CHUNK):
            rows = conn.execute(
                sa.select(bucket_layouts.c.id, bucket_layouts.c.bounds).where(
                    bucket_layouts.c.id.in_(missing[i : i + IN_CHUNK])
                )
            )
            for layout_id, text in rows:
                bounds = loads_floats(text)
                found[layout_id] = bounds
                with self._lock:  # committed rows: safe to cache
                    self._layout_bounds[layout_id] = bounds
                    self._layout_ids[bounds] = layout_id
        return found

    def status_series(
        self, backend: str, since: float, until: float
    ) -> list[tuple[float, bool, str | None]]:
        """(ts, up, reason) of one backend, ``since < ts <= until``. A rollup row is up only if
        every scrape in its bucket was; its reason is one of the failures' reasons."""

        def part(t: sa.Table) -> sa.Select[Any]:
            return sa.select(t.c.ts, t.c.up, t.c.reason).where(
                t.c.backend == backend, t.c.ts > since, t.c.ts <= until
            )

        u = sa.union_all(part(scrape_status), part(scrape_status_rollup)).subquery()
        q = sa.select(u).order_by(u.c.ts)
        with self.db.engine.connect() as conn:
            return [(float(ts), bool(up), reason) for ts, up, reason in conn.execute(q)]

    # --- retention ---------------------------------------------------------------------------

    def maintain(self, now: float) -> None:
        """Downsample and expire; idempotent, safe to run as often as wanted.

        Raw rows in buckets that ended at least ``raw_seconds`` before ``now`` move into the
        rollup tables (one row per series and ``rollup_step`` bucket, stamped at the bucket
        end): counter deltas and intervals summed, histogram buckets/sum/count/interval summed
        elementwise per layout, gauges *averaged* (NaN points ignored), scrape durations
        averaged and ``up`` true only if every scrape in the bucket was up. Each slice of work
        inserts its rollups and deletes their raw rows in the same transaction, so a rerun (or a
        crash) never counts anything twice. Everything older than ``rollup_seconds``, raw or
        rolled up, is deleted, as are cursors, latest-status rows and the ``series`` rows of
        backends not heard from since then.
        """
        ret = self.retention
        step = float(ret.rollup_step)
        expire = now - ret.rollup_seconds
        raw_cut = math.floor((now - ret.raw_seconds) / step) * step
        raw_tables = (scrape_status, gauges, counter_deltas, histogram_deltas)
        with self.db.engine.begin() as conn:
            for t in (
                *raw_tables,
                scrape_status_rollup,
                gauges_rollup,
                counter_deltas_rollup,
                histogram_deltas_rollup,
                cursors,
                backend_status,
            ):
                conn.execute(sa.delete(t).where(t.c.ts <= expire))
            # the series of backends not heard from since ``expire`` (none of their rows are left)
            gone = conn.execute(sa.delete(series).where(series.c.backend.not_in(sa.select(backend_status.c.backend))))
        if gone.rowcount:
            with self._lock:  # new dicts: a write in flight keeps the ones it took
                self._series_ids, self._series_keys = {}, {}
        slice_len = step * max(1, round(_SLICE_SECONDS / step))
        while True:
            with self.db.engine.connect() as conn:
                oldest = [
                    conn.execute(sa.select(sa.func.min(t.c.ts)).where(t.c.ts <= raw_cut)).scalar()
                    for t in raw_tables
                ]
            present = [float(x) for x in oldest if x is not None]
            if not present:
                return
            start = _bucket_end(min(present), step) - step
            end = min(start + slice_len, raw_cut)
            with self.db.engine.begin() as conn:
                self._roll_up(conn, end, step)

    def _bucket_expr(self, ts: sa.ColumnElement[float], step: float) -> sa.ColumnElement[float]:
        """SQL for ``_bucket_end``: ceil(ts / step) * step, without relying on SQLite's
        optional math functions (timestamps are positive, so CAST truncation is floor)."""
        x = ts / sa.literal(step, sa.Double)
        floor = self.db.floor(x)
        return sa.case((floor < x, floor + 1), else_=floor) * sa.literal(step, sa.Double)

    def _roll_up(self, conn: sa.Connection, end: float, step: float) -> None:
        step_lit = sa.literal(step, sa.Double)

        s = scrape_status
        inner = (
            sa.select(
                self._bucket_expr(s.c.ts, step).label("bts"),
                s.c.backend,
                s.c.up,
                s.c.reason,
                s.c.duration,
            )
            .where(s.c.ts <= end)
            .subquery()
        )
        conn.execute(
            scrape_status_rollup.insert().from_select(
                ["ts", "backend", "up", "reason", "duration", "step"],
                sa.select(
                    inner.c.bts,
                    inner.c.backend,
                    sa.func.min(sa.case((inner.c.up, 1), else_=0)) == 1,
                    sa.func.max(sa.case((inner.c.up, sa.null()), else_=inner.c.reason)),
                    sa.func.avg(inner.c.duration),
                    step_lit,
                ).group_by(inner.c.bts, inner.c.backend),
            )
        )

        g = gauges
        inner = (
            sa.select(self._bucket_expr(g.c.ts, step).label("bts"), g.c.series_id, g.c.value)
            .where(g.c.ts <= end)
            .subquery()
        )
        conn.execute(
            gauges_rollup.insert().from_select(
                ["ts", "series_id", "value", "step"],
                sa.select(inner.c.bts, inner.c.series_id, sa.func.avg(inner.c.value), step_lit
                          ).group_by(inner.c.bts, inner.c.series_id),
            )
        )

        c = counter_deltas
        inner = (
            sa.select(self._bucket_expr(c.c.ts, step).label("bts"), c.c.series_id, c.c.delta, c.c.interval_seconds)
            .where(c.c.ts <= end)
            .subquery()
        )
        conn.execute(
            counter_deltas_rollup.insert().from_select(
                ["ts", "series_id", "delta", "interval_seconds", "step"],
                sa.select(inner.c.bts, inner.c.series_id, sa.func.sum(inner.c.delta),
                          sa.func.sum(inner.c.interval_seconds), step_lit).group_by(inner.c.bts, inner.c.series_id),
            )
        )

        h = histogram_deltas
        acc: dict[tuple[float, int, int], list[Any]] = {}
        rows = conn.execute(
            sa.select(h.c.ts, h.c.series_id, h.c.layout_id, h.c.counts, h.c.sum, h.c.count, h.c.interval_seconds
                      ).where(h.c.ts <= end),
            execution_options={"yield_per": 10_000},
        )
        for ts, series_id, layout_id, counts, total, count, interval in rows:
            key = (_bucket_end(float(ts), step), series_id, layout_id)
            values = unpack_counts(counts)
            total_f = null_to_nan(total)
            held = acc.get(key)
            if held is None:
                acc[key] = [values, total_f, float(count), float(interval)]
            else:
                held[0] = tuple(map(operator.add, held[0], values))
                held[1] += total_f
                held[2] += float(count)
                held[3] += float(interval)
        if acc:
            self.db.bulk_insert(
                conn,
                histogram_deltas_rollup,
                (*_HIST_COLUMNS, "step"),
                [(bts, series_id, layout_id, pack_counts(counts), nan_to_none(total), count, interval, step)
                 for (bts, series_id, layout_id), (counts, total, count, interval) in acc.items()],
            )
        for t in (scrape_status, gauges, counter_deltas, histogram_deltas):
            conn.execute(sa.delete(t).where(t.c.ts <= end))
