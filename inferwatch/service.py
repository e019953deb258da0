"""Everything ``inferwatch run`` (and ``demo``) starts for one config: the collector, the alert
engine with its dispatcher, and the web app, with one start/stop order."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import uvicorn

from alerts.engine import AlertEngine
from collector.discovery import Discoverer
from collector.live import FleetSteps, LiveWindow
from collector.query import Reads
from collector.scheduler import Collector
from collector.totals import Totals
from core import conventions as c
from dashboards.data import FLEET_CHART_WINDOW, fleet_chart_step
from inferwatch.config import Config, ConfigError, load
from inferwatch.stores import Stores
from web.app import create_app, reconfigure_app
from web.deps import app_context

log = logging.getLogger("inferwatch.service")

#: how often rollups and retention run (each pass is idempotent and cheap when there is nothing to do)
MAINTENANCE_INTERVAL = 300.0
#: at stop: what open HTTP requests and the alert engine's evaluation get, seconds
HTTP_GRACE = 2
ALERTS_GRACE = 3.0


#: the shortest and longest span kept in memory (``collector.live``)
LIVE_MIN, LIVE_MAX = 300.0, 900.0


def live_horizon(cfg: Config) -> float:
    """How much the live window keeps: the longest window a rule in force reads (the API's and
    the pages' default is 5 minutes), at most 15 minutes and never beyond raw retention (older
    data may be rolled up in the database)."""
    windows = [n.window for r in cfg.rules_in_force for n in r.needs()
               if n.window is not None and n.aggregation not in ("median", "mean")]
    longest = max([LIVE_MIN, *(w for w in windows if w <= LIVE_MAX)])
    return min(longest, cfg.retention.raw)


class Service:
    """The collector, the alert engine (with its dispatcher), the web app and the stores'
    maintenance for one config, started and stopped in one order: collector first (the engine
    evaluates what it writes), web last; on stop, alerting first, then the collector's last flush."""

    def __init__(self, cfg: Config, stores: Stores, clock: Callable[[], float] = time.time,
                 config_path: Path | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.stores = stores
        self.clock = clock
        # the newest minutes in memory: what the alert engine, the API and the pages read most
        fleet = FleetSteps(fleet_chart_step(cfg.scrape_interval), FLEET_CHART_WINDOW, (c.TTFT_SECONDS,), clock())
        self.live = LiveWindow(live_horizon(cfg), started=clock(), fleet=fleet, totals=Totals.exported(clock()))
        self.collector = Collector(cfg, stores.metrics, stores.observations, clock=clock, live=self.live)
        reads = Reads(stores.metrics, stores.observations, self.live)
        # notifications go out through their own client: it honours HTTPS_PROXY & co.
        self.http = httpx.AsyncClient()
        self.alerts = AlertEngine(cfg, reads, stores.alerts, stores.silences, self.http, clock=clock)
        self.collector.on_flush.append(self.alerts.data_arrived)
        self.app = create_app(cfg, reads, stores.alerts, stores.silences, self.collector, clock=clock,
                              alerts=self.alerts)
        self.file_cfg = cfg  # as the file says; ``cfg`` adds the discovered backends
        self.discoverer = Discoverer(cfg.discovery, self.http, base=config_path.parent if config_path else None)
        self._warned: set[str] = set()
        self._discovery: asyncio.Task[None] | None = None
        self.reloads = app_context(self.app).reloads
        if config_path is not None:
            self.reloads.reload = self.reload
        self._reload_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._alerting: asyncio.Task[None] | None = None
        self._maintenance: asyncio.Task[None] | None = None

    def server(self) -> uvicorn.Server:
        # open requests get HTTP_GRACE seconds after SIGTERM, then their connections are closed
        # (uvicorn cancels them and would log each as a traceback: not news at a stop)
        error_log = logging.getLogger("uvicorn.error")
        if not any(isinstance(f, _CancelledAtStop) for f in error_log.filters):
            error_log.addFilter(_CancelledAtStop())
        return uvicorn.Server(uvicorn.Config(self.app, host=self.cfg.web.host, port=self.cfg.web.port,
                                             log_level="warning", access_log=False,
                                             timeout_graceful_shutdown=HTTP_GRACE))

    async def start(self) -> None:
        warning = self.cfg.link_warning()
        if warning:
            log.warning("[service] %s", warning)
        if self.file_cfg.discovery:  # the first targets before the first scrape
            if await self.discoverer.refresh(self.clock()):
                await self._apply(self._merged(self.file_cfg))
            self._discovery = asyncio.create_task(self._discover(), name="discovery")
        await self.collector.start()
        self._alerting = asyncio.create_task(self.alerts.run(self._stop), name="alerts")
        self._maintenance = asyncio.create_task(self._maintain(), name="maintenance")

    def _merged(self, static: Config) -> Config:
        """``static`` plus the discovered backends whose names it does not use already."""
        found = self.discoverer.backends
        if not found:
            return static
        names = {b.name for b in static.backends}
        extra = []
        for b in found:
            if b.name in names:
                if b.name not in self._warned:
                    self._warned.add(b.name)
                    log.warning("[discovery] target %s: a backend of that name exists already; skipped", b.name)
                continue
            names.add(b.name)
            extra.append(b)
        data = static.model_dump(by_alias=True)
        data["backends"] = [*data["backends"], *(b.model_dump(by_alias=True) for b in extra)]
        return Config.model_validate(data)

    async def _apply(self, new: Config) -> tuple[list[str], list[str]]:
        """Run ``new`` from now on: collector sources, alert engine, web app."""
        started, stopped = await self.collector.reconfigure(new)
        self.alerts.reconfigure(new)
        reconfigure_app(self.app, new)
        self.cfg = new
        return started, stopped

    async def _discover(self) -> None:
        """Read the discovery sources that are due (every second at most); apply a change."""
        while True:
            await asyncio.sleep(1.0)
            try:
                if await self.discoverer.refresh(self.clock()):
                    async with self._reload_lock:
                        started, stopped = await self._apply(self._merged(self.file_cfg))
                    log.info("[discovery] %d backends now (%d discovered); started %s, stopped %s",
                             len(self.cfg.backends), len(self.discoverer.backends), len(started), len(stopped))
            except Exception:
                log.exception("[discovery] applying the discovered targets failed; retrying")

    async def reload(self) -> tuple[bool, str]:
        """Load the config file again and apply it without a restart (SIGHUP, ``POST /-/reload``):
        backends added, removed or changed (an unchanged one keeps scraping on its schedule),
        rules, SLOs, routes and notifiers. Alert states, pending timers and the outbox stay. An
        invalid file is refused with every problem logged, and the running config stays
        (``inferwatch_config_last_reload_successful`` 0). ``storage`` and ``web.listen`` need a
        restart: a change to them is reported, not applied. Returns (applied, message)."""
        if self.config_path is None:
            return False, "no config file to reload (started without one)"
        async with self._reload_lock:
            try:
                new = await asyncio.to_thread(load, self.config_path)
            except ConfigError as exc:
                self.reloads.successful, self.reloads.error = False, str(exc)
                log.error("[service.reload] refused; the running config stays:\n%s", exc)
                return False, str(exc)
            fixed = [name for name, same in (("storage", new.storage == self.cfg.storage),
                                             ("web.listen", new.web.listen == self.cfg.web.listen)) if not same]
            if new.discovery != self.file_cfg.discovery:  # new sources: read them now
                self.discoverer = Discoverer(new.discovery, self.http, base=self.discoverer.base)
                await self.discoverer.refresh(self.clock())
                if new.discovery and self._discovery is None:
                    self._discovery = asyncio.create_task(self._discover(), name="discovery")
            try:
                started, stopped = await self._apply(self._merged(new))
            except Exception as exc:  # a bug, not a bad file: say so, keep serving
                log.exception("[service.reload] applying %s failed", self.config_path)
                self.reloads.successful, self.reloads.error = False, f"applying the config failed: {exc}"
                return False, self.reloads.error
            self.file_cfg = new
            self.reloads.successful, self.reloads.error = True, None
            self.reloads.last_success = self.clock()
            message = (f"reloaded {self.config_path}: {len(self.cfg.backends)} backends, {len(self.alerts.rules)} rules, "
                       f"{len(new.slos)} SLOs; sources started {len(started)}, stopped {len(stopped)}")
            if fixed:
                message += f"; {' and '.join(fixed)} changed: restart to apply"
            log.info("[service.reload] %s", message)
            return True, message

    def stopping(self) -> None:
        """The process is going down (SIGTERM): alerting starts to wind down now, while the web
        server closes its connections; ``stop`` finishes the job."""
        self._stop.set()

    async def stop(self) -> None:
        """Stop within seconds whatever the load: maintenance is abandoned (it is idempotent and
        runs in a daemon thread: a cut-off pass is rolled back and redone next time), the alert
        engine finishes its evaluation within ``ALERTS_GRACE`` (its sends within the
        dispatcher's ``stop_grace``; what is cut off stays in the outbox), then the collector's
        last batch is written."""
        self._stop.set()
        for task in (self._maintenance, self._discovery):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._alerting is not None:
            done, _ = await asyncio.wait({self._alerting}, timeout=ALERTS_GRACE)
            if not done:
                log.warning("[service] alert engine still busy after %gs at stop; cancelled", ALERTS_GRACE)
                self._alerting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._alerting
        await self.collector.stop()
        await self.http.aclose()

    async def _maintain(self) -> None:
        """Rollups and retention of every store, every ``MAINTENANCE_INTERVAL``, in a daemon
        thread (a pass over a big store can take minutes; stopping must not wait for it)."""
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL)
            try:
                await in_daemon_thread(self.stores.maintain, self.clock())
            except Exception:
                log.exception("[service.maintenance] retention/downsampling failed; next pass in %gs",
                              MAINTENANCE_INTERVAL)


class _CancelledAtStop(logging.Filter):
    """Drops uvicorn's "Exception in ASGI application" for a request cancelled by the graceful
    shutdown's deadline; a stop then says one line ("Cancel N running task(s)…"), not a traceback
    per open request."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, asyncio.CancelledError)


async def in_daemon_thread(fn: Callable[[float], None], arg: float) -> None:
    """``fn(arg)`` in a daemon thread of its own, awaited; cancelling the wait leaves the thread
    to finish or to end with the process (``asyncio.to_thread``'s pool would hold the exit)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(exc: BaseException | None) -> None:
        if not done.done():
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)

    def work() -> None:
        try:
            fn(arg)
        except BaseException as exc:
            with contextlib.suppress(RuntimeError):  # the loop may be closed by now
                loop.call_soon_threadsafe(settle, exc)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, None)

    threading.Thread(target=work, name="inferwatch-maintenance", daemon=True).start()
    await done


def settle_heap() -> None:
    """For the ``inferwatch`` process itself, once started (a process-wide setting: the CLI calls
    it, ``Service`` does not). Collect once, then move every object alive after start-up
    (modules, config, app, engines) out of the garbage collector's reach: a page that builds tens of thousands of rows triggers
    full collections, and each one would walk all of them again. Measured with
    ``bench/bench_pages.py``: the 24 h backend page spends about 50 ms (15 %) less per render."""
    gc.collect()
    gc.freeze()
