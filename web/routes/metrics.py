"""``GET /metrics``: Prometheus text exposition of ``web.metrics``' collectors."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

router = APIRouter()


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    registry = request.app.state.registry
    if not isinstance(registry, CollectorRegistry):
        raise TypeError("app.state.registry is not a CollectorRegistry; build the app with web.app.create_app")
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
