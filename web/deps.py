"""What every route reads, as one typed value: ``WebContext``, and its dependency alias ``Ctx``.

``create_app`` builds one context (config, the stores, the running collector and alert engine
when there are, the clock) and every route asks for it by its signature::

    @router.get("/api/v1/certificates")
    async def certificates(ctx: Ctx) -> list[Json]: ...

The reads several routes share (summaries, certificates, GPUs, alert states) are methods here,
so the API, ``/metrics`` and the pages compute them one way.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated

from fastapi import Depends, Request
from starlette.applications import Starlette

from alerts.engine import AlertEngine
from alerts.model import AlertState
from alerts.outbox import AlertStore
from alerts.rules import value_units
from alerts.silences import SilenceStore
from collector import query
from collector.config import BackendConfig
from collector.scheduler import Collector
from collector.summary import COLUMN_KEYS, BackendSummary, Json
from dashboards.data import column_thresholds
from web.config import AppConfig

__all__ = ["Ctx", "ReloadState", "WebContext", "app_context", "get_context"]


@dataclass
class ReloadState:
    """How the last config reload went (``inferwatch_config_last_reload_*``), and the hook that
    reloads (set by the service; None where nothing can reload, e.g. tests)."""

    successful: bool = True
    last_success: float = 0.0
    error: str | None = None
    reload: Callable[[], Awaitable[tuple[bool, str]]] | None = None


@dataclass(frozen=True)
class WebContext:
    cfg: AppConfig
    reads: query.Reads
    alert_store: AlertStore
    silences: SilenceStore
    collector: Collector | None = None
    engine: AlertEngine | None = None
    clock: Callable[[], float] = field(default=time.time)
    reloads: ReloadState = field(default_factory=ReloadState)

    @cached_property
    def backends(self) -> dict[str, BackendConfig]:
        return {b.name: b for b in self.cfg.backends}

    @cached_property
    def units(self) -> dict[str, str]:
        """Rule name -> the unit of its value (``Rule.unit``; SLO burn-rate alerts: a factor)."""
        if self.engine is not None:
            return dict(self.engine.units)
        return value_units(self.cfg.rules_in_force, (b.rule for b in self.cfg.burn_rules))

    @cached_property
    def thresholds(self) -> dict[str, dict[str, float | None]]:
        """Per backend and fleet-table column, the threshold of the alert rules in force."""
        return column_thresholds(self.cfg.rules_in_force, self.cfg.backends, list(COLUMN_KEYS))

    @property
    def local_host(self) -> str | None:
        """This machine's name as NVML reports it (None without a collector: ``socket``'s)."""
        return self.collector.host if self.collector is not None else None

    # -- alerts -------------------------------------------------------------------------------
    def alert_states(self) -> Mapping[str, AlertState]:
        """The engine's states when it runs here, else the last ones it stored."""
        return self.engine.states if self.engine is not None else self.alert_store.load_alert_states()

    def muted(self) -> Mapping[str, str]:
        """fingerprint -> why it sends nothing (silenced by <id>, inhibited), as of the last round."""
        return self.engine.muted if self.engine is not None else {}

    # -- backends, certificates, GPUs ---------------------------------------------------------
    def summaries(self, window: float, now: float | None = None) -> list[BackendSummary]:
        return query.summaries(self.reads, self.cfg.backends, self.clock() if now is None else now, window,
                               self.local_host)

    def summary(self, b: BackendConfig, window: float) -> BackendSummary:
        """One backend's summary, reading only its rows."""
        now = self.clock()
        data = query.WindowData.fetch(self.reads, now, window, [b.name], [b.name] if b.probe is not None else [])
        return query.with_gpu_memory(self.reads.observations, [(b, query.backend_summary(data, b))], now, window,
                                     self.local_host)[0]

    def certificates(self) -> list[Json]:
        now = self.clock()
        return [query.certificate_view(r, now) for r in self.reads.observations.certificate_results()]

    def gpus(self, window: float) -> list[Json]:
        """Latest reading of every GPU heard from within ``window``; plus one entry per GPU
        source that is off (local NVML: ``enabled: false`` and why) or failing (its error)."""
        out: list[Json] = [{**query.gpu_view(ts, g), "enabled": True}
                           for ts, g in self.reads.observations.latest_gpus(self.clock() - window)]
        if self.collector is not None:
            status = self.collector.gpu_status()
            if not status.nvml_enabled:
                out.append({"source": "nvml", "host": status.host, "enabled": False, "reason": status.nvml_reason})
            for source, error in sorted(status.errors.items()):
                if error:
                    out.append({"source": source, "enabled": True, "error": error})
        return out


def app_context(app: Starlette) -> WebContext:
    """The app's current context (``create_app`` sets it; a config reload replaces it)."""
    ctx = app.state.inferwatch
    if not isinstance(ctx, WebContext):  # anything else is a wiring bug
        raise TypeError("app.state.inferwatch is not a WebContext; build the app with web.app.create_app")
    return ctx


def get_context(request: Request) -> WebContext:
    return app_context(request.app)


#: A route parameter ``ctx: Ctx`` receives the app's ``WebContext``.
Ctx = Annotated[WebContext, Depends(get_context)]
