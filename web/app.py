"""The FastAPI application, built by ``create_app``: one router per resource (``web/routes``),
auth and security headers (``web/security.py``), ``/metrics`` collectors (``web/metrics.py``).

``create_app`` takes the parsed config, the stores it reads and writes, and optionally the
running collector and alert engine (for their live state); it starts nothing by itself, so tests
build their own app around their own stores. Routes receive it all as one ``WebContext``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from alerts.engine import AlertEngine
from alerts.outbox import AlertStore
from alerts.silences import SilenceStore
from collector.query import Reads
from collector.scheduler import Collector
from core.build import VERSION
from web import security
from web.config import AppConfig
from web.deps import ReloadState, WebContext, app_context
from web.metrics import AlertMetrics, FleetCollector
from web.routes import (
    alert_pages,
    audits,
    backends,
    certificates,
    gpus,
    health,
    lifecycle,
    metrics,
    pages,
    silences,
    slos,
    static,
)
from web.routes import alerts as alerts_api

__all__ = ["create_app", "reconfigure_app"]


def create_app(cfg: AppConfig, reads: Reads, alert_store: AlertStore, silence_store: SilenceStore,
               collector: Collector | None = None, clock: Callable[[], float] = time.time,
               alerts: AlertEngine | None = None) -> FastAPI:
    # FastAPI's Swagger UI loads its script from a CDN, which our CSP (and an offline cluster)
    # blocks: /api/docs is our own page over the same OpenAPI document (web/routes/pages.py)
    app = FastAPI(title="inferwatch", version=VERSION, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json")
    ctx = WebContext(cfg, reads, alert_store, silence_store, collector, alerts, clock, ReloadState(last_success=clock()))
    app.state.inferwatch = ctx
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(lambda: app_context(app)))
    if alerts is not None:
        registry.register(AlertMetrics(alerts))
    app.state.registry = registry
    security.install(app, lambda: app_context(app).cfg.web.auth)
    for module in (health, lifecycle, metrics, backends, alerts_api, silences, slos, gpus, certificates, audits,
                   alert_pages, pages, static):
        # the OpenAPI document (and /api/docs) describes the API, not the HTML pages and assets
        app.include_router(module.router, include_in_schema=module not in (alert_pages, pages, static))
    app.include_router(audits.pages, include_in_schema=False)
    return app


def reconfigure_app(app: FastAPI, cfg: AppConfig) -> None:
    """Serve a reloaded config: pages, API, /metrics and authentication read it from the next
    request on (the listen address is the one exception: it needs a restart)."""
    app.state.inferwatch = replace(app_context(app), cfg=cfg)
