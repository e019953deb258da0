"""HTML rendering shared by every page: the Jinja2 environment (autoescape on), the filters the
templates use (``fmt``, ``when``, ``jv``) and page-styled error answers.

``fmt`` is ``core.formatting.fmt`` (shared with the alerts page and the notifications), mirrored
by ``static/dashboard.js`` for the fleet page's auto-refresh.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from core.formatting import fmt

__all__ = ["ago", "env", "error_page", "fmt", "html", "level", "when"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True, default_for_string=True))


def level(v: float | None, bad: float | None) -> str:
    """CSS class of a value against a "higher is worse" threshold: ok, warn (>= 80 %), bad.

    >>> level(5, 10), level(9, 10), level(11, 10), level(None, 10)
    ('ok', 'warn', 'bad', 'na')
    """
    if v is None or bad is None:
        return "na"
    if v > bad:
        return "bad"
    return "warn" if v > 0.8 * bad else "ok"


def when(ts: float | None) -> str:
    """Unix seconds as a UTC time (empty for None)."""
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(ts: float | None, now: float) -> str:
    """How long before ``now`` the time ``ts`` was, as people say it (empty for None).

    >>> [ago(1000.0 - d, 1000.0) for d in (-5, 0, 42.4, 600, 3600, 3 * 3600 + 300, 86400 * 2 + 7200)]
    ['just now', 'just now', '42 s ago', '10 min ago', '1 h ago', '3 h 5 min ago', '2 d 2 h ago']
    """
    if ts is None:
        return ""
    age = int(now - ts)
    if age <= 0:  # this very second, or a clock a little ahead of ours
        return "just now"
    if age < 60:
        return f"{age} s ago"
    if age < 3600:
        return f"{age // 60} min ago"
    days, rest = divmod(age, 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    if days:
        return f"{days} d {hours} h ago" if hours else f"{days} d ago"
    return f"{hours} h {minutes} min ago" if minutes else f"{hours} h ago"


def _jv(v: float | None) -> str:
    return json.dumps(v)


env.filters.update(fmt=fmt, when=when, ago=ago, jv=_jv)


def html(template: str, status: int = 200, **ctx: object) -> HTMLResponse:
    """A rendered page, never cached (it shows the fleet now)."""
    resp = HTMLResponse(env.get_template(template).render(**ctx), status_code=status)
    resp.headers["Cache-Control"] = "no-store"
    return resp


_ERROR_PAGE = env.from_string(
    '{% extends "base.html" %}{% block title %}{{ heading|lower }}{% endblock %}'
    '{% block content %}<h1>{{ heading }}</h1><p class="notice bad" id="error">{{ what }}</p>'
    '<p><a href="{{ back }}">{{ back_text }}</a></p>{% endblock %}')


def error_page(status: int, what: str, back: str = "/", back_text: str = "Back to the fleet") -> HTMLResponse:
    """A page-styled error (a browser user sees the reason, not a JSON body)."""
    heading = "Not found" if status == 404 else "Bad request"
    resp = HTMLResponse(_ERROR_PAGE.render(heading=heading, what=what, back=back, back_text=back_text, page=""),
                        status_code=status)
    resp.headers["Cache-Control"] = "no-store"
    return resp
