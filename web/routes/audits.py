"""Deployment audits (``audits:``): ``GET /api/v1/audits`` (the newest run of every endpoint),
``GET /api/v1/audits/{target}`` (its runs), and the pages ``/audits`` and ``/audits/{target}``
(the checklist with each check's history and since when it has not passed). A target is the
audit's ``name`` or, by default, its URL: slashes in it are fine (``{target:path}``)."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from collector.summary import Json
from core.audit import AuditResult
from dashboards.audits import HISTORY_CELLS, by_group, checklist, run_json
from web.deps import Ctx, WebContext
from web.render import error_page, html

router = APIRouter()
pages = APIRouter()

#: how far back an endpoint's history reaches, and at most how many runs it holds
HISTORY_SECONDS = 7 * 86400.0
HISTORY_RUNS = 200


def _history(ctx: WebContext, target: str) -> list[AuditResult]:
    return ctx.reads.observations.audit_history(target, ctx.clock() - HISTORY_SECONDS, HISTORY_RUNS)


@router.get("/api/v1/audits")
async def audits(ctx: Ctx) -> list[Json]:
    """The newest run of every audited endpoint."""
    return [run_json(a) for a in await run_in_threadpool(ctx.reads.observations.latest_audits)]


@router.get("/api/v1/audits/{target:path}")
async def audit_runs(ctx: Ctx, target: str) -> Json:
    """The runs of one endpoint over the last 7 days (at most 200), newest first."""
    runs = await run_in_threadpool(_history, ctx, target)
    if not runs:
        raise HTTPException(404, f"no audit named {target!r} ran in the last 7 days; GET /api/v1/audits lists them")
    return {"target": target, "url": runs[0].url, "runs": [run_json(a) for a in runs]}


def link(target: str) -> str:
    """The page of one endpoint: the target percent-encoded whole (a URL's ``/``, ``:``, ``?``)."""
    return "/audits/" + quote(target, safe="")


class EndpointRow(NamedTuple):
    """One row of ``/audits``: an endpoint's newest run, its counts and its page."""

    run: AuditResult
    counts: dict[str, int]
    link: str


@pages.get("/audits", response_class=HTMLResponse)
async def audits_page(ctx: Ctx) -> Response:
    latest = await run_in_threadpool(ctx.reads.observations.latest_audits)
    rows = [EndpointRow(a, a.counts(), link(a.target)) for a in latest]
    return html("audits.html", page="audits", rows=rows, now=ctx.clock())


@pages.get("/audits/{target:path}", response_class=HTMLResponse)
async def audit_page(ctx: Ctx, target: str) -> Response:
    runs = await run_in_threadpool(_history, ctx, target)
    if not runs:
        return error_page(404, f"No audit named {target!r} ran in the last 7 days.", "/audits", "Back to the audits")
    return html("audit.html", page="audits", run=runs[0], counts=runs[0].counts(), groups=by_group(checklist(runs)),
                cells=min(len(runs), HISTORY_CELLS), now=ctx.clock())
