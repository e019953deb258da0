"""Histogram percentiles with Prometheus semantics. Pure functions, no I/O.

``histogram_quantile`` follows ``promql/quantile.go`` (``bucketQuantile``) for classic
histograms, so a p99 here agrees with a Grafana panel showing
``histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))`` over the same data:

* q < 0 gives -Inf, q > 1 gives +Inf, q NaN gives NaN;
* buckets are sorted by upper bound, equal bounds coalesced, and counts forced monotonic
  (a scrape racing an increment can break monotonicity; Prometheus repairs it the same way);
* fewer than two buckets, a highest bound that is not +Inf, or zero observations give NaN;
* if the rank falls in the +Inf bucket, the answer is the highest finite upper bound;
* if it falls in the first bucket and that bucket's upper bound is <= 0, the answer is that
  upper bound; otherwise the lower edge of the first bucket is 0;
* within a bucket, linear interpolation between its lower and upper bound.
"""

from __future__ import annotations

import bisect
import math
import operator
from collections.abc import Iterable, Sequence


def histogram_quantile(q: float, bounds: Sequence[float], counts: Sequence[float]) -> float:
    """The q-quantile of a classic histogram given *cumulative* ``counts`` per upper bound.

    >>> histogram_quantile(0.5, [1.0, 2.0, math.inf], [10.0, 20.0, 20.0])
    1.0
    >>> histogram_quantile(0.75, [1.0, 2.0, math.inf], [10.0, 20.0, 20.0])
    1.5
    """
    return histogram_quantiles((q,), bounds, counts)[0]


def histogram_quantiles(qs: Sequence[float], bounds: Sequence[float], counts: Sequence[float]) -> list[float]:
    """``histogram_quantile`` of each of ``qs``, the buckets sorted and repaired once.

    >>> histogram_quantiles([0.5, 0.75], [1.0, 2.0, math.inf], [10.0, 20.0, 20.0])
    [1.0, 1.5]
    """
    bl = list(bounds)
    cl = list(counts)
    if len(bl) != len(cl):
        raise ValueError("histogram_quantile: bounds and counts differ in length")
    if not all(map(operator.lt, bl, bl[1:])):
        # unsorted, repeated or NaN bounds: sort, and coalesce equal ones (Prometheus: coalesceBuckets)
        bl, cl = [], []
        for b, c in sorted(zip(bounds, counts, strict=True), key=lambda p: p[0]):
            if bl and bl[-1] == b:
                cl[-1] += c
            else:
                bl.append(b)
                cl.append(c)
    usable = len(bl) >= 2 and bl[-1] == math.inf
    ordered = all(map(operator.le, cl, cl[1:]))  # False with a NaN count too
    if usable and not ordered:
        # ensure monotonic (Prometheus: ensureMonotonic)
        running = -math.inf
        for i, v in enumerate(cl):
            if v < running:
                cl[i] = running
            running = cl[i]
    return [_bucket_quantile(q, bl, cl, usable, ordered) for q in qs]


def _bucket_quantile(q: float, bl: list[float], cl: list[float], usable: bool, ordered: bool) -> float:
    """Prometheus's ``bucketQuantile`` on sorted bounds and monotonic cumulative counts."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if not usable:
        return math.nan
    observations = cl[-1]
    if observations == 0 or math.isnan(observations):
        return math.nan
    rank = q * observations
    last = len(bl) - 1
    if ordered:  # the first bucket whose count reaches the rank
        b = min(bisect.bisect_left(cl, rank), last)
    else:  # the same, walked (a NaN count stops the walk, as in Prometheus)
        b = 0
        while b < last and cl[b] < rank:
            b += 1
    if b == last:
        return bl[-2]
    if b == 0 and bl[0] <= 0:
        return bl[0]
    bucket_start = 0.0
    bucket_end = bl[b]
    count = cl[b]
    if b > 0:
        bucket_start = bl[b - 1]
        count -= cl[b - 1]
        rank -= cl[b - 1]
    if count == 0:
        return bucket_start
    return bucket_start + (bucket_end - bucket_start) * (rank / count)


def merge(hists: Iterable[tuple[Sequence[float], Sequence[float]]]) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Sum cumulative bucket counts of several histograms, like ``sum by (le)``.

    Histograms with different layouts are merged on the union of their bounds: each one's
    cumulative count at a bound it lacks is its count at its nearest lower bound (what the
    ``le`` series that do exist can say). Returns None when there is nothing to merge.
    """
    items = [(tuple(b), tuple(c)) for b, c in hists]
    if not items:
        return None
    first = items[0][0]
    if all(b == first for b, _ in items):
        if any(len(c) != len(first) for _, c in items):
            raise ValueError("merge: a histogram has more or fewer counts than bounds")
        # column sums in C; the same additions, in the same order, as a per-bucket loop
        return first, tuple(sum(col, 0.0) for col in zip(*(c for _, c in items), strict=True))
    union = sorted({x for b, _ in items for x in b})
    totals = [0.0] * len(union)
    for b, c in items:
        j = -1
        for i, u in enumerate(union):
            while j + 1 < len(b) and b[j + 1] <= u:
                j += 1
            if j >= 0:
                totals[i] += c[j]
    return tuple(union), tuple(totals)


def quantile_or_none(q: float, bounds: Sequence[float], counts: Sequence[float]) -> float | None:
    """``histogram_quantile`` for JSON: NaN (no data, no percentiles available) becomes None."""
    v = histogram_quantile(q, bounds, counts)
    return None if math.isnan(v) else v


def quantiles_or_none(qs: Sequence[float], bounds: Sequence[float], counts: Sequence[float]) -> list[float | None]:
    """``quantile_or_none`` of each of ``qs`` (the buckets prepared once)."""
    return [None if math.isnan(v) else v for v in histogram_quantiles(qs, bounds, counts)]
