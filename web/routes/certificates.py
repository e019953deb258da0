"""``GET /api/v1/certificates``: the latest check of every TLS target."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from collector.summary import Json
from web.deps import Ctx

router = APIRouter()


@router.get("/api/v1/certificates")
async def certificates(ctx: Ctx) -> list[Json]:
    return await run_in_threadpool(ctx.certificates)
