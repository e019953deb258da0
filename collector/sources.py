"""Every source of a config, with the limits the config gives it: one engine scrape per backend
with ``/metrics``, one streaming probe per backend with ``probe:``, one TLS check per ``tls:``
entry and per https backend (once per ``host:port``), one scrape per dcgm-exporter, one audit per
``audits:`` entry. Local NVML
is built apart (``nvml_source``): it must be started (on a worker thread) before it reads.

Pure assembly: nothing here does I/O (``exporters`` does, when the collector runs a source).
"""

from __future__ import annotations

import socket
from dataclasses import replace
from urllib.parse import urlsplit

from collector.config import AuditConfig, BackendConfig, CollectorSettings
from exporters.adapters import PROBE_ONLY, make_adapter
from exporters.audit import AuditSource, AuditSpec
from exporters.base import Source
from exporters.dcgm import DcgmScrape
from exporters.gpu_scrape import WANTED_TRITON, from_triton
from exporters.http import Limits
from exporters.nvml import NvmlReader, NvmlSource
from exporters.probe import StreamProbe
from exporters.scrape import EngineScrape
from exporters.tls import TlsCheck, trust

__all__ = ["audit_spec", "build_sources", "engine_scrape", "nvml_source", "source_key", "tls_checks", "tls_target"]

#: the collector-wide settings every scrape and probe is built with
_COMMON = frozenset(CollectorSettings.model_fields) - {"backends", "discovery"}


def tls_target(b: BackendConfig) -> str | None:
    """``host:port`` of an https backend's endpoint (what its certificate check is named by)."""
    parts = urlsplit(b.url)
    if parts.scheme != "https" or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or 443}"


def engine_scrape(cfg: CollectorSettings, b: BackendConfig) -> EngineScrape:
    headers = {"Authorization": f"Bearer {b.bearer_token}"} if b.bearer_token else {}
    limits = Limits(cfg.timeout_for(b), cfg.max_body_bytes, b.follow_redirects, b.cross_origin_redirects)
    scrape = EngineScrape(b.name, b.metrics_url, make_adapter(b.engine, b.options), limits, cfg.interval_for(b),
                          headers, series_limits=cfg.series_limits_for(b))
    if b.engine == "triton":  # Triton also exports its GPUs (nv_gpu_*): same GPU vocabulary
        host = urlsplit(b.url).hostname or b.name
        return replace(scrape, gpus=lambda fams: from_triton(fams, host), gpu_families=frozenset(WANTED_TRITON))
    return scrape


def tls_checks(cfg: CollectorSettings) -> list[TlsCheck]:
    """Every ``tls:`` entry plus every https backend (once per host:port)."""
    out: dict[str, TlsCheck] = {}
    for t in cfg.tls:
        out.setdefault(t.target, TlsCheck(t.target, t.timeout, t.interval, t.server_name, t.ca_file))
    for b in cfg.backends:
        target = tls_target(b)
        if target is not None:
            out.setdefault(target, TlsCheck(target, cfg.tls_check_timeout, cfg.tls_check_interval, None, b.ca_file))
    return list(out.values())


def audit_spec(a: AuditConfig) -> AuditSpec:
    return AuditSpec(name=a.target, url=a.url, model=a.model, api_key=a.api_key, api=a.api, burst=a.burst,
                     stream_tokens=a.stream_tokens, long_tokens=a.long_tokens, timeout=a.timeout,
                     long_timeout=a.long_timeout, nameserver=a.nameserver, ca_file=a.ca_file, skip=frozenset(a.skip),
                     interval=a.interval)


def build_sources(cfg: CollectorSettings) -> list[Source]:
    """Every source but local NVML: scrapes, then probes, TLS checks, dcgm-exporters and audits."""
    out: list[Source] = [engine_scrape(cfg, b) for b in cfg.backends if b.engine not in PROBE_ONLY]
    for b in cfg.backends:
        if b.probe is not None:
            p = b.probe
            out.append(StreamProbe(b.name, b.url, p.model, p.prompt, p.max_tokens, p.timeout, p.interval, p.api,
                                   p.api_key, trust(b.ca_file)))
    out += tls_checks(cfg)
    gpu_interval = cfg.gpus.interval or cfg.scrape_interval
    for d in cfg.gpus.dcgm:
        host = d.host or urlsplit(d.url).hostname or "?"
        out.append(DcgmScrape(d.url, host, Limits(cfg.default_timeout, cfg.max_body_bytes), gpu_interval))
    out += [AuditSource(audit_spec(a)) for a in cfg.audits]
    return out


def nvml_source(cfg: CollectorSettings, reader: NvmlReader) -> NvmlSource:
    return NvmlSource(reader, cfg.gpus.interval or cfg.scrape_interval)


def local_host() -> str:
    """This machine's name, as local NVML readings name their host."""
    return socket.gethostname()


def source_key(cfg: CollectorSettings, source: Source) -> tuple[str, ...]:
    """What ``source`` is made of, to tell on a reload whether it changed: a scrape's or probe's
    backend section and the collector-wide settings; an audit's section (its key included); any
    other source's own fields."""
    if isinstance(source, EngineScrape | StreamProbe):
        backend = next((b for b in cfg.backends if b.name == source.backend), None)
        own = backend.model_dump_json() if backend is not None else ""
        return (type(source).__name__, source.name, own, cfg.model_dump_json(include=set(_COMMON)))
    if isinstance(source, AuditSource):
        own = next((a.model_dump_json() for a in cfg.audits if a.target == source.spec.name), "")
        return (type(source).__name__, source.name, own)
    return (type(source).__name__, source.name, repr(source))
