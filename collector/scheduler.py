"""The collector: runs every source (``collector.sources``) on its schedule, and a single writer
that batches what they observe into the stores.

A ``grid`` source (an engine scrape) has its own task ticking on a fixed grid (``offset + k *
interval``, no drift); the offset is a stable hash of the backend's name, spreading a fleet over
the interval the way Prometheus does. A scrape holds a semaphore slot (``scrape_concurrency``) and
its own timeout, so one slow or broken backend never delays the others. An ``after`` source (probe,
TLS check, GPU reading) runs first at start, then ``interval`` after its last start, never
overlapping itself. Results go to a queue; the writer turns scrapes into deltas against the
in-memory cursors (loaded from the store at start, so a restart continues where it stopped) and
writes each batch in one transaction on a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from collector import deltas
from collector.config import CollectorSettings
from collector.live import LiveWindow
from collector.observations import ObservationStore
from collector.sources import build_sources, local_host, nvml_source, source_key
from collector.store import MetricsStore
from collector.transport import PerOriginTransport
from core.audit import AuditResult
from core.numbers import LatencyHistogram
from core.samples import (
    CertResult,
    EngineSnapshot,
    GpuReading,
    Observation,
    ProbeResult,
    ScrapeRecord,
    ScrapeResult,
)
from exporters.base import Source
from exporters.http import Http
from exporters.nvml import NvmlReader, NvmlSource
from exporters.scrape import EngineScrape

log = logging.getLogger("inferwatch.collector")

#: bucket bounds (seconds) of how late a scrape started after its tick
LAG_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class BackendHealth:
    """The collector's own view of one backend, for ``/metrics`` (inferwatch_scrape_*)."""

    scrapes: int = 0
    errors: int = 0
    last_duration: float = 0.0
    last_reason: str | None = None
    errors_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class GpuStatus:
    """Where the GPU sources stand: local NVML on or off (and why), and each source's last error."""

    host: str
    nvml_enabled: bool
    nvml_reason: str | None
    errors: dict[str, str | None]


def _offset(name: str, interval: float) -> float:
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * interval


def _reason_class(reason: str) -> str:
    head = reason.split(" ")[0].split(":")[0].lower()
    return {"connection": "refused", "timeout": "timeout", "http": "http", "not": "not_exposition",
            "body": "oversized", "truncated": "truncated", "parse": "parse", "no": "no_metrics"}.get(head, "other")


class Collector:
    """Runs every source of ``cfg``: scrapes into ``metrics``; probes, TLS checks and GPU readings
    into ``observations``; until ``stop()``. ``nvml``: a pynvml stand-in (tests)."""

    def __init__(self, cfg: CollectorSettings, metrics: MetricsStore, observations: ObservationStore,
                 client: httpx.AsyncClient | None = None, clock: Callable[[], float] = time.time,
                 flush_interval: float = 0.1, nvml: object | None = None, live: LiveWindow | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.observations = observations
        self.live = live  # committed records are kept here too (collector.live)
        self.clock = clock
        self.flush_interval = flush_interval
        self._own_client = client is None
        # one pooled client for the fleet; per-origin pools inside (see collector/transport.py);
        # concurrency is bounded by the semaphore below, not by the pool
        transport = PerOriginTransport()
        for b in cfg.backends:
            if b.ca_file:
                transport.trust(b.url, b.ca_file)
        self.client = client or httpx.AsyncClient(transport=transport, follow_redirects=True, trust_env=False)
        self._transport = transport if client is None else None
        # plain-http scrapes on the lean keep-alive path, the rest through the client; a client
        # given by the caller (tests) carries every request
        self.http = Http(self.client, lean=client is None)
        self.sources: list[Source] = build_sources(cfg)
        self.health = {s.backend: BackendHealth() for s in self.sources if isinstance(s, EngineScrape)}
        self.host = local_host()
        self._nvml_module = nvml
        self.nvml: NvmlReader | None = None
        self.nvml_enabled = False
        self.nvml_reason: str | None = None
        self.cursors: dict[str, tuple[float, EngineSnapshot]] = {}
        #: how long a counter reset's delta may cover where the engine says not when it started
        self._reset_cap = {b.name: cfg.interval_for(b) for b in cfg.backends}
        self._cursors_loaded = False
        self._queue: asyncio.Queue[Observation] = asyncio.Queue()
        self._pending: list[ScrapeRecord] = []
        self._observed: list[ProbeResult | CertResult | GpuReading | AuditResult] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._running: dict[int, asyncio.Task[None]] = {}  # id(source) -> its task
        self._sem = asyncio.Semaphore(cfg.scrape_concurrency)
        self._sem_size = cfg.scrape_concurrency
        self.ready = asyncio.Event()
        self.writes = 0
        self.write_failures = 0
        #: since when writing has failed (None: the last write succeeded), and why
        self.failing_since: float | None = None
        self.failing_reason: str | None = None
        #: how late each grid source (scrape) started after its tick, and the ticks skipped
        #: because a source (or the whole process) fell behind: the scheduler's own health
        self.start_lag = LatencyHistogram(LAG_BUCKETS)
        self.skipped_ticks = 0
        self.gpu_errors: dict[str, str | None] = {}  # GPU source -> last error (None: fine)
        self.on_flush: list[Callable[[], None]] = []  # called after each committed batch (alert engine)

    def gpu_status(self) -> GpuStatus:
        return GpuStatus(self.host, self.nvml_enabled, self.nvml_reason, dict(self.gpu_errors))

    def start_nvml(self) -> None:
        """Turn local GPU reading on when ``gpus.nvml`` allows and a driver answers (blocking:
        NVML initialises synchronously). Adds the NVML source; the reason when off is kept."""
        mode = self.cfg.gpus.nvml
        if mode == "off":
            self.nvml_enabled, self.nvml_reason = False, "disabled in config (gpus.nvml: off)"
            return
        if self.nvml is not None:
            return
        reader = NvmlReader(nvml=self._nvml_module, host=self.host)
        status = reader.start()
        self.nvml_enabled, self.nvml_reason = bool(status.enabled), status.reason
        if not status.enabled:
            if mode == "on":
                log.warning("[collector.nvml] gpus.nvml is 'on' but NVML is unavailable: %s", status.reason)
            return
        self.nvml = reader
        source = nvml_source(self.cfg, reader)
        self.sources.append(source)

    async def _load_cursors(self) -> None:
        """Continue from the cursors the last run persisted (restart without loss or double count)."""
        if not self._cursors_loaded:
            self.cursors = await asyncio.to_thread(self.metrics.load_cursors)
            self._cursors_loaded = True

    async def start(self) -> None:
        await self._load_cursors()
        if self.live is not None:
            await asyncio.to_thread(self.live.warm, self.metrics, self.clock())
        await asyncio.to_thread(self.start_nvml)
        loop_start = self.clock()
        for source in self.sources:
            self._start_source(source, loop_start)
        self._tasks.append(asyncio.create_task(self._writer(), name="writer"))
        self.ready.set()

    def _start_source(self, source: Source, loop_start: float) -> None:
        task = asyncio.create_task(self.run(source, loop_start), name=source.name)
        self._running[id(source)] = task
        self._tasks.append(task)

    async def reconfigure(self, cfg: CollectorSettings) -> tuple[list[str], list[str]]:
        """Apply a new config while running: an unchanged source keeps its task (schedule,
        cursor, live window); a removed one stops; a new or changed one starts (its backend's
        history stays, in the store and in memory). Local NVML keeps running. Returns the names
        of the sources (started, stopped)."""
        new = build_sources(cfg)
        old_keys = {source_key(self.cfg, s): s for s in self.sources if not isinstance(s, NvmlSource)}
        new_keys = {source_key(cfg, s): s for s in new}
        stopped = [s for k, s in old_keys.items() if k not in new_keys]
        started = [s for k, s in new_keys.items() if k not in old_keys]
        kept = [old_keys[k] for k in new_keys if k in old_keys]
        for s in stopped:
            task = self._running.pop(id(s), None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                self._tasks.remove(task)
        self.cfg = cfg
        if cfg.scrape_concurrency != self._sem_size:
            self._sem, self._sem_size = asyncio.Semaphore(cfg.scrape_concurrency), cfg.scrape_concurrency
        if self._transport is not None:
            for b in cfg.backends:
                if b.ca_file:
                    self._transport.trust(b.url, b.ca_file)
        self._reset_cap = {b.name: cfg.interval_for(b) for b in cfg.backends}
        names = {b.name for b in cfg.backends}
        self.health = {name: h for name, h in self.health.items() if name in names}
        for s in started:
            if isinstance(s, EngineScrape):
                self.health.setdefault(s.backend, BackendHealth())
        nvml = [s for s in self.sources if isinstance(s, NvmlSource)]
        self.sources = [*kept, *started, *nvml]
        if self.ready.is_set():  # before start(), start() runs them all
            loop_start = self.clock()
            for s in started:
                self._start_source(s, loop_start)
        return [s.name for s in started], [s.name for s in stopped]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        self._running.clear()
        await self.flush()
        if self.nvml is not None:
            self.nvml.close()
        await self.http.aclose()
        if self._own_client:
            await self.client.aclose()

    async def collect(self, source: Source) -> Observation:
        """One observation of ``source`` now (a ``grid`` one within a concurrency slot)."""
        if source.schedule == "grid":
            async with self._sem:
                result = await source.collect(self.http, self.clock)
        else:
            result = await source.collect(self.http, self.clock)
        if isinstance(result, ScrapeResult):
            self._record_health(result)
        return result

    async def run(self, source: Source, loop_start: float | None = None) -> None:
        """Run ``source`` on its schedule until cancelled, handing each result to the writer."""
        interval = source.interval
        start = self.clock() if loop_start is None else loop_start
        grid = source.schedule == "grid"
        # a grid source runs first soon after start, within one interval, at a stable offset: the
        # hash of its name (so a restart keeps each backend's phase)
        next_at = start + (_offset(source.name, interval) if grid else 0.0)
        while True:
            delay = next_at - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            if grid:
                self.start_lag.observe(max(0.0, self.clock() - next_at))
            try:
                await self._queue.put(await self.collect(source))
            except asyncio.CancelledError:
                raise
            except Exception:  # sources report failures as results; this is a last resort
                log.exception("[collector] %s failed; it runs again next interval", source.name)
            next_at += interval
            now = self.clock()
            if next_at < now:
                if grid:  # fell behind (suspended, starved): skip missed ticks
                    missed = (now - next_at) // interval + 1
                    self.skipped_ticks += int(missed)
                    next_at += missed * interval
                else:  # ran longer than its interval: again right away, never overlapping
                    next_at = now

    def _record_health(self, r: ScrapeResult) -> None:
        h = self.health.setdefault(r.backend, BackendHealth())
        first, previous = h.scrapes == 0, h.last_reason
        h.scrapes += 1
        h.last_duration = r.duration
        h.last_reason = r.reason
        if not r.up:
            h.errors += 1
            cls = _reason_class(r.reason or "")
            h.errors_by_reason[cls] = h.errors_by_reason.get(cls, 0) + 1
            if r.reason != previous:  # log changes, not every failed scrape of a dead backend
                log.warning("[collector.scrape] %s down: %s", r.backend, r.reason)
        elif previous is not None and not first:
            log.info("[collector.scrape] %s up again", r.backend)

    def to_record(self, r: ScrapeResult) -> ScrapeRecord:
        """Deltas against the cursor; advances the in-memory cursor."""
        if not r.up or r.snapshot is None:
            return ScrapeRecord(r.backend, r.ts, False, r.reason, r.duration)
        counters, hists = deltas.diff(self.cursors.get(r.backend), r.ts, r.snapshot,
                                      reset_cap=self._reset_cap.get(r.backend))
        self.cursors[r.backend] = (r.ts, r.snapshot)
        return ScrapeRecord(r.backend, r.ts, True, None, r.duration, deltas.gauges(r.snapshot), counters, hists, r.snapshot)

    def _take(self, item: Observation) -> None:
        if isinstance(item, ScrapeResult):
            self._pending.append(self.to_record(item))
            if item.gpus:
                self._observed.append(GpuReading(item.ts, "triton", item.gpus))
        else:
            if isinstance(item, AuditResult):
                n = item.counts()
                failed = [c.check for c in item.checks if c.status == "fail"]
                log.info("[collector.audit] %s: %d pass, %d warn, %d fail%s", item.target, n["pass"], n["warn"],
                         n["fail"], f" ({', '.join(failed)})" if failed else "")
            self._observed.append(item)

    async def _writer(self) -> None:
        while True:
            self._take(await self._queue.get())
            await asyncio.sleep(self.flush_interval)  # let a burst of results join this batch
            await self.flush()

    def _write(self, batch: list[ScrapeRecord]) -> None:
        self.metrics.write(batch)
        if self.live is not None:  # only what the store committed
            self.live.add(batch)

    async def flush(self) -> None:
        while not self._queue.empty():
            self._take(self._queue.get_nowait())
        if self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._write, batch)
                self.writes += 1
                self._write_ok()
                for callback in self.on_flush:
                    callback()
            except Exception as exc:  # the store is down: keep the batch (bounded) and retry next flush
                self.write_failures += 1
                self._write_failed(exc, len(batch))
                self._pending = (batch + self._pending)[-100_000:]
        if self._observed:
            observed, self._observed = self._observed, []
            probes = [o for o in observed if isinstance(o, ProbeResult)]
            certs = [o for o in observed if isinstance(o, CertResult)]
            readings = [o for o in observed if isinstance(o, GpuReading)]
            audits = [o for o in observed if isinstance(o, AuditResult)]
            for r in readings:
                self.gpu_errors[r.source] = r.error
            gpus = [(r.ts, g) for r in readings for g in r.samples]
            try:
                await asyncio.to_thread(self.observations.write_observations, probes, certs, gpus, audits)
            except Exception as exc:
                self.write_failures += 1
                self._write_failed(exc, len(observed))
                self._observed = (observed + self._observed)[-100_000:]

    def _write_failed(self, exc: BaseException, waiting: int) -> None:
        """One log line (with the traceback) when writing starts failing, not one per retry."""
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}".rstrip(": ")
        if self.failing_since is None:
            self.failing_since = self.clock()
            log.error("[collector.writer] writing failed (%d waiting); retrying every flush until it works",
                      waiting, exc_info=exc)
        self.failing_reason = reason

    def _write_ok(self) -> None:
        if self.failing_since is not None:
            log.warning("[collector.writer] writing works again after %.0fs; the records kept meanwhile are written",
                        self.clock() - self.failing_since)
            self.failing_since = self.failing_reason = None

    async def scrape_once(self) -> list[ScrapeResult]:
        """Scrape every backend once, now, and write the results (tests, ``--once``)."""
        await self._load_cursors()
        scrapes = [s for s in self.sources if isinstance(s, EngineScrape)]
        results = [r for r in await asyncio.gather(*(self.collect(s) for s in scrapes)) if isinstance(r, ScrapeResult)]
        for r in results:
            self._take(r)
        await self.flush()
        return results

    async def observe_once(self) -> list[Observation]:
        """Run every probe, TLS check and GPU reading once, now, and write them (tests)."""
        others = [s for s in self.sources if not isinstance(s, EngineScrape)]
        got = list(await asyncio.gather(*(self.collect(s) for s in others)))
        for item in got:
            self._take(item)
        await self.flush()
        return got
