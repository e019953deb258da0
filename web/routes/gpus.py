"""``GET /api/v1/gpus``: the latest reading of every GPU."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from collector.summary import Json
from web.deps import Ctx
from web.params import duration

router = APIRouter()


@router.get("/api/v1/gpus")
async def gpus(ctx: Ctx, window: str = "5m") -> list[Json]:
    """Latest reading of every GPU heard from within ``window``; when local NVML is off, one
    more entry ``{"source": "nvml", "host", "enabled": false, "reason"}`` says why."""
    return await run_in_threadpool(ctx.gpus, duration("window", window))
