"""Query parameters as the API takes them: a bad one is a 400 that names it."""

from __future__ import annotations

from fastapi import HTTPException

from core.units import parse_duration

__all__ = ["duration"]


def duration(name: str, value: str) -> float:
    """``window=5m`` -> 300.0; ``HTTPException(400, "window: …")`` when not a positive duration."""
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise HTTPException(400, f"{name}: {exc}") from None
    if seconds <= 0:
        raise HTTPException(400, f"{name}: must be greater than 0")
    return seconds
