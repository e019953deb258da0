"""Durations, sizes and thresholds as a config file (or a query parameter) writes them. Pure.

Durations are ``500ms``, ``15s``, ``5m``, ``1h``, ``7d``, ``2w`` or combinations (``1h30m``); a
bare number means seconds. Sizes are ``16MiB``, ``500KiB``, ``10MB`` or a bare number of bytes.
Thresholds are numbers with an optional unit: ``0.5``, ``500ms``, ``5s``, ``90%``. ``Duration``,
``Size`` and ``Threshold`` are the pydantic field types that parse them.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator

__all__ = [
    "NUMBER_RE", "UNIT_FACTORS", "Duration", "PositiveDuration", "PositiveSize", "Size", "Threshold", "clean_scaled", "format_window",
    "format_duration_text", "format_number", "parse_duration", "parse_size", "parse_threshold",
]

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}
#: A number as thresholds and rule expressions write it: ``42``, ``0.5``, ``.5``, ``1e3``.
NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
#: The units a threshold may carry, and what they multiply by.
UNIT_FACTORS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "%": 0.01}


def parse_duration(value: object) -> float:
    """``"1h30m"`` -> 5400.0; numbers are seconds.

    >>> parse_duration("1m30s")
    90.0
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 15s or 5m, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"duration must be a finite number of seconds, got {value}")
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like 15s or 5m, got {value!r}")
    text = value.strip()
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {value!r}; write it like 500ms, 15s, 5m, 1h or 1h30m")
    return total


def format_number(x: float) -> str:
    """Shortest text that parses back to ``x``: ``100.0`` -> ``"100"``, ``0.5`` -> ``"0.5"``."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def format_duration_text(seconds: float) -> str:
    """Seconds as duration text ``parse_duration`` reads back: ``86400`` -> ``"1d"``, ``90`` -> ``"1m30s"``."""
    if seconds == 0:
        return "0s"
    ms = round(seconds * 1000)
    if abs(ms - seconds * 1000) > 1e-6:  # finer than a millisecond: plain seconds
        return format_number(seconds) + "s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        n, ms = divmod(ms, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def clean_scaled(x: float) -> float:
    """Drop binary noise from unit scaling: ``99.9 * 0.01`` is 0.999, not 0.9990000000000001."""
    return float(f"{x:.12g}")


def parse_threshold(value: object) -> float:
    """A threshold as config writes it: a number, or text like ``500ms``, ``5s``, ``90%``.

    >>> parse_threshold("500ms"), parse_threshold("90%"), parse_threshold(3)
    (0.5, 0.9, 3.0)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a number like 0.5, 500ms or 90%, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        m = NUMBER_RE.match(text)
        if m is not None:
            rest = text[m.end():]
            if rest == "":
                return float(m.group(0))
            if rest in UNIT_FACTORS:
                return clean_scaled(float(m.group(0)) * UNIT_FACTORS[rest])
    raise ValueError(f"expected a number like 0.5, 500ms or 90%, got {value!r}")


def format_window(seconds: float) -> str:
    """A window as one unit, as PromQL range selectors write it: whole days, hours or minutes,
    else seconds.

    >>> format_window(86400.0), format_window(5400.0), format_window(90.0)
    ('1d', '90m', '90s')
    """
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_size(value: object) -> int:
    """``"16MiB"`` -> 16777216; an int is bytes.

    >>> parse_size("500KiB"), parse_size(1024)
    (512000, 1024)
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"size must not be negative, got {value}")
        return value
    m = _SIZE_RE.fullmatch(str(value).strip())
    if not m:
        raise ValueError(f"invalid size {value!r}; write it like 10MiB or 500KiB")
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])


#: A config field holding a duration in seconds (``15s`` -> 15.0).
Duration = Annotated[float, BeforeValidator(parse_duration)]
#: A config field holding a size in bytes (``16MiB`` -> 16777216).
Size = Annotated[int, BeforeValidator(parse_size)]


def _positive_duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be greater than 0 (a duration like 15s), got {value!r}")
    return seconds


def _positive_size(value: object) -> int:
    size = parse_size(value)
    if size <= 0:
        raise ValueError(f"must be greater than 0 (a size like 16MiB), got {value!r}")
    return size


#: An interval, timeout or step: a duration greater than 0 (``0``, ``.nan``, ``-1`` are errors).
PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]
#: A size greater than 0 bytes.
PositiveSize = Annotated[int, BeforeValidator(_positive_size)]
#: A config field holding a threshold (``500ms`` -> 0.5, ``90%`` -> 0.9).
Threshold = Annotated[float, BeforeValidator(parse_threshold)]
