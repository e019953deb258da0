"""The read contract: what one backend looks like over a window, as one typed value.

``collector.query`` builds a ``BackendSummary`` per backend; the JSON API renders it with
``to_json()`` (the documented shape of ``/api/v1/backends``), ``/metrics``, the fleet page and
the alert engine read its attributes. A figure an engine does not expose, or that the window
holds no data for, is ``None`` — never 0.

``to_json()`` keeps the keys and their order as ``/api/v1/backends`` has always had them::

    {name, engine, url, up, reason, last_scrape, last_success, scrape_duration_seconds,
     window_seconds, queue_depth, requests_running, ttft, itl, e2e, queue_time,
     tokens_per_second, prompt_tokens_per_second, requests_per_second, error_ratio,
     kv_cache_usage_ratio, prefix_cache_hit_ratio, labels, [probe], models, gpu_memory_used_ratio}

``probe`` is present (possibly null) exactly when the backend has a probe configured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from pydantic import JsonValue

__all__ = [
    "COLUMN_KEYS", "BackendSummary", "Figures", "Json", "Latency", "ProbeError", "ProbeSummary", "Quantiles",
    "column_value",
]

#: A JSON document as the API returns it.
Json = dict[str, JsonValue]
QuantileKey = Literal["p50", "p95", "p99"]


@dataclass(frozen=True, slots=True)
class Quantiles:
    """p50, p95 and p99 of one latency (seconds)."""

    p50: float | None
    p95: float | None
    p99: float | None

    def get(self, key: str) -> float | None:
        """``"p99"`` -> ``self.p99``; None for any other key."""
        return {"p50": self.p50, "p95": self.p95, "p99": self.p99}.get(key)

    def to_json(self) -> Json:
        return {"p50": self.p50, "p95": self.p95, "p99": self.p99}


@dataclass(frozen=True, slots=True)
class Latency(Quantiles):
    """A latency histogram over the window: quantiles interpolated like ``histogram_quantile``,
    the mean (``sum / count``) and the number of observations."""

    mean: float | None
    count: float

    def to_json(self) -> Json:
        return {"p50": self.p50, "p95": self.p95, "p99": self.p99, "mean": self.mean, "count": self.count}


@dataclass(frozen=True, slots=True)
class Figures:
    """The engine-reported figures of a backend (or of one of its models) over the window."""

    queue_depth: float | None = None
    requests_running: float | None = None
    ttft: Latency | None = None
    itl: Latency | None = None
    e2e: Latency | None = None
    queue_time: Latency | None = None
    tokens_per_second: float | None = None
    prompt_tokens_per_second: float | None = None
    requests_per_second: float | None = None
    error_ratio: float | None = None
    kv_cache_usage_ratio: float | None = None
    prefix_cache_hit_ratio: float | None = None

    def latency(self, key: str) -> Latency | None:
        """``"ttft"`` | ``"itl"`` | ``"e2e"`` | ``"queue_time"`` -> that block."""
        return {"ttft": self.ttft, "itl": self.itl, "e2e": self.e2e, "queue_time": self.queue_time}.get(key)

    def to_json(self) -> Json:
        def block(b: Latency | None) -> JsonValue:
            return None if b is None else b.to_json()

        return {
            "queue_depth": self.queue_depth, "requests_running": self.requests_running,
            "ttft": block(self.ttft), "itl": block(self.itl), "e2e": block(self.e2e),
            "queue_time": block(self.queue_time), "tokens_per_second": self.tokens_per_second,
            "prompt_tokens_per_second": self.prompt_tokens_per_second,
            "requests_per_second": self.requests_per_second, "error_ratio": self.error_ratio,
            "kv_cache_usage_ratio": self.kv_cache_usage_ratio, "prefix_cache_hit_ratio": self.prefix_cache_hit_ratio,
        }


@dataclass(frozen=True, slots=True)
class ProbeError:
    """The latest failed probe of the window."""

    ts: float
    kind: str | None
    error: str | None
    status: int | None

    def to_json(self) -> Json:
        return {"ts": self.ts, "kind": self.kind, "error": self.error, "status": self.status}


@dataclass(frozen=True, slots=True)
class ProbeSummary:
    """What the streaming probes measured over the window (exact quantiles of observations).

    ``goodput_ratio``: the share of probes that succeeded and met every latency target at once."""

    count: int
    success_ratio: float
    goodput_ratio: float
    ttft_target: float
    itl_target: float
    ttft: Quantiles | None
    e2e: Quantiles | None
    itl: Quantiles | None
    tokens_per_second_p50: float | None
    tokens_per_second_p5: float | None
    dns: Quantiles | None
    connect: Quantiles | None
    tls: Quantiles | None
    last_probe: float
    last_ok: bool
    last_error: ProbeError | None

    def phase(self, name: str) -> Quantiles | None:
        """``"dns"`` | ``"connect"`` | ``"tls"`` -> that phase's quantiles."""
        return {"dns": self.dns, "connect": self.connect, "tls": self.tls}.get(name)

    def to_json(self) -> Json:
        def block(b: Quantiles | None) -> JsonValue:
            return None if b is None else b.to_json()

        tps: JsonValue = None
        if self.tokens_per_second_p50 is not None or self.tokens_per_second_p5 is not None:
            tps = {"p50": self.tokens_per_second_p50, "p5": self.tokens_per_second_p5}
        return {
            "count": self.count, "success_ratio": self.success_ratio, "goodput_ratio": self.goodput_ratio,
            "targets": {"ttft_seconds": self.ttft_target, "itl_seconds": self.itl_target},
            "ttft": block(self.ttft), "e2e": block(self.e2e), "itl": block(self.itl), "tokens_per_second": tps,
            "dns": block(self.dns), "connect": block(self.connect), "tls": block(self.tls),
            "last_probe": self.last_probe, "last_ok": self.last_ok,
            "last_error": None if self.last_error is None else self.last_error.to_json(), "source": "probe",
        }


@dataclass(frozen=True, slots=True)
class BackendSummary:
    """One backend over a window: its status, its figures (all models), per-model figures, its
    probe's figures (``probed``: whether it has a probe at all) and its host's fullest GPU."""

    name: str
    engine: str
    url: str
    up: bool
    reason: str | None
    last_scrape: float | None
    last_success: float | None
    scrape_duration_seconds: float | None
    window_seconds: float
    figures: Figures
    labels: Mapping[str, str]
    probed: bool = False
    probe: ProbeSummary | None = None
    models: Mapping[str, Figures] = field(default_factory=dict)
    gpu_memory_used_ratio: float | None = None

    def to_json(self) -> Json:
        out: Json = {
            "name": self.name, "engine": self.engine, "url": self.url, "up": self.up, "reason": self.reason,
            "last_scrape": self.last_scrape, "last_success": self.last_success,
            "scrape_duration_seconds": self.scrape_duration_seconds, "window_seconds": self.window_seconds,
        }
        out.update(self.figures.to_json())
        out["labels"] = dict(self.labels)
        if self.probed:
            out["probe"] = None if self.probe is None else self.probe.to_json()
        out["models"] = {m: f.to_json() for m, f in self.models.items()}
        out["gpu_memory_used_ratio"] = self.gpu_memory_used_ratio
        return out


def _latency(key: str, q: QuantileKey) -> Callable[[BackendSummary], float | None]:
    def read(s: BackendSummary) -> float | None:
        block = s.figures.latency(key)
        return None if block is None else block.get(q)
    return read


#: the figures a fleet table column can show, by their key in ``/api/v1/backends`` (dotted for
#: nested ones); the fleet page and its auto-refresh (``dashboard.js``) share these keys
COLUMN_KEYS: Final[dict[str, Callable[[BackendSummary], float | None]]] = {
    "queue_depth": lambda s: s.figures.queue_depth,
    "requests_running": lambda s: s.figures.requests_running,
    "ttft.p50": _latency("ttft", "p50"),
    "ttft.p95": _latency("ttft", "p95"),
    "ttft.p99": _latency("ttft", "p99"),
    "e2e.p99": _latency("e2e", "p99"),
    "tokens_per_second": lambda s: s.figures.tokens_per_second,
    "error_ratio": lambda s: s.figures.error_ratio,
    "kv_cache_usage_ratio": lambda s: s.figures.kv_cache_usage_ratio,
    "gpu_memory_used_ratio": lambda s: s.gpu_memory_used_ratio,
}


def column_value(s: BackendSummary, key: str) -> float | None:
    """The figure a fleet column shows (``KeyError`` for a key no column has)."""
    return COLUMN_KEYS[key](s)
