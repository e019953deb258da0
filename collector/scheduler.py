"""The asyncio scrape loop: per-backend interval and timeout, jitter, bounded concurrency, one
pooled ``httpx.AsyncClient``, and a single writer that batches results into the store.

Each backend has its own task ticking on a fixed grid (``offset + k * interval``, no drift);
the offset is a stable hash of the backend name, spreading a fleet over the interval the way
Prometheus does. A scrape holds a semaphore slot (``scrape_concurrency``) and its own timeout,
so one slow or broken backend never delays the others. Results go to a queue; the writer turns
them into deltas against the in-memory cursors (loaded from the store at start, so a restart
continues where it stopped) and writes each batch in one transaction on a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from collector import deltas
from collector.config import BackendConfig, CollectorSettings
from collector.observations import ObservationStore
from collector.outside import GpuReading, Sources
from collector.scrape import ScrapeResult, Target, scrape
from collector.store import MetricsStore
from collector.transport import PerOriginTransport
from core.samples import CertResult, EngineSnapshot, ProbeResult, ScrapeRecord
from exporters.adapters import make_adapter

log = logging.getLogger("inferwatch.collector")


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


def target_for(cfg: CollectorSettings, b: BackendConfig) -> Target:
    headers = {"Authorization": f"Bearer {b.bearer_token}"} if b.bearer_token else {}
    target = Target(b.name, b.metrics_url, make_adapter(b.engine, b.options), cfg.timeout_for(b), cfg.max_body_bytes,
                    headers)
    if b.engine == "triton":  # Triton also exports its GPUs (nv_gpu_*): same GPU vocabulary
        from exporters.gpu_scrape import WANTED_TRITON, from_triton

        host = urlsplit(b.url).hostname or b.name
        target = replace(target, gpus=lambda fams: from_triton(fams, host), gpu_families=frozenset(WANTED_TRITON))
    return target


class Collector:
    """Scrapes every backend of ``cfg`` into ``metrics`` (probes, TLS checks and GPU readings into
    ``observations``) until ``stop()``."""

    def __init__(self, cfg: CollectorSettings, metrics: MetricsStore, observations: ObservationStore,
                 client: httpx.AsyncClient | None = None,
                 clock: Callable[[], float] = time.time, flush_interval: float = 0.1, nvml: Any = None) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.observations = observations
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
        self.targets = [(b, target_for(cfg, b)) for b in cfg.backends if b.engine != "openai"]
        self.health = {b.name: BackendHealth() for b, _ in self.targets}
        self.cursors: dict[str, tuple[float, EngineSnapshot]] = {}
        self._cursors_loaded = False
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._pending: list[ScrapeRecord] = []
        self._observed: list[object] = []  # probe results, cert checks, GPU readings
        self.sources = Sources(cfg, self._queue.put, self.client, clock, nvml=nvml)
        self._tasks: list[asyncio.Task[None]] = []
        self._sem = asyncio.Semaphore(cfg.scrape_concurrency)
        self.ready = asyncio.Event()
        self.writes = 0
        self.write_failures = 0
        self.gpu_errors: dict[str, str | None] = {}  # GPU source -> last error (None: fine)
        self.on_flush: list[Callable[[], None]] = []  # called after each committed batch (alert engine)

    @property
    def host(self) -> str:
        """This machine's name, as local NVML readings name their host."""
        return self.sources.host

    def gpu_status(self) -> GpuStatus:
        return GpuStatus(self.sources.host, self.sources.nvml_enabled, self.sources.nvml_reason, dict(self.gpu_errors))

    async def _load_cursors(self) -> None:
        """Continue from the cursors the last run persisted (restart without loss or double count)."""
        if not self._cursors_loaded:
            self.cursors = await asyncio.to_thread(self.metrics.load_cursors)
            self._cursors_loaded = True

    async def start(self) -> None:
        await self._load_cursors()
        await asyncio.to_thread(self.sources.start_nvml)
        for job in self.sources.tasks():
            self._tasks.append(asyncio.create_task(job))  # type: ignore[arg-type]
        loop_start = self.clock()
        for b, target in self.targets:
            interval = self.cfg.interval_for(b)
            self._tasks.append(asyncio.create_task(self._loop(target, interval, loop_start), name=f"scrape:{b.name}"))
        self._tasks.append(asyncio.create_task(self._writer(), name="writer"))
        self.ready.set()

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        await self.flush()
        self.sources.close()
        if self._own_client:
            await self.client.aclose()

    async def _loop(self, target: Target, interval: float, loop_start: float) -> None:
        # first scrape soon after start (within one interval, at the backend's stable offset)
        next_at = loop_start + _offset(target.name, interval)
        while True:
            delay = next_at - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            async with self._sem:
                result = await scrape(target, self.client, self.clock)
            self._record_health(result)
            await self._queue.put(result)
            next_at += interval
            now = self.clock()
            if next_at < now:  # fell behind (machine suspended, loop starved): skip missed ticks
                next_at += ((now - next_at) // interval + 1) * interval

    def _record_health(self, r: ScrapeResult) -> None:
        h = self.health[r.backend]
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
        counters, hists = deltas.diff(self.cursors.get(r.backend), r.ts, r.snapshot)
        self.cursors[r.backend] = (r.ts, r.snapshot)
        return ScrapeRecord(r.backend, r.ts, True, None, r.duration, deltas.gauges(r.snapshot), counters, hists, r.snapshot)

    def _take(self, item: object) -> None:
        if isinstance(item, ScrapeResult):
            self._pending.append(self.to_record(item))
            if item.gpus:
                self._observed.append(GpuReading(item.ts, "triton", item.gpus))
        else:
            self._observed.append(item)

    async def _writer(self) -> None:
        while True:
            self._take(await self._queue.get())
            await asyncio.sleep(self.flush_interval)  # let a burst of results join this batch
            await self.flush()

    async def flush(self) -> None:
        while not self._queue.empty():
            self._take(self._queue.get_nowait())
        if self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self.metrics.write, batch)
                self.writes += 1
                for callback in self.on_flush:
                    callback()
            except Exception:  # the store is down: keep the batch (bounded) and retry next flush
                self.write_failures += 1
                log.exception("[collector.writer] writing %d records failed; will retry", len(batch))
                self._pending = (batch + self._pending)[-100_000:]
        if self._observed:
            observed, self._observed = self._observed, []
            probes = [o for o in observed if isinstance(o, ProbeResult)]
            certs = [o for o in observed if isinstance(o, CertResult)]
            readings = [o for o in observed if isinstance(o, GpuReading)]
            for r in readings:
                self.gpu_errors[r.source] = r.error
            gpus = [(r.ts, g) for r in readings for g in r.samples]
            try:
                await asyncio.to_thread(self.observations.write_observations, probes, certs, gpus)
            except Exception:
                self.write_failures += 1
                log.exception("[collector.writer] writing %d observations failed; will retry", len(observed))
                self._observed = (observed + self._observed)[-100_000:]

    async def scrape_once(self) -> list[ScrapeResult]:
        """Scrape every backend once, now, and write the results (tests, ``--once``)."""
        await self._load_cursors()
        async def one(target: Target) -> ScrapeResult:
            async with self._sem:
                return await scrape(target, self.client, self.clock)

        results = await asyncio.gather(*(one(t) for _, t in self.targets))
        for r in results:
            self._record_health(r)
            self._take(r)
        await self.flush()
        return list(results)

    async def observe_once(self) -> list[object]:
        """Run every probe, TLS check and GPU reading once, now, and write them (tests)."""
        got: list[object] = list(await asyncio.gather(*(self.sources.probe_once(b) for b in self.sources.probed)))
        got += await asyncio.gather(*(self.sources.tls_once(t) for t in self.sources.tls))
        got += await self.sources.gpus_once()
        for item in got:
            self._take(item)
        await self.flush()
        return got
