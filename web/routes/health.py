"""``/healthz`` (the process answers) and ``/readyz`` (the store answers, the collector started
and its writes succeed: not ready while the writer's batches fail, e.g. on a full disk); both
open even when auth is on."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from web.deps import Ctx

router = APIRouter()


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(ctx: Ctx) -> JSONResponse:
    problems = []
    try:
        await run_in_threadpool(ctx.reads.metrics.latest_status)
    except Exception as exc:  # the store is what readiness depends on
        problems.append(f"store: {type(exc).__name__}")
    if ctx.collector is not None and not ctx.collector.ready.is_set():
        problems.append("collector: starting")
    if ctx.collector is not None and ctx.collector.failing_since is not None:
        problems.append(f"collector: writes failing for {ctx.clock() - ctx.collector.failing_since:.0f}s "
                        f"({ctx.collector.failing_reason})")
    if problems:
        return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})
