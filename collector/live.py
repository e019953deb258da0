"""The newest minutes of what the collector wrote, kept in memory: the reads the alert engine,
the API and the pages make every few seconds need not go back to the database.

``LiveWindow.add`` takes each batch of scrape records once it is committed; ``window`` answers
what ``MetricsStore`` would for a window it covers — the newest gauge point per series, counter
totals, histogram rows — with the same rows, the same filtering of non-finite numbers, in the same
order (``tests/collector/test_live.py`` compares the two). A window is covered when it starts at
or after ``covered_from``: the later of when this process started collecting (what came before is
only in the database) and the horizon's edge (older entries are dropped).

One process writes the database; another process writing it too would not be seen here.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Sequence
from typing import NamedTuple

from collector.store import HistogramRow, MetricsStore
from collector.summary import Latency
from core.samples import ScrapeRecord

__all__ = ["FleetSteps", "LiveWindow", "WindowRows"]

#: readers' memo entries kept before it is cleared (a few rounds of a large fleet's latencies)
_MEMO_MAX = 200_000


class _Entry(NamedTuple):
    ts: float
    seq: int  # unique, in the order entries were added
    gauges: tuple[tuple[str, str, float], ...]
    counters: tuple[tuple[str, str, float, float], ...]
    hists: tuple[HistogramRow, ...]


class WindowRows(NamedTuple):
    """A window's rows, shaped as ``collector.query.WindowData`` holds them."""

    gauges: dict[str, dict[tuple[str, str], tuple[float, float]]]
    counters: dict[str, dict[tuple[str, str], tuple[float, float]]]
    hists: dict[str, list[HistogramRow]]
    #: per backend, (generation, first seq, last seq) of the entries its rows come from: within a
    #: generation entries are only appended (and dropped from the front), so these name the set
    #: of rows; an entry inserted out of order starts a new generation (``LiveWindow.memo`` keys)
    ranges: dict[str, tuple[int, int, int]]


class FleetSteps:
    """Every backend's histogram deltas of ``signals`` summed per step of a fixed grid (step ``k``
    covers ``((k-1)*step, k*step]``) over the last ``horizon`` seconds: what the fleet chart reads
    (at 1,000 backends an hour of rows is a million; here it is 240 sums)."""

    def __init__(self, step: float, horizon: float, signals: Sequence[str], started: float) -> None:
        self.step = step
        self.horizon = horizon
        self.signals = frozenset(signals)
        self._started = started
        self._edge = -math.inf
        #: k -> signal -> bounds -> summed counts
        self._sums: dict[int, dict[str, dict[tuple[float, ...], list[float]]]] = {}

    def covers(self, since: float, step: float) -> bool:
        return step == self.step and since >= max(self._started, self._edge)

    def add(self, rows: Sequence[HistogramRow]) -> None:
        for r in rows:
            if r.signal not in self.signals:
                continue
            k = math.ceil(r.ts / self.step)
            layouts = self._sums.setdefault(k, {}).setdefault(r.signal, {})
            held = layouts.get(r.bounds)
            if held is None:
                layouts[r.bounds] = list(r.counts)
            else:
                for i, c in enumerate(r.counts):
                    held[i] += c

    def load(self, rows: Sequence[HistogramRow], since: float) -> None:
        """Rows from the store back to ``since``: the sums now cover from there."""
        self.add(rows)
        self._started = min(self._started, since)

    def prune(self, newest: float) -> None:
        edge = newest - self.horizon
        if edge <= self._edge:
            return
        cut = math.floor(edge / self.step)  # steps ending at or before the edge go
        self._edge = cut * self.step
        for k in [k for k in self._sums if k <= cut]:
            del self._sums[k]

    def merged(self, signal: str, first: int, last: int) -> list[list[tuple[Sequence[float], Sequence[float]]]]:
        """Per step ``first`` … ``last``, the ``(bounds, counts)`` of each layout seen in it."""
        return [[(b, tuple(c)) for b, c in self._sums.get(k, {}).get(signal, {}).items()]
                for k in range(first, last + 1)]


class LiveWindow:
    """Per backend, the successful scrape records of the last ``horizon`` seconds; with a
    ``fleet`` grid, also the fleet's per-step histogram sums (``FleetSteps``)."""

    def __init__(self, horizon: float, started: float, fleet: FleetSteps | None = None) -> None:
        """``started``: from when on every committed record reaches ``add`` (this process's start,
        or, after ``warm``, the start of what was loaded)."""
        self.fleet = fleet
        self.horizon = horizon
        self._started = started
        self._edge = -math.inf  # entries at or before it are dropped
        self._lock = threading.Lock()
        self._backends: dict[str, list[_Entry]] = {}
        self._bounds: dict[tuple[float, ...], tuple[float, ...]] = {}  # one tuple per layout
        self._seq = 0
        #: what readers computed from a backend's entries, by (backend, …, first seq, last seq):
        #: the alert engine, the API, /metrics and the pages share it (``collector.query``)
        self.memo: dict[tuple[str, str, str | None, int, int, int], Latency | None] = {}
        self._generation: dict[str, int] = {}

    @property
    def covered_from(self) -> float:
        return max(self._started, self._edge)

    def covers(self, since: float) -> bool:
        return since >= self.covered_from

    def fleet_steps(self, signal: str, step: float, first: int, last: int
                    ) -> list[list[tuple[Sequence[float], Sequence[float]]]] | None:
        """The fleet's sums of ``signal`` per step ``first`` … ``last`` (see ``FleetSteps``); None
        when they are not kept for that signal and step, or not back to step ``first``."""
        fleet = self.fleet
        with self._lock:
            if fleet is None or signal not in fleet.signals or not fleet.covers((first - 1) * step, step):
                return None
            return fleet.merged(signal, first, last)

    def warm(self, store: MetricsStore, now: float) -> bool:
        """Load the last ``horizon`` seconds from the store (a restart then reads from memory
        at once); False, covering only from the start, when the store no longer has them raw."""
        since = now - self.horizon
        fleet = self.fleet
        fleet_since = since if fleet is None else min(since, now - fleet.horizon)
        records = store.raw_records(since)
        if records is None:
            return False
        fleet_rows = [] if fleet is None else store.histogram_deltas(fleet_since, since, signals=sorted(fleet.signals))
        self.add(records)
        with self._lock:
            self._started = min(self._started, since)
            if fleet is not None:  # what add() did not: the rest of the fleet's horizon
                fleet.load(fleet_rows, fleet_since)
        return True

    def add(self, records: Sequence[ScrapeRecord]) -> None:
        """Records the store has committed (any order; failed scrapes carry nothing to keep)."""
        newest = -math.inf
        with self._lock:
            for r in records:
                if not r.up:
                    continue
                entry = self._entry(r)
                series = self._backends.setdefault(r.backend, [])
                if not series or series[-1].ts <= entry.ts:
                    series.append(entry)
                else:  # a batch retried after a failed write lands behind newer ones
                    bisect.insort(series, entry, key=lambda e: e.ts)
                    self._generation[r.backend] = self._generation.get(r.backend, 0) + 1
                newest = max(newest, entry.ts)
                if self.fleet is not None:
                    self.fleet.add(entry.hists)
            if newest > -math.inf:
                self._prune(newest - self.horizon)
                if self.fleet is not None:
                    self.fleet.prune(newest)

    def _entry(self, r: ScrapeRecord) -> _Entry:
        ts = float(r.ts)
        self._seq += 1
        hists = []
        for h in sorted(r.histograms, key=lambda h: (h.signal, h.model)):
            count = float(h.count)
            if not math.isfinite(count):
                continue  # the store drops them: nothing usable
            bounds = tuple(map(float, h.bounds))
            bounds = self._bounds.setdefault(bounds, bounds)
            hists.append(HistogramRow(r.backend, h.signal, h.model, ts, bounds, tuple(map(float, h.counts)),
                                      float(h.sum), count))
        counters = tuple((c.signal, c.model, float(c.delta), float(c.interval)) for c in r.counters
                         if math.isfinite(c.delta) and math.isfinite(c.interval))
        gauges = tuple((g.signal, g.model, float(g.value)) for g in r.gauges)
        return _Entry(ts, self._seq, gauges, counters, tuple(hists))

    def _prune(self, edge: float) -> None:
        if edge <= self._edge:
            return
        self._edge = edge
        if len(self.memo) > _MEMO_MAX:  # keys of pruned or superseded spans are dead weight
            self.memo = {}
        for name, series in list(self._backends.items()):
            cut = bisect.bisect_right(series, edge, key=lambda e: e.ts)
            if cut:
                del series[:cut]
            if not series:
                del self._backends[name]

    def window(self, since: float, until: float, backends: Sequence[str] | None = None,
               signals: Sequence[str] | None = None) -> WindowRows:
        """The rows of ``(since, until]`` (gauges: the newest point after ``since``, as
        ``MetricsStore.latest_gauges``); only ``backends``/``signals`` when given."""
        wanted = None if signals is None else frozenset(signals)
        gauges: dict[str, dict[tuple[str, str], tuple[float, float]]] = {}
        counters: dict[str, dict[tuple[str, str], tuple[float, float]]] = {}
        hists: dict[str, list[HistogramRow]] = {}
        ranges: dict[str, tuple[int, int, int]] = {}
        with self._lock:
            names = list(self._backends) if backends is None else [b for b in dict.fromkeys(backends)
                                                                    if b in self._backends]
            for name in names:
                series = self._backends[name]
                first = bisect.bisect_right(series, since, key=lambda e: e.ts)
                newest: dict[tuple[str, str], tuple[float, float]] = {}
                totals: dict[tuple[str, str], tuple[float, float]] = {}
                rows: list[HistogramRow] = []
                low = high = -1
                for e in series[first:]:
                    for s, m, v in e.gauges:
                        newest[(s, m)] = (e.ts, v)
                    if e.ts > until:
                        continue
                    if low < 0:
                        low = e.seq
                    high = e.seq
                    for s, m, d, i in e.counters:
                        if wanted is None or s in wanted:
                            held = totals.get((s, m))
                            totals[(s, m)] = (d, i) if held is None else (held[0] + d, held[1] + i)
                    rows.extend(h for h in e.hists if wanted is None or h.signal in wanted)
                if newest:
                    gauges[name] = newest
                if totals:
                    counters[name] = totals
                if rows:
                    hists[name] = rows
                    ranges[name] = (self._generation.get(name, 0), low, high)
        return WindowRows(gauges, counters, hists, ranges)
