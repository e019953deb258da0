"""The backends API: summaries over a window (``/api/v1/backends``, shape in
``collector.summary``) and one signal's series (``/api/v1/backends/{name}/series``)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool

from collector import query
from collector.summary import Json
from core import conventions as c
from web.deps import Ctx
from web.params import duration

router = APIRouter()
MAX_POINTS = 11_000


@router.get("/api/v1/backends", response_model=list[Json])
async def list_backends(ctx: Ctx, window: str = "5m") -> Response:
    """Serialised straight from the summaries' ``to_json`` (already JSON values): validating a
    thousand of them against ``list[Json]`` took longer than computing them."""
    w = duration("window", window)
    docs = [s.to_json() for s in await run_in_threadpool(ctx.summaries, w)]
    return Response(to_json(docs, inf_nan_mode="null"), media_type="application/json")


@router.get("/api/v1/backends/{name}")
async def get_backend(ctx: Ctx, name: str, window: str = "5m") -> Json:
    b = ctx.backends.get(name)
    if b is None:
        raise HTTPException(404, f"no backend named {name!r}")
    w = duration("window", window)
    return (await run_in_threadpool(ctx.summary, b, w)).to_json()


@router.get("/api/v1/backends/{name}/series")
async def get_series(
    ctx: Ctx,
    name: str,
    signal: str = Query(..., description="a normalised signal, or 'up'"),
    quantile: float | None = Query(None, ge=0.0, le=1.0),
    window: str = "1h",
    step: str = "1m",
    model: str | None = None,
) -> Json:
    if name not in ctx.backends:
        raise HTTPException(404, f"no backend named {name!r}")
    if signal not in c.SIGNALS and signal != "up":
        raise HTTPException(400, f"signal: unknown signal {signal!r}; expected one of {', '.join([*c.SIGNALS, 'up'])}")
    w, s = duration("window", window), duration("step", step)
    if w / s > MAX_POINTS:
        raise HTTPException(400, f"step: {window}/{step} gives more than {MAX_POINTS} points; use a larger step")
    if quantile is not None and c.SIGNALS.get(signal) != "histogram":
        raise HTTPException(400, f"quantile: only histogram signals have quantiles; {signal!r} is a {c.SIGNALS.get(signal, 'status')}")
    points = await run_in_threadpool(query.series, ctx.reads.metrics, name, signal, ctx.clock(), w, s, quantile, model)
    return {"backend": name, "signal": signal, "quantile": quantile, "model": model, "step_seconds": s,
            "points": [[t, v] for t, v in points]}
