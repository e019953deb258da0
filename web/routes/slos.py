"""``GET /api/v1/slos``: every configured SLO's state (``alerts.slo_data.slo_view``)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from alerts.slo_data import slo_view
from collector.summary import Json
from web.deps import Ctx

router = APIRouter()


@router.get("/api/v1/slos")
async def slos(ctx: Ctx) -> list[Json]:
    """Every configured SLO: achieved SLI (with its range when estimated), error budget,
    burn rate per alert window and which multi-window burn-rate alerts hold now."""
    now = ctx.clock()
    return await run_in_threadpool(lambda: [slo_view(m, ctx.reads.metrics, ctx.cfg, now) for m in ctx.cfg.slos])
