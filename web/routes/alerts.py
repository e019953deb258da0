"""``GET /api/v1/alerts``: the active alerts and the history of transitions."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from alerts.model import AlertState, State, Transition
from collector.summary import Json
from web.deps import Ctx
from web.params import duration

router = APIRouter()
STATES: tuple[State, ...] = ("pending", "firing", "resolved", "inactive")


def alert_view(s: AlertState) -> Json:
    return {"fingerprint": s.fingerprint, "rule": s.rule, "state": s.state, "labels": dict(s.labels),
            "annotations": dict(s.annotations), "value": s.value, "active_since": s.active_since,
            "fired_at": s.fired_at, "resolved_at": s.resolved_at}


def transition_view(t: Transition) -> Json:
    return {"fingerprint": t.fingerprint, "rule": t.rule, "from": t.old, "to": t.new, "ts": t.ts,
            "labels": dict(t.labels), "annotations": dict(t.annotations), "value": t.value,
            "active_since": t.active_since, "fired_at": t.fired_at}


@router.get("/api/v1/alerts")
async def get_alerts(ctx: Ctx, state: str | None = None, since: str | None = None,
                     limit: int = Query(200, ge=1, le=5000)) -> Json:
    """Active alerts (pending, firing) and the history of transitions, newest first.
    ``state`` filters both (pending | firing | resolved | inactive); ``since`` is a duration
    back from now (``1h``) or Unix seconds."""
    wanted: State | None = None
    if state is not None:
        wanted = next((s for s in STATES if s == state), None)
        if wanted is None:
            raise HTTPException(400, f"state: unknown state {state!r}; expected pending, firing, resolved or inactive")
    since_ts: float | None = None
    if since is not None:
        try:
            since_ts = float(since)
        except ValueError:
            since_ts = ctx.clock() - duration("since", since)
    states = await run_in_threadpool(ctx.alert_states)
    active = [s for s in states.values() if s.state in ("pending", "firing") and (wanted is None or s.state == wanted)]
    active.sort(key=lambda a: (a.state != "firing", a.labels.get("alertname", "")))
    history = await run_in_threadpool(ctx.alert_store.alert_history, wanted, since_ts, limit)
    return {"active": [alert_view(s) for s in active], "history": [transition_view(t) for t in history]}
