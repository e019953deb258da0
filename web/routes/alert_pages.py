"""The ``/alerts`` page: firing and pending alerts, silences (created and expired from the
browser) and history.

Jinja2 autoescaping is on (a label value ``<script>`` renders as text). Every POST is protected
against CSRF with a double-submit token: ``GET`` sets a random token in a ``SameSite=Strict``,
``HttpOnly`` cookie and in the form; a POST whose form token does not equal the cookie's is
refused (403) — another site can neither read the cookie nor make the browser send it.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from collector.summary import Json
from core.formatting import fmt_unit
from web.deps import Ctx, WebContext
from web.render import env, when
from web.routes.silences import silence_from_body

router = APIRouter()

CSRF_COOKIE = "inferwatch_csrf"
_MAX_FORM = 64 * 1024


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


async def _page(ctx: WebContext, request: Request, error: str | None = None, form: dict[str, str] | None = None,
                status: int = 200) -> Response:
    now = ctx.clock()
    states = await run_in_threadpool(ctx.alert_states)
    muted = ctx.muted()
    units = ctx.units
    shown = sorted((s for s in states.values() if s.state in ("pending", "firing")),
                   key=lambda a: (a.state != "firing", a.labels.get("alertname", "")))
    active = [{"fingerprint": s.fingerprint, "state": s.state, "labels": dict(s.labels),
               "annotations": dict(s.annotations), "value": fmt_unit(s.value, units.get(s.rule, "")),
               "since": when(s.fired_at or s.active_since), "muted": muted.get(s.fingerprint)} for s in shown]
    prefill = states.get(request.query_params.get("silence", ""))
    if form is None and prefill is not None:  # "Silence…" on an alert: its labels, ready to submit
        form = {"matchers": "\n".join(f"{k}={v}" for k, v in sorted(prefill.labels.items())), "duration": "2h",
                "created_by": "", "comment": f"silencing {prefill.labels.get('alertname', prefill.rule)}"}
    listed = [{"id": s.id, "state": s.state(now), "matchers": s.matchers_doc(), "ends": when(s.ends_at),
               "created_by": s.created_by, "comment": s.comment}
              for s in await run_in_threadpool(ctx.silences.list_silences)]
    history = [{"when": when(t.ts), "labels": dict(t.labels), "old": t.old, "new": t.new,
                "value": fmt_unit(t.value, units.get(t.rule, ""))}
               for t in await run_in_threadpool(ctx.alert_store.alert_history, None, None, 50)]
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    html = env.get_template("alerts.html").render(
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
async def alerts_page(ctx: Ctx, request: Request) -> Response:
    return await _page(ctx, request)


@router.post("/alerts/silences")
async def create_silence_form(ctx: Ctx, request: Request) -> Response:
    fields = await _form(request)
    form = {k: fields.get(k, "") for k in ("matchers", "duration", "created_by", "comment")}
    try:
        body: Json = {"matchers": dict(_matchers(form["matchers"])), "duration": form["duration"] or "2h",
                      "created_by": form["created_by"], "comment": form["comment"]}
        silence = silence_from_body(body, ctx.clock())
    except HTTPException as exc:
        return await _page(ctx, request, error=str(exc.detail), form=form, status=400)
    await run_in_threadpool(ctx.silences.create_silence, silence)
    return RedirectResponse("/alerts", status_code=303)


@router.post("/alerts/silences/{silence_id}/expire")
async def expire_silence_form(ctx: Ctx, silence_id: str, request: Request) -> Response:
    await _form(request)
    if await run_in_threadpool(ctx.silences.expire_silence, silence_id, ctx.clock()) is None:
        raise HTTPException(404, f"no silence {silence_id!r}")
    return RedirectResponse("/alerts", status_code=303)
