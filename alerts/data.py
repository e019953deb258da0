"""The alert engine's reads: for every rule, the value of its expression per instance.

The I/O half of rule evaluation (``alerts/evaluate.py`` is the pure half). Instances:

* per backend — ``{backend, **backend labels}`` — for the engine signals, ``up``, the derived
  ``error_ratio`` / ``tokens_per_second`` and the probe signals;
* per GPU — ``{host, gpu, uuid}`` — for ``gpu_memory_used_ratio``;
* per TLS target — ``{target}`` — for ``cert_expiry_days`` (days until the *earliest* expiry in
  the presented chain: an expiring intermediate breaks clients as surely as the leaf);
* per audit target and checklist item — ``{target, check}`` — for ``audit_check`` (the last
  run's 1 pass / 0.5 warn / 0 fail; a skipped item has no value) and ``audit_check_regressed``
  (1 when the item fails now and an earlier stored run passed it, else 0).

Every figure comes from ``collector.query`` so that an alert and the dashboard agree; windows
are fetched once per evaluation and shared by every rule that uses them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence

from alerts.evaluate import LabelSet, Values, labelset
from alerts.rules import Need, Rule
from collector import query
from collector.config import BackendConfig, CollectorSettings
from collector.sources import tls_target
from collector.store import StatusRow
from core import conventions as c
from core.audit import STATUS_VALUE

DEFAULT_WINDOW = 300.0
REFERENCE_TTL = 300.0  # a baseline's reference (median over hours) is recomputed at most this often
_LATENCY_SIGNALS = frozenset({c.TTFT_SECONDS, c.ITL_SECONDS, c.E2E_LATENCY_SECONDS, c.QUEUE_TIME_SECONDS})
#: gauge-like signals an expression may name -> how a backend's window gives their figure
_SUMMARY_GAUGES: dict[str, Callable[[query.BackendWindow], float | None]] = {
    "error_ratio": lambda w: w.error_ratio(),
    "tokens_per_second": lambda w: w.rate(c.GENERATION_TOKENS_TOTAL),
    c.QUEUE_DEPTH: lambda w: w.gauge(c.QUEUE_DEPTH),
    c.REQUESTS_RUNNING: lambda w: w.gauge(c.REQUESTS_RUNNING),
    c.KV_CACHE_USAGE_RATIO: lambda w: w.gauge(c.KV_CACHE_USAGE_RATIO),
    c.PREFIX_CACHE_HIT_RATIO: lambda w: w.prefix_cache_hit_ratio(),
}
_SERIES_OF = {"tokens_per_second": c.GENERATION_TOKENS_TOTAL}


def backend_instance(b: BackendConfig) -> dict[str, str]:
    return {c.LABEL_BACKEND: b.name, **b.labels}


class Fetcher:
    """Values of ``Need``s at one evaluation time, with the windows cached."""

    def __init__(self, reads: query.Reads, cfg: CollectorSettings, now: float,
                 references: dict[tuple[str, str, str, float], tuple[float, float | None]] | None = None,
                 refresh_budget: int | None = None) -> None:
        """``refresh_budget``: how many stale references this round may recompute (None: all);
        the rest keep their last value until a later round (see ``refresh_budget``)."""
        self.reads = reads
        self.budget = refresh_budget
        self.cfg = cfg
        self.now = now
        #: baseline references (e.g. a 24 h median) change slowly: kept across evaluations
        self.references = references if references is not None else {}
        self._backends: dict[tuple[float, str], query.BackendWindow] = {}
        self._windows: dict[float, query.WindowData] = {}
        self._status: dict[str, StatusRow] | None = None

    def status(self) -> dict[str, StatusRow]:
        """Every backend's latest status, read once per evaluation (not once per backend: that
        read is of the whole fleet, and doing it per backend made rule evaluation quadratic)."""
        if self._status is None:
            self._status = self.reads.metrics.latest_status()
        return self._status

    def window(self, w: float) -> query.WindowData:
        """The fleet's data over ``w``, fetched once per evaluation and window."""
        if w not in self._windows:
            probed = [b.name for b in self.cfg.backends if b.probe is not None]
            self._windows[w] = query.WindowData.fetch(self.reads, self.now, w, probed=probed, status=self.status())
        return self._windows[w]

    def backend(self, window: float | None, backend: str) -> query.BackendWindow:
        """One backend's figures over ``window`` (default 5m), computed as rules ask for them."""
        w = window or DEFAULT_WINDOW
        key = (w, backend)
        if key not in self._backends:
            self._backends[key] = query.BackendWindow(self.window(w), backend)
        return self._backends[key]

    def backend_value(self, b: BackendConfig, need: Need) -> float | None:
        sig, agg, w = need.signal, need.aggregation, need.window
        if sig == "up":
            return self._up(b.name, agg, w)
        if sig.startswith("probe_"):
            if b.probe is None:
                return None
            p = query.probe_summary(self.window(w or DEFAULT_WINDOW).probes.get(b.name, []),
                                    b.probe.targets.ttft, b.probe.targets.itl)
            if p is None:
                return None
            if sig == "probe_success_ratio":
                return float(p.success_ratio)
            return p.ttft.get(agg) if p.ttft is not None else None
        if agg in ("median", "mean"):  # a baseline's reference: stat of the signal's step values
            return self._reference(b.name, sig, agg, w or DEFAULT_WINDOW)
        if agg in ("p50", "p95", "p99"):
            block = self.backend(w, b.name).latency(sig) if sig in _LATENCY_SIGNALS else None
            return block.get(agg) if block is not None else None
        if agg == "rate":  # None while the backend is down, as every figure (BackendWindow)
            return self.backend(w, b.name).rate(sig)
        figure = _SUMMARY_GAUGES.get(sig)
        if figure is None:
            return None
        if agg == "avg" and sig not in _SERIES_OF and w:
            return self._reference(b.name, sig, "mean", w)
        value = figure(self.backend(w, b.name))
        return None if value is None else float(value)

    def _up(self, backend: str, agg: str, window: float | None) -> float | None:
        if agg == "last" or not window:
            st = self.status().get(backend)
            return None if st is None else (1.0 if st.up else 0.0)
        points = [1.0 if up else 0.0 for _, up, _ in self.reads.metrics.status_series(backend, self.now - window, self.now)]
        return sum(points) / len(points) if points else None

    def _reference(self, backend: str, signal: str, stat: str, window: float) -> float | None:
        key = (backend, signal, stat, window)
        held = self.references.get(key)
        if held is not None and self.now - held[0] < reference_ttl(window):
            return held[1]
        if self.budget is not None:
            if self.budget <= 0:  # this round's refreshes are spent: the last value serves
                return None if held is None else held[1]
            self.budget -= 1
        value = self._compute_reference(backend, signal, stat, window)
        self.references[key] = (self.now, value)
        return value

    def _compute_reference(self, backend: str, signal: str, stat: str, window: float) -> float | None:
        series_signal = _SERIES_OF.get(signal, signal)
        if series_signal not in c.SIGNALS:
            return None
        step = max(self.cfg.scrape_interval, window / 288)  # at most ~288 points (5 min over 24 h)
        points = [v for _, v in query.series(self.reads.metrics, backend, series_signal, self.now, window, step) if v is not None]
        if not points:
            return None
        return statistics.median(points) if stat == "median" else statistics.fmean(points)


def _is_reference(need: Need) -> bool:
    """Whether ``Fetcher`` reads ``need`` as a reference (a per-backend series over the window),
    as its ``backend_value`` decides."""
    if need.aggregation in ("median", "mean"):
        return True
    return (need.aggregation == "avg" and bool(need.window) and need.signal in _SUMMARY_GAUGES
            and need.signal not in _SERIES_OF)


def reference_ttl(window: float) -> float:
    """How long a reference over ``window`` is reused: at most 5 minutes, a twelfth of the window
    for short ones (``avg(queue_depth[10m])`` is recomputed every 50 s)."""
    return min(REFERENCE_TTL, window / 12)


def refresh_budget(rules: Sequence[Rule], backends: int, evaluation_interval: float) -> int:
    """How many references one evaluation may recompute: twice what keeps every reference within
    its TTL on average, at least 16. A long window's reference reads hours of rows of one backend;
    without a budget, every backend's would expire in the same round (a 24 h median of 1,000
    backends is a 10–20 s round), delaying every alert of that round."""
    per_round = 0.0
    for rule in rules:
        for need in rule.needs():
            if _is_reference(need):
                per_round += backends * evaluation_interval / reference_ttl(need.window or DEFAULT_WINDOW)
    return max(16, math.ceil(2 * per_round))


def _backend_targets(backends: Sequence[BackendConfig]) -> dict[str, str]:
    """``host:port`` of every https backend -> its name (the first, where several share one)."""
    out: dict[str, str] = {}
    for b in backends:
        target = tls_target(b)
        if target is not None:
            out.setdefault(target, b.name)
    return out


def _kind(rule: Rule) -> str:
    signals = {n.signal for n in rule.needs()}
    if "gpu_memory_used_ratio" in signals:
        return "gpu"
    if "cert_expiry_days" in signals:
        return "cert"
    if signals & {"audit_check", "audit_check_regressed"}:
        return "audit"
    return "backend"


def _audit_values(reads: query.Reads, regressed: bool) -> list[tuple[dict[str, str], float | None]]:
    out: list[tuple[dict[str, str], float | None]] = []
    for s in reads.observations.audit_states():
        if s.status == "skip":
            continue
        if regressed:
            value: float | None = 1.0 if s.status == "fail" and s.passed_before else 0.0
        else:
            value = STATUS_VALUE[s.status]
        out.append(({"target": s.target, "check": s.check}, value))
    return out


def fetch_values(rules: Sequence[Rule], reads: query.Reads, cfg: CollectorSettings, now: float,
                 references: dict[tuple[str, str, str, float], tuple[float, float | None]] | None = None,
                 budget: int | None = None) -> Values:
    """``{rule name: {instance label set: value or None}}`` for ``alerts.evaluate.evaluate``;
    ``references`` (kept by the caller across evaluations) caches baseline references, ``budget``
    caps how many stale ones this round recomputes."""
    f = Fetcher(reads, cfg, now, references, budget)
    gpus: list[tuple[dict[str, str], float | None]] | None = None
    certs: list[tuple[dict[str, str], float | None]] | None = None
    audits: dict[bool, list[tuple[dict[str, str], float | None]]] = {}
    out: dict[str, dict[LabelSet, float | None]] = {}
    for rule in rules:
        per: dict[LabelSet, float | None] = {}
        kind = _kind(rule)
        if kind == "gpu":
            if gpus is None:
                gpus = [({"host": g.host, "gpu": g.index, "uuid": g.uuid}, query.gpu_memory_ratio(g))
                        for _, g in reads.observations.latest_gpus(now - DEFAULT_WINDOW)]
            instances = gpus
        elif kind == "cert":
            if certs is None:
                certs = []
                owners = _backend_targets(cfg.backends)
                for r in reads.observations.certificate_results():
                    ends = [t for t in (r.not_after, r.chain_not_after) if t is not None]
                    inst = {"target": r.target}
                    if r.target in owners:  # a backend's own endpoint: say which backend
                        inst[c.LABEL_BACKEND] = owners[r.target]
                    certs.append((inst, (min(ends) - now) / 86400.0 if ends else None))
            instances = certs
        elif kind == "audit":
            regressed = "audit_check_regressed" in {n.signal for n in rule.needs()}
            if audits.get(regressed) is None:
                audits[regressed] = _audit_values(reads, regressed)
            instances = audits[regressed]
        else:
            instances = []
            for b in cfg.backends:
                inst = backend_instance(b)
                if not rule.selector.matches(inst):
                    continue
                fetched: Mapping[Need, float | None] = {n: f.backend_value(b, n) for n in rule.needs()}
                instances.append((inst, rule.compute(fetched)))
        for inst, value in instances:
            if rule.selector.matches(inst):
                per[labelset(inst)] = value
        out[rule.name] = per
    return out
