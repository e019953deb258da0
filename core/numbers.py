"""Small numeric helpers shared by the stores, the API and the notifiers. Pure.

>>> finite(float("inf")), finite(2.5), nan_to_none(float("nan")), nan_to_none(float("-inf"))
(None, 2.5, None, -inf)
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

__all__ = ["LatencyHistogram", "exact_quantile", "finite", "nan_to_none"]


def finite(x: float | None) -> float | None:
    """``x`` as a float when it is a finite number, else None (JSON has no NaN or infinity)."""
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def nan_to_none(x: float | None) -> float | None:
    """NaN as None (a database NULL), every other value as a float; ``±inf`` is kept."""
    if x is None:
        return None
    f = float(x)
    return None if f != f else f


def exact_quantile(values: Sequence[float], q: float) -> float | None:
    """Quantile of raw observations, linear between closest ranks (NumPy's default method).

    >>> exact_quantile([1.0, 2.0, 3.0, 4.0], 0.5)
    2.5
    """
    if not values:
        return None
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class LatencyHistogram:
    """Durations (seconds) counted into fixed buckets: ``last``, ``count``, ``sum`` and the
    cumulative ``buckets`` a ``/metrics`` histogram family needs.

    >>> h = LatencyHistogram((1.0, 10.0)); h.observe(0.5); h.observe(4.0)
    >>> h.buckets(), h.count, h.sum, h.last
    ([(1.0, 1), (10.0, 2), (inf, 2)], 2, 4.5, 4.0)
    """

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self._counts = [0] * (len(self.bounds) + 1)
        self.count = 0
        self.sum = 0.0
        self.last: float | None = None

    def observe(self, seconds: float) -> None:
        self._counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.count += 1
        self.sum += seconds
        self.last = seconds

    def buckets(self) -> list[tuple[float, int]]:
        """(upper bound, cumulative count), the last bound ``+Inf``."""
        out, total = [], 0
        for bound, n in zip((*self.bounds, math.inf), self._counts, strict=True):
            total += n
            out.append((bound, total))
        return out
