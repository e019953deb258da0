"""``/static/*``: the dashboard's own script and stylesheet, and ``plotly.min.js`` from the
installed ``plotly`` package (the dashboard works offline, in an air-gapped cluster: no CDN)."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

router = APIRouter()

STATIC = Path(__file__).resolve().parent.parent / "static"
_TYPES = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8",
          "apidocs.js": "text/javascript; charset=utf-8"}


@functools.cache
def _plotly_js() -> bytes:
    return resources.files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()


@router.get("/static/plotly.min.js")
async def plotly_js() -> Response:
    body = await run_in_threadpool(_plotly_js)
    return Response(body, media_type="text/javascript; charset=utf-8", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/static/{filename}")
async def static(filename: str) -> Response:
    media = _TYPES.get(filename)
    if media is None:
        raise HTTPException(404, "not found")
    return Response((STATIC / filename).read_bytes(), media_type=media, headers={"Cache-Control": "public, max-age=300"})
