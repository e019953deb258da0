"""Small numeric helpers shared by the stores, the API and the notifiers. Pure.

>>> finite(float("inf")), finite(2.5), nan_to_none(float("nan")), nan_to_none(float("-inf"))
(None, 2.5, None, -inf)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["exact_quantile", "finite", "nan_to_none"]


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
