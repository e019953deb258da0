"""How inferwatch writes a number for people: one module for the pages' tables, the alerts page and
the notifications (``static/dashboard.js`` mirrors ``fmt`` for the fleet table's live refresh).

``fmt(v, kind)`` with ``kind`` one of ``Kind``; ``"–"`` for no value (None or NaN).

>>> [fmt(v, k) for v, k in ((0.25, "s"), (2.5, "s"), (125.0, "s"), (0.125, "pct"), (3.0, "int"),
...  (1.5 * 2**30, "bytes"), (2.5, "days"), (14.4, "x"), (1234.5, "per_s"), (491.63, "num"), (153.0, "plain"),
...  (0.20851, "plain"), (None, "num"))]
['250 ms', '2.50 s', '2m 05s', '12.5 %', '3', '1.5 GiB', '2.5 days', '14.4x', '1.23k/s', '491.6', '153', '0.209', '–']
"""

from __future__ import annotations

import math
from typing import Final, Literal

__all__ = ["UNIT_KINDS", "Kind", "fmt", "fmt_unit"]

Kind = Literal["s", "pct", "int", "bytes", "days", "x", "per_s", "num", "plain"]
#: an alert rule's value unit (``alerts.rules.Rule.unit``) -> how it is written
UNIT_KINDS: Final[dict[str, Kind]] = {"seconds": "s", "ratio": "pct", "days": "days", "x": "x",
                                      "per_second": "per_s", "": "plain"}
_SI: Final = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def _sig3(v: float) -> str:
    """Three significant digits, no exponent, no trailing zeros: 1.23, 12.3, 123, 0.00123."""
    if v == 0:
        return "0"
    digits = max(0, 2 - int(math.floor(math.log10(abs(v)))))
    return f"{v:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{v:.0f}"


def _human(v: float) -> str:
    for size, prefix in _SI:
        if abs(v) >= size:
            return _sig3(v / size) + prefix
    return _sig3(v)


def fmt(v: float | None, kind: str) -> str:
    """``v`` as people read it (see the module docstring)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if kind == "s":
        if abs(v) < 1:
            return f"{v * 1000:.0f} ms"
        if abs(v) < 60:
            return f"{v:.2f} s"
        whole = int(round(v))
        hours, rest = divmod(whole, 3600)
        minutes, seconds = divmod(rest, 60)
        return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s"
    if kind == "pct":
        return f"{v * 100:.1f} %"
    if kind == "int":
        return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"
    if kind == "bytes":
        return f"{v / 2**30:.1f} GiB"
    if kind == "days":
        return f"{v:.1f} days"
    if kind == "x":
        return f"{_sig3(v)}x"
    if kind == "per_s":
        return f"{_human(v)}/s"
    if kind == "plain":  # a count as it is, anything else to three significant digits
        return f"{v:.0f}" if float(v).is_integer() and abs(v) < 1e15 else _human(v)
    return f"{v:.1f}"


def fmt_unit(v: float | None, unit: str) -> str:
    """An alert's value in its rule's unit (``Rule.unit``): ``fmt`` with that unit's kind."""
    return fmt(v, UNIT_KINDS.get(unit, "num"))
