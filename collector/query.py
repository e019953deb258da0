"""Windowed figures for the API, ``/metrics`` and the dashboard: the store's rows merged and
turned into percentiles and rates. Only reads; the arithmetic lives in ``quantiles``.

Every figure an engine does not expose, or that the window holds no data for, is ``None`` —
never 0. Percentiles merge the bucket deltas of the window (all models of a backend, or one
model) and interpolate exactly like Prometheus ``histogram_quantile``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from collector import conventions as c
from collector.config import BackendConfig
from collector.quantiles import merge, quantile_or_none
from collector.store import HistogramRow, Store

LATENCY = {"ttft": c.TTFT_SECONDS, "itl": c.ITL_SECONDS, "e2e": c.E2E_LATENCY_SECONDS, "queue_time": c.QUEUE_TIME_SECONDS}


def _qkey(q: float) -> str:
    return f"p{round(q * 100):d}"


def latency_block(rows: Iterable[HistogramRow]) -> dict[str, float | None] | None:
    """{p50, p95, p99, mean, count} over the rows' merged bucket deltas; None with no rows."""
    items = list(rows)
    if not items:
        return None
    merged = merge((r.bounds, r.counts) for r in items)
    assert merged is not None
    bounds, counts = merged
    total = sum(r.count for r in items)
    out: dict[str, float | None] = {_qkey(q): quantile_or_none(q, bounds, counts) for q in c.QUANTILES}
    out["mean"] = (sum(r.sum for r in items) / total) if total > 0 else None
    out["count"] = total
    return out


@dataclass(frozen=True)
class WindowData:
    """Everything a summary over ``(since, until]`` needs, fetched in four queries."""

    since: float
    until: float
    status: dict[str, Any]
    gauges: dict[str, dict[tuple[str, str], tuple[float, float]]]
    #: backend -> {(signal, model): (sum of deltas, sum of intervals)}
    counters: dict[str, dict[tuple[str, str], tuple[float, float]]]
    hists: dict[str, list[HistogramRow]]

    @classmethod
    def fetch(cls, store: Store, until: float, window: float, backends: Sequence[str] | None = None) -> WindowData:
        since = until - window
        hists: dict[str, list[HistogramRow]] = defaultdict(list)
        for row in store.histogram_deltas(since, until, backends=backends):
            hists[row.backend].append(row)
        counters: dict[str, dict[tuple[str, str], tuple[float, float]]] = defaultdict(dict)
        for (b, s, m), totals in store.counter_totals(since, until, backends=backends).items():
            counters[b][(s, m)] = totals
        return cls(
            since=since,
            until=until,
            status=store.latest_status(),
            gauges=store.latest_gauges(since),
            counters=dict(counters),
            hists=dict(hists),
        )


def _rate(counters: dict[tuple[str, str], tuple[float, float]], signal: str, model: str | None) -> float | None:
    """Per-second increase: each model's deltas over the time they cover, summed over models."""
    total, found = 0.0, False
    for (s, m), (delta, interval) in counters.items():
        if s == signal and (model is None or m == model) and interval > 0:
            total += delta / interval
            found = True
    return total if found else None


def _sum(counters: dict[tuple[str, str], tuple[float, float]], signal: str, model: str | None) -> float | None:
    vals = [d for (s, m), (d, _) in counters.items() if s == signal and (model is None or m == model)]
    return sum(vals) if vals else None


def _figures(data: WindowData, backend: str, model: str | None, up: bool) -> dict[str, Any]:
    gauges = data.gauges.get(backend, {}) if up else {}
    counters = data.counters.get(backend, {})

    def gauge(signal: str) -> float | None:
        vals = [v for (s, m), (_, v) in gauges.items() if s == signal and (model is None or m == model)]
        if not vals:
            return None
        return max(vals) if signal in c.MAX_OVER_MODELS else sum(vals)

    rows = [r for r in data.hists.get(backend, []) if model is None or r.model == model]
    requests = _sum(counters, c.REQUESTS_TOTAL, model)
    errors = _sum(counters, c.REQUEST_ERRORS_TOTAL, model)
    hits = _sum(counters, c.PREFIX_CACHE_HITS_TOTAL, model)
    queries = _sum(counters, c.PREFIX_CACHE_QUERIES_TOTAL, model)
    prefix = (hits / queries) if hits is not None and queries else gauge(c.PREFIX_CACHE_HIT_RATIO)
    out: dict[str, Any] = {
        "queue_depth": gauge(c.QUEUE_DEPTH),
        "requests_running": gauge(c.REQUESTS_RUNNING),
    }
    for key, signal in LATENCY.items():
        out[key] = latency_block(r for r in rows if r.signal == signal)
    out.update(
        tokens_per_second=_rate(counters, c.GENERATION_TOKENS_TOTAL, model),
        prompt_tokens_per_second=_rate(counters, c.PROMPT_TOKENS_TOTAL, model),
        requests_per_second=_rate(counters, c.REQUESTS_TOTAL, model),
        error_ratio=(errors / requests) if requests and errors is not None else None,
        kv_cache_usage_ratio=gauge(c.KV_CACHE_USAGE_RATIO),
        prefix_cache_hit_ratio=prefix,
    )
    return out


def backend_summary(data: WindowData, b: BackendConfig) -> dict[str, Any]:
    st = data.status.get(b.name)
    up = bool(st.up) if st is not None else False
    models = sorted({m for (_, m) in data.gauges.get(b.name, {})}
                    | {m for (_, m) in data.counters.get(b.name, {})}
                    | {r.model for r in data.hists.get(b.name, [])})
    out: dict[str, Any] = {
        "name": b.name,
        "engine": b.engine,
        "url": b.url,
        "up": up,
        "reason": (st.reason if st is not None else "not scraped yet") if not up else None,
        "last_scrape": st.ts if st is not None else None,
        "last_success": st.last_success_ts if st is not None else None,
        "scrape_duration_seconds": st.duration if st is not None else None,
        "window_seconds": data.until - data.since,
    }
    out.update(_figures(data, b.name, None, up))
    out["labels"] = dict(b.labels)
    # per-model breakdown for engines that label their series by model ("" = unlabelled)
    out["models"] = {m: _figures(data, b.name, m, up) for m in models if m}
    return out


def summaries(store: Store, backends: Sequence[BackendConfig], now: float, window: float) -> list[dict[str, Any]]:
    data = WindowData.fetch(store, now, window)
    return [backend_summary(data, b) for b in backends]


# -- series ---------------------------------------------------------------------------------
def series(store: Store, backend: str, signal: str, now: float, window: float, step: float,
           quantile: float | None = None, model: str | None = None) -> list[tuple[float, float | None]]:
    """Points ``(t, value)`` every ``step`` over ``(now - window, now]``; each point covers the
    step ending at ``t``: a histogram's quantile of that step's merged deltas, a counter's rate,
    a gauge's last value."""
    since = now - window
    n = max(1, math.ceil(window / step))
    edges = [since + step * (i + 1) for i in range(n)]

    def slot(ts: float) -> int:
        return min(n - 1, max(0, math.ceil((ts - since) / step) - 1))

    kind = c.SIGNALS.get(signal)
    if kind == "histogram":
        q = 0.5 if quantile is None else quantile
        per: list[list[HistogramRow]] = [[] for _ in range(n)]
        for r in store.histogram_deltas(since, now, backends=[backend], signals=[signal]):
            if model is None or r.model == model:
                per[slot(r.ts)].append(r)
        out: list[tuple[float, float | None]] = []
        for t, rows in zip(edges, per, strict=True):
            merged = merge((r.bounds, r.counts) for r in rows)
            out.append((t, quantile_or_none(q, *merged) if merged else None))
        return out
    if kind == "counter":
        sums = [[0.0, 0.0, False] for _ in range(n)]
        per_model_interval: list[dict[str, float]] = [{} for _ in range(n)]
        for ts, m, delta, interval in store.counter_series(backend, signal, since, now):
            if model is None or m == model:
                s = sums[slot(ts)]
                s[0] += delta
                s[2] = True
                per_model_interval[slot(ts)][m] = per_model_interval[slot(ts)].get(m, 0.0) + interval
        result: list[tuple[float, float | None]] = []
        for t, s, iv in zip(edges, sums, per_model_interval, strict=True):
            covered = max(iv.values()) if iv else 0.0
            result.append((t, s[0] / covered if s[2] and covered > 0 else None))
        return result
    if kind == "gauge":
        last: list[dict[str, float]] = [{} for _ in range(n)]
        for ts, m, v in store.gauge_series(backend, signal, since, now):
            if model is None or m == model:
                last[slot(ts)][m] = v
        agg = max if signal in c.MAX_OVER_MODELS else sum
        return [(t, agg(d.values()) if d else None) for t, d in zip(edges, last, strict=True)]
    if signal == "up":
        ups: list[bool | None] = [None] * n
        for ts, up, _ in store.status_series(backend, since, now):
            i = slot(ts)
            ups[i] = up if ups[i] is None else (ups[i] and up)
        return [(t, None if u is None else float(u)) for t, u in zip(edges, ups, strict=True)]
    raise KeyError(signal)
