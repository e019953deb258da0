"""The engine scrape source: one backend's ``/metrics`` fetched (``exporters.http``), parsed
(``exporters.parser``) and normalised by its engine's adapter. Never raises.

A failed scrape is still a result (``up=False`` with a reason an operator can act on):
``connection refused``, ``timeout after 2s``, ``HTTP 500``, ``not exposition text
(content-type text/html)``, ``body over size cap (16777216 bytes)``, ``truncated body``,
``parse error at line 12: …``, ``sample_limit exceeded: …``, ``no vllm metrics in the body;
is `engine` right …``. A scrape over a limit stores nothing (as Prometheus does).

A body over ``THREAD_BODY_BYTES`` is parsed on a worker thread, so that a large (hostile or
merely big) body does not hold the event loop that every other scrape and ``/healthz`` share.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from core.samples import EngineSnapshot, GpuSample, ScrapeResult
from exporters.base import Adapter, Clock, Schedule
from exporters.families import LimitError, MetricFamily, ParseError, SeriesLimits
from exporters.http import FetchError, Http, Limits
from exporters.parser import parse

__all__ = ["THREAD_BODY_BYTES", "EngineScrape"]

#: bodies larger than this are parsed off the event loop (a 4-model vLLM body is 131 kB)
THREAD_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class EngineScrape:
    """Scrape source of one backend (``name`` is the backend's)."""

    backend: str
    url: str
    adapter: Adapter
    limits: Limits
    interval: float
    headers: Mapping[str, str] = field(default_factory=dict)
    #: engines that also export GPU metrics (Triton): a function from families to GPU samples
    gpus: Callable[[Mapping[str, MetricFamily]], list[GpuSample]] | None = None
    gpu_families: frozenset[str] = frozenset()
    schedule: Schedule = "grid"
    series_limits: SeriesLimits = SeriesLimits()

    @property
    def name(self) -> str:
        """The backend's name: the collector places a grid source's ticks by its name's hash, so
        each backend keeps its phase across restarts and upgrades."""
        return self.backend

    async def collect(self, http: Http, clock: Clock = time.time) -> ScrapeResult:
        ts = clock()
        start = time.perf_counter()

        def fail(reason: str) -> ScrapeResult:
            return ScrapeResult(self.backend, ts, False, reason, time.perf_counter() - start)

        try:
            body = await http.exposition(self.url, self.limits, self.headers)
        except FetchError as exc:
            return fail(exc.reason)
        wanted = self.adapter.wanted()
        keep = (wanted | self.gpu_families) if wanted is not None else None
        try:
            if len(body) > THREAD_BODY_BYTES:
                families = await asyncio.to_thread(parse, body, keep, self.series_limits)
            else:
                families = parse(body, keep, self.series_limits)
        except LimitError as exc:
            return fail(exc.reason)
        except ParseError as exc:
            return fail(f"parse error at line {exc.lineno}: {exc.message}")
        snapshot = self.adapter.normalise(families)
        if not (snapshot.gauges or snapshot.counters or snapshot.histograms):
            return fail(f"no {self.adapter.engine} metrics in the body; is `engine` right for this backend?")
        snapshot = _drop_nan(snapshot)
        gpus = tuple(self.gpus(families)) if self.gpus is not None else ()
        return ScrapeResult(self.backend, ts, True, None, time.perf_counter() - start, snapshot, gpus)


def _drop_nan(snap: EngineSnapshot) -> EngineSnapshot:
    """NaN gauges/counters carry no information; drop them rather than store a silent wrong number."""
    if all(not math.isnan(v) for v in snap.gauges.values()) and all(not math.isnan(v) for v in snap.counters.values()):
        return snap
    return EngineSnapshot(
        gauges={k: v for k, v in snap.gauges.items() if not math.isnan(v)},
        counters={k: v for k, v in snap.counters.items() if not math.isnan(v)},
        histograms=snap.histograms,
    )
