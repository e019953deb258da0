"""Durations and sizes as a config file (or a query parameter) writes them. Pure.

Durations are ``500ms``, ``15s``, ``5m``, ``1h``, ``7d``, ``2w`` or combinations (``1h30m``); a
bare number means seconds. Sizes are ``16MiB``, ``500KiB``, ``10MB`` or a bare number of bytes.
``Duration`` and ``Size`` are the pydantic field types that parse them.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

__all__ = ["Duration", "Size", "format_duration", "parse_duration", "parse_size"]

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}


def parse_duration(value: object) -> float:
    """``"1h30m"`` -> 5400.0; numbers are seconds.

    >>> parse_duration("1m30s")
    90.0
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 15s or 5m, got {value!r}")
    if isinstance(value, int | float):
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


def format_duration(seconds: float) -> str:
    """A window as short text: whole days, hours or minutes, else seconds.

    >>> format_duration(86400.0), format_duration(5400.0), format_duration(90.0)
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
        return value
    m = _SIZE_RE.fullmatch(str(value).strip())
    if not m:
        raise ValueError(f"invalid size {value!r}; write it like 10MiB or 500KiB")
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])


#: A config field holding a duration in seconds (``15s`` -> 15.0).
Duration = Annotated[float, BeforeValidator(parse_duration)]
#: A config field holding a size in bytes (``16MiB`` -> 16777216).
Size = Annotated[int, BeforeValidator(parse_size)]
