"""Pure Plotly figure builders: data in, a figure dict (``{"data": [...], "layout": {...}}``)
out, ready to be embedded as JSON and drawn by ``Plotly.newPlot`` in the browser. Times are
Unix seconds in, epoch milliseconds out (a ``date`` axis reads them as UTC instants).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

Points = Sequence[tuple[float, float | None]]

COLORS = {"p50": "#2a5db0", "p95": "#a86400", "p99": "#b00020"}


def _ms(t: float) -> int:
    return int(round(t * 1000))


def line(name: str, points: Points, *, color: str | None = None, dash: str | None = None,
         scale: float = 1.0, mode: str = "lines") -> dict[str, Any]:
    """One scatter trace; None values stay gaps."""
    ys = [None if v is None else v * scale for _, v in points]
    if mode == "lines" and _isolated(ys):
        mode = "lines+markers"  # a point between gaps (or a lone one) draws nothing as a line
    trace: dict[str, Any] = {
        "type": "scatter", "mode": mode, "name": name,
        "x": [_ms(t) for t, _ in points],
        "y": ys,
        "connectgaps": False,
    }
    if mode == "lines+markers":
        trace["marker"] = {"size": 5}
    style: dict[str, Any] = {}
    if color:
        style["color"] = color
    if dash:
        style["dash"] = dash
    if style:
        trace["line"] = style
    return trace


def _isolated(ys: Sequence[float | None]) -> bool:
    """Whether some value has no value next to it (so no line segment would show it).

    >>> _isolated([1.0, None, 2.0, 3.0]), _isolated([1.0, 2.0, None]), _isolated([None, 5.0])
    (True, False, True)
    """
    for i, y in enumerate(ys):
        if y is None:
            continue
        before = i > 0 and ys[i - 1] is not None
        after = i + 1 < len(ys) and ys[i + 1] is not None
        if not before and not after:
            return True
    return False


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
    has_data = any(v is not None for t in traces if t.get("name") != "scrape errors" for v in t.get("y", []))
    if y_format and y_format.endswith("%") and not has_data:
        yaxis["range"] = [0, 1]  # an empty ratio chart: 0-100 %, not Plotly's default 0-400 %
    return {
        "data": traces,
        "layout": {
            "title": {"text": title, "x": 0.01, "xanchor": "left"}, "xaxis": xaxis, "yaxis": yaxis, "height": 330,
            # the toolbar stands up the right edge instead of over the title; the legend sits below
            # the axis title, clear of the date line Plotly prints under the first time tick
            "modebar": {"orientation": "v"},
            "margin": {"l": 60, "r": 40, "t": 40, "b": 90},
            "legend": {"orientation": "h", "y": -0.36, "yanchor": "top", "x": 0, "xanchor": "left"},
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


SEVERITY_COLORS = {"critical": "#b00020", "page": "#b00020", "warning": "#a86400", "ticket": "#a86400"}


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def add_alert_marks(fig: dict[str, Any], spans: Sequence[Any], x_range: tuple[float, float]) -> dict[str, Any]:
    """Shade each alert's firing period (``dashboards.data.AlertSpan``) across the whole plot
    height, draw a line where it started, and label that line with the rule (hover: severity,
    from–to, summary). Periods are clipped to ``x_range``; one still firing runs to its end."""
    lo, hi = x_range
    shapes = fig["layout"].setdefault("shapes", [])
    notes = fig["layout"].setdefault("annotations", [])
    for s in spans:
        color = SEVERITY_COLORS.get(s.severity, "#555555")
        start, end = max(s.start, lo), min(s.end if s.end is not None else hi, hi)
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": _ms(start), "x1": _ms(end),
                       "y0": 0, "y1": 1, "fillcolor": color, "opacity": 0.12, "line": {"width": 0},
                       "layer": "below"})
        if s.start >= lo:
            shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": _ms(s.start), "x1": _ms(s.start),
                           "y0": 0, "y1": 1, "line": {"color": color, "width": 1, "dash": "dot"}})
        until = "still firing" if s.end is None else _when(s.end) + " UTC"
        # Plotly reads a subset of HTML in these texts: names and summaries go in as escaped text
        hover = escape(f"{s.rule} ({s.severity or 'no severity'}) firing {_when(s.start)} UTC – {until}")
        if s.summary:
            hover += "<br>" + escape(s.summary)
        right_half = hi > lo and (start - lo) / (hi - lo) > 0.5  # keep the label inside the plot
        notes.append({"x": _ms(start), "xref": "x", "y": 1, "yref": "paper", "yanchor": "bottom",
                      "xanchor": "right" if right_half else "left", "showarrow": False, "text": escape(s.rule),
                      "font": {"size": 10, "color": color}, "hovertext": hover})
    return fig
