"""Windowed figures for the API, ``/metrics`` and the dashboard: the store's rows merged and
turned into percentiles and rates. Only reads; the arithmetic lives in ``quantiles``.

Every figure an engine does not expose, or that the window holds no data for, is ``None`` —
never 0. Percentiles merge the bucket deltas of the window (all models of a backend, or one
model) and interpolate exactly like Prometheus ``histogram_quantile``.
"""

from __future__ import annotations

import math
import socket
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from collector.config import BackendConfig
from collector.live import LiveWindow, Merged
from collector.observations import ObservationStore
from collector.store import HistogramRow, MetricsStore, StatusRow
from collector.summary import (
    BackendSummary,
    Figures,
    Json,
    Latency,
    ProbeError,
    ProbeSummary,
    Quantiles,
)
from core import conventions as c
from core.numbers import exact_quantile
from core.quantiles import merge, quantile_or_none, quantiles_or_none
from core.samples import CertResult, GpuSample, ProbeResult


def quantile_key(q: float) -> str:
    return f"p{round(q * 100):d}"


def merged_rows(rows: Sequence[HistogramRow] | Sequence[Merged]) -> Merged | None:
    """The rows (or merges of rows) merged into one; None with none. Merging merges gives the
    same buckets and count as merging their rows at once (bucket counts are whole numbers)."""
    if not rows:
        return None
    merged = merge((r.bounds, r.counts) for r in rows)
    assert merged is not None
    return Merged(merged[0], merged[1], sum(r.sum for r in rows), sum(r.count for r in rows))


def latency_of(m: Merged) -> Latency:
    p50, p95, p99 = quantiles_or_none((0.5, 0.95, 0.99), m.bounds, m.counts)
    return Latency(p50=p50, p95=p95, p99=p99, mean=(m.sum / m.count) if m.count > 0 else None, count=m.count)


@dataclass(frozen=True)
class Reads:
    """What the query layer reads: the metrics store and the observation store, and the
    collector's in-memory ``LiveWindow`` when one runs in this process (windows it covers are
    read from memory: same rows, no database round trip)."""

    metrics: MetricsStore
    observations: ObservationStore
    live: LiveWindow | None = None


@dataclass(frozen=True)
class WindowData:
    """Everything a summary over ``(since, until]`` needs, fetched in four queries."""

    since: float
    until: float
    status: dict[str, StatusRow]
    gauges: dict[str, dict[tuple[str, str], tuple[float, float]]]
    #: backend -> {(signal, model): (sum of deltas, sum of intervals)}
    counters: dict[str, dict[tuple[str, str], tuple[float, float]]]
    hists: dict[str, list[HistogramRow]]
    probes: dict[str, list[ProbeResult]]
    #: from the live window: per backend, each (signal, model)'s rows already merged (in
    #: place of ``hists``)
    merges: dict[str, dict[tuple[str, str], Merged]] = field(default_factory=dict, compare=False)
    #: from the live window: per backend, the entries the rows came from, and its memo of
    #: latencies by those entries (a backend's latencies change only when its entries do)
    ranges: dict[str, tuple[int, int, int]] = field(default_factory=dict, compare=False)
    memo: dict[tuple[str, str, str | None, int, int, int], Latency | None] | None = field(default=None, compare=False)
    _groups: dict[str, dict[tuple[str, str], list[HistogramRow]]] = field(default_factory=dict, compare=False,
                                                                         repr=False)
    _merged: dict[tuple[str, str, str | None], Merged | None] = field(default_factory=dict, compare=False,
                                                                      repr=False)
    _by_signal: dict[str, tuple[dict[str, list[tuple[str, float]]], dict[str, list[tuple[str, float, float]]]]] = \
        field(default_factory=dict, compare=False, repr=False)

    def by_signal(self, backend: str) -> tuple[dict[str, list[tuple[str, float]]],
                                               dict[str, list[tuple[str, float, float]]]]:
        """``backend``'s gauges ``signal -> [(model, value)]`` and counters ``signal -> [(model,
        deltas, intervals)]``, in the order the window holds them (computed once)."""
        out = self._by_signal.get(backend)
        if out is None:
            gauges: dict[str, list[tuple[str, float]]] = {}
            for (s, m), (_, v) in self.gauges.get(backend, {}).items():
                gauges.setdefault(s, []).append((m, v))
            counters: dict[str, list[tuple[str, float, float]]] = {}
            for (s, m), (d, i) in self.counters.get(backend, {}).items():
                counters.setdefault(s, []).append((m, d, i))
            out = self._by_signal[backend] = (gauges, counters)
        return out

    def merged(self, backend: str, signal: str, model: str | None) -> Merged | None:
        """One backend's histogram rows of ``signal`` merged: of one ``model``, or of all (the
        merge of the per-model merges). Computed once per WindowData."""
        key = (backend, signal, model)
        if key in self._merged:
            return self._merged[key]
        premerged = self.merges.get(backend)
        if premerged is not None:
            if model is not None:
                out = premerged.get((signal, model))
            else:
                out = merged_rows([m for key, m in sorted(premerged.items()) if key[0] == signal])
            self._merged[key] = out
            return out
        groups = self._groups.get(backend)
        if groups is None:
            groups = {}
            for r in self.hists.get(backend, ()):
                groups.setdefault((r.signal, r.model), []).append(r)
            self._groups[backend] = groups
        if model is not None:
            out = merged_rows(groups.get((signal, model), []))
        else:
            parts = [m for (sig, mod) in sorted(groups) if sig == signal
                     for m in (self.merged(backend, signal, mod),) if m is not None]
            out = merged_rows(parts)
        self._merged[key] = out
        return out

    def models(self, backend: str) -> set[str]:
        """The models ``backend``'s histogram rows of the window name."""
        return {m for (_, m) in self.merges.get(backend, {})} | {r.model for r in self.hists.get(backend, [])}

    def latency(self, backend: str, signal: str, model: str | None) -> Latency | None:
        span = self.ranges.get(backend)
        key = (backend, signal, model, *span) if span is not None and self.memo is not None else None
        if key is not None and self.memo is not None and key in self.memo:
            return self.memo[key]
        m = self.merged(backend, signal, model)
        out = None if m is None else latency_of(m)
        if key is not None and self.memo is not None:
            self.memo[key] = out
        return out

    @classmethod
    def fetch(cls, reads: Reads, until: float, window: float, backends: Sequence[str] | None = None,
              probed: Sequence[str] = (), status: dict[str, StatusRow] | None = None) -> WindowData:
        """``status``: the latest statuses when the caller has read them already."""
        since = until - window
        probes: dict[str, list[ProbeResult]] = defaultdict(list)
        if probed:
            for p in reads.observations.probe_results_between(since, until, backends=probed):
                probes[p.backend].append(p)
        # with backends named, every signal of the vocabulary (all a store holds: adapters map
        # only to those) too: the read is then ranges of the (series_id, ts) index of exactly
        # those series
        signals = list(c.SIGNALS) if backends is not None else None
        ranges: dict[str, tuple[int, int, int]] = {}
        memo = None
        merges: dict[str, dict[tuple[str, str], Merged]] = {}
        hists_by: dict[str, list[HistogramRow]] = {}
        if reads.live is not None and reads.live.covers(since):
            rows = reads.live.summary_rows(since, until, backends)
            gauges, counters_by, merges = rows.gauges, rows.counters, rows.merged
            ranges, memo = rows.ranges, reads.live.memo
        else:
            hists: dict[str, list[HistogramRow]] = defaultdict(list)
            for row in reads.metrics.histogram_deltas(since, until, backends=backends, signals=signals):
                hists[row.backend].append(row)
            counters: dict[str, dict[tuple[str, str], tuple[float, float]]] = defaultdict(dict)
            for (b, s, m), totals in reads.metrics.counter_totals(since, until, backends=backends,
                                                                  signals=signals).items():
                counters[b][(s, m)] = totals
            gauges, counters_by, hists_by = reads.metrics.latest_gauges(since), dict(counters), dict(hists)
        return cls(
            since=since,
            until=until,
            status=reads.metrics.latest_status() if status is None else status,
            gauges=gauges,
            counters=counters_by,
            hists=hists_by,
            probes=dict(probes),
            merges=merges,
            ranges=ranges,
            memo=memo,
        )


class BackendWindow:
    """One backend's figures over a ``WindowData`` (all its models, or one ``model``), each
    computed when first asked: the alert engine asks for two or three, a summary for all.

    While the backend is down (its latest scrape failed) it has no present tense: every figure —
    gauges, rates, latency percentiles, ratios — is None, as Prometheus marks a target's series
    stale when a scrape fails. Charts (``series``) keep the history."""

    def __init__(self, data: WindowData, backend: str, model: str | None = None) -> None:
        st = data.status.get(backend)
        self.up = bool(st.up) if st is not None else False
        self.model = model
        gauges, counters = data.by_signal(backend)
        self._gauges = gauges if self.up else {}
        self._counters = counters if self.up else {}
        self._data = data
        self._backend = backend

    def gauge(self, signal: str) -> float | None:
        """The models' last values summed (max for ``MAX_OVER_MODELS``); None when none."""
        model = self.model
        vals = [v for m, v in self._gauges.get(signal, ()) if model is None or m == model]
        if not vals:
            return None
        return max(vals) if signal in c.MAX_OVER_MODELS else sum(vals)

    def latency(self, signal: str) -> Latency | None:
        return self._data.latency(self._backend, signal, self.model) if self.up else None

    def rate(self, signal: str) -> float | None:
        """Per-second increase: each model's deltas over the time they cover, summed over models."""
        model = self.model
        rates = [d / i for m, d, i in self._counters.get(signal, ()) if (model is None or m == model) and i > 0]
        return sum(rates, 0.0) if rates else None

    def total(self, signal: str) -> float | None:
        model = self.model
        vals = [d for m, d, _ in self._counters.get(signal, ()) if model is None or m == model]
        return sum(vals) if vals else None

    def error_ratio(self) -> float | None:
        requests, errors = self.total(c.REQUESTS_TOTAL), self.total(c.REQUEST_ERRORS_TOTAL)
        return (errors / requests) if requests and errors is not None else None

    def prefix_cache_hit_ratio(self) -> float | None:
        hits, queries = self.total(c.PREFIX_CACHE_HITS_TOTAL), self.total(c.PREFIX_CACHE_QUERIES_TOTAL)
        return (hits / queries) if hits is not None and queries else self.gauge(c.PREFIX_CACHE_HIT_RATIO)

    def figures(self) -> Figures:
        return Figures(
            queue_depth=self.gauge(c.QUEUE_DEPTH),
            requests_running=self.gauge(c.REQUESTS_RUNNING),
            ttft=self.latency(c.TTFT_SECONDS),
            itl=self.latency(c.ITL_SECONDS),
            e2e=self.latency(c.E2E_LATENCY_SECONDS),
            queue_time=self.latency(c.QUEUE_TIME_SECONDS),
            tokens_per_second=self.rate(c.GENERATION_TOKENS_TOTAL),
            prompt_tokens_per_second=self.rate(c.PROMPT_TOKENS_TOTAL),
            requests_per_second=self.rate(c.REQUESTS_TOTAL),
            error_ratio=self.error_ratio(),
            kv_cache_usage_ratio=self.gauge(c.KV_CACHE_USAGE_RATIO),
            prefix_cache_hit_ratio=self.prefix_cache_hit_ratio(),
        )


def backend_summary(data: WindowData, b: BackendConfig) -> BackendSummary:
    st = data.status.get(b.name)
    up = bool(st.up) if st is not None else False
    models = sorted({m for (_, m) in data.gauges.get(b.name, {})}
                    | {m for (_, m) in data.counters.get(b.name, {})}
                    | data.models(b.name))
    probe = None
    if b.probe is not None:
        probe = probe_summary(data.probes.get(b.name, []), b.probe.targets.ttft, b.probe.targets.itl)
    return BackendSummary(
        name=b.name,
        engine=b.engine,
        url=b.url,
        up=up,
        reason=(st.reason if st is not None else "not scraped yet") if not up else None,
        last_scrape=st.ts if st is not None else None,
        last_success=st.last_success_ts if st is not None else None,
        scrape_duration_seconds=st.duration if st is not None else None,
        window_seconds=data.until - data.since,
        figures=BackendWindow(data, b.name).figures(),
        labels=dict(b.labels),
        probed=b.probe is not None,
        probe=probe,
        # per-model breakdown for engines that label their series by model ("" = unlabelled)
        models={m: BackendWindow(data, b.name, m).figures() for m in models if m},
    )


_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def gpu_host_of(b: BackendConfig, local_host: str) -> str:
    """The host whose GPU readings are ``b``'s: ``gpu_host``, else the URL's host (this
    machine's name, as local NVML reports it, for a loopback URL)."""
    if b.gpu_host:
        return b.gpu_host
    host = urlsplit(b.url).hostname or ""
    return local_host if host in _LOOPBACK or host.startswith("127.") else host


def gpu_memory_ratio(g: GpuSample) -> float | None:
    """used / total memory of one GPU; None when either is unknown."""
    used, total = g.memory_used_bytes, g.memory_total_bytes
    return (used / total) if used is not None and total else None


def gpu_memory_by_host(gpus: Iterable[tuple[float, GpuSample]]) -> dict[str, float]:
    """Per host, the highest memory-used ratio among its GPUs' latest readings."""
    out: dict[str, float] = {}
    for _, g in gpus:
        ratio = gpu_memory_ratio(g)
        if ratio is not None:
            out[g.host] = max(ratio, out.get(g.host, ratio))
    return out


def summaries(reads: Reads, backends: Sequence[BackendConfig], now: float, window: float,
              local_host: str | None = None) -> list[BackendSummary]:
    """Every backend's ``backend_summary`` plus ``gpu_memory_used_ratio``: the fullest GPU of its
    host (``gpu_host_of``) over the window, None when no GPU of that host reported."""
    data = WindowData.fetch(reads, now, window, probed=[b.name for b in backends if b.probe is not None])
    return with_gpu_memory(reads.observations, [(b, backend_summary(data, b)) for b in backends], now, window,
                           local_host)


def with_gpu_memory(observations: ObservationStore, pairs: Sequence[tuple[BackendConfig, BackendSummary]],
                    now: float, window: float, local_host: str | None = None) -> list[BackendSummary]:
    """The summaries with ``gpu_memory_used_ratio`` set (see ``summaries``)."""
    gpu_memory = gpu_memory_by_host(observations.latest_gpus(now - window))
    here = local_host if local_host is not None else socket.gethostname()
    return [replace(s, gpu_memory_used_ratio=gpu_memory.get(gpu_host_of(b, here))) for b, s in pairs]


# -- series ---------------------------------------------------------------------------------
def histogram_series(metrics: MetricsStore, backend: str, signals: Sequence[str], now: float, window: float, step: float,
                     quantiles: Sequence[float] = c.QUANTILES, model: str | None = None,
                     ) -> dict[str, dict[float, list[tuple[float, float | None]]]]:
    """Like ``series`` for several histogram signals and quantiles at once, from ONE read of the
    bucket deltas (a 24 h chart page needs nine quantile lines of three signals)."""
    since, edges, slot = step_grid(now, window, step)
    per: dict[str, list[list[HistogramRow]]] = {sig: [[] for _ in edges] for sig in signals}
    for r in metrics.histogram_deltas(since, now, backends=[backend], signals=list(signals)):
        if model is None or r.model == model:
            per[r.signal][slot(r.ts)].append(r)
    out: dict[str, dict[float, list[tuple[float, float | None]]]] = {}
    for sig, slots in per.items():
        merged = [merge((r.bounds, r.counts) for r in rows) for rows in slots]
        out[sig] = {q: [(t, quantile_or_none(q, *m) if m else None) for t, m in zip(edges, merged, strict=True)]
                    for q in quantiles}
    return out


def step_grid(now: float, window: float, step: float) -> tuple[float, list[float], Callable[[float], int]]:
    """``(since, step ends, slot of a timestamp)`` of the steps covering ``(now - window, now]``:
    step ``i`` is ``(ends[i] - step, ends[i]]`` (the store's ``_step_index`` computes the same)."""
    since = now - window
    n = max(1, math.ceil(window / step))

    def slot(ts: float) -> int:
        return min(n - 1, max(0, math.ceil((ts - since) / step) - 1))

    return since, [since + step * (i + 1) for i in range(n)], slot


def _counter_points(rows: Iterable[tuple[int, str, float, float]], edges: Sequence[float],
                    model: str | None) -> list[tuple[float, float | None]]:
    """Per step (rows of ``(step, model, deltas, intervals)``): the deltas' sum over the longest
    per-model covered interval (a rate)."""
    n = len(edges)
    total = [0.0] * n
    seen = [False] * n
    per_model_interval: list[dict[str, float]] = [{} for _ in range(n)]
    for i, m, delta, interval in rows:
        if model is None or m == model:
            total[i] += delta
            seen[i] = True
            iv = per_model_interval[i]
            iv[m] = iv.get(m, 0.0) + interval
    result: list[tuple[float, float | None]] = []
    for t, tot, any_, iv in zip(edges, total, seen, per_model_interval, strict=True):
        covered = max(iv.values()) if iv else 0.0
        result.append((t, tot / covered if any_ and covered > 0 else None))
    return result


def _gauge_points(rows: Iterable[tuple[int, str, float]], signal: str, edges: Sequence[float],
                  model: str | None) -> list[tuple[float, float | None]]:
    """Per step (rows of ``(step, model, last value)``): the models' last values summed (max for
    ``MAX_OVER_MODELS``)."""
    last: list[dict[str, float]] = [{} for _ in edges]
    for i, m, v in rows:
        if model is None or m == model:
            last[i][m] = v
    agg = max if signal in c.MAX_OVER_MODELS else sum
    return [(t, agg(d.values()) if d else None) for t, d in zip(edges, last, strict=True)]


def series_many(metrics: MetricsStore, backend: str, signals: Sequence[str], now: float, window: float, step: float,
                model: str | None = None) -> dict[str, list[tuple[float, float | None]]]:
    """``series`` of several gauge and counter signals of one backend: one read per kind,
    reduced to one row per step and model in SQL (a backend page charts seven of them)."""
    since, edges, _ = step_grid(now, window, step)
    unknown = [s for s in signals if c.SIGNALS.get(s) not in ("gauge", "counter")]
    if unknown:
        raise KeyError(unknown[0])
    gauges = [s for s in signals if c.SIGNALS[s] == "gauge"]
    counters = [s for s in signals if c.SIGNALS[s] == "counter"]
    out: dict[str, list[tuple[float, float | None]]] = {}
    if gauges:
        for sig, rows in metrics.gauge_steps(backend, gauges, since, now, step, len(edges)).items():
            out[sig] = _gauge_points(rows, sig, edges, model)
    if counters:
        for sig, crows in metrics.counter_steps(backend, counters, since, now, step, len(edges)).items():
            out[sig] = _counter_points(crows, edges, model)
    return {s: out[s] for s in signals}


def series(metrics: MetricsStore, backend: str, signal: str, now: float, window: float, step: float,
           quantile: float | None = None, model: str | None = None) -> list[tuple[float, float | None]]:
    """Points ``(t, value)`` every ``step`` over ``(now - window, now]``; each point covers the
    step ending at ``t``: a histogram's quantile of that step's merged deltas, a counter's rate,
    a gauge's last value."""
    kind = c.SIGNALS.get(signal)
    if kind == "histogram":
        q = 0.5 if quantile is None else quantile
        return histogram_series(metrics, backend, [signal], now, window, step, [q], model)[signal][q]
    if kind in ("gauge", "counter"):
        return series_many(metrics, backend, [signal], now, window, step, model)[signal]
    if signal == "up":
        since, edges, slot = step_grid(now, window, step)
        ups: list[bool | None] = [None] * len(edges)
        for ts, up, _ in metrics.status_series(backend, since, now):
            i = slot(ts)
            ups[i] = up if ups[i] is None else (ups[i] and up)
        return [(t, None if u is None else float(u)) for t, u in zip(edges, ups, strict=True)]
    raise KeyError(signal)


# -- probes, certificates, GPUs -------------------------------------------------------------------
def _qblock(values: Sequence[float]) -> Quantiles | None:
    if not values:
        return None
    return Quantiles(p50=exact_quantile(values, 0.5), p95=exact_quantile(values, 0.95), p99=exact_quantile(values, 0.99))


def probe_summary(results: Sequence[ProbeResult], ttft_target: float, itl_target: float) -> ProbeSummary | None:
    """Figures over a window of probe results (exact percentiles of raw observations).

    *Goodput* is the share of probes that succeeded and met every latency target at once:
    TTFT <= ``ttft_target`` and mean inter-token gap (time per output token) <= ``itl_target``.
    A failed probe counts against it; no engine metric can give this figure.
    """
    if not results:
        return None
    ok = [r for r in results if r.ok]

    def good(r: ProbeResult) -> bool:
        if not r.ok or r.ttft_seconds is None or r.ttft_seconds > ttft_target:
            return False
        return not r.itl or sum(r.itl) / len(r.itl) <= itl_target

    failures = [r for r in results if not r.ok]
    last = results[-1]
    tps = [r.tokens_per_second for r in ok if r.tokens_per_second is not None]
    failed = failures[-1] if failures else None
    return ProbeSummary(
        count=len(results),
        success_ratio=len(ok) / len(results),
        goodput_ratio=sum(1 for r in results if good(r)) / len(results),
        ttft_target=ttft_target,
        itl_target=itl_target,
        ttft=_qblock([r.ttft_seconds for r in ok if r.ttft_seconds is not None]),
        e2e=_qblock([r.e2e_seconds for r in ok if r.e2e_seconds is not None]),
        itl=_qblock([g for r in ok for g in r.itl]),
        tokens_per_second_p50=exact_quantile(tps, 0.5),
        tokens_per_second_p5=exact_quantile(tps, 0.05),
        dns=_qblock([r.dns_seconds for r in ok if r.dns_seconds is not None]),
        connect=_qblock([r.connect_seconds for r in ok if r.connect_seconds is not None]),
        tls=_qblock([r.tls_seconds for r in ok if r.tls_seconds is not None]),
        last_probe=last.ts,
        last_ok=last.ok,
        last_error=None if failed is None else ProbeError(failed.ts, failed.error_kind, failed.error, failed.status),
    )


def certificate_view(r: CertResult, now: float) -> Json:
    def days(t: float | None) -> float | None:
        return None if t is None else (t - now) / 86400.0

    return {
        "target": r.target, "not_after": r.not_after, "chain_not_after": r.chain_not_after,
        "chain_not_after_subject": r.chain_not_after_subject, "days_left": days(r.not_after),
        "chain_days_left": days(r.chain_not_after), "issuer": r.issuer, "subject": r.subject,
        "sans": list(r.sans), "verified": r.verified, "verify_error": r.verify_error,
        "hostname_ok": r.hostname_ok, "tls_version": r.tls_version, "cipher": r.cipher,
        "error": r.error, "last_check": r.ts,
    }


def gpu_view(ts: float, g: GpuSample) -> Json:
    return {
        "host": g.host, "index": g.index, "uuid": g.uuid, "name": g.name, "source": g.source,
        "memory_used_bytes": g.memory_used_bytes, "memory_free_bytes": g.memory_free_bytes,
        "memory_total_bytes": g.memory_total_bytes, "memory_used_ratio": gpu_memory_ratio(g),
        "utilization_ratio": g.utilization_ratio, "temperature_celsius": g.temperature_celsius,
        "power_watts": g.power_watts,
        "processes": [{"pid": p.pid, "name": p.name, "used_memory_bytes": p.used_memory_bytes} for p in g.processes],
        "errors": list(g.errors), "last_reading": ts,
    }
