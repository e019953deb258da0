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
import operator
import struct
from collections.abc import Sequence
from itertools import accumulate

__all__ = ["dumps_floats", "enc", "loads_floats", "null_to_nan", "pack_counts", "unpack_counts"]


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


# --- bucket counts as bytes ---------------------------------------------------------------------
#
# A histogram delta's cumulative bucket counts, as stored: the per-bucket increments between its
# first and last occupied bucket, in the narrowest unsigned width that holds them, after a
# 5-byte header ``<kind: B><n: H><leading zeros: H>``. Leading zeros and the flat tail (every
# bucket after the last occupied one equals the total) are implied, not written: the vLLM TTFT
# delta ``[0,0,0,0,0,0,0,0,20,30,30,…,30]`` (23 buckets, 62 bytes of JSON) is 7 bytes. Counts
# that are not whole, not finite, negative or not cumulative (nothing the engines send, but a
# stored number is never rounded) fall back to kind ``DOUBLES``: ``<B><I>`` and n doubles.

_WIDTHS = ((0xFF, 1, "B"), (0xFFFF, 2, "H"), (0xFFFFFFFF, 4, "I"), (0xFFFFFFFFFFFFFFFF, 8, "Q"))
_FORMAT_OF_KIND = {width: code for _, width, code in _WIDTHS}
_DOUBLES = 0x64
_HEADER = struct.Struct("<BHH")
_DOUBLES_HEADER = struct.Struct("<BI")


def pack_counts(values: Sequence[float]) -> bytes:
    """Cumulative bucket counts as compact bytes; ``unpack_counts`` returns the same floats.

    >>> pack_counts([0, 0, 20, 30, 30, 30]).hex(), unpack_counts(pack_counts([0, 0, 20, 30, 30, 30]))
    ('0106000200140a', (0.0, 0.0, 20.0, 30.0, 30.0, 30.0))
    >>> unpack_counts(pack_counts([0.5, float("nan")]))
    (0.5, nan)
    """
    n = len(values)
    floats = list(map(float, values))
    if n <= 0xFFFF and all(map(float.is_integer, floats)):  # (False for NaN and infinities)
        whole = list(map(int, floats))
        increments = list(map(operator.sub, whole, [0, *whole[:-1]]))
        if min(increments, default=0) >= 0 and (not whole or whole[-1] <= 0xFFFFFFFFFFFFFFFF):
            first, last = 0, n
            while first < n and not increments[first]:
                first += 1
            while last > first and not increments[last - 1]:
                last -= 1
            body = increments[first:last]
            top = max(body, default=0)
            _, width, code = next(w for w in _WIDTHS if top <= w[0])
            return _HEADER.pack(width, n, first) + struct.pack(f"<{len(body)}{code}", *body)
    return _DOUBLES_HEADER.pack(_DOUBLES, n) + struct.pack(f"<{n}d", *floats)


def unpack_counts(blob: bytes) -> tuple[float, ...]:
    """The cumulative bucket counts ``pack_counts`` wrote."""
    kind = blob[0]
    if kind == _DOUBLES:
        (n,) = _DOUBLES_HEADER.unpack_from(blob)[1:]
        return struct.unpack_from(f"<{n}d", blob, _DOUBLES_HEADER.size)
    _, n, first = _HEADER.unpack_from(blob)
    k = (len(blob) - _HEADER.size) // kind
    cumulative = tuple(map(float, accumulate(struct.unpack_from(f"<{k}{_FORMAT_OF_KIND[kind]}", blob, _HEADER.size))))
    return (0.0,) * first + cumulative + (cumulative[-1] if cumulative else 0.0,) * (n - first - k)
