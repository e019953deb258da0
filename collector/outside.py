"""The loops of the outside-in and hardware sources: streaming probes, TLS certificate checks,
GPU readings (local NVML, remote dcgm-exporter). Each result is handed to ``emit`` (the
collector's writer queue); nothing here touches the store.

A probe loop never overlaps itself: the next probe of a backend starts ``interval`` after the
previous one *started*, or right after it ended if it ran longer. Probes, checks and readings
never raise into the loop: a failure is a result.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from collector.config import BackendConfig, CollectorSettings
from core.samples import CertResult, GpuSample, ProbeResult

log = logging.getLogger("inferwatch.sources")

Emit = Callable[[object], Awaitable[None]]


@dataclass(frozen=True)
class TlsCheck:
    target: str  # host:port
    server_name: str | None
    ca_file: str | None
    interval: float
    timeout: float


@dataclass(frozen=True)
class GpuReading:
    """What one GPU source produced at one time (the writer stores each sample with ``ts``)."""

    ts: float
    source: str
    samples: tuple[GpuSample, ...]
    error: str | None = None


def tls_target(b: BackendConfig) -> str | None:
    """``host:port`` of an https backend's endpoint (what its certificate check is named by)."""
    parts = urlsplit(b.url)
    if parts.scheme != "https" or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or 443}"


def tls_checks(cfg: CollectorSettings) -> list[TlsCheck]:
    """Every ``tls:`` entry plus every https backend (once per host:port)."""
    out: dict[str, TlsCheck] = {}
    for t in cfg.tls:
        out.setdefault(t.target, TlsCheck(t.target, t.server_name, t.ca_file, t.interval, t.timeout))
    for b in cfg.backends:
        target = tls_target(b)
        if target is not None:
            out.setdefault(target, TlsCheck(target, None, b.ca_file, cfg.tls_check_interval, cfg.tls_check_timeout))
    return list(out.values())


def _verify(ca_file: str | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


class Sources:
    def __init__(self, cfg: CollectorSettings, emit: Emit, client: httpx.AsyncClient,
                 clock: Callable[[], float] = time.time, nvml: Any = None) -> None:
        self.cfg = cfg
        self.emit = emit
        self.client = client
        self.clock = clock
        self.probed = [b for b in cfg.backends if b.probe is not None]
        self.tls = tls_checks(cfg)
        self.nvml_enabled = False
        self.nvml_reason: str | None = None
        self._nvml_module = nvml
        self._reader: Any = None
        self.host = socket.gethostname()

    # -- one of each (also used by tests) ------------------------------------------------------
    async def probe_once(self, b: BackendConfig) -> ProbeResult:
        from exporters.probe import probe

        assert b.probe is not None
        p = b.probe
        return await probe(b.name, b.url, model=p.model, prompt=p.prompt, max_tokens=p.max_tokens,
                           timeout=p.timeout, api=p.api, api_key=p.api_key, verify=_verify(b.ca_file),
                           clock=self.clock)

    async def tls_once(self, t: TlsCheck) -> CertResult:
        from exporters.tls import check

        return await check(t.target, server_name=t.server_name, ca_file=t.ca_file, timeout=t.timeout,
                           clock=self.clock)

    def start_nvml(self) -> None:
        mode = self.cfg.gpus.nvml
        if mode == "off":
            self.nvml_enabled, self.nvml_reason = False, "disabled in config (gpus.nvml: off)"
            return
        from exporters.nvml import NvmlReader

        self._reader = NvmlReader(nvml=self._nvml_module, host=self.host)
        status = self._reader.start()
        self.nvml_enabled, self.nvml_reason = bool(status.enabled), status.reason
        if not status.enabled:
            self._reader = None
            if mode == "on":
                log.warning("[sources.nvml] gpus.nvml is 'on' but NVML is unavailable: %s", status.reason)

    async def gpus_once(self) -> list[GpuReading]:
        readings: list[GpuReading] = []
        if self._reader is not None:
            ts = self.clock()
            try:
                samples = await asyncio.to_thread(self._reader.read)
                readings.append(GpuReading(ts, "nvml", tuple(samples)))
            except Exception as exc:  # the reader degrades per field; this is a last resort
                log.exception("[sources.nvml] reading GPUs failed")
                readings.append(GpuReading(ts, "nvml", (), f"{type(exc).__name__}: {exc}"))
        for target in self.cfg.gpus.dcgm:
            readings.append(await self._dcgm_once(target.url, target.host or urlsplit(target.url).hostname or "?"))
        return readings

    async def _dcgm_once(self, url: str, host: str) -> GpuReading:
        from exporters.gpu_scrape import WANTED_DCGM, from_dcgm
        from exporters.parser import parse

        ts = self.clock()
        metrics_url = url if urlsplit(url).path not in ("", "/") else url.rstrip("/") + "/metrics"
        try:
            resp = await self.client.get(metrics_url, timeout=self.cfg.scrape_timeout)
            if resp.status_code >= 400:
                return GpuReading(ts, f"dcgm {metrics_url}", (), f"HTTP {resp.status_code} from {metrics_url}")
            return GpuReading(ts, f"dcgm {metrics_url}", tuple(from_dcgm(parse(resp.content, keep=WANTED_DCGM), host)))
        except Exception as exc:
            return GpuReading(ts, f"dcgm {metrics_url}", (), f"{metrics_url}: {type(exc).__name__}: {exc}")

    # -- loops ----------------------------------------------------------------------------------
    def tasks(self) -> list[Awaitable[None]]:
        out: list[Awaitable[None]] = [self._every(b.probe.interval, self._probe_emit(b)) for b in self.probed
                                      if b.probe is not None]
        out += [self._every(t.interval, self._tls_emit(t)) for t in self.tls]
        if self._reader is not None or self.cfg.gpus.dcgm:
            out.append(self._every(self.cfg.gpus.interval or self.cfg.scrape_interval, self._gpu_emit))
        return out

    def _probe_emit(self, b: BackendConfig) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await self.emit(await self.probe_once(b))
        return run

    def _tls_emit(self, t: TlsCheck) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await self.emit(await self.tls_once(t))
        return run

    async def _gpu_emit(self) -> None:
        for reading in await self.gpus_once():
            await self.emit(reading)

    async def _every(self, interval: float, job: Callable[[], Awaitable[None]]) -> None:
        next_at = self.clock()
        while True:
            delay = next_at - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("[sources] a job failed; it runs again next interval")
            next_at += interval
            now = self.clock()
            if next_at < now:
                next_at = now

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
