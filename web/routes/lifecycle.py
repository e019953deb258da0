"""``POST /-/reload`` (and ``PUT``): load the config file again and apply it, as Prometheus's and
Alertmanager's lifecycle endpoint; protected like the API's other writes (a bearer token when
``web.auth`` is on; no cross-site form posts). 200 when applied; 500 with the problems when the
new config is refused (the running one stays); 503 where nothing can reload."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from web.deps import Ctx

router = APIRouter()


@router.api_route("/-/reload", methods=["POST", "PUT"])
async def reload(ctx: Ctx) -> JSONResponse:
    """Load the config file again and apply it without a restart (as SIGHUP does). 200
    ``{status: success, message}``; 500 ``{status: error, error}`` listing every problem of a
    refused config (the running one stays)."""
    hook = ctx.reloads.reload
    if hook is None:
        return JSONResponse({"status": "error", "error": "this process cannot reload its config"}, status_code=503)
    ok, message = await hook()
    if not ok:
        return JSONResponse({"status": "error", "error": message}, status_code=500)
    return JSONResponse({"status": "success", "message": message})
