"""Cumulative values -> per-interval deltas, with counter resets handled as Prometheus ``rate``.

Pure. A counter that went down was reset (the engine restarted): the increase over the
interval is the new value itself, as if it had counted up from zero — exactly what Prometheus
``rate``/``increase`` assume. A histogram is treated as one unit: if its count or any bucket
went down, or its bucket layout changed, the whole histogram reset and the delta is the new
cumulative histogram.

After a reset, the delta covers only the time the engine can have produced it in: since its
process started (``EngineSnapshot.started``, from ``process_start_time_seconds`` where the
engine exports it). An engine that does not say when it started (llama.cpp, TGI, Triton)
restarted at an unknown moment of the gap: the first scrape after the reset is then a new
baseline, as the very first scrape is — what it counted since the restart (at most one scrape
interval's worth) is left out rather than spread over a guessed span, so every rate from the
next scrape on is the engine's own. Measured on a real llama-server (``BENCHMARKS.md``):
spreading it over a whole scrape interval made the first rates after a restart up to 20 % low,
over half an interval up to 13 %; as a baseline they are within 5 %. A rate is deltas over the
time they cover, so an outage with a restart in it does not dilute the first rate after it (the
35 s of a kill-and-restart are not 35 s of tokens). A start time newer than the cursor's is a
restart even when every counter has already climbed past its old value. A gap without a reset
(the engine paused, or only inferwatch failed to scrape) keeps its whole span: its increase is
spread over the gap.

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


#: a start time this much newer than the cursor's is a restart (engines print it rounded)
_START_SLACK = 1.0


def diff(
    prev: tuple[float, EngineSnapshot] | None,
    ts: float,
    cur: EngineSnapshot,
    max_gap: float = DEFAULT_MAX_GAP,
    reset_cap: float | None = None,
) -> tuple[tuple[CounterDelta, ...], tuple[HistogramDelta, ...]]:
    """Deltas between the previous cursor and ``cur`` taken at ``ts``; a reset's delta covers the
    time since the engine started; with ``reset_cap`` set (the collector sets its scrape
    interval) and no start time, a reset series has no delta this time (a new baseline); without
    ``reset_cap`` it covers the whole interval (as Prometheus's ``increase`` would count it)."""
    if prev is None:
        return (), ()
    prev_ts, before = prev
    interval = ts - prev_ts
    if interval <= 0 or interval > max_gap:
        return (), ()
    restarted = (cur.started is not None and before.started is not None
                 and cur.started > before.started + _START_SLACK)
    since_reset: float | None = interval
    if cur.started is not None and prev_ts < cur.started < ts:
        since_reset = ts - cur.started
    elif reset_cap is not None:
        since_reset = None  # unknown: this scrape is the series' new baseline
    counters: list[CounterDelta] = []
    for key, value in cur.counters.items():
        old = None if restarted else before.counters.get(key)
        if old is None and not restarted:
            counters.append(CounterDelta(key[0], key[1], value, interval))  # a new series, from zero
        elif old is None or value < old:
            if since_reset is not None:
                counters.append(CounterDelta(key[0], key[1], value, since_reset))  # reset: counted from zero
        else:
            counters.append(CounterDelta(key[0], key[1], value - old, interval))
    hists: list[HistogramDelta] = []
    for key, h in cur.histograms.items():
        old_h = None if restarted else before.histograms.get(key)
        d = _hist_delta(old_h, h)
        reset = d is h and (restarted or old_h is not None)
        if reset and since_reset is None:
            continue
        hists.append(HistogramDelta(key[0], key[1], d.bounds, d.counts, d.sum, d.count,
                                    since_reset if reset and since_reset is not None else interval))
    return tuple(counters), tuple(hists)


def _hist_delta(old: Histogram | None, new: Histogram) -> Histogram:
    """The increase from ``old`` to ``new``; ``new`` itself (the very object) when it reset."""
    if old is None or old.bounds != new.bounds or new.count < old.count:
        return new
    counts = tuple(n - o for n, o in zip(new.counts, old.counts, strict=True))
    if any(c < 0 for c in counts):
        return new
    return Histogram(new.bounds, counts, new.sum - old.sum, new.count - old.count)
