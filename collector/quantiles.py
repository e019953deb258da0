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

import math
from collections.abc import Iterable, Sequence


def histogram_quantile(q: float, bounds: Sequence[float], counts: Sequence[float]) -> float:
    """The q-quantile of a classic histogram given *cumulative* ``counts`` per upper bound.

    >>> histogram_quantile(0.5, [1.0, 2.0, math.inf], [10.0, 20.0, 20.0])
    1.0
    >>> histogram_quantile(0.75, [1.0, 2.0, math.inf], [10.0, 20.0, 20.0])
    1.5
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    pairs = sorted(zip(bounds, counts, strict=True), key=lambda p: p[0])
    # coalesce equal bounds (Prometheus: coalesceBuckets)
    merged: list[list[float]] = []
    for b, c in pairs:
        if merged and merged[-1][0] == b:
            merged[-1][1] += c
        else:
            merged.append([b, c])
    if len(merged) < 2 or merged[-1][0] != math.inf:
        return math.nan
    # ensure monotonic (Prometheus: ensureMonotonic)
    running = -math.inf
    for m in merged:
        if m[1] < running:
            m[1] = running
        running = m[1]
    observations = merged[-1][1]
    if observations == 0 or math.isnan(observations):
        return math.nan
    rank = q * observations
    b = 0
    while b < len(merged) - 1 and merged[b][1] < rank:
        b += 1
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    bucket_start = 0.0
    bucket_end = merged[b][0]
    count = merged[b][1]
    if b > 0:
        bucket_start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
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
        totals = [0.0] * len(first)
        for _, c in items:
            for i, v in enumerate(c):
                totals[i] += v
        return first, tuple(totals)
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
