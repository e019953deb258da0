"""Immutable value types that cross module boundaries. No I/O here.

``EngineSnapshot`` is what an engine adapter makes of one scrape (cumulative, as the engine
reports it); ``ScrapeRecord`` is what the collector hands the store after turning cumulative
values into per-interval deltas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: (signal, model).  ``model`` is "" where the engine does not say which model.
SeriesKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Histogram:
    """A classic Prometheus histogram in seconds.

    ``bounds`` are the bucket upper bounds, ascending, the last one ``math.inf``; ``counts`` are
    the *cumulative* counts per bound (as the ``_bucket`` series are). A histogram with only the
    ``+Inf`` bucket carries just ``sum``/``count`` (a mean, no percentiles): that is how Triton's
    ``*_duration_us`` counters are represented.

    >>> h = Histogram(bounds=(0.1, 1.0, math.inf), counts=(3.0, 5.0, 6.0), sum=4.2, count=6.0)
    >>> h.count
    6.0
    """

    bounds: tuple[float, ...]
    counts: tuple[float, ...]
    sum: float
    count: float

    @staticmethod
    def mean_only(total_seconds: float, count: float) -> Histogram:
        return Histogram(bounds=(math.inf,), counts=(count,), sum=total_seconds, count=count)


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """Cumulative, normalised values read from one scrape of one backend."""

    gauges: dict[SeriesKey, float] = field(default_factory=dict)
    counters: dict[SeriesKey, float] = field(default_factory=dict)
    histograms: dict[SeriesKey, Histogram] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GaugePoint:
    signal: str
    model: str
    value: float


@dataclass(frozen=True, slots=True)
class CounterDelta:
    """Increase of a counter over ``interval`` seconds ending at the record's ``ts``."""

    signal: str
    model: str
    delta: float
    interval: float


@dataclass(frozen=True, slots=True)
class HistogramDelta:
    """Increase of every cumulative bucket (same ``bounds`` as the engine's), of sum and count."""

    signal: str
    model: str
    bounds: tuple[float, ...]
    counts: tuple[float, ...]
    sum: float
    count: float
    interval: float


@dataclass(frozen=True, slots=True)
class ScrapeRecord:
    """Everything one scrape of one backend adds to the store, written in one transaction.

    ``cursor`` is the cumulative snapshot the next scrape's deltas are taken against; it is
    persisted with the deltas so that a restart neither loses nor double-counts an interval.
    ``cursor`` is ``None`` for a failed scrape (the previous cursor stays).
    """

    backend: str
    ts: float
    up: bool
    reason: str | None
    duration: float
    gauges: tuple[GaugePoint, ...] = ()
    counters: tuple[CounterDelta, ...] = ()
    histograms: tuple[HistogramDelta, ...] = ()
    cursor: EngineSnapshot | None = None
