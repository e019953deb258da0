"""Cumulative values -> per-interval deltas, with counter resets handled as Prometheus ``rate``.

Pure. A counter that went down was reset (the engine restarted): the increase over the
interval is the new value itself, as if it had counted up from zero — exactly what Prometheus
``rate``/``increase`` assume. A histogram is treated as one unit: if its count or any bucket
went down, or its bucket layout changed, the whole histogram reset and the delta is the new
cumulative histogram.

A series that appears while the backend already has a cursor started from zero (client
libraries create labelled series lazily: the first ``finished_reason="error"`` appears with the
first error). With no cursor at all (first scrape ever) there is nothing to diff against: the
scrape is only a baseline. A cursor older than ``max_gap`` is treated the same way, so a long
outage of inferwatch itself never dumps days of requests into one interval.
"""

from __future__ import annotations

import math

from core.samples import CounterDelta, EngineSnapshot, GaugePoint, Histogram, HistogramDelta

DEFAULT_MAX_GAP = 3600.0


def gauges(snap: EngineSnapshot) -> tuple[GaugePoint, ...]:
    return tuple(GaugePoint(sig, model, v) for (sig, model), v in snap.gauges.items() if not math.isnan(v))


def diff(
    prev: tuple[float, EngineSnapshot] | None,
    ts: float,
    cur: EngineSnapshot,
    max_gap: float = DEFAULT_MAX_GAP,
) -> tuple[tuple[CounterDelta, ...], tuple[HistogramDelta, ...]]:
    """Deltas between the previous cursor and ``cur`` taken at ``ts``."""
    if prev is None:
        return (), ()
    prev_ts, before = prev
    interval = ts - prev_ts
    if interval <= 0 or interval > max_gap:
        return (), ()
    counters: list[CounterDelta] = []
    for key, value in cur.counters.items():
        old = before.counters.get(key)
        if old is None or value < old:
            delta = value  # new series, or reset: counted from zero
        else:
            delta = value - old
        counters.append(CounterDelta(key[0], key[1], delta, interval))
    hists: list[HistogramDelta] = []
    for key, h in cur.histograms.items():
        old_h = before.histograms.get(key)
        d = _hist_delta(old_h, h)
        hists.append(HistogramDelta(key[0], key[1], d.bounds, d.counts, d.sum, d.count, interval))
    return tuple(counters), tuple(hists)


def _hist_delta(old: Histogram | None, new: Histogram) -> Histogram:
    if old is None or old.bounds != new.bounds or new.count < old.count:
        return new
    counts = tuple(n - o for n, o in zip(new.counts, old.counts, strict=True))
    if any(c < 0 for c in counts):
        return new
    return Histogram(new.bounds, counts, new.sum - old.sum, new.count - old.count)
