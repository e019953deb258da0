"""Numbers in and out of the database: NaN as NULL, non-finite floats in JSON text. Pure.

A NaN column value is stored as NULL and read back as NaN; ``±inf`` is stored as is (both
databases support it). JSON text (bucket counts, cursors, notifications) spells ``+Inf``,
``-Inf`` and ``NaN`` as strings, as the Prometheus exposition format does.

>>> dumps_floats([0.5, float("inf")]), loads_floats('[0.5,"+Inf"]')
('[0.5,"+Inf"]', (0.5, inf))
"""

from __future__ import annotations

import json
import json.scanner
import math
from collections.abc import Sequence

__all__ = ["dumps_floats", "enc", "loads_floats", "null_to_nan"]


def enc(x: float) -> float | str:
    """A float as a JSON-safe value: non-finite ones as the strings ``+Inf``/``-Inf``/``NaN``."""
    f = float(x)
    if math.isfinite(f):
        return f
    return "NaN" if f != f else ("+Inf" if f > 0 else "-Inf")


def dumps_floats(values: Sequence[float]) -> str:
    """Compact JSON list. Whole numbers (bucket counts nearly always are) are written as
    integers: shorter text, and faster than formatting floats; they read back as the same floats.

    >>> dumps_floats([3.0, 0.0, 12.0]), dumps_floats([0.5, 2.0])
    ('[3,0,12]', '[0.5,2.0]')
    """
    floats = list(map(float, values))
    if all(map(float.is_integer, floats)):  # (False for NaN and infinities)
        return "[" + ",".join(map(str, map(int, floats))) + "]"
    try:
        return json.dumps(floats, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps([enc(v) for v in floats], separators=(",", ":"), allow_nan=False)


#: json's C scanner, called directly: ``json.loads`` spends as long again on two whitespace regex
#: matches per call, and dashboards decode tens of thousands of bucket-count lists per page
_scan_json = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # typeshed types the C class


def loads_floats(text: str) -> tuple[float, ...]:
    """A list written by ``dumps_floats`` as floats (``"NaN"``/``"+Inf"``/``"-Inf"`` included)."""
    try:
        values, end = _scan_json(text, 0)
    except StopIteration:
        end, values = -1, None
    if end != len(text):  # whitespace around it (hand-written rows): the full parser
        values = json.loads(text)
    return tuple(map(float, values))


def null_to_nan(x: float | None) -> float:
    """A nullable column value as a float: NULL is NaN."""
    return math.nan if x is None else float(x)
