"""``GET /metrics``: the normalised fleet re-exported for Prometheus federation.

A ``prometheus_client`` collector whose ``collect()`` reads the same windowed summaries as the
JSON API. Windowed quantiles are a *summary* family (``quantile`` label plus ``_sum``/``_count``
over the window): ``promtool check metrics`` rejects a gauge carrying a ``quantile`` label.
A figure that is unavailable is left out, never exported as 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PromCollector
from prometheus_client.samples import Sample

from collector import conventions as c
from collector.config import BackendConfig


def _labels(s: dict[str, Any]) -> dict[str, str]:
    return {c.LABEL_BACKEND: s["name"], c.LABEL_ENGINE: s["engine"], **s["labels"]}


class FleetCollector(PromCollector):
    def __init__(self, summaries: Callable[[], list[dict[str, Any]]], health: Callable[[], dict[str, Any]] | None,
                 backends: Sequence[BackendConfig]) -> None:
        self._summaries = summaries
        self._health = health
        self._backends = {b.name: b for b in backends}

    def collect(self) -> Iterable[Metric]:
        rows = self._summaries()
        up = GaugeMetricFamily(c.METRIC_BACKEND_UP, "1 if the last scrape of the backend succeeded, else 0.")
        last = GaugeMetricFamily(c.METRIC_LAST_SCRAPE, "Unix time of the last scrape attempt.")
        gauges = {
            "queue_depth": GaugeMetricFamily(c.METRIC_QUEUE_DEPTH, "Requests waiting in the backend's queue."),
            "requests_running": GaugeMetricFamily(c.METRIC_REQUESTS_RUNNING, "Requests being served."),
            "tokens_per_second": GaugeMetricFamily(c.METRIC_TOKENS_PER_SECOND, "Generated tokens per second over the window."),
            "prompt_tokens_per_second": GaugeMetricFamily(c.METRIC_PROMPT_TOKENS_PER_SECOND, "Prompt tokens per second over the window."),
            "error_ratio": GaugeMetricFamily(c.METRIC_ERROR_RATIO, "Failed requests / finished requests over the window."),
            "kv_cache_usage_ratio": GaugeMetricFamily(c.METRIC_KV_CACHE, "KV-cache usage, 0..1 (max over models)."),
        }
        summaries = {
            key: Metric(name, f"{key.upper()} latency over the window, from the engine's histogram buckets "
                              "(quantiles interpolated like histogram_quantile; _sum/_count cover the window).", "summary")
            for key, name in (("ttft", c.METRIC_TTFT), ("itl", c.METRIC_ITL), ("e2e", c.METRIC_E2E))
        }
        for s in rows:
            lab = _labels(s)
            up.samples.append(_sample(c.METRIC_BACKEND_UP, lab, 1.0 if s["up"] else 0.0))
            if s["last_scrape"] is not None:
                last.samples.append(_sample(c.METRIC_LAST_SCRAPE, lab, s["last_scrape"]))
            for key, fam in gauges.items():
                v = s.get(key)
                if v is not None:
                    fam.samples.append(_sample(fam.name, lab, float(v)))
            for key, summary in summaries.items():
                block = s.get(key)
                if not block or not block.get("count"):
                    continue
                for q in c.QUANTILES:
                    v = block.get(f"p{round(q * 100)}")
                    if v is not None:
                        summary.samples.append(_sample(summary.name, {**lab, c.LABEL_QUANTILE: _qtext(q)}, v))
                summary.samples.append(_sample(summary.name + "_sum", lab, (block["mean"] or 0.0) * block["count"]))
                summary.samples.append(_sample(summary.name + "_count", lab, block["count"]))
        yield up
        yield last
        yield from gauges.values()
        yield from summaries.values()
        if self._health is not None:
            yield from self._self_metrics(self._health())

    def _self_metrics(self, health: dict[str, Any]) -> Iterable[Metric]:
        dur = GaugeMetricFamily(c.METRIC_SCRAPE_DURATION, "Duration of the last scrape of the backend.", labels=["backend"])
        total = CounterMetricFamily(c.METRIC_SCRAPES, "Scrapes attempted since inferwatch started.", labels=["backend"])
        errors = CounterMetricFamily(c.METRIC_SCRAPE_ERRORS, "Failed scrapes since inferwatch started, by reason class.",
                                     labels=["backend", "reason"])
        for name, h in sorted(health.items()):
            dur.add_metric([name], h.last_duration)
            total.add_metric([name], h.scrapes)
            for reason, n in sorted(h.errors_by_reason.items()):
                errors.add_metric([name, reason], n)
        yield dur
        yield total
        yield errors


def _qtext(q: float) -> str:
    return repr(q)


def _sample(name: str, labels: dict[str, str], value: float) -> Sample:
    return Sample(name, labels, value, None, None)
