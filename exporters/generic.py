"""Generic Prometheus endpoint (engine ``prometheus``): the user maps native names in config.

::

    options:
      model_label: model                      # optional; without it every series is model ""
      metrics:
        queue_depth: my_queue_len             # a family name: kind follows the signal
        ttft_seconds: {family: my_ttft_ms, scale: 0.001}
        request_errors_total: {family: http_requests, where: {code: ["500", "503"]}}
        e2e_latency_seconds: {family: req_time_us_total, kind: mean, count_family: req_count, scale: 1e-6}
        requests_running: [new_name, old_name]  # several sources: the first one present wins

Keys of a source mapping: ``family`` (required), ``kind`` (default from the signal: histogram
signals → ``histogram``, counters → ``counter``, gauges → ``gauge``; also allowed: ``gauge`` /
``counter`` for any scalar signal, ``mean`` for a histogram signal, which then needs
``count_family``), ``scale`` (number > 0), ``where`` (label → value or list of values), ``agg``
(``sum`` | ``max``, how series of one model combine).

A counter's family may be written with or without ``_total``: the parser files a typed counter
under its base name, an untyped ``foo_total`` under its full name, and both spellings are looked up.

Every mistake raises ``OptionsError`` whose ``path`` names the key, e.g.
``metrics.ttft_secs: unknown signal 'ttft_secs'; expected one of …``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from core.conventions import SIGNALS
from core.samples import EngineSnapshot
from exporters.base import Options, OptionsError
from exporters.families import MetricFamily
from exporters.mapping import EngineTable, SignalMap, Source

ENGINE = "prometheus"

_OPTION_KEYS = ("model_label", "metrics")
_SOURCE_KEYS = ("family", "kind", "scale", "where", "agg", "count_family")
_KINDS_FOR = {
    "gauge": ("gauge", "counter"),
    "counter": ("counter", "gauge"),
    "histogram": ("histogram", "mean"),
}


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise OptionsError(path, f"must be a metric family name (a non-empty string), got {value!r}")
    return value.strip()


def _where(value: Any, path: str) -> dict[str, frozenset[str]]:
    if not isinstance(value, Mapping):
        raise OptionsError(path, "must be a mapping of label name to a value or a list of values")
    out: dict[str, frozenset[str]] = {}
    for label, allowed in value.items():
        sub = f"{path}.{label}"
        if not isinstance(label, str) or not label:
            raise OptionsError(sub, "label names must be non-empty strings")
        items = allowed if isinstance(allowed, list | tuple) else [allowed]
        if not items:
            raise OptionsError(sub, "must list at least one value")
        values: set[str] = set()
        for i, item in enumerate(items):
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                where = f"{sub}[{i}]" if isinstance(allowed, list | tuple) else sub
                raise OptionsError(where, f"label values must be strings, got {item!r}")
            values.add(str(item))
        out[label] = frozenset(values)
    return out


def _source(spec: Any, signal: str, path: str) -> Source:
    default_kind = SIGNALS[signal]
    if isinstance(spec, str):
        return Source(_name(spec, path), default_kind)
    if not isinstance(spec, Mapping):
        raise OptionsError(path, f"must be a family name or a mapping with 'family', got {type(spec).__name__}")
    for key in spec:
        if key not in _SOURCE_KEYS:
            raise OptionsError(f"{path}.{key}", f"unknown key {key!r}; expected one of {', '.join(_SOURCE_KEYS)}")
    if "family" not in spec:
        raise OptionsError(f"{path}.family", "is required")
    family = _name(spec["family"], f"{path}.family")
    kind = spec.get("kind", default_kind)
    allowed = _KINDS_FOR[default_kind]
    if kind not in allowed:
        raise OptionsError(f"{path}.kind", f"{kind!r} cannot feed {default_kind} signal {signal!r}; expected one of {', '.join(allowed)}")
    scale = spec.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale) or scale <= 0:
        raise OptionsError(f"{path}.scale", f"must be a positive number, got {scale!r}")
    where = _where(spec["where"], f"{path}.where") if "where" in spec else {}
    agg = spec.get("agg", "sum")
    if agg not in ("sum", "max"):
        raise OptionsError(f"{path}.agg", f"must be 'sum' or 'max', got {agg!r}")
    count_family = None
    if kind == "mean":
        if "count_family" not in spec:
            raise OptionsError(f"{path}.count_family", "is required with kind 'mean'")
        count_family = _name(spec["count_family"], f"{path}.count_family")
    elif "count_family" in spec:
        raise OptionsError(f"{path}.count_family", "only applies to kind 'mean'")
    return Source(family, kind, scale=float(scale), where=where, count_family=count_family, agg=agg)


def build_table(options: Options) -> EngineTable:
    if not isinstance(options, Mapping):
        raise OptionsError("", "options must be a mapping")
    for key in options:
        if key not in _OPTION_KEYS:
            raise OptionsError(str(key), f"unknown option; expected one of {', '.join(_OPTION_KEYS)}")
    model_label = options.get("model_label")
    if model_label is not None and (not isinstance(model_label, str) or not model_label):
        raise OptionsError("model_label", f"must be a label name, got {model_label!r}")
    metrics = options.get("metrics")
    if not isinstance(metrics, Mapping) or not metrics:
        raise OptionsError("metrics", "required: a mapping of signal to the family (or families) that feed it")
    signals: list[SignalMap] = []
    for signal, spec in metrics.items():
        path = f"metrics.{signal}"
        if signal not in SIGNALS:
            raise OptionsError(path, f"unknown signal {signal!r}; expected one of {', '.join(SIGNALS)}")
        if isinstance(spec, list | tuple):
            if not spec:
                raise OptionsError(path, "must name at least one family")
            sources = tuple(_source(item, signal, f"{path}[{i}]") for i, item in enumerate(spec))
        else:
            sources = (_source(spec, signal, path),)
        signals.append(SignalMap(signal, sources))
    return EngineTable(engine=ENGINE, model_label=model_label, signals=tuple(signals))


def _spellings(name: str) -> tuple[str, ...]:
    return (name, name[: -len("_total")]) if name.endswith("_total") else (name, name + "_total")


class GenericAdapter:
    engine = ENGINE

    def __init__(self, table: EngineTable) -> None:
        self.table = table

    def wanted(self) -> frozenset[str]:
        return frozenset(alias for name in self.table.wanted() for alias in _spellings(name))

    def normalise(self, families: Mapping[str, MetricFamily]) -> EngineSnapshot:
        view = dict(families)
        for name in self.table.wanted():
            if name not in view:
                for alias in _spellings(name)[1:]:
                    if alias in families:
                        view[name] = families[alias]
        return self.table.normalise(view)


def adapter(options: Options) -> GenericAdapter:
    return GenericAdapter(build_table(options))
