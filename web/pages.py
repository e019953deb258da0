"""HTML pages. For now ``/alerts``: firing and pending alerts, silences (create and expire from
the browser) and history.

Jinja2 autoescaping is on (a label value ``<script>`` renders as text). Every POST is protected
against CSRF with a double-submit token: ``GET`` sets a random token in a ``SameSite=Strict``,
``HttpOnly`` cookie and in the form; a POST whose form token does not equal the cookie's is
refused (403) — another site can neither read the cookie nor make the browser send it.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from alerts.outbox import AlertStore
from alerts.silences import SilenceStore
from web.alerts_api import silence_from_body

CSRF_COOKIE = "inferwatch_csrf"
_MAX_FORM = 64 * 1024
_env = Environment(loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True))


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _matchers(text: str) -> dict[str, str]:
    """``label=value`` / ``label=~regex`` lines -> the API's matcher mapping."""
    out: dict[str, str] = {}
    for line in text.replace(",", "\n").splitlines():
        line = line.strip()
        if not line:
            continue
        key, eq, value = line.partition("=")
        if not eq:
            raise HTTPException(400, f"matchers: {line!r} is not label=value or label=~regex")
        out[key.strip()] = ("=" + value.strip()) if value.startswith("~") else value.strip().strip('"')
    return out


def pages_router(alert_store: AlertStore, silences: SilenceStore, alerts: Any = None, clock: Callable[[], float] = time.time) -> APIRouter:
    router = APIRouter()

    async def _page(request: Request, error: str | None = None, form: dict[str, str] | None = None,
                    status: int = 200) -> Response:
        now = clock()
        states = alerts.states if alerts is not None else await run_in_threadpool(alert_store.load_alert_states)
        muted = getattr(alerts, "muted", {}) if alerts is not None else {}
        active: list[dict[str, Any]] = sorted(
            ({"fingerprint": s.fingerprint, "state": s.state, "labels": dict(s.labels), "annotations": dict(s.annotations),
              "value": s.value, "since": _when(s.fired_at or s.active_since), "muted": muted.get(s.fingerprint)}
             for s in states.values() if s.state in ("pending", "firing")),
            key=lambda a: (a["state"] != "firing", str(a["labels"].get("alertname", ""))))
        listed = [{"id": s.id, "state": s.state(now), "matchers": s.matchers_doc(), "ends": _when(s.ends_at),
                     "created_by": s.created_by, "comment": s.comment}
                    for s in await run_in_threadpool(silences.list_silences)]
        history = [{"when": _when(t.ts), "labels": dict(t.labels), "old": t.old, "new": t.new, "value": t.value}
                   for t in await run_in_threadpool(alert_store.alert_history, None, None, 50)]
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        html = _env.get_template("alerts.html").render(
            page="alerts", active=active, silences=listed, history=history, csrf=token, error=error,
            form=form or {"matchers": "", "duration": "", "created_by": "", "comment": ""})
        resp = HTMLResponse(html, status_code=status)
        resp.headers["Cache-Control"] = "no-store"
        resp.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
        return resp

    async def _form(request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > _MAX_FORM:
            raise HTTPException(413, "form too large")
        fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(cookie, fields.get("csrf", "")):
            raise HTTPException(403, "CSRF check failed: reload the page and submit the form again")
        return fields

    @router.get("/alerts", response_class=HTMLResponse)
    async def alerts_page(request: Request) -> Response:
        return await _page(request)

    @router.post("/alerts/silences")
    async def create_silence_form(request: Request) -> Response:
        fields = await _form(request)
        form = {k: fields.get(k, "") for k in ("matchers", "duration", "created_by", "comment")}
        try:
            body = {"matchers": _matchers(form["matchers"]), "duration": form["duration"] or "2h",
                    "created_by": form["created_by"], "comment": form["comment"]}
            silence = silence_from_body(body, clock())
        except HTTPException as exc:
            return await _page(request, error=str(exc.detail), form=form, status=400)
        await run_in_threadpool(silences.create_silence, silence)
        return RedirectResponse("/alerts", status_code=303)

    @router.post("/alerts/silences/{silence_id}/expire")
    async def expire_silence_form(silence_id: str, request: Request) -> Response:
        await _form(request)
        if await run_in_threadpool(silences.expire_silence, silence_id, clock()) is None:
            raise HTTPException(404, f"no silence {silence_id!r}")
        return RedirectResponse("/alerts", status_code=303)

    return router
