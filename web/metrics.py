"""``GET /metrics``: the normalised fleet re-exported for Prometheus federation.

Two ``prometheus_client`` collectors. ``FleetCollector.collect()`` exports, with Prometheus
semantics, what ``rate()``, ``increase()`` and ``histogram_quantile`` need: cumulative counters
(requests, errors, prompt and generation tokens, prefix-cache queries and hits) and cumulative
latency histograms on the engine's own buckets, per backend and model, counted since this
process started (``_created``; ``collector.totals``). Beside them, the figures the JSON API
shows over its 5-minute window: gauges (queue, running, rates, ratios) and the windowed
percentiles as gauges with ``percentile`` and ``window`` labels — never a summary whose
``_count`` could be mistaken for a counter. A figure that is unavailable is left out, never
exported as 0; so are a down backend's current figures. ``AlertMetrics`` exports the alert
engine and its outbox. Every name comes from ``core.conventions``.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable, Iterable

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector as PromCollector
from prometheus_client.samples import Sample

from alerts.engine import AlertEngine
from alerts.slo_data import SloFigures, slo_figures
from collector.summary import BackendSummary, Figures, ProbeSummary, Quantiles
from core import conventions as c
from core.audit import AuditResult
from core.build import VERSION
from core.numbers import LatencyHistogram
from core.samples import CertResult, GpuSample
from core.units import format_window
from web.deps import WebContext

__all__ = ["AlertMetrics", "FleetCollector"]


#: the window of the windowed figures (rates, quantiles) ``/metrics`` exports
WINDOW = 300.0
WINDOW_LABEL = "5m"
#: seconds between reads of the SLO figures from the store
SLO_EVERY = 15.0
_QUANTILE_KEYS = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


def _labels(s: BackendSummary) -> dict[str, str]:
    return {c.LABEL_BACKEND: s.name, c.LABEL_ENGINE: s.engine, **s.labels}


class FleetCollector(PromCollector):
    def __init__(self, context: Callable[[], WebContext]) -> None:
        self._context = context  # the app's current context (a config reload replaces it)
        self._slo_cache: tuple[float, list[SloFigures]] | None = None

    def collect(self) -> Iterable[Metric]:
        ctx = self._context()
        yield from _reload_metrics(ctx)
        rows = ctx.summaries(WINDOW)
        up = GaugeMetricFamily(c.METRIC_BACKEND_UP, "1 if the last scrape of the backend succeeded, else 0.")
        last = GaugeMetricFamily(c.METRIC_LAST_SCRAPE, "Unix time of the last scrape attempt.")
        gauges: list[tuple[GaugeMetricFamily, Callable[[Figures], float | None]]] = [
            (GaugeMetricFamily(c.METRIC_QUEUE_DEPTH, "Requests waiting in the backend's queue."),
             lambda f: f.queue_depth),
            (GaugeMetricFamily(c.METRIC_REQUESTS_RUNNING, "Requests being served."), lambda f: f.requests_running),
            (GaugeMetricFamily(c.METRIC_TOKENS_PER_SECOND, "Generated tokens per second over the window."),
             lambda f: f.tokens_per_second),
            (GaugeMetricFamily(c.METRIC_PROMPT_TOKENS_PER_SECOND, "Prompt tokens per second over the window."),
             lambda f: f.prompt_tokens_per_second),
            (GaugeMetricFamily(c.METRIC_ERROR_RATIO, "Failed requests / finished requests over the window."),
             lambda f: f.error_ratio),
            (GaugeMetricFamily(c.METRIC_KV_CACHE, "KV-cache usage, 0..1 (max over models)."),
             lambda f: f.kv_cache_usage_ratio),
        ]
        windowed: list[tuple[Metric, str]] = [
            (Metric(name, f"{key.upper()} percentile over the last {WINDOW_LABEL} (label window), interpolated "
                          "like histogram_quantile from the engine's buckets; for aggregation use the "
                          "cumulative histogram.", "gauge"), key)
            for key, name in c.WINDOW_QUANTILE_METRICS.items()
        ]
        for s in rows:
            lab = _labels(s)
            up.samples.append(_sample(c.METRIC_BACKEND_UP, lab, 1.0 if s.up else 0.0))
            if s.last_scrape is not None:
                last.samples.append(_sample(c.METRIC_LAST_SCRAPE, lab, s.last_scrape))
            for fam, figure in gauges:
                v = figure(s.figures)
                if v is not None:
                    fam.samples.append(_sample(fam.name, lab, float(v)))
            for wfam, key in windowed:
                block = s.figures.latency(key)
                if block is None or not block.count:
                    continue
                for pkey, q in _QUANTILE_KEYS:
                    v = block.get(pkey)
                    if v is not None:
                        wfam.samples.append(_sample(wfam.name, {**lab, "percentile": repr(q), "window": WINDOW_LABEL}, v))
        yield _build_info()
        yield up
        yield last
        yield from (fam for fam, _ in gauges)
        yield from (fam for fam, _ in windowed)
        yield from self._cumulative(ctx, {s.name: _labels(s) for s in rows})
        yield from self._slo_metrics(ctx)
        yield from self._probe_metrics(rows)
        yield from self._cert_metrics(ctx.reads.observations.certificate_results())
        yield from self._gpu_metrics(ctx.reads.observations.latest_gpus(ctx.clock() - WINDOW))
        yield from self._audit_metrics(ctx.reads.observations.latest_audits())
        if ctx.collector is not None:
            yield from self._self_metrics(ctx)

    def _cumulative(self, ctx: WebContext, labels: dict[str, dict[str, str]]) -> Iterable[Metric]:
        """Counters and histograms since the start (``collector.totals``), per backend and model."""
        live = ctx.reads.live
        if live is None or live.totals is None:
            return
        counters, hists = live.cumulative()
        created = live.totals.started
        fams: dict[str, Metric] = {}
        for signal, name in c.COUNTER_METRICS.items():
            fams[signal] = Metric(name, f"{signal.removesuffix('_total').replace('_', ' ').capitalize()} the "
                                        "engine counted, added up by inferwatch since it started (_created).",
                                  "counter")
        for signal, name in c.HISTOGRAM_METRICS.items():
            fams[signal] = Metric(name, f"{signal.removesuffix('_seconds').upper().replace('_', ' ')} latency on the "
                                        "engine's own buckets, added up by inferwatch since it started (_created).",
                                  "histogram")
        for t in counters:
            lab = _with_model(labels.get(t.backend), t.model)
            if lab is None:
                continue
            fam = fams[t.signal]
            fam.samples.append(_sample(fam.name + "_total", lab, t.value))
            fam.samples.append(_sample(fam.name + "_created", lab, created))
        for h in hists:
            lab = _with_model(labels.get(h.backend), h.model)
            if lab is None:
                continue
            fam = fams[h.signal]
            for bound, n in zip(h.bounds, h.counts, strict=True):
                fam.samples.append(_sample(fam.name + "_bucket", {**lab, "le": _le(bound)}, n))
            if not h.bounds or h.bounds[-1] != math.inf:
                fam.samples.append(_sample(fam.name + "_bucket", {**lab, "le": "+Inf"}, h.count))
            fam.samples.append(_sample(fam.name + "_count", lab, h.count))
            fam.samples.append(_sample(fam.name + "_sum", lab, h.sum))
            fam.samples.append(_sample(fam.name + "_created", lab, created))
        yield from fams.values()

    def _slo_metrics(self, ctx: WebContext) -> Iterable[Metric]:
        """Each SLO's objective, SLI and error budget left over its window, and its burn rate
        over each alert window; read from the store at most every ``SLO_EVERY`` seconds (a 30-day
        window is not re-read for every scrape of /metrics)."""
        if not ctx.cfg.slos:
            return
        now = ctx.clock()
        if self._slo_cache is None or now - self._slo_cache[0] >= SLO_EVERY:
            self._slo_cache = (now, [slo_figures(s, ctx.reads.metrics, ctx.cfg, now) for s in ctx.cfg.slos])
        objective = GaugeMetricFamily(c.METRIC_SLO_OBJECTIVE, "The SLO's objective, 0..1.", labels=["slo"])
        window = GaugeMetricFamily(c.METRIC_SLO_WINDOW, "The SLO's window.", labels=["slo"])
        sli = GaugeMetricFamily(c.METRIC_SLO_SLI, "Good events / all events over the SLO's window.", labels=["slo"])
        left = GaugeMetricFamily(c.METRIC_SLO_BUDGET_REMAINING, "Share of the error budget left over the SLO's "
                                 "window (1: untouched, 0: spent, below 0: overspent).", labels=["slo"])
        burn = GaugeMetricFamily(c.METRIC_SLO_BURN_RATE, "Bad-event ratio over the window label's span, divided by "
                                 "the error budget ratio (1: spending exactly the budget).", labels=["slo", "window"])
        for f in self._slo_cache[1]:
            name = f.slo.name
            objective.add_metric([name], f.slo.objective)
            window.add_metric([name], f.slo.window)
            if f.budget is not None:
                sli.add_metric([name], f.budget.sli)
                left.add_metric([name], f.budget.remaining)
            for w, r in sorted(f.burn_rates.items()):
                if r is not None:
                    burn.add_metric([name, format_window(w)], r)
        yield from (objective, window, sli, left, burn)

    def _self_metrics(self, ctx: WebContext) -> Iterable[Metric]:
        assert ctx.collector is not None
        dur = GaugeMetricFamily(c.METRIC_SCRAPE_DURATION, "Duration of the last scrape of the backend.", labels=["backend"])
        total = CounterMetricFamily(c.METRIC_SCRAPES, "Scrapes attempted since inferwatch started.", labels=["backend"])
        errors = CounterMetricFamily(c.METRIC_SCRAPE_ERRORS, "Failed scrapes since inferwatch started, by reason class.",
                                     labels=["backend", "reason"])
        for name, h in sorted(ctx.collector.health.items()):
            dur.add_metric([name], h.last_duration)
            total.add_metric([name], h.scrapes)
            for reason, n in sorted(h.errors_by_reason.items()):
                errors.add_metric([name, reason], n)
        yield dur
        yield total
        yield errors
        yield _histogram(c.METRIC_SCRAPE_START_LAG, "How late each scrape started after its tick on the "
                         "scrape grid (the scheduler's health: near 0 unless the process is overloaded).",
                         ctx.collector.start_lag)
        skipped = CounterMetricFamily(c.METRIC_SCRAPE_TICKS_SKIPPED, "Scrape ticks skipped because a scrape "
                                      "(or the whole process) fell behind its interval.")
        skipped.add_metric([], ctx.collector.skipped_ticks)
        yield skipped

    def _probe_metrics(self, rows: list[BackendSummary]) -> Iterable[Metric]:
        help_ = "measured by inferwatch's streaming probe (what a user feels), not reported by the engine"
        ttft = Metric(c.METRIC_PROBE_TTFT, f"Time to first token, {help_}; exact quantiles over the window.", "summary")
        e2e = Metric(c.METRIC_PROBE_E2E, f"Whole streamed request, {help_}; exact quantiles over the window.", "summary")
        tps = GaugeMetricFamily(c.METRIC_PROBE_TOKENS_PER_SECOND, f"Median decode rate, {help_}.")
        success = GaugeMetricFamily(c.METRIC_PROBE_SUCCESS, f"Share of successful probes over the window, {help_}.")
        goodput = GaugeMetricFamily(c.METRIC_PROBE_GOODPUT,
                                    f"Share of probes meeting every latency target at once, {help_}.")
        phase = GaugeMetricFamily(c.METRIC_PROBE_PHASE,
                                  f"Median duration of a connection phase (dns, connect, tls), {help_}.")
        for s in rows:
            p: ProbeSummary | None = s.probe
            if p is None:
                continue
            lab = _labels(s)
            for fam, block in ((ttft, p.ttft), (e2e, p.e2e)):
                if block is not None:
                    _add_quantiles(fam, lab, block)
            if p.tokens_per_second_p50 is not None:
                tps.samples.append(_sample(tps.name, lab, p.tokens_per_second_p50))
            success.samples.append(_sample(success.name, lab, p.success_ratio))
            goodput.samples.append(_sample(goodput.name, lab, p.goodput_ratio))
            for name in ("dns", "connect", "tls"):
                q = p.phase(name)
                if q is not None and q.p50 is not None:
                    phase.samples.append(_sample(phase.name, {**lab, "phase": name}, q.p50))
        yield from (ttft, e2e, tps, success, goodput, phase)

    def _cert_metrics(self, certs: list[CertResult]) -> Iterable[Metric]:
        expiry = GaugeMetricFamily(c.METRIC_CERT_EXPIRY, "Leaf certificate not-after, Unix seconds.", labels=["target"])
        chain = GaugeMetricFamily(c.METRIC_CERT_CHAIN_EXPIRY,
                                  "Earliest not-after anywhere in the presented chain, Unix seconds.", labels=["target"])
        verified = GaugeMetricFamily(c.METRIC_CERT_VERIFIED, "1 if the chain verifies against the trust store.",
                                     labels=["target"])
        name_ok = GaugeMetricFamily(c.METRIC_CERT_HOSTNAME_MATCH, "1 if the leaf certificate matches the host name.",
                                    labels=["target"])
        check_ok = GaugeMetricFamily(c.METRIC_TLS_CHECK_SUCCESS, "1 if the last TLS handshake completed.",
                                     labels=["target"])
        version = GaugeMetricFamily(c.METRIC_TLS_VERSION_INFO, "Negotiated TLS version and cipher (value 1).",
                                    labels=["target", "version", "cipher"])
        for r in certs:
            t = [r.target]
            check_ok.add_metric(t, 1.0 if r.error is None else 0.0)
            if r.not_after is not None:
                expiry.add_metric(t, r.not_after)
            if r.chain_not_after is not None:
                chain.add_metric(t, r.chain_not_after)
            if r.verified is not None:
                verified.add_metric(t, 1.0 if r.verified else 0.0)
            if r.hostname_ok is not None:
                name_ok.add_metric(t, 1.0 if r.hostname_ok else 0.0)
            if r.tls_version:
                version.add_metric([r.target, r.tls_version, r.cipher or ""], 1.0)
        yield from (expiry, chain, verified, name_ok, check_ok, version)

    def _audit_metrics(self, audits: list[AuditResult]) -> Iterable[Metric]:
        check = GaugeMetricFamily(c.METRIC_AUDIT_CHECK, "Deployment checklist item of the last audit: 1 pass, "
                                  "0.5 warn, 0 fail (skipped items are absent).", labels=["target", "check"])
        last = GaugeMetricFamily(c.METRIC_AUDIT_LAST_RUN, "When the last audit of the target started, Unix seconds.",
                                 labels=["target"])
        took = GaugeMetricFamily(c.METRIC_AUDIT_DURATION, "How long the last audit of the target took.",
                                 labels=["target"])
        for a in audits:
            last.add_metric([a.target], a.ts)
            took.add_metric([a.target], a.duration)
            for r in a.checks:
                if r.value is not None:
                    check.add_metric([a.target, r.check], r.value)
        yield from (check, last, took)

    def _gpu_metrics(self, gpus: list[tuple[float, GpuSample]]) -> Iterable[Metric]:
        labels = ["host", "gpu", "uuid", "name", "source"]
        fams: list[tuple[GaugeMetricFamily, Callable[[GpuSample], float | None]]] = [
            (GaugeMetricFamily(c.METRIC_GPU_MEMORY_USED, "GPU memory used (as nvidia-smi shows it).", labels=labels),
             lambda g: g.memory_used_bytes),
            (GaugeMetricFamily(c.METRIC_GPU_MEMORY_TOTAL, "GPU memory total.", labels=labels),
             lambda g: g.memory_total_bytes),
            (GaugeMetricFamily(c.METRIC_GPU_UTILIZATION, "GPU busy time share, 0..1.", labels=labels),
             lambda g: g.utilization_ratio),
            (GaugeMetricFamily(c.METRIC_GPU_TEMPERATURE, "GPU temperature.", labels=labels),
             lambda g: g.temperature_celsius),
            (GaugeMetricFamily(c.METRIC_GPU_POWER, "GPU power draw.", labels=labels), lambda g: g.power_watts),
            (GaugeMetricFamily(c.METRIC_GPU_SM_CLOCK, "Streaming-multiprocessor clock.", labels=labels),
             lambda g: g.sm_clock_hertz),
            (GaugeMetricFamily(c.METRIC_GPU_TENSOR_ACTIVE, "Share of cycles the tensor (HMMA) pipe was active, 0..1 "
                               "(dcgm-exporter's DCGM_FI_PROF_PIPE_TENSOR_ACTIVE).", labels=labels),
             lambda g: g.tensor_active_ratio),
            (GaugeMetricFamily(c.METRIC_GPU_LAST_XID, "Code of the last XID error the driver reported, 0 for none "
                               "(dcgm-exporter's DCGM_FI_DEV_XID_ERRORS).", labels=labels),
             lambda g: g.last_xid),
        ]
        procs = GaugeMetricFamily(c.METRIC_GPU_PROCESS_MEMORY, "GPU memory used by one process.",
                                  labels=[*labels, "pid", "process"])
        for _, g in gpus:
            if not g.uuid:
                continue
            lab = [g.host or "", g.index, g.uuid, g.name or "", g.source]
            for fam, read in fams:
                v = read(g)
                if v is not None:
                    fam.add_metric(lab, float(v))
            for p in g.processes:
                if p.used_memory_bytes is not None:
                    procs.add_metric([*lab, str(p.pid), p.name or ""], float(p.used_memory_bytes))
        yield from (*(fam for fam, _ in fams), procs)


def _add_quantiles(fam: Metric, labels: dict[str, str], block: Quantiles) -> None:
    for key, q in _QUANTILE_KEYS:
        v = block.get(key)
        if v is not None:
            fam.samples.append(_sample(fam.name, {**labels, c.LABEL_QUANTILE: repr(q)}, v))


def _with_model(labels: dict[str, str] | None, model: str) -> dict[str, str] | None:
    """A backend's labels plus ``model`` where the engine names one; None for a backend no
    longer configured."""
    if labels is None:
        return None
    return {**labels, c.LABEL_MODEL: model} if model else labels


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _build_info() -> Metric:
    info = GaugeMetricFamily(c.METRIC_BUILD_INFO, "inferwatch's version and the Python it runs on (value 1).",
                             labels=["version", "python"])
    info.add_metric([VERSION, platform.python_version()], 1.0)
    return info


def _histogram(name: str, documentation: str, h: LatencyHistogram) -> HistogramMetricFamily:
    fam = HistogramMetricFamily(name, documentation)
    cumulative = [(_le(b), float(n)) for b, n in h.buckets()]
    if not cumulative or cumulative[-1][0] != "+Inf":
        cumulative.append(("+Inf", float(h.count)))
    fam.add_metric([], cumulative, sum_value=h.sum)
    return fam


def _sample(name: str, labels: dict[str, str], value: float) -> Sample:
    return Sample(name, labels, value, None, None)


def _reload_metrics(ctx: WebContext) -> Iterable[Metric]:
    ok = GaugeMetricFamily(c.METRIC_CONFIG_RELOAD_OK, "1 if the last configuration reload succeeded (or none was "
                           "tried since start), 0 if it failed and the previous configuration still runs.")
    ok.add_metric([], 1.0 if ctx.reloads.successful else 0.0)
    at = GaugeMetricFamily(c.METRIC_CONFIG_RELOAD_AT, "Unix time of the last successful configuration load.")
    at.add_metric([], ctx.reloads.last_success)
    yield from (ok, at)


class AlertMetrics(PromCollector):
    """The alert engine and its outbox: firing alerts, queue, deliveries, failures."""

    def __init__(self, engine: AlertEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[Metric]:
        firing = GaugeMetricFamily(c.METRIC_ALERTS_FIRING, "Alerts firing now, by rule and severity.",
                                   labels=["alertname", "severity"])
        counts: dict[tuple[str, str], int] = {}
        for st in self._engine.firing():
            key = (st.labels.get("alertname", st.rule), st.labels.get("severity", ""))
            counts[key] = counts.get(key, 0) + 1
        for (name, sev), n in sorted(counts.items()):
            firing.add_metric([name, sev], n)
        d = self._engine.dispatcher
        queued = GaugeMetricFamily(c.METRIC_NOTIFICATIONS_QUEUED, "Notifications waiting in the outbox.")
        queued.add_metric([], d.queue_size)
        sent = CounterMetricFamily(c.METRIC_NOTIFICATIONS_SENT, "Notifications delivered.", labels=["receiver"])
        for r, n in sorted(d.sent_total.items()):
            sent.add_metric([r], n)
        failed = CounterMetricFamily(c.METRIC_NOTIFICATION_FAILURES, "Failed delivery attempts, by reason.",
                                     labels=["receiver", "reason"])
        for (r, reason), n in sorted(d.failures_total.items()):
            failed.add_metric([r, reason], n)
        yield _histogram(c.METRIC_NOTIFICATION_DELIVERY, "From a notification's creation to its delivery.",
                         d.delivery_latency_seconds)
        evals = CounterMetricFamily(c.METRIC_RULE_EVALUATIONS, "Rule evaluation rounds since start.")
        evals.add_metric([], self._engine.evaluations)
        yield from (firing, queued, sent, failed, evals)
