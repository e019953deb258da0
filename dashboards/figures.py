"""Pure Plotly figure builders: data in, a figure dict (``{"data": [...], "layout": {...}}``)
out, ready to be embedded as JSON and drawn by ``Plotly.newPlot`` in the browser. Times are
Unix seconds in, epoch milliseconds out (a ``date`` axis reads them as UTC instants).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Points = Sequence[tuple[float, float | None]]

COLORS = {"p50": "#2a5db0", "p95": "#a86400", "p99": "#b00020"}


def _ms(t: float) -> int:
    return int(round(t * 1000))


def line(name: str, points: Points, *, color: str | None = None, dash: str | None = None,
         scale: float = 1.0, mode: str = "lines") -> dict[str, Any]:
    """One scatter trace; None values stay gaps."""
    trace: dict[str, Any] = {
        "type": "scatter", "mode": mode, "name": name,
        "x": [_ms(t) for t, _ in points],
        "y": [None if v is None else v * scale for _, v in points],
        "connectgaps": False,
    }
    style: dict[str, Any] = {}
    if color:
        style["color"] = color
    if dash:
        style["dash"] = dash
    if style:
        trace["line"] = style
    return trace


def error_marks(errors: Sequence[tuple[float, int, str]]) -> dict[str, Any]:
    """Failed scrapes as red markers along the bottom of the time axis (hover: count, reason)."""
    return {
        "type": "scatter", "mode": "markers", "name": "scrape errors",
        "x": [_ms(t) for t, _, _ in errors], "y": [0] * len(errors),
        "text": [f"{n} failed scrape(s): {reason}" for _, n, reason in errors],
        "hoverinfo": "x+text", "marker": {"color": "#b00020", "symbol": "x", "size": 9},
    }


def figure(title: str, traces: list[dict[str, Any]], *, y_title: str = "", y_format: str | None = None,
           x_range: tuple[float, float] | None = None) -> dict[str, Any]:
    xaxis: dict[str, Any] = {"type": "date", "title": {"text": "time (UTC)"}}
    if x_range is not None:
        xaxis["range"] = [_ms(x_range[0]), _ms(x_range[1])]
    yaxis: dict[str, Any] = {"title": {"text": y_title}, "rangemode": "tozero"}
    if y_format:
        yaxis["tickformat"] = y_format
    return {
        "data": traces,
        "layout": {
            "title": {"text": title}, "xaxis": xaxis, "yaxis": yaxis, "height": 300,
            "margin": {"l": 60, "r": 20, "t": 40, "b": 40}, "legend": {"orientation": "h"},
            "hovermode": "x unified",
        },
    }


def percentiles(title: str, by_quantile: Mapping[str, Points], *, y_title: str = "seconds",
                extra: list[dict[str, Any]] | None = None,
                x_range: tuple[float, float] | None = None) -> dict[str, Any]:
    """p50/p95/p99 lines of one latency (``{"p50": points, ...}``)."""
    traces = [line(k, pts, color=COLORS.get(k)) for k, pts in by_quantile.items()]
    return figure(title, traces + (extra or []), y_title=y_title, x_range=x_range)


def lines(title: str, named: Mapping[str, Points], *, y_title: str = "", y_format: str | None = None,
          extra: list[dict[str, Any]] | None = None, scale: float = 1.0,
          x_range: tuple[float, float] | None = None) -> dict[str, Any]:
    traces = [line(k, pts, scale=scale) for k, pts in named.items()]
    return figure(title, traces + (extra or []), y_title=y_title, y_format=y_format, x_range=x_range)
