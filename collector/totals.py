"""Cumulative counters and histograms since this process started, per (backend, signal, model):
what ``/metrics`` exports with Prometheus semantics, so ``rate()``, ``increase()`` and
``histogram_quantile`` work on inferwatch's own series and aggregate across backends.

Fed with every committed record (``LiveWindow.add``): each counter delta and histogram delta
is added to its running total, on the engine's own bucket layout. A layout change starts the
series afresh (its buckets go, new ones begin at their first delta, as a reset). ``started`` is
every series' ``_created`` time: an inferwatch restart starts them from zero again, and the
created time tells Prometheus so (``rate`` treats it as a reset either way).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import NamedTuple

from core import conventions as c

__all__ = ["CounterTotal", "HistogramTotal", "Totals"]


class CounterTotal(NamedTuple):
    backend: str
    signal: str
    model: str
    value: float


class HistogramTotal(NamedTuple):
    backend: str
    signal: str
    model: str
    bounds: tuple[float, ...]
    counts: tuple[float, ...]  # cumulative per upper bound, as the engine's buckets
    sum: float
    count: float  # type: ignore[assignment]  # the field shadows tuple.count, on purpose


class Totals:
    """Running totals of ``counters`` and ``histograms`` signals (see the module doc); not
    thread-safe by itself: ``LiveWindow`` adds and reads under its lock."""

    def __init__(self, started: float, counters: Iterable[str], histograms: Iterable[str]) -> None:
        self.started = started
        self.counter_signals = frozenset(counters)
        self.histogram_signals = frozenset(histograms)
        self._counters: dict[tuple[str, str, str], float] = {}
        self._hists: dict[tuple[str, str, str], tuple[tuple[float, ...], tuple[float, ...], float, float]] = {}

    @classmethod
    def exported(cls, started: float) -> Totals:
        """The totals ``/metrics`` exports (``core.conventions`` ``COUNTER_METRICS`` and
        ``HISTOGRAM_METRICS``)."""
        return cls(started, c.COUNTER_METRICS, c.HISTOGRAM_METRICS)

    def add(self, backend: str, counters: Iterable[tuple[str, str, float, float]],
            hists: Iterable[tuple[str, str, tuple[float, ...], tuple[float, ...], float, float]]) -> None:
        """One record's counter deltas ``(signal, model, delta, interval)`` and histogram deltas
        ``(signal, model, bounds, counts, sum, count)``; non-finite values are left out."""
        for s, m, d, _ in counters:
            if s in self.counter_signals and math.isfinite(d) and d >= 0:
                key = (backend, s, m)
                self._counters[key] = self._counters.get(key, 0.0) + d
        for s, m, bounds, counts, total, n in hists:
            if s not in self.histogram_signals or not math.isfinite(n + total + sum(counts)):
                continue
            key = (backend, s, m)
            held = self._hists.get(key)
            if held is None or held[0] != bounds:
                self._hists[key] = (bounds, tuple(counts), total, n)
            else:
                self._hists[key] = (bounds, tuple(map(operator.add, held[1], counts)), held[2] + total, held[3] + n)

    def counters(self) -> list[CounterTotal]:
        return [CounterTotal(*k, v) for k, v in sorted(self._counters.items())]

    def histograms(self) -> list[HistogramTotal]:
        return [HistogramTotal(b, s, m, bounds, counts, total, n)
                for (b, s, m), (bounds, counts, total, n) in sorted(self._hists.items())]
