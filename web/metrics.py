"""``GET /metrics``: the normalised fleet re-exported for Prometheus federation.

A ``prometheus_client`` collector whose ``collect()`` reads the same windowed summaries as the
JSON API. Windowed quantiles are a *summary* family (``quantile`` label plus ``_sum``/``_count``
over the window): ``promtool check metrics`` rejects a gauge carrying a ``quantile`` label.
A figure that is unavailable is left out, never exported as 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector as PromCollector
from prometheus_client.samples import Sample

from collector.config import BackendConfig
from core import conventions as c


def _labels(s: dict[str, Any]) -> dict[str, str]:
    return {c.LABEL_BACKEND: s["name"], c.LABEL_ENGINE: s["engine"], **s["labels"]}


class FleetCollector(PromCollector):
    def __init__(self, summaries: Callable[[], list[dict[str, Any]]], health: Callable[[], dict[str, Any]] | None,
                 backends: Sequence[BackendConfig], certificates: Callable[[], list[dict[str, Any]]] | None = None,
                 gpus: Callable[[], list[dict[str, Any]]] | None = None) -> None:
        self._summaries = summaries
        self._health = health
        self._backends = {b.name: b for b in backends}
        self._certificates = certificates
        self._gpus = gpus

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
        yield from self._probe_metrics(rows)
        if self._certificates is not None:
            yield from self._cert_metrics(self._certificates())
        if self._gpus is not None:
            yield from self._gpu_metrics(self._gpus())
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


    def _probe_metrics(self, rows: list[dict[str, Any]]) -> Iterable[Metric]:
        help_ = "measured by inferwatch's streaming probe (what a user feels), not reported by the engine"
        ttft = Metric("inferwatch_probe_ttft_seconds", f"Time to first token, {help_}; exact quantiles over the window.", "summary")
        e2e = Metric("inferwatch_probe_e2e_seconds", f"Whole streamed request, {help_}; exact quantiles over the window.", "summary")
        tps = GaugeMetricFamily("inferwatch_probe_tokens_per_second", f"Median decode rate, {help_}.")
        success = GaugeMetricFamily("inferwatch_probe_success", f"Share of successful probes over the window, {help_}.")
        goodput = GaugeMetricFamily("inferwatch_probe_goodput_ratio",
                                    f"Share of probes meeting every latency target at once, {help_}.")
        phase = GaugeMetricFamily("inferwatch_probe_phase_seconds",
                                  f"Median duration of a connection phase (dns, connect, tls), {help_}.")
        for s in rows:
            p = s.get("probe")
            if not p:
                continue
            lab = _labels(s)
            for fam, block in ((ttft, p["ttft"]), (e2e, p["e2e"])):
                if not block:
                    continue
                for q in c.QUANTILES:
                    v = block.get(f"p{round(q * 100)}")
                    if v is not None:
                        fam.samples.append(_sample(fam.name, {**lab, c.LABEL_QUANTILE: _qtext(q)}, v))
            if p["tokens_per_second"] and p["tokens_per_second"]["p50"] is not None:
                tps.samples.append(_sample(tps.name, lab, p["tokens_per_second"]["p50"]))
            success.samples.append(_sample(success.name, lab, p["success_ratio"]))
            goodput.samples.append(_sample(goodput.name, lab, p["goodput_ratio"]))
            for name in ("dns", "connect", "tls"):
                if p[name] and p[name]["p50"] is not None:
                    phase.samples.append(_sample(phase.name, {**lab, "phase": name}, p[name]["p50"]))
        yield from (ttft, e2e, tps, success, goodput, phase)

    def _cert_metrics(self, certs: list[dict[str, Any]]) -> Iterable[Metric]:
        expiry = GaugeMetricFamily(c.METRIC_CERT_EXPIRY, "Leaf certificate not-after, Unix seconds.", labels=["target"])
        chain = GaugeMetricFamily("inferwatch_cert_chain_expiry_timestamp_seconds",
                                  "Earliest not-after anywhere in the presented chain, Unix seconds.", labels=["target"])
        verified = GaugeMetricFamily("inferwatch_cert_verified", "1 if the chain verifies against the trust store.",
                                     labels=["target"])
        name_ok = GaugeMetricFamily("inferwatch_cert_hostname_match", "1 if the leaf certificate matches the host name.",
                                    labels=["target"])
        check_ok = GaugeMetricFamily("inferwatch_tls_check_success", "1 if the last TLS handshake completed.",
                                     labels=["target"])
        version = GaugeMetricFamily("inferwatch_tls_version_info", "Negotiated TLS version and cipher (value 1).",
                                    labels=["target", "version", "cipher"])
        for r in certs:
            t = [r["target"]]
            check_ok.add_metric(t, 1.0 if r["error"] is None else 0.0)
            if r["not_after"] is not None:
                expiry.add_metric(t, r["not_after"])
            if r["chain_not_after"] is not None:
                chain.add_metric(t, r["chain_not_after"])
            if r["verified"] is not None:
                verified.add_metric(t, 1.0 if r["verified"] else 0.0)
            if r["hostname_ok"] is not None:
                name_ok.add_metric(t, 1.0 if r["hostname_ok"] else 0.0)
            if r["tls_version"]:
                version.add_metric([r["target"], r["tls_version"], r["cipher"] or ""], 1.0)
        yield from (expiry, chain, verified, name_ok, check_ok, version)

    def _gpu_metrics(self, gpus: list[dict[str, Any]]) -> Iterable[Metric]:
        labels = ["host", "gpu", "uuid", "name", "source"]
        fams = {
            "memory_used_bytes": GaugeMetricFamily(c.METRIC_GPU_MEMORY_USED, "GPU memory used (as nvidia-smi shows it).", labels=labels),
            "memory_total_bytes": GaugeMetricFamily(c.METRIC_GPU_MEMORY_TOTAL, "GPU memory total.", labels=labels),
            "utilization_ratio": GaugeMetricFamily("inferwatch_gpu_utilization_ratio", "GPU busy time share, 0..1.", labels=labels),
            "temperature_celsius": GaugeMetricFamily("inferwatch_gpu_temperature_celsius", "GPU temperature.", labels=labels),
            "power_watts": GaugeMetricFamily("inferwatch_gpu_power_watts", "GPU power draw.", labels=labels),
        }
        procs = GaugeMetricFamily("inferwatch_gpu_process_memory_bytes", "GPU memory used by one process.",
                                  labels=[*labels, "pid", "process"])
        for g in gpus:
            if not g.get("uuid"):
                continue  # status entries (NVML off, source errors)
            lab = [g["host"] or "", g["index"], g["uuid"], g["name"] or "", g["source"]]
            for key, fam in fams.items():
                if g.get(key) is not None:
                    fam.add_metric(lab, float(g[key]))
            for p in g["processes"]:
                if p["used_memory_bytes"] is not None:
                    procs.add_metric([*lab, str(p["pid"]), p["name"] or ""], float(p["used_memory_bytes"]))
        yield from (*fams.values(), procs)


def _qtext(q: float) -> str:
    return repr(q)


def _sample(name: str, labels: dict[str, str], value: float) -> Sample:
    return Sample(name, labels, value, None, None)


class AlertMetrics(PromCollector):
    """The alert engine and its outbox: firing alerts, queue, deliveries, failures."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def collect(self) -> Iterable[Metric]:
        firing = GaugeMetricFamily("inferwatch_alerts_firing", "Alerts firing now, by rule and severity.",
                                   labels=["alertname", "severity"])
        counts: dict[tuple[str, str], int] = {}
        for st in self._engine.firing():
            key = (st.labels.get("alertname", st.rule), st.labels.get("severity", ""))
            counts[key] = counts.get(key, 0) + 1
        for (name, sev), n in sorted(counts.items()):
            firing.add_metric([name, sev], n)
        d = self._engine.dispatcher
        queued = GaugeMetricFamily("inferwatch_notifications_queued", "Notifications waiting in the outbox.")
        queued.add_metric([], d.queue_size)
        sent = CounterMetricFamily("inferwatch_notifications_sent", "Notifications delivered.", labels=["receiver"])
        for r, n in sorted(d.sent_total.items()):
            sent.add_metric([r], n)
        failed = CounterMetricFamily("inferwatch_notification_failures", "Failed delivery attempts, by reason.",
                                     labels=["receiver", "reason"])
        for (r, reason), n in sorted(d.failures_total.items()):
            failed.add_metric([r, reason], n)
        latency = HistogramMetricFamily("inferwatch_notification_delivery_seconds",
                                        "From a notification's creation to its delivery.")
        h = d.delivery_latency_seconds
        cumulative = [(("+Inf" if math.isinf(b) else repr(float(b))), float(n)) for b, n in h.buckets()]
        if not cumulative or cumulative[-1][0] != "+Inf":
            cumulative.append(("+Inf", float(h.count)))
        latency.add_metric([], cumulative, sum_value=h.sum)
        yield latency
        evals = CounterMetricFamily("inferwatch_rule_evaluations", "Rule evaluation rounds since start.")
        evals.add_metric([], self._engine.evaluations)
        yield from (firing, queued, sent, failed, evals)
