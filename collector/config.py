"""The configuration file: YAML -> frozen, typed objects, validated once at start.

The only module that reads YAML or the environment. ``load(path)`` returns a ``Config`` or
raises ``ConfigError`` carrying *every* problem, each with the path of the field it concerns::

    inferwatch.yaml: backends[2].engine: unknown engine 'vlm'; expected one of vllm, tgi, ...

Secrets may be written ``${ENV_VAR}`` (or ``${ENV_VAR:-default}``) anywhere a string is
expected; ``$${`` is a literal ``${``. Durations are ``500ms``, ``15s``, ``5m``, ``1h``, ``7d``
or combinations (``1h30m``); a bare number means seconds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from core.conventions import ENGINES
from core.labels import RESERVED_LABELS, is_label_name
from core.units import Duration, Size

_ENV_RE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _http_url(v: str, example: str) -> str:
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid url {v!r}; expected {example}")
    return v



class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProbeTargets(_Frozen):
    """Latency targets a probe must meet, all at once, to count as *good* (goodput)."""

    ttft: Duration = 1.0
    itl: Duration = 0.1  # the probe's mean gap between tokens (time per output token)


class ProbeConfig(_Frozen):
    """Streaming probe of an OpenAI-compatible endpoint (measured by the probe exporter)."""

    model: str
    prompt: str = "Say hi"
    max_tokens: int = Field(16, ge=1, le=4096)
    interval: Duration = 30.0
    timeout: Duration = 30.0
    api: Literal["chat", "completions"] = "chat"
    api_key: str | None = None
    targets: ProbeTargets = Field(default_factory=ProbeTargets)

    @model_validator(mode="after")
    def _timeout(self) -> ProbeConfig:
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError("interval and timeout must be greater than 0")
        return self


class TlsTargetConfig(_Frozen):
    """A TLS endpoint whose certificate chain is checked: ``url`` (https://host[:port]) or ``host:port``."""

    url: str
    server_name: str | None = None
    ca_file: str | None = None
    interval: Duration = 300.0
    timeout: Duration = 10.0

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


class BackendConfig(_Frozen):
    name: str = Field(min_length=1)
    engine: str
    url: str
    metrics_path: str = "/metrics"
    labels: dict[str, str] = Field(default_factory=dict)
    interval: Duration | None = None
    timeout: Duration | None = None
    bearer_token: str | None = None
    ca_file: str | None = None  # CA bundle for an https backend (scrape, probe and TLS check)
    alert_thresholds: dict[str, float | str] = Field(default_factory=dict)  # {DefaultRuleName: threshold}
    options: dict[str, Any] = Field(default_factory=dict)
    probe: ProbeConfig | None = None
    # the host whose GPUs serve this backend, as GPU readings name it (dcgm-exporter's Hostname,
    # NVML's hostname); default: the URL's host, or this machine's for a loopback URL
    gpu_host: str | None = Field(default=None, min_length=1)

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


class RetentionConfig(_Frozen):
    raw: Duration = 86400.0
    rollups: Duration = 30 * 86400.0
    rollup_step: Duration = 60.0


class BasicUser(_Frozen):
    user: str = Field(min_length=1)
    password: str = Field(min_length=8)  # write it as ${ENV_VAR}


class AuthConfig(_Frozen):
    """Who may see pages and API: bearer ``tokens`` (scripts) and/or ``basic`` users (browsers).
    ``/healthz`` and ``/readyz`` are always open; ``/metrics`` too unless ``protect_metrics``."""

    tokens: list[str] = Field(default_factory=list)
    basic: list[BasicUser] = Field(default_factory=list)
    protect_metrics: bool = False


class WebConfig(_Frozen):
    listen: str = "127.0.0.1:8000"
    auth: AuthConfig = Field(default_factory=AuthConfig)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"invalid listen address {v!r}; expected host:port, e.g. 127.0.0.1:8000")
        return v

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class DcgmTarget(_Frozen):
    """A remote dcgm-exporter (or any endpoint with DCGM_FI_* metrics)."""

    url: str
    host: str | None = None  # label for the GPUs it reports; default: the URL's host

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v, "http://host:9400/metrics")


class GpusConfig(_Frozen):
    nvml: Literal["auto", "on", "off"] = "auto"
    interval: Duration | None = None  # default: scrape_interval
    dcgm: list[DcgmTarget] = Field(default_factory=list)


class Config(_Frozen):
    storage: str = "sqlite:///inferwatch.db"
    scrape_interval: Duration = 15.0
    scrape_timeout: Duration = 10.0
    scrape_concurrency: int = Field(64, ge=1)
    max_body_bytes: Size = 16 * 1024 * 1024
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    backends: list[BackendConfig] = Field(default_factory=list)
    gpus: GpusConfig = Field(default_factory=GpusConfig)
    tls: list[TlsTargetConfig] = Field(default_factory=list)
    tls_check_interval: Duration = 300.0  # for https backends checked automatically
    # Alerting: validated by the alert engine's own models in ``_cross_checks`` (rules, notifiers).
    evaluation_interval: Duration = 15.0
    default_rules: bool = True  # the built-in rule pack (alerts/rulepack.py)
    #: per default rule: {threshold, for, severity, labels, annotations, enabled: false, …}
    rule_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    external_url: str | None = None  # how links in notifications reach the dashboard
    rules: list[dict[str, Any]] = Field(default_factory=list)
    slos: list[dict[str, Any]] = Field(default_factory=list)
    notifiers: dict[str, Any] = Field(default_factory=dict)
    routes: list[dict[str, Any]] = Field(default_factory=list)  # alerts/routing.py
    default_receiver: str | None = None  # with routes: where an alert no route matches goes
    repeat_interval: Duration = 4 * 3600.0  # re-notify a still-firing alert (0: never)
    group_by: list[str] = Field(default_factory=lambda: ["alertname", "backend"])
    inhibit_rules: list[dict[str, Any]] | None = None  # None: the built-in BackendDown rule

    @field_validator("storage")
    @classmethod
    def _storage(cls, v: str) -> str:
        scheme = v.split(":", 1)[0]
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ValueError(f"unsupported storage {v!r}; expected sqlite:///path.db or postgresql+psycopg://user@host/db")
        if scheme == "postgresql" or scheme == "postgres":
            raise ValueError("write postgresql+psycopg://… so the psycopg 3 driver is used")
        return v

    @model_validator(mode="after")
    def _timeouts(self) -> Config:
        if self.scrape_timeout > self.scrape_interval:
            raise ValueError(
                f"scrape_timeout ({self.scrape_timeout:g}s) must not exceed scrape_interval ({self.scrape_interval:g}s)"
            )
        return self

    def interval_for(self, b: BackendConfig) -> float:
        return b.interval if b.interval is not None else self.scrape_interval

    def timeout_for(self, b: BackendConfig) -> float:
        t = b.timeout if b.timeout is not None else self.scrape_timeout
        return min(t, self.interval_for(b))


class ConfigError(Exception):
    """Every problem found in a config file, each as ``path: message``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


def _substitute(node: Any, path: str, env: Mapping[str, str], problems: list[str]) -> Any:
    if isinstance(node, str):
        def repl(m: re.Match[str]) -> str:
            if m.group(0) == "$${":
                return "${"
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{path or '(top)'}: environment variable {name} is not set")
            return ""
        return _ENV_RE.sub(repl, node)
    if isinstance(node, list):
        return [_substitute(v, f"{path}[{i}]", env, problems) for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {k: _substitute(v, f"{path}.{k}" if path else str(k), env, problems) for k, v in node.items()}
    return node


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(err: Mapping[str, Any]) -> str:
    kind, msg = err.get("type", ""), str(err.get("msg", ""))
    if kind == "extra_forbidden":
        return "unknown field; check its spelling against the config reference in README.md"
    if kind == "missing":
        return "required field is missing"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


def parse(data: Any, source: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    """Validate already-loaded YAML data. Raises ``ConfigError`` listing every problem."""
    problems: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["the file must hold a mapping (key: value lines) at the top level"])
    data = _substitute(data, "", os.environ if env is None else env, problems)
    cfg: Config | None = None
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            where = _loc(tuple(err["loc"]))
            problems.append(f"{where}: {_message(err)}" if where else _message(err))
    if cfg is not None:
        problems.extend(_cross_checks(cfg))
    if problems:
        raise ConfigError(source, problems)
    assert cfg is not None
    return cfg


def _cross_checks(cfg: Config) -> list[str]:
    from exporters.adapters import OptionsError, make_adapter

    problems: list[str] = []
    problems.extend(_alerting_checks(cfg))
    problems.extend(_slo_checks(cfg))
    seen: dict[str, int] = {}
    for i, b in enumerate(cfg.backends):
        if b.name in seen:
            problems.append(f"backends[{i}].name: duplicate name {b.name!r} (also backends[{seen[b.name]}])")
        seen.setdefault(b.name, i)
        if b.engine != "openai":
            try:
                make_adapter(b.engine, b.options)
            except OptionsError as exc:
                where = f"backends[{i}].options" + (f".{exc.path}" if exc.path else "")
                problems.append(f"{where}: {exc.message}")
        elif b.probe is None:
            problems.append(f"backends[{i}].probe: engine 'openai' has no /metrics; it needs a probe: section")
        t = b.timeout if b.timeout is not None else None
        if t is not None and t > cfg.interval_for(b):
            problems.append(f"backends[{i}].timeout: {t:g}s exceeds the scrape interval ({cfg.interval_for(b):g}s)")
    return problems


def _named_models(items: list[dict[str, Any]], model: Any, section: str, what: str) -> list[str]:
    """Validate each entry of a config list with a pydantic ``model``; problems by path, and
    duplicate ``name``s."""
    problems: list[str] = []
    names: dict[str, int] = {}
    for i, raw in enumerate(items):
        try:
            obj = model.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                where = _loc(tuple(err["loc"]))
                problems.append(f"{section}[{i}]" + (f".{where}" if where else "") + f": {_message(err)}")
            continue
        if obj.name in names:
            problems.append(f"{section}[{i}].name: duplicate {what} name {obj.name!r} (also {section}[{names[obj.name]}])")
        names.setdefault(obj.name, i)
    return problems


def _slo_checks(cfg: Config) -> list[str]:
    from alerts.slo import SLO

    return _named_models(cfg.slos, SLO, "slos", "SLO")


def _alerting_checks(cfg: Config) -> list[str]:
    from alerts.notifiers import build
    from alerts.routing import RoutingError
    from alerts.rulepack import default_rules
    from alerts.rules import Rule

    problems: list[str] = []
    try:
        default_rules(cfg.rule_overrides, {b.name: b.alert_thresholds for b in cfg.backends if b.alert_thresholds})
    except (ValueError, ValidationError) as exc:
        text = str(exc).splitlines()[0]
        where, _, message = text.partition(": ")
        if where == "overrides":
            problems.append(f"rule_overrides: {message}")
        elif where.startswith("per_backend."):
            name = where.split(".", 1)[1]
            index = next(i for i, b in enumerate(cfg.backends) if b.name == name)
            problems.append(f"backends[{index}].alert_thresholds: {message}")
        else:
            problems.append(f"rule_overrides: {text}")
    problems.extend(_named_models(cfg.rules, Rule, "rules", "rule"))
    for name, conf in cfg.notifiers.items():
        try:
            build(name, conf)
        except ValueError as exc:
            field, _, message = str(exc).partition(": ")
            problems.append(f"notifiers.{name}.{field}: {message}" if message else f"notifiers.{name}: {exc}")
    try:
        router_from_config(cfg)
    except RoutingError as exc:
        problems.extend(exc.problems)
    return problems


def router_from_config(cfg: Config) -> Any:
    """The alert ``Router`` (``alerts/routing.py``) of ``routes``, ``default_receiver``,
    ``repeat_interval``, ``group_by`` and ``inhibit_rules``; raises ``RoutingError``."""
    from alerts.routing import Router

    return Router.parse(cfg.routes, list(cfg.notifiers), default_receiver=cfg.default_receiver,
                        repeat_interval=cfg.repeat_interval, group_by=cfg.group_by,
                        inhibit_rules=cfg.inhibit_rules)


def load(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a YAML config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [f"cannot read the file: {exc.strerror or exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(p), [f"{where}YAML syntax error: {problem}"]) from None
    return parse(data, str(p), env)
