"""The collector's config section: backends, probes, TLS targets, GPUs and the scrape settings.

The keys sit at the top level of the file (``scrape_interval:``, ``backends:``, ``gpus:`` …);
``inferwatch.config`` composes this section with the others and reads the file. Every model is
frozen and rejects unknown fields; ``collector_problems`` adds the checks that span fields
(duplicate backend names, engine options, timeouts against intervals).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, JsonValue, field_validator, model_validator

from core.audit import CHECKS, GROUPS
from core.labels import RESERVED_LABELS, is_label_name
from core.schema import ConfigModel
from core.units import PositiveDuration, PositiveSize, Threshold
from exporters.adapters import ENGINES, PROBE_ONLY, make_adapter
from exporters.base import OptionsError
from exporters.families import SeriesLimits
from exporters.resolver import split_nameserver

__all__ = [
    "AuditConfig", "BackendConfig", "CollectorSettings", "DcgmTarget", "GpusConfig", "ProbeConfig", "ProbeTargets",
    "TlsTargetConfig", "collector_problems",
]


def _http_url(v: str, example: str) -> str:
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid url {v!r}; expected {example}")
    return v


class ProbeTargets(ConfigModel):
    """Latency targets a probe must meet, all at once, to count as *good* (goodput)."""

    ttft: PositiveDuration = 1.0
    itl: PositiveDuration = 0.1  # the probe's mean gap between tokens (time per output token)


class ProbeConfig(ConfigModel):
    """Streaming probe of an OpenAI-compatible endpoint (measured by the probe exporter)."""

    model: str
    prompt: str = "Say hi"
    max_tokens: int = Field(16, ge=1, le=4096)
    interval: PositiveDuration = 30.0
    timeout: PositiveDuration = 30.0
    api: Literal["chat", "completions"] = "chat"
    api_key: str | None = None
    targets: ProbeTargets = Field(default_factory=ProbeTargets)

    @model_validator(mode="after")
    def _timeout(self) -> ProbeConfig:
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError("interval and timeout must be greater than 0")
        return self


class TlsTargetConfig(ConfigModel):
    """A TLS endpoint whose certificate chain is checked: ``url`` (https://host[:port]) or ``host:port``."""

    url: str
    server_name: str | None = None
    ca_file: str | None = None
    interval: PositiveDuration = 300.0
    timeout: PositiveDuration = 10.0

    @field_validator("url")
    @classmethod
    def _target(cls, v: str) -> str:
        text = v if "://" in v else f"https://{v}"
        parts = urlsplit(text)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"invalid TLS target {v!r}; expected https://host[:port] or host:port")
        return v

    @property
    def target(self) -> str:
        parts = urlsplit(self.url if "://" in self.url else f"https://{self.url}")
        host = parts.hostname or ""
        return f"{f'[{host}]' if ':' in host else host}:{parts.port or 443}"

    @property
    def host(self) -> str:
        return urlsplit(self.url if "://" in self.url else f"https://{self.url}").hostname or ""


class AuditConfig(ConfigModel):
    """One endpoint whose deployment checklist is run every ``interval`` (``exporters.audit``):
    ``url`` is the API's base URL; ``name`` (default: the URL) names it in the ``target`` label."""

    url: str
    name: str | None = Field(default=None, min_length=1)
    model: str | None = None  # default: the first model /v1/models lists
    api_key: str | None = None  # sent as Authorization: Bearer; write ${ENV_VAR} to keep it out of the file
    api: Literal["chat", "completions"] = "chat"
    interval: PositiveDuration = 3600.0
    timeout: PositiveDuration = 30.0  # each request but the long generation
    burst: int = Field(20, ge=1, le=200)  # requests sent at once by the rate-limit check
    # the incremental-streaming check's generation (the probe keeps 256 gaps in arrival order)
    stream_tokens: int = Field(64, ge=8, le=256)
    long_tokens: int = Field(1024, ge=1, le=65536)  # the long generation that must not be cut
    long_timeout: PositiveDuration = 600.0
    nameserver: str | None = None  # ip or ip:port instead of the system resolver (DNS checks)
    ca_file: str | None = None
    skip: list[str] = Field(default_factory=list)  # check or group names not to run

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v, "https://api.example.com (the API's base URL)").rstrip("/")

    @field_validator("nameserver")
    @classmethod
    def _nameserver(cls, v: str | None) -> str | None:
        if v is not None and split_nameserver(v) is None:
            raise ValueError(f"invalid nameserver {v!r}; expected an IP address, optionally with :port "
                             "(10.0.0.2, 10.0.0.2:5353, ::1)")
        return v

    @field_validator("skip")
    @classmethod
    def _skip(cls, v: list[str]) -> list[str]:
        known = [*GROUPS, *CHECKS]
        for name in v:
            if name not in known:
                raise ValueError(f"unknown check {name!r}; expected a group ({', '.join(GROUPS)}) or a check "
                                 f"({', '.join(CHECKS)})")
        return v

    @property
    def target(self) -> str:
        return self.name or self.url


class BackendConfig(ConfigModel):
    name: str = Field(min_length=1)
    engine: str
    url: str
    metrics_path: str = "/metrics"
    labels: dict[str, str] = Field(default_factory=dict)
    interval: PositiveDuration | None = None
    timeout: PositiveDuration | None = None
    bearer_token: str | None = None
    ca_file: str | None = None  # CA bundle for an https backend (scrape, probe and TLS check)
    alert_thresholds: dict[str, Threshold] = Field(default_factory=dict)  # {DefaultRuleName: threshold}
    options: dict[str, JsonValue] = Field(default_factory=dict)  # the engine adapter's (exporters/<engine>.py)
    probe: ProbeConfig | None = None
    # the host whose GPUs serve this backend, as GPU readings name it (dcgm-exporter's Hostname,
    # NVML's hostname); default: the URL's host, or this machine's for a loopback URL
    gpu_host: str | None = Field(default=None, min_length=1)
    # per-backend overrides of the top-level scrape limits (None: the top-level value; 0: none)
    sample_limit: int | None = Field(default=None, ge=0)
    label_limit: int | None = Field(default=None, ge=0)
    label_name_length_limit: int | None = Field(default=None, ge=0)
    label_value_length_limit: int | None = Field(default=None, ge=0)
    follow_redirects: bool = True  # within the backend's own origin (scheme, host, port)
    cross_origin_redirects: bool = False  # to any other origin too (credentials are not sent there)

    @field_validator("engine")
    @classmethod
    def _engine(cls, v: str) -> str:
        if v not in ENGINES:
            raise ValueError(f"unknown engine {v!r}; expected one of {', '.join(ENGINES)}")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v, "http://host:port or https://host:port").rstrip("/")

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not is_label_name(key) or key.startswith("__"):
                raise ValueError(f"invalid label name {key!r}; use letters, digits and _ (not starting with __)")
            if key in RESERVED_LABELS:
                raise ValueError(f"label name {key!r} is reserved by inferwatch")
        return v

    @property
    def metrics_url(self) -> str:
        return self.url + self.metrics_path


class DcgmTarget(ConfigModel):
    """A remote dcgm-exporter (or any endpoint with DCGM_FI_* metrics)."""

    url: str
    host: str | None = None  # label for the GPUs it reports; default: the URL's host

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v, "http://host:9400/metrics")


class GpusConfig(ConfigModel):
    nvml: Literal["auto", "on", "off"] = "auto"
    interval: PositiveDuration | None = None  # default: scrape_interval
    dcgm: list[DcgmTarget] = Field(default_factory=list)

    @field_validator("nvml", mode="before")
    @classmethod
    def _on_off(cls, v: object) -> object:
        """YAML 1.1 reads an unquoted ``on``/``off`` (and ``yes``/``no``, ``true``/``false``) as a
        boolean: take it as the word the user wrote."""
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v


class FileSD(ConfigModel):
    """Prometheus ``file_sd``: JSON or YAML files of target groups, read again every
    ``refresh_interval`` (and when they change)."""

    files: list[str] = Field(min_length=1)  # paths or glob patterns (``targets/*.json``)
    refresh_interval: PositiveDuration = 30.0


class HttpSD(ConfigModel):
    """Prometheus ``http_sd``: the same JSON, fetched every ``refresh_interval``."""

    url: str
    refresh_interval: PositiveDuration = 60.0
    bearer_token: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"expected an absolute http(s) URL, got {v!r}")
        return v


class DnsSD(ConfigModel):
    """DNS service discovery: SRV records give host and port; A/AAAA records give addresses for
    ``port``. ``nameserver`` (``ip`` or ``ip:port``) instead of the system resolver."""

    names: list[str] = Field(min_length=1)
    type: Literal["SRV", "A", "AAAA"] = "SRV"
    port: int | None = Field(default=None, ge=1, le=65535)
    refresh_interval: PositiveDuration = 30.0
    nameserver: str | None = None

    @model_validator(mode="after")
    def _port(self) -> DnsSD:
        if self.type != "SRV" and self.port is None:
            raise ValueError(f"port: required for {self.type} records (SRV records carry their own)")
        return self


class DiscoveryConfig(ConfigModel):
    """One discovery source (exactly one of ``file_sd``, ``http_sd``, ``dns_sd``) and what its
    targets become: backends named by their ``backend`` label (else ``host:port``), of the
    target group's ``engine`` label (else ``engine`` here), with the group's other labels plus
    ``labels`` here. ``__scheme__`` and ``__metrics_path__`` labels work as in Prometheus."""

    name: str = Field(min_length=1)
    file_sd: FileSD | None = None
    http_sd: HttpSD | None = None
    dns_sd: DnsSD | None = None
    engine: str | None = None
    scheme: Literal["http", "https"] = "http"
    metrics_path: str = "/metrics"
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one(self) -> DiscoveryConfig:
        given = [k for k in ("file_sd", "http_sd", "dns_sd") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of file_sd, http_sd, dns_sd (got {', '.join(given) or 'none'})")
        if self.engine is not None and self.engine not in ENGINES:
            raise ValueError(f"engine: unknown engine {self.engine!r}; expected one of {', '.join(sorted(ENGINES))}")
        return self

    @property
    def refresh_interval(self) -> float:
        sd = self.file_sd or self.http_sd or self.dns_sd
        assert sd is not None
        return sd.refresh_interval


class CollectorSettings(ConfigModel):
    """The collector's top-level keys (a part of the whole config, see ``inferwatch.config``)."""

    scrape_interval: PositiveDuration = 15.0
    scrape_timeout: PositiveDuration | None = None  # default: min(10s, scrape_interval), as Prometheus
    scrape_concurrency: int = Field(64, ge=1)
    max_body_bytes: PositiveSize = 16 * 1024 * 1024
    # what one scrape may hold (Prometheus's names; 0: no limit); a scrape over one fails with a
    # reason naming it and stores nothing. A 4-model vLLM body is about 1,500 samples.
    sample_limit: int = Field(50_000, ge=0)
    label_limit: int = Field(64, ge=0)
    label_name_length_limit: int = Field(256, ge=0)
    label_value_length_limit: int = Field(4096, ge=0)
    backends: list[BackendConfig] = Field(default_factory=list)
    discovery: list[DiscoveryConfig] = Field(default_factory=list)  # more backends (collector/discovery.py)
    gpus: GpusConfig = Field(default_factory=GpusConfig)
    tls: list[TlsTargetConfig] = Field(default_factory=list)
    tls_check_interval: PositiveDuration = 300.0  # for https backends checked automatically
    tls_check_timeout: PositiveDuration = 10.0  # for https backends checked automatically
    audits: list[AuditConfig] = Field(default_factory=list)  # deployment checklists (exporters/audit.py)

    @model_validator(mode="after")
    def _timeouts(self) -> CollectorSettings:
        if self.scrape_timeout is not None and self.scrape_timeout > self.scrape_interval:
            raise ValueError(
                f"scrape_timeout ({self.scrape_timeout:g}s) must not exceed scrape_interval ({self.scrape_interval:g}s)"
            )
        return self

    @property
    def default_timeout(self) -> float:
        """``scrape_timeout``, or when unset the smaller of 10s and ``scrape_interval``."""
        return self.scrape_timeout if self.scrape_timeout is not None else min(10.0, self.scrape_interval)

    def interval_for(self, b: BackendConfig) -> float:
        return b.interval if b.interval is not None else self.scrape_interval

    def series_limits_for(self, b: BackendConfig) -> SeriesLimits:
        def pick(own: int | None, default: int) -> int:
            return default if own is None else own

        return SeriesLimits(
            samples=pick(b.sample_limit, self.sample_limit),
            labels=pick(b.label_limit, self.label_limit),
            label_name_length=pick(b.label_name_length_limit, self.label_name_length_limit),
            label_value_length=pick(b.label_value_length_limit, self.label_value_length_limit),
        )

    def timeout_for(self, b: BackendConfig) -> float:
        t = b.timeout if b.timeout is not None else self.default_timeout
        return min(t, self.interval_for(b))


def collector_problems(cfg: CollectorSettings) -> list[str]:
    """What spans fields: duplicate backend names, each engine's ``options:`` (checked by its
    adapter), a probe for probe-only engines, a backend timeout longer than its interval."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, b in enumerate(cfg.backends):
        if b.name in seen:
            problems.append(f"backends[{i}].name: duplicate name {b.name!r} (also backends[{seen[b.name]}])")
        seen.setdefault(b.name, i)
        if b.engine not in PROBE_ONLY:
            try:
                make_adapter(b.engine, b.options)
            except OptionsError as exc:
                where = f"backends[{i}].options" + (f".{exc.path}" if exc.path else "")
                problems.append(f"{where}: {exc.message}")
        elif b.probe is None:
            problems.append(f"backends[{i}].probe: engine {b.engine!r} has no /metrics; it needs a probe: section")
        if b.timeout is not None and b.timeout > cfg.interval_for(b):
            problems.append(f"backends[{i}].timeout: {b.timeout:g}s exceeds the scrape interval ({cfg.interval_for(b):g}s)")
    targets: dict[str, int] = {}
    for i, a in enumerate(cfg.audits):
        if a.target in targets:
            problems.append(f"audits[{i}].name: duplicate audit {a.target!r} (also audits[{targets[a.target]}]); "
                            "give each a distinct name")
        targets.setdefault(a.target, i)
    return problems
