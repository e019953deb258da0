"""Server-side data for the dashboard charts: ranges, step choice and downsampling, so that no
trace carries more than ``MAX_POINTS`` points whatever the range (a 7-day chart stays light).

Pure arithmetic plus read-only store queries; no HTML and no Plotly here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from alerts.model import AlertState, Transition
from alerts.rules import Query, Rule
from collector import query
from collector.config import BackendConfig
from core import conventions as c
from core.numbers import exact_quantile
from core.quantiles import merge, quantile_or_none
from core.samples import ProbeResult

MAX_POINTS = 500
RANGES: dict[str, float] = {"15m": 900.0, "1h": 3600.0, "6h": 21600.0, "24h": 86400.0, "7d": 604800.0}
_NICE_STEPS = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)

Points = list[tuple[float, float | None]]


def choose_step(window: float, min_step: float = 15.0, max_points: int = MAX_POINTS) -> float:
    """The smallest "nice" step >= ``min_step`` giving at most ``max_points`` points over ``window``.

    >>> choose_step(7 * 86400)
    1800.0
    >>> choose_step(900, min_step=60)
    60.0
    """
    need = max(min_step, window / max_points)
    for s in _NICE_STEPS:
        if s >= need:
            return float(s)
    return float(math.ceil(need / 86400) * 86400)


def downsample(points: Sequence[tuple[float, float | None]], max_points: int = MAX_POINTS) -> Points:
    """At most ``max_points`` points: consecutive points averaged in equal groups (None ignored;
    a group of only None stays None), each group stamped with its last point's time.

    >>> downsample([(1, 1.0), (2, 3.0), (3, None), (4, None)], 2)
    [(2, 2.0), (4, None)]
    """
    pts = list(points)
    if len(pts) <= max_points:
        return pts
    size = math.ceil(len(pts) / max_points)
    out: Points = []
    for i in range(0, len(pts), size):
        group = pts[i:i + size]
        vals = [v for _, v in group if v is not None]
        out.append((group[-1][0], sum(vals) / len(vals) if vals else None))
    return out


#: the fleet page's chart: the last hour of the fleet's TTFT
FLEET_CHART_WINDOW = 3600.0


def fleet_chart_step(scrape_interval: float) -> float:
    """The fleet chart's step (the live window keeps the fleet's sums on that grid)."""
    return choose_step(FLEET_CHART_WINDOW, min_step=scrape_interval)


def fleet_quantiles(reads: query.Reads, now: float, window: float, step: float, signal: str = c.TTFT_SECONDS,
                    quantiles: Sequence[float] = c.QUANTILES, backends: Sequence[str] | None = None
                    ) -> dict[float, Points]:
    """Per step, each quantile of ``signal`` over the merged histograms of every backend (or of
    ``backends``). Steps lie on a fixed grid, step ``k`` covering ``((k-1)*step, k*step]``, the last
    one holding ``now``; from the live window's fleet sums when it keeps them, else from the store."""
    last = math.ceil(now / step)
    first = last - max(1, math.ceil(window / step)) + 1
    ends = [k * step for k in range(first, last + 1)]
    since = (first - 1) * step
    kept = reads.live.fleet_steps(signal, step, first, last) if reads.live is not None and backends is None else None
    per: list[list[tuple[Sequence[float], Sequence[float]]]]
    if kept is not None:
        per = kept
    else:
        per = [[] for _ in ends]
        for r in reads.metrics.histogram_deltas(since, ends[-1], backends=backends, signals=[signal]):
            per[min(len(ends) - 1, max(0, math.ceil(r.ts / step) - first))].append((r.bounds, r.counts))
    merged = [merge(rows) for rows in per]
    return {q: [(t, quantile_or_none(q, *m) if m else None) for t, m in zip(ends, merged, strict=True)]
            for q in quantiles}


def probe_ttft(results: Sequence[ProbeResult], now: float, window: float, step: float,
               q: float = 0.5) -> Points:
    """Per step, the ``q`` quantile of the TTFT the probes measured (successful probes only)."""
    since, ends, slot = query.step_grid(now, window, step)
    per: list[list[float]] = [[] for _ in ends]
    for r in results:
        if r.ok and r.ttft_seconds is not None and since < r.ts <= now:
            per[slot(r.ts)].append(r.ttft_seconds)
    return [(t, exact_quantile(v, q)) for t, v in zip(ends, per, strict=True)]


def scrape_errors(status: Sequence[tuple[float, bool, str | None]], now: float, window: float,
                  step: float) -> list[tuple[float, int, str]]:
    """Failed scrapes grouped per step: ``(step end, count, one reason)`` for steps with any."""
    _, ends, slot = query.step_grid(now, window, step)
    n = len(ends)
    counts = [0] * n
    reasons = [""] * n
    for ts, up, reason in status:
        if not up:
            i = slot(ts)
            counts[i] += 1
            reasons[i] = reasons[i] or (reason or "scrape failed")
    return [(ends[i], counts[i], reasons[i]) for i in range(n) if counts[i]]


def ratio(num: Points, den: Points) -> Points:
    """Point-wise ``num / den`` (None where either is missing or the denominator is 0)."""
    return [(t, (a / b) if a is not None and b else None) for (t, a), (_, b) in zip(num, den, strict=True)]


@dataclass(frozen=True, slots=True)
class AlertSpan:
    """One firing period of one alert of a backend: ``end`` None while it still fires."""

    rule: str
    severity: str
    start: float
    end: float | None
    summary: str


def alert_spans(history: Iterable[Transition], states: Iterable[AlertState], backend: str,
                since: float, until: float) -> list[AlertSpan]:
    """The firing periods of ``backend``'s alerts that overlap ``(since, until]``, oldest first.

    A resolved period comes from its ``resolved`` transition (which carries ``fired_at``), a
    current one from the alert's state; ``history`` must reach back to ``since`` (periods that
    resolved later than ``until`` are found there too)."""
    spans: set[AlertSpan] = set()
    for t in history:
        if t.new == "resolved" and t.labels.get(c.LABEL_BACKEND) == backend and t.fired_at is not None:
            spans.add(AlertSpan(t.rule, t.labels.get("severity", ""), t.fired_at, t.ts,
                                t.annotations.get("summary", "")))
    for s in states:
        if s.state == "firing" and s.labels.get(c.LABEL_BACKEND) == backend and s.fired_at is not None:
            spans.add(AlertSpan(s.rule, s.labels.get("severity", ""), s.fired_at, None,
                                s.annotations.get("summary", "")))
    overlapping = [s for s in spans if s.start <= until and (s.end is None or s.end > since)]
    return sorted(overlapping, key=lambda s: (s.start, s.rule))


#: fleet column -> the rule condition that judges it: ``(aggregation, signal, denominator)``
COLUMN_QUERIES: dict[str, tuple[str, str, str | None]] = {
    "queue_depth": ("last", c.QUEUE_DEPTH, None),
    "requests_running": ("last", c.REQUESTS_RUNNING, None),
    "ttft.p50": ("p50", c.TTFT_SECONDS, None),
    "ttft.p95": ("p95", c.TTFT_SECONDS, None),
    "ttft.p99": ("p99", c.TTFT_SECONDS, None),
    "e2e.p99": ("p99", c.E2E_LATENCY_SECONDS, None),
    "error_ratio": ("ratio", c.REQUEST_ERRORS_TOTAL, c.REQUESTS_TOTAL),
    "kv_cache_usage_ratio": ("last", c.KV_CACHE_USAGE_RATIO, None),
    "gpu_memory_used_ratio": ("last", "gpu_memory_used_ratio", None),
}


def column_thresholds(rules: Sequence[Rule], backends: Sequence[BackendConfig],
                      keys: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """Per backend and fleet column, the threshold above which the alert rules in force call the
    value bad (the lowest among rules of the form ``<column's query> > threshold`` whose selector
    covers the backend, with its ``alert_thresholds`` override); None when no rule judges it."""
    judges: dict[str, list[Rule]] = {k: [] for k in keys}
    for rule in rules:
        cond = rule.parsed
        if not isinstance(cond.left, Query) or cond.op not in (">", ">="):
            continue
        q = (cond.left.fn, cond.left.signal, cond.left.denominator)
        for k in keys:
            if COLUMN_QUERIES.get(k) == q:
                judges[k].append(rule)
    out: dict[str, dict[str, float | None]] = {}
    for b in backends:
        instance = {c.LABEL_BACKEND: b.name, **b.labels}
        out[b.name] = {}
        for k in keys:
            found = [r.threshold_for(instance) for r in judges[k] if r.selector.matches(instance)]
            out[b.name][k] = min(found) if found else None
    return out


#: backend-page chart -> the signals it draws (what an alert rule must read to be shaded on it)
CHART_SIGNALS: dict[str, frozenset[str]] = {
    "ttft": frozenset({c.TTFT_SECONDS}),
    "itl": frozenset({c.ITL_SECONDS}),
    "e2e": frozenset({c.E2E_LATENCY_SECONDS}),
    "queue": frozenset({c.QUEUE_DEPTH, c.REQUESTS_RUNNING}),
    "tokens": frozenset({c.PROMPT_TOKENS_TOTAL, c.GENERATION_TOKENS_TOTAL, "tokens_per_second"}),
    "errors": frozenset({c.REQUEST_ERRORS_TOTAL, c.REQUESTS_TOTAL, "error_ratio"}),
    "kv": frozenset({c.KV_CACHE_USAGE_RATIO}),
    "probe": frozenset({"probe_ttft_seconds", "probe_success_ratio", c.TTFT_SECONDS}),
}


def shades(rule_signals: frozenset[str] | None, chart: str) -> bool:
    """Whether an alert of a rule reading ``rule_signals`` is shaded on ``chart``: on the charts
    of what it reads; a backend-down rule (``up``) and a rule no longer known on every chart.

    >>> shades(frozenset({"ttft_seconds"}), "ttft"), shades(frozenset({"ttft_seconds"}), "kv")
    (True, False)
    >>> shades(frozenset({"up"}), "kv"), shades(None, "kv"), shades(frozenset({"cert_expiry_days"}), "ttft")
    (True, True, False)
    """
    if rule_signals is None or "up" in rule_signals:
        return True
    return bool(CHART_SIGNALS.get(chart, frozenset()) & rule_signals)


#: chart -> (the signal its data needs, what to call it)
_NEEDS: dict[str, tuple[str, str]] = {
    "ttft": (c.TTFT_SECONDS, "time to first token"),
    "itl": (c.ITL_SECONDS, "inter-token latency"),
    "e2e": (c.E2E_LATENCY_SECONDS, "end-to-end latency"),
    "queue": (c.QUEUE_DEPTH, "queue depth"),
    "errors": (c.REQUESTS_TOTAL, "request and error counters"),
    "kv": (c.KV_CACHE_USAGE_RATIO, "KV-cache usage"),
}
ENGINE_NAMES = {"vllm": "vLLM", "tgi": "TGI", "triton": "Triton", "sglang": "SGLang", "llamacpp": "llama.cpp"}


def missing_note(engine: str, chart: str, exported: frozenset[str], probed: bool) -> dict[str, str] | None:
    """A note to show in place of ``chart`` when the engine does not export what it draws.

    >>> missing_note("tgi", "ttft", frozenset(), False)["note"]
    'TGI does not export time to first token. A probe (probe: in the backend config) measures it as users feel it.'
    """
    need = _NEEDS.get(chart)
    if need is None or need[0] in exported:
        return None
    text = f"{ENGINE_NAMES.get(engine, engine)} does not export {need[1]}."
    if chart == "ttft":
        text += (" The probe chart below measures it as users feel it." if probed else
                 " A probe (probe: in the backend config) measures it as users feel it.")
    return {"note": text}


def signal_threshold(rules: Sequence[Rule], signal: str) -> float | None:
    """The lowest threshold of the rules of the form ``<signal> > t`` (its latest value), the
    value above which the rules in force call it bad; None when none reads it.

    >>> from alerts.rulepack import DEFAULT_RULES
    >>> signal_threshold(DEFAULT_RULES, "gpu_memory_used_ratio"), signal_threshold(DEFAULT_RULES, "x")
    (0.98, None)
    """
    return min((r.parsed.threshold for r in rules
                if isinstance(r.parsed.left, Query) and r.parsed.left.fn == "last"
                and r.parsed.left.signal == signal and r.parsed.op in (">", ">=")), default=None)
