"""The FastAPI application: JSON API, ``/metrics``, health. Built by ``create_app``.

``create_app`` takes the parsed config, an open store and (optionally) the running collector;
it starts nothing by itself, so tests build their own app around their own store.
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from alerts.outbox import AlertStore
from alerts.silences import SilenceStore
from collector import query
from core import conventions as c
from core.units import parse_duration
from web.alerts_api import alerts_router
from web.config import AppConfig
from web.dashboard import dashboard_router
from web.metrics import AlertMetrics, FleetCollector
from web.pages import pages_router

MAX_POINTS = 11_000
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def _duration(name: str, value: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise HTTPException(400, f"{name}: {exc}") from None
    if seconds <= 0:
        raise HTTPException(400, f"{name}: must be greater than 0")
    return seconds


def create_app(cfg: AppConfig, reads: query.Reads, alert_store: AlertStore, silences: SilenceStore, collector: Any = None,
               clock: Callable[[], float] = time.time, alerts: Any = None) -> FastAPI:
    app = FastAPI(title="inferwatch", version="0.1.0", docs_url="/api/docs", openapi_url="/api/openapi.json")
    backends = {b.name: b for b in cfg.backends}
    auth = cfg.web.auth
    tokens = [t for t in auth.tokens if t]
    users = [(u.user, u.password) for u in auth.basic]
    open_paths = {"/healthz", "/readyz"} | (set() if auth.protect_metrics else {"/metrics"})

    def _allowed(header: str) -> bool:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer":
            return any(hmac.compare_digest(credentials.encode(), t.encode()) for t in tokens)
        if scheme.lower() == "basic" and users:
            try:
                user, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return any(hmac.compare_digest(user.encode(), u.encode()) & hmac.compare_digest(password.encode(), p.encode())
                       for u, p in users)
        return False

    @app.middleware("http")
    async def _auth_and_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if (tokens or users) and request.url.path not in open_paths:
            if not _allowed(request.headers.get("authorization", "")):
                challenge = 'Basic realm="inferwatch", charset="UTF-8"' if users else "Bearer"
                return JSONResponse({"detail": "authentication required"}, status_code=401,
                                    headers={"WWW-Authenticate": challenge})
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Content-Security-Policy", CSP)
        if request.url.scheme == "https":
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.url.path.startswith("/api/v1/") or request.url.path == "/metrics":
            response.headers["Cache-Control"] = "no-store"
        return response

    local_host = collector.sources.host if collector is not None else None

    def _summaries(window: float) -> list[dict[str, Any]]:
        return query.summaries(reads, cfg.backends, clock(), window, local_host)

    registry = CollectorRegistry(auto_describe=False)
    health = (lambda: collector.health) if collector is not None else None
    def _certs() -> list[dict[str, Any]]:
        now = clock()
        return [query.certificate_view(r, now) for r in reads.observations.certificate_results()]

    def _gpus(window: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{**query.gpu_view(ts, g), "enabled": True}
                                     for ts, g in reads.observations.latest_gpus(clock() - window)]
        if collector is not None:
            src = collector.sources
            if not src.nvml_enabled:
                out.append({"source": "nvml", "host": src.host, "enabled": False, "reason": src.nvml_reason})
            for source, error in sorted(collector.gpu_errors.items()):
                if error:
                    out.append({"source": source, "enabled": True, "error": error})
        return out

    registry.register(FleetCollector(lambda: _summaries(300.0), health, cfg.backends, _certs, lambda: _gpus(300.0)))
    if alerts is not None:
        registry.register(AlertMetrics(alerts))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        problems = []
        try:
            await run_in_threadpool(reads.metrics.latest_status)
        except Exception as exc:  # the store is what readiness depends on
            problems.append(f"store: {type(exc).__name__}")
        if collector is not None and not collector.ready.is_set():
            problems.append("collector: starting")
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics")
    async def metrics() -> Response:
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/v1/backends")
    async def list_backends(window: str = "5m") -> list[dict[str, Any]]:
        return await run_in_threadpool(_summaries, _duration("window", window))

    @app.get("/api/v1/backends/{name}")
    async def get_backend(name: str, window: str = "5m") -> dict[str, Any]:
        b = backends.get(name)
        if b is None:
            raise HTTPException(404, f"no backend named {name!r}")
        w = _duration("window", window)
        now = clock()

        def one() -> dict[str, Any]:
            data = query.WindowData.fetch(reads, now, w, [name], [name] if b.probe is not None else [])
            summary = query.backend_summary(data, b)
            query.add_gpu_memory(reads.observations, [(b, summary)], now, w, local_host)
            return summary

        return await run_in_threadpool(one)

    @app.get("/api/v1/backends/{name}/series")
    async def get_series(
        name: str,
        signal: str = Query(..., description="a normalised signal, or 'up'"),
        quantile: float | None = Query(None, ge=0.0, le=1.0),
        window: str = "1h",
        step: str = "1m",
        model: str | None = None,
    ) -> dict[str, Any]:
        if name not in backends:
            raise HTTPException(404, f"no backend named {name!r}")
        if signal not in c.SIGNALS and signal != "up":
            raise HTTPException(400, f"signal: unknown signal {signal!r}; expected one of {', '.join([*c.SIGNALS, 'up'])}")
        w, s = _duration("window", window), _duration("step", step)
        if w / s > MAX_POINTS:
            raise HTTPException(400, f"step: {window}/{step} gives more than {MAX_POINTS} points; use a larger step")
        if quantile is not None and c.SIGNALS.get(signal) != "histogram":
            raise HTTPException(400, f"quantile: only histogram signals have quantiles; {signal!r} is a {c.SIGNALS.get(signal, 'status')}")
        points = await run_in_threadpool(query.series, reads.metrics, name, signal, clock(), w, s, quantile, model)
        return {"backend": name, "signal": signal, "quantile": quantile, "model": model, "step_seconds": s,
                "points": [[t, v] for t, v in points]}

    @app.get("/api/v1/certificates")
    async def certificates() -> list[dict[str, Any]]:
        return await run_in_threadpool(_certs)

    @app.get("/api/v1/gpus")
    async def gpus(window: str = "5m") -> list[dict[str, Any]]:
        """Latest reading of every GPU heard from within ``window``; when local NVML is off, one
        more entry ``{"source": "nvml", "host", "enabled": false, "reason"}`` says why."""
        return await run_in_threadpool(_gpus, _duration("window", window))

    @app.get("/api/v1/alerts")
    async def get_alerts(state: str | None = None, since: str | None = None, limit: int = Query(200, ge=1, le=5000)
                         ) -> dict[str, Any]:
        """Active alerts (pending, firing) and the history of transitions, newest first.
        ``state`` filters both (pending | firing | resolved | inactive); ``since`` is a duration
        back from now (``1h``) or Unix seconds."""
        if state is not None and state not in ("pending", "firing", "resolved", "inactive"):
            raise HTTPException(400, f"state: unknown state {state!r}; expected pending, firing, resolved or inactive")
        since_ts: float | None = None
        if since is not None:
            try:
                since_ts = float(since)
            except ValueError:
                since_ts = clock() - _duration("since", since)
        states = alerts.states if alerts is not None else await run_in_threadpool(alert_store.load_alert_states)
        active = [query.alert_view(s) for s in states.values() if s.state in ("pending", "firing")
                  and (state is None or s.state == state)]
        history = await run_in_threadpool(alert_store.alert_history, state, since_ts, limit)  # type: ignore[arg-type]
        return {"active": sorted(active, key=lambda a: (a["state"] != "firing", a["labels"].get("alertname", ""))),
                "history": [query.transition_view(t) for t in history]}

    app.include_router(alerts_router(reads, silences, alerts, clock, cfg))
    app.include_router(pages_router(alert_store, silences, alerts, clock))

    app.include_router(dashboard_router(cfg, reads, alert_store, collector, alerts, clock))

    return app

