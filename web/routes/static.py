"""``/static/*``: the dashboard's own script and stylesheet, and ``plotly.min.js`` from the
installed ``plotly`` package (the dashboard works offline, in an air-gapped cluster: no CDN)."""

from __future__ import annotations

import functools
import gzip
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

router = APIRouter()

STATIC = Path(__file__).resolve().parent.parent / "static"
_TYPES = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8",
          "apidocs.js": "text/javascript; charset=utf-8"}


@functools.cache
def _plotly_js() -> tuple[bytes, bytes]:
    """plotly.min.js as is and gzip-compressed once (4.8 MB -> about 1.4 MB on the wire)."""
    raw = resources.files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()
    return raw, gzip.compress(raw, compresslevel=9, mtime=0)


@functools.cache
def _asset(filename: str) -> tuple[bytes, bytes]:
    raw = (STATIC / filename).read_bytes()
    return raw, gzip.compress(raw, compresslevel=9, mtime=0)


def _answer(request: Request, bodies: tuple[bytes, bytes], media: str, max_age: int) -> Response:
    """The compressed body to a client that accepts gzip (every browser), else the plain one;
    static files only (pages and API answers are not compressed: no BREACH-style leaks)."""
    headers = {"Cache-Control": f"public, max-age={max_age}", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        return Response(bodies[1], media_type=media, headers={**headers, "Content-Encoding": "gzip"})
    return Response(bodies[0], media_type=media, headers=headers)


@router.get("/static/plotly.min.js")
async def plotly_js(request: Request) -> Response:
    bodies = await run_in_threadpool(_plotly_js)
    return _answer(request, bodies, "text/javascript; charset=utf-8", 86400)


@router.get("/static/{filename}")
async def static(filename: str, request: Request) -> Response:
    media = _TYPES.get(filename)
    if media is None:
        raise HTTPException(404, "not found")
    return _answer(request, await run_in_threadpool(_asset, filename), media, 300)
