"""Immutable value types that cross module boundaries. No I/O here.

``EngineSnapshot`` is what an engine adapter makes of one scrape (cumulative, as the engine
reports it); ``ScrapeRecord`` is what the collector hands the store after turning cumulative
values into per-interval deltas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from core.audit import AuditResult

#: (signal, model).  ``model`` is "" where the engine does not say which model.
SeriesKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Histogram:
    """A classic Prometheus histogram in seconds.

    ``bounds`` are the bucket upper bounds, ascending, the last one ``math.inf``; ``counts`` are
    the *cumulative* counts per bound (as the ``_bucket`` series are). A histogram with only the
    ``+Inf`` bucket carries just ``sum``/``count`` (a mean, no percentiles): that is how Triton's
    ``*_duration_us`` counters are represented.

    >>> h = Histogram(bounds=(0.1, 1.0, math.inf), counts=(3.0, 5.0, 6.0), sum=4.2, count=6.0)
    >>> h.count
    6.0
    """

    bounds: tuple[float, ...]
    counts: tuple[float, ...]
    sum: float
    count: float

    @staticmethod
    def mean_only(total_seconds: float, count: float) -> Histogram:
        return Histogram(bounds=(math.inf,), counts=(count,), sum=total_seconds, count=count)


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """Cumulative, normalised values read from one scrape of one backend."""

    gauges: dict[SeriesKey, float] = field(default_factory=dict)
    counters: dict[SeriesKey, float] = field(default_factory=dict)
    histograms: dict[SeriesKey, Histogram] = field(default_factory=dict)
    #: when the engine's process started (Unix seconds), where it says (``process_start_time_seconds``)
    started: float | None = None


@dataclass(frozen=True, slots=True)
class GaugePoint:
    signal: str
    model: str
    value: float


@dataclass(frozen=True, slots=True)
class CounterDelta:
    """Increase of a counter over ``interval`` seconds ending at the record's ``ts``."""

    signal: str
    model: str
    delta: float
    interval: float


@dataclass(frozen=True, slots=True)
class HistogramDelta:
    """Increase of every cumulative bucket (same ``bounds`` as the engine's), of sum and count."""

    signal: str
    model: str
    bounds: tuple[float, ...]
    counts: tuple[float, ...]
    sum: float
    count: float
    interval: float


@dataclass(frozen=True, slots=True)
class ScrapeRecord:
    """Everything one scrape of one backend adds to the store, written in one transaction.

    ``cursor`` is the cumulative snapshot the next scrape's deltas are taken against; it is
    persisted with the deltas so that a restart neither loses nor double-counts an interval.
    ``cursor`` is ``None`` for a failed scrape (the previous cursor stays).
    """

    backend: str
    ts: float
    up: bool
    reason: str | None
    duration: float
    gauges: tuple[GaugePoint, ...] = ()
    counters: tuple[CounterDelta, ...] = ()
    histograms: tuple[HistogramDelta, ...] = ()
    cursor: EngineSnapshot | None = None


# --- outside-in and hardware sources (probes, TLS checks, GPUs) ---------------------------------
#: error kinds a streaming probe reports (``ProbeResult.error_kind``)
PROBE_ERROR_KINDS = ("dns", "refused", "connect", "tls", "timeout", "http_4xx", "http_5xx",
                     "malformed_sse", "stream_cut", "empty")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One streaming request to an OpenAI-compatible endpoint, timed phase by phase.

    Times in seconds from the start of the probe; ``None`` where a phase did not happen (a
    reused connection has no DNS/connect/TLS; a failed probe may stop anywhere). ``itl`` holds
    the gaps between consecutive non-empty content deltas. ``tokens_per_second`` is the decode
    rate: (output tokens - 1) / (last token time - first token time).
    """

    backend: str
    ts: float  # wall-clock start, Unix seconds
    ok: bool
    error_kind: str | None = None  # one of PROBE_ERROR_KINDS
    error: str | None = None  # human-readable detail; never contains a secret
    status: int | None = None
    dns_seconds: float | None = None
    connect_seconds: float | None = None
    tls_seconds: float | None = None
    ttft_seconds: float | None = None
    e2e_seconds: float | None = None
    output_tokens: int | None = None
    tokens_from_usage: bool = False  # output_tokens from the final `usage` (else counted chunks)
    tokens_per_second: float | None = None
    itl: tuple[float, ...] = ()
    tls_version: str | None = None


@dataclass(frozen=True, slots=True)
class CertResult:
    """What one TLS handshake showed about a target's certificate chain."""

    target: str  # "host:port"
    ts: float
    ok: bool  # handshake completed (even if the chain does not verify)
    error: str | None = None
    not_after: float | None = None  # leaf certificate, Unix seconds
    chain_not_after: float | None = None  # earliest not-after anywhere in the presented chain
    chain_not_after_subject: str | None = None  # which certificate expires first
    issuer: str | None = None  # leaf issuer, RFC 4514
    subject: str | None = None  # leaf subject, RFC 4514
    sans: tuple[str, ...] = ()
    verified: bool | None = None  # chain verifies against the system store (or the configured CA file)
    verify_error: str | None = None
    hostname_ok: bool | None = None
    tls_version: str | None = None  # "TLSv1.3"
    cipher: str | None = None


@dataclass(frozen=True, slots=True)
class GpuProcess:
    pid: int
    name: str | None
    used_memory_bytes: int | None


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One GPU (or MIG device) at one moment. A field NVML could not read is ``None``."""

    host: str
    index: str  # "0", or "0/1" for MIG device 1 of GPU 0
    uuid: str
    name: str | None = None
    memory_used_bytes: int | None = None
    memory_free_bytes: int | None = None
    memory_total_bytes: int | None = None
    utilization_ratio: float | None = None  # 0..1
    temperature_celsius: float | None = None
    power_watts: float | None = None
    processes: tuple[GpuProcess, ...] = ()
    sm_clock_hertz: float | None = None
    tensor_active_ratio: float | None = None  # 0..1, dcgm-exporter's DCGM_FI_PROF_PIPE_TENSOR_ACTIVE
    last_xid: int | None = None  # the code of the last XID error (0: none), dcgm-exporter only
    source: str = "nvml"  # nvml | dcgm | triton
    errors: tuple[str, ...] = ()  # "temperature: NVML_ERROR_NOT_SUPPORTED", …


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    """One scrape of one backend's ``/metrics``: the normalised snapshot, or why there is none."""

    backend: str
    ts: float
    up: bool
    reason: str | None
    duration: float
    snapshot: EngineSnapshot | None = None
    gpus: tuple[GpuSample, ...] = ()  # GPU metrics some engines export (Triton's nv_gpu_*)


@dataclass(frozen=True, slots=True)
class GpuReading:
    """What one GPU source produced at one time (the writer stores each sample with ``ts``)."""

    ts: float
    source: str  # "nvml", "dcgm <url>", "triton"
    samples: tuple[GpuSample, ...]
    error: str | None = None


#: What a source's ``collect`` gives (``exporters.base.Source``): never an exception.
Observation = ScrapeResult | ProbeResult | CertResult | GpuReading | AuditResult
