"""The newest minutes of what the collector wrote, kept in memory: the reads the alert engine,
the API and the pages make every few seconds need not go back to the database.

``LiveWindow.add`` takes each batch of scrape records once it is committed; ``summary_rows``
answers what ``MetricsStore`` would for a window it covers, as summaries read it — per backend
the newest gauge point per series, counter totals, and each (signal, model)'s histogram rows
merged — from the same rows, with the same filtering of non-finite numbers
(``tests/collector/test_live.py`` compares the two). A window is covered when it starts at or
after ``covered_from``: the later of when this process started collecting (what came before is
only in the database) and the horizon's edge (older entries are dropped).

Its cost does not grow with the window's length: each backend keeps the rows of its newest
``RUNNING`` seconds added up (``_Running``: one entry added and one taken away per scrape), so a
window of about that length is the running sums give or take the entry or two at its edges
(at 1,000 backends of 4 models, the API's summaries took 1.4 s adding rows up; see
``bench/README.md`` for what they take now). A backend
whose running sums cannot be trusted (bucket layouts mixed, a value not finite, an entry landed
out of order) has its rows added up instead until the sums are rebuilt; they are also rebuilt
every ``_REBUILD`` entries, so rounding never piles up.

One process writes the database; another process writing it too would not be seen here.
"""

from __future__ import annotations

import bisect
import math
import operator
import threading
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from collector.store import HistogramRow, MetricsStore
from collector.summary import Latency
from collector.totals import CounterTotal, HistogramTotal, Totals
from core.quantiles import merge
from core.samples import ScrapeRecord

__all__ = ["FleetSteps", "LiveWindow", "Merged", "SummaryRows"]

#: readers' memo entries kept before it is cleared (a few rounds of a large fleet's latencies)
_MEMO_MAX = 200_000
#: the span each backend's running sums cover: the API's, the pages' and most rules' window
RUNNING = 300.0
#: entries added to a backend's running sums before they are added up afresh
_REBUILD = 240


class _Entry(NamedTuple):
    ts: float
    seq: int  # unique, in the order entries were added
    gauges: tuple[tuple[str, str, float], ...]
    counters: tuple[tuple[str, str, float, float], ...]
    hists: tuple[HistogramRow, ...]


class Merged(NamedTuple):
    """Histogram deltas merged (``sum by (le)``), with their summed ``sum`` and ``count``."""

    bounds: tuple[float, ...]
    counts: tuple[float, ...]
    sum: float
    count: float  # type: ignore[assignment]  # the field shadows tuple.count, on purpose


class SummaryRows(NamedTuple):
    """A window as summaries read it (``LiveWindow.summary_rows``)."""

    gauges: dict[str, dict[tuple[str, str], tuple[float, float]]]
    counters: dict[str, dict[tuple[str, str], tuple[float, float]]]
    #: backend -> (signal, model) -> its histogram rows of the window merged
    merged: dict[str, dict[tuple[str, str], Merged]]
    ranges: dict[str, tuple[int, int, int]]


class _HistSum:
    """One (signal, model)'s histogram rows added up, and how many rows that is."""

    __slots__ = ("bounds", "count", "counts", "rows", "sum")

    def __init__(self, bounds: tuple[float, ...], counts: tuple[float, ...], total: float, count: float,
                 rows: int) -> None:
        self.bounds, self.counts, self.sum, self.count, self.rows = bounds, counts, total, count, rows

    def copy(self) -> _HistSum:
        return _HistSum(self.bounds, self.counts, self.sum, self.count, self.rows)


class _Sums:
    """Histogram and counter rows added up per (signal, model), with how many rows each holds
    (a key whose last row is taken away goes). ``exact`` turns False when a sum can no longer be
    trusted: layouts mixed, or a value not finite (NaN - NaN is not 0)."""

    __slots__ = ("counters", "exact", "hists")

    def __init__(self) -> None:
        self.hists: dict[tuple[str, str], _HistSum] = {}
        #: key -> [deltas, intervals, rows]
        self.counters: dict[tuple[str, str], list[float]] = {}
        self.exact = True

    def copy(self) -> _Sums:
        out = _Sums()
        out.hists = {k: v.copy() for k, v in self.hists.items()}
        out.counters = {k: list(v) for k, v in self.counters.items()}
        out.exact = self.exact
        return out

    def add(self, e: _Entry, sign: int) -> None:
        """Add (``sign`` 1) or take away (-1) one entry's rows."""
        op = operator.add if sign > 0 else operator.sub
        for h in e.hists:
            key = (h.signal, h.model)
            held = self.hists.get(key)
            if held is None:
                if sign < 0:
                    self.exact = False
                    continue
                self.hists[key] = _HistSum(h.bounds, h.counts, h.sum, h.count, 1)
            else:
                if held.bounds is not h.bounds:
                    self.exact = False
                    continue
                held.counts = tuple(map(op, held.counts, h.counts))
                held.sum, held.count, held.rows = op(held.sum, h.sum), op(held.count, h.count), held.rows + sign
                if held.rows == 0:
                    del self.hists[key]
            if not math.isfinite(h.sum + h.count) or not math.isfinite(sum(h.counts)):
                self.exact = False
        for sig, m, d, i in e.counters:
            key = (sig, m)
            c = self.counters.get(key)
            if c is None:
                if sign < 0:
                    self.exact = False
                    continue
                self.counters[key] = [d, i, 1]
            else:
                c[0], c[1], c[2] = op(c[0], d), op(c[1], i), c[2] + sign
                if c[2] == 0:
                    del self.counters[key]
            if not math.isfinite(d + i):
                self.exact = False


def _added_up(entries: Iterable[_Entry]) -> _Sums:
    """The entries' rows added up the slow, exact way: each key's rows merged at once."""
    out = _Sums()
    rows: dict[tuple[str, str], list[HistogramRow]] = {}
    for e in entries:
        for h in e.hists:
            rows.setdefault((h.signal, h.model), []).append(h)
        for sig, m, d, i in e.counters:
            c = out.counters.get((sig, m))
            if c is None:
                out.counters[(sig, m)] = [d, i, 1]
            else:
                c[0], c[1], c[2] = c[0] + d, c[1] + i, c[2] + 1
    for key, rs in rows.items():
        merged = merge((r.bounds, r.counts) for r in rs)
        assert merged is not None
        held = _HistSum(merged[0], merged[1], sum(r.sum for r in rs), sum(r.count for r in rs), len(rs))
        out.hists[key] = held
        if len({r.bounds for r in rs}) > 1 or not math.isfinite(held.sum + held.count + sum(held.counts)):
            out.exact = False  # not to be kept running: added up afresh while such a row is in its span
    out.exact = out.exact and all(math.isfinite(c[0] + c[1]) for c in out.counters.values())
    return out


class _Running:
    """One backend's rows of its entries newer than ``edge`` added up (see the module doc)."""

    __slots__ = ("added", "edge", "sums")

    def __init__(self) -> None:
        self.edge = -math.inf
        self.sums = _Sums()
        self.added = 0

    def advance(self, series: list[_Entry], edge: float) -> None:
        """Take away the entries at or before ``edge``."""
        if edge <= self.edge:
            return
        lo = bisect.bisect_right(series, self.edge, key=lambda e: e.ts)
        hi = bisect.bisect_right(series, edge, key=lambda e: e.ts)
        for e in series[lo:hi]:
            self.sums.add(e, -1)
        self.edge = edge

    def rebuild(self, series: list[_Entry]) -> None:
        lo = bisect.bisect_right(series, self.edge, key=lambda e: e.ts)
        self.sums = _added_up(series[lo:])
        self.added = 0


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

    def __init__(self, horizon: float, started: float, fleet: FleetSteps | None = None,
                 totals: Totals | None = None) -> None:
        """``started``: from when on every committed record reaches ``add`` (this process's start,
        or, after ``warm``, the start of what was loaded)."""
        self.fleet = fleet
        #: cumulative counters and histograms since the start, for ``/metrics`` (``collector.totals``)
        self.totals = totals
        self.horizon = horizon
        self._started = started
        self._edge = -math.inf  # entries at or before it are dropped
        self._swept = -math.inf  # the edge of the last pruning of every backend
        self._lock = threading.Lock()
        self._backends: dict[str, list[_Entry]] = {}
        self._bounds: dict[tuple[float, ...], tuple[float, ...]] = {}  # one tuple per layout
        self._seq = 0
        #: per backend, its newest ``RUNNING`` seconds' rows added up
        self._running: dict[str, _Running] = {}
        #: per backend, every (signal, model) a gauge was seen for (``summary_rows`` stops
        #: looking back once it has the newest point of each)
        self._gauge_keys: dict[str, set[tuple[str, str]]] = {}
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
            if self.totals is not None:  # the totals count from there too
                self.totals.started = min(self.totals.started, since)
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
                self._gauge_keys.setdefault(r.backend, set()).update((s, m) for s, m, _ in entry.gauges)
                run = self._running.setdefault(r.backend, _Running())
                if not series or series[-1].ts <= entry.ts:
                    series.append(entry)
                    if entry.ts > run.edge:
                        run.sums.add(entry, 1)
                        run.added += 1
                else:  # a batch retried after a failed write lands behind newer ones
                    bisect.insort(series, entry, key=lambda e: e.ts)
                    self._generation[r.backend] = self._generation.get(r.backend, 0) + 1
                    run.added = _REBUILD  # rebuilt below
                run.advance(series, series[-1].ts - RUNNING)
                if run.added >= _REBUILD or not run.sums.exact:
                    run.rebuild(series)
                newest = max(newest, entry.ts)
                if self.fleet is not None:
                    self.fleet.add(entry.hists)
                if self.totals is not None:
                    self.totals.add(r.backend, entry.counters,
                                    ((h.signal, h.model, h.bounds, h.counts, h.sum, h.count) for h in entry.hists))
            if newest > -math.inf:
                self._prune(newest - self.horizon, {r.backend for r in records})
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

    def _prune(self, edge: float, touched: set[str]) -> None:
        """Drop entries at or before ``edge``: of the backends just added to, and of every
        backend once the edge has moved a tenth of the horizon since the last sweep (reads skip
        older entries anyway; sweeping all 1,000 backends per batch cost 3 % of the CPU)."""
        if edge <= self._edge:
            return
        self._edge = edge
        if len(self.memo) > _MEMO_MAX:  # keys of pruned or superseded spans are dead weight
            self.memo = {}
        if edge >= self._swept + self.horizon / 10:
            self._swept = edge
            touched = set(self._backends)
        for name in touched:
            series = self._backends.get(name)
            if series is None:
                continue
            cut = bisect.bisect_right(series, edge, key=lambda e: e.ts)
            if cut:
                self._running[name].advance(series, edge)  # what it still held of them
                del series[:cut]
            if not series:
                del self._backends[name]
                del self._running[name]
                self._gauge_keys.pop(name, None)

    def cumulative(self) -> tuple[list[CounterTotal], list[HistogramTotal]]:
        """The running totals since the start (none without ``totals``)."""
        with self._lock:
            if self.totals is None:
                return [], []
            return self.totals.counters(), self.totals.histograms()

    def summary_rows(self, since: float, until: float, backends: Sequence[str] | None = None) -> SummaryRows:
        """What ``window`` answers for ``(since, until]``, as summaries read it: per backend the
        newest gauge points after ``since``, counter totals, and each (signal, model)'s histogram
        rows merged — from the backend's running sums when the window is about their span."""
        gauges: dict[str, dict[tuple[str, str], tuple[float, float]]] = {}
        counters: dict[str, dict[tuple[str, str], tuple[float, float]]] = {}
        merged: dict[str, dict[tuple[str, str], Merged]] = {}
        ranges: dict[str, tuple[int, int, int]] = {}
        with self._lock:
            names = list(self._backends) if backends is None else [b for b in dict.fromkeys(backends)
                                                                    if b in self._backends]
            for name in names:
                series = self._backends[name]
                first = bisect.bisect_right(series, since, key=lambda e: e.ts)
                newest: dict[tuple[str, str], tuple[float, float]] = {}
                wanted = len(self._gauge_keys.get(name, ()))
                for k in range(len(series) - 1, first - 1, -1):  # newest first: one usually has them all
                    e = series[k]
                    for s, m, v in e.gauges:
                        if (s, m) not in newest:
                            newest[(s, m)] = (e.ts, v)
                    if len(newest) == wanted:
                        break
                if newest:
                    gauges[name] = newest
                last = bisect.bisect_right(series, until, key=lambda e: e.ts) - 1
                if last < first:
                    continue
                sums = self._sums(series, first, last, self._running[name])
                if sums.counters:
                    totals = {k: (c[0], c[1]) for k, c in sums.counters.items()}
                    for e in series[first:last + 1]:  # the first entry; more only after a gap in time
                        if not _only_inside(totals, e, since):
                            break
                    counters[name] = totals
                if sums.hists:
                    merged[name] = {k: Merged(h.bounds, h.counts, h.sum, h.count) for k, h in sums.hists.items()}
                    ranges[name] = (self._generation.get(name, 0), series[first].seq, series[last].seq)
        return SummaryRows(gauges, counters, merged, ranges)

    @staticmethod
    def _sums(series: list[_Entry], first: int, last: int, run: _Running) -> _Sums:
        """``series[first:last + 1]``'s rows added up: the running sums (``series[j:]``) with the
        entries between ``j`` and ``first`` and after ``last`` added or taken away, when that is
        less work than adding the window's rows up, and the running sums are exact."""
        j = bisect.bisect_right(series, run.edge, key=lambda e: e.ts)
        if not run.sums.exact or abs(first - j) + (len(series) - 1 - last) >= last - first + 1:
            return _added_up(series[first:last + 1])
        if first == j and last == len(series) - 1:
            return run.sums  # exactly their span (the caller only reads)
        out = run.sums.copy()
        for e in series[first:j]:
            out.add(e, 1)
        for e in series[j:first]:
            out.add(e, -1)
        for e in series[last + 1:]:
            out.add(e, -1)
        return out if out.exact else _added_up(series[first:last + 1])


def _only_inside(totals: dict[tuple[str, str], tuple[float, float]], e: _Entry, since: float) -> bool:
    """Of ``e`` count only the share of each delta whose interval falls after ``since``, as
    ``MetricsStore.counter_totals`` does; False when no interval of ``e`` began before ``since``
    (an entry's interval begins at the previous entry's time or later: none after it does)."""
    inside = e.ts - since
    found = False
    for s, m, d, i in e.counters:
        if i > inside and (s, m) in totals:
            total, covered = totals[(s, m)]
            totals[(s, m)] = (total - d + d * inside / i, covered - i + inside)
            found = True
    return found
