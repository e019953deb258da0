"""Shared pieces for end-to-end tests: a settable clock, a fleet + collector + API harness."""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from collector.live import LiveWindow
from collector.query import Reads
from collector.scheduler import Collector
from collector.totals import Totals
from inferwatch.config import Config, parse
from inferwatch.stores import Stores
from sim.server import SimFleet
from sim.state import SimBackend
from web.app import create_app


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Harness:
    clock: Clock
    fleet: SimFleet
    cfg: Config
    store: Stores
    collector: Collector
    api: httpx.AsyncClient

    async def backends(self, window: str = "5m") -> dict[str, dict[str, Any]]:
        resp = await self.api.get("/api/v1/backends", params={"window": window})
        assert resp.status_code == 200, resp.text
        return {b["name"]: b for b in resp.json()}


def config_for(fleet: SimFleet, storage: str, engines: dict[str, str],
               backend_extra: dict[str, dict[str, Any]] | None = None, **extra: Any) -> Config:
    data: dict[str, Any] = {
        "storage": storage,
        "scrape_interval": "60s",
        "scrape_timeout": extra.pop("scrape_timeout", "2s"),
        "gpus": extra.pop("gpus", {"nvml": "off"}),
        "backends": [{"name": n, "engine": e, "url": fleet.url(n), "labels": {"team": "e2e"},
                      **(backend_extra or {}).get(n, {})} for n, e in engines.items()],
    }
    data.update(extra)
    return parse(data, "<e2e>")


@contextlib.asynccontextmanager
async def harness(backends: Sequence[SimBackend], storage: str, clock: Clock, *, fleet_ssl: Any = None,
                  nvml: Any = None, **extra: Any) -> AsyncIterator[Harness]:
    """Fleet + collector + API; ``nvml`` (a fake pynvml) turns local GPU reading on."""
    fleet = SimFleet(list(backends), clock=clock, ssl=fleet_ssl)
    await fleet.start()
    if nvml is not None:
        extra["gpus"] = {"nvml": "on"}
    cfg = config_for(fleet, storage, {b.name: b.engine for b in backends}, **extra)
    store = Stores.open(cfg.storage)
    store.migrate()
    # as the service runs: the newest minutes and the running totals in memory (collector.live)
    live = LiveWindow(300.0, started=clock(), totals=Totals.exported(clock()))
    collector = Collector(cfg, store.metrics, store.observations, clock=clock, nvml=nvml, live=live)
    if nvml is not None:
        collector.start_nvml()
    app = create_app(cfg, Reads(store.metrics, store.observations, live), store.alerts, store.silences, collector,
                     clock=clock)
    api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://inferwatch")
    try:
        yield Harness(clock, fleet, cfg, store, collector, api)
    finally:
        await api.aclose()
        await collector.stop()
        await fleet.stop()
        store.close()


def bucket_of(value: float, bounds: Sequence[float]) -> tuple[float, float]:
    """The (lower, upper] bucket of the engine's layout holding ``value``."""
    i = bisect.bisect_left(bounds, value)
    lower = bounds[i - 1] if i > 0 else 0.0
    upper = bounds[i] if i < len(bounds) else float("inf")
    return lower, upper
