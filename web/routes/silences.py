"""Silence endpoints (storage ``alerts/silences.py``, semantics in ``alerts/routing.py``)::

    GET    /api/v1/silences            every silence, newest first, with its state
                                       (pending | active | expired); ?state= filters
    POST   /api/v1/silences            {"matchers": {"backend": "vllm-a", "alertname": "=~TTFT.*"},
                                        "duration": "2h" | "ends_at": <unix seconds or ISO 8601>,
                                        "starts_at": <optional, default now>,
                                        "created_by": "alice", "comment": "deploy"}
                                       -> 201 and the silence; 400 with the field at fault
    DELETE /api/v1/silences/{id}       expire now -> the silence; 404 when unknown

The alert engine reads the active silences every evaluation, so a change takes effect at the
next one. Behind the app's auth like the rest of ``/api/v1``.
"""

from __future__ import annotations

import math
from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import JsonValue
from starlette.concurrency import run_in_threadpool

from alerts.matchers import RoutingError
from alerts.model import Silence, new_silence
from collector.summary import Json
from core.units import parse_duration
from web.deps import Ctx, WebContext

__all__ = ["router", "silence_from_body"]

router = APIRouter()
_FIELDS = {"matchers", "duration", "ends_at", "starts_at", "created_by", "comment"}
_MAX_SECONDS = 366 * 86400.0


def _time(name: str, value: JsonValue) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if dt.tzinfo is None:
                raise HTTPException(400, f"{name}: give a time zone (e.g. 2026-01-02T03:04:05Z)")
            return dt.timestamp()
    raise HTTPException(400, f"{name}: expected Unix seconds or an ISO 8601 time, got {value!r}")


def silence_from_body(body: Json, now: float) -> Silence:
    """A new ``Silence`` from an API (or form) body; ``HTTPException(400)`` naming the field."""
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise HTTPException(400, f"{unknown[0]}: unknown field; expected {', '.join(sorted(_FIELDS))}")
    starts_at = _time("starts_at", body["starts_at"]) if body.get("starts_at") is not None else now
    if ("duration" in body) == ("ends_at" in body):
        raise HTTPException(400, "duration: give either duration (e.g. 2h) or ends_at, not both nor neither")
    if "duration" in body:
        try:
            seconds = parse_duration(body["duration"])
        except ValueError as exc:
            raise HTTPException(400, f"duration: {exc}") from None
        if seconds <= 0:
            raise HTTPException(400, "duration: must be greater than 0")
        ends_at = starts_at + seconds
    else:
        ends_at = _time("ends_at", body["ends_at"])
    if ends_at <= now:
        raise HTTPException(400, "ends_at: must be in the future")
    if ends_at - starts_at > _MAX_SECONDS:
        raise HTTPException(400, "duration: at most 366d")
    created_by, comment = body.get("created_by"), body.get("comment", "")
    if not isinstance(created_by, str) or not created_by.strip():
        raise HTTPException(400, "created_by: required; who creates this silence")
    if not isinstance(comment, str):
        raise HTTPException(400, "comment: expected a string")
    try:
        silence = new_silence(body.get("matchers"), starts_at=starts_at, ends_at=ends_at,
                              created_by=created_by.strip(), comment=comment, now=now)
    except RoutingError as exc:
        raise HTTPException(400, "; ".join(exc.problems)) from None
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return silence


def view(ctx: WebContext, s: Silence, now: float) -> Json:
    """A silence as the API shows it; with the engine running here, also the fingerprints of the
    alerts it mutes right now (``silenced_alerts``)."""
    doc: Json = {"id": s.id, "matchers": dict(s.matchers_doc()), "starts_at": s.starts_at, "ends_at": s.ends_at,
                 "created_by": s.created_by, "comment": s.comment, "created_at": s.created_at,
                 "updated_at": s.updated_at, "state": s.state(now)}
    if ctx.engine is not None:
        why = f"silenced by {s.id}"
        silenced: list[JsonValue] = [fp for fp in sorted(fp for fp, m in ctx.muted().items() if m == why)]
        doc["silenced_alerts"] = silenced
    return doc


@router.get("/api/v1/silences")
async def list_silences(ctx: Ctx, state: str | None = None) -> list[Json]:
    if state is not None and state not in ("pending", "active", "expired"):
        raise HTTPException(400, f"state: unknown state {state!r}; expected pending, active or expired")
    now = ctx.clock()
    out = [view(ctx, s, now) for s in await run_in_threadpool(ctx.silences.list_silences)]
    return [x for x in out if state is None or x["state"] == state]


@router.post("/api/v1/silences", status_code=201)
async def create_silence(ctx: Ctx, request: Request) -> JSONResponse:
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # (RecursionError: nested deeper than the parser goes)
        raise HTTPException(400, "body: expected a JSON object") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "body: expected a JSON object")
    now = ctx.clock()
    silence = silence_from_body(body, now)
    await run_in_threadpool(ctx.silences.create_silence, silence)
    return JSONResponse(view(ctx, silence, now), status_code=201)


@router.delete("/api/v1/silences/{silence_id}")
async def expire_silence(ctx: Ctx, silence_id: str) -> Json:
    now = ctx.clock()
    s = await run_in_threadpool(ctx.silences.expire_silence, silence_id, now)
    if s is None:
        raise HTTPException(404, f"no silence with id {silence_id!r}")
    return view(ctx, s, now)
