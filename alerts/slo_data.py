"""SLO status from the metrics store: good and total events per window, error budget, burn rates and
which multi-window burn-rate alerts hold. The I/O half of ``alerts/slo.py``.

Events, per SLI:

* latency (``ttft_seconds < 1``): every observation in the selected backends' histogram
  deltas; good ones read at the threshold with ``slo.good_count``. When the threshold falls
  inside a bucket the count is interpolated as ``histogram_quantile`` does, and the view says
  ``estimated: true`` with the SLI's possible range (``sli_lower`` … ``sli_upper``) — Sloth and
  Pyrra refuse such thresholds; an operator is better served by a bounded estimate.
* ``availability``: finished requests; bad = ``request_errors_total``.
* ``up``: scrapes; bad = failed scrapes.

Burn-down (``burn_down``): the SLO window ``(now - window, now]`` cut into ``n`` equal steps (at
most ``BURN_DOWN_POINTS``, none shorter than the selected backends' shortest scrape interval); at
each step end ``t`` the error budget remaining over the events from the window's start to ``t``:
``error_budget(good(since, t], total(since, t], objective).remaining`` — None until the first
event. Its last point is the view's ``error_budget.remaining``: the whole window's events are the
last cumulative step, read in the same pass.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from alerts.evaluate import LabelSet, Values, labelset
from alerts.rules import Rule
from alerts.slo import (
    SLO,
    AvailabilitySLI,
    ErrorBudget,
    LatencySLI,
    MWMBAlert,
    burn_rate,
    error_budget,
    good_count,
    mwmb_alerts,
)
from collector.config import BackendConfig, CollectorSettings
from collector.store import MetricsStore
from collector.summary import Json
from core import conventions as c
from core.quantiles import merge
from core.units import format_window


@dataclass(frozen=True, slots=True)
class Events:
    good: float
    total: float
    good_lower: float  # bounds of ``good`` when it is interpolated (equal to it when exact)
    good_upper: float
    estimated: bool = False

    @property
    def bad_ratio(self) -> float | None:
        return None if self.total <= 0 else 1 - self.good / self.total


def _backends(slo: SLO, backends: Sequence[BackendConfig]) -> list[str]:
    return [b.name for b in backends if slo.selector.matches({c.LABEL_BACKEND: b.name, **b.labels})]


def events(slo: SLO, metrics: MetricsStore, backends: Sequence[BackendConfig], now: float, window: float) -> Events:
    names = _backends(slo, backends)
    if not names:
        return Events(0.0, 0.0, 0.0, 0.0)
    since = now - window
    sli = slo.sli
    if isinstance(sli, LatencySLI):
        rows = metrics.histogram_deltas(since, now, backends=names, signals=[sli.signal])
        merged = merge((r.bounds, r.counts) for r in rows if len(r.bounds) > 1)  # mean-only: no buckets
        if merged is None:
            return Events(0.0, 0.0, 0.0, 0.0)
        bounds, counts = merged
        g = good_count(bounds, counts, sli.threshold)
        return Events(g.value, counts[-1], g.lower, g.upper, g.estimated)
    assert isinstance(sli, AvailabilitySLI)
    if sli.source == "up":
        points = [up for b in names for _, up, _ in metrics.status_series(b, since, now)]
        good = float(sum(1 for up in points if up))
        return Events(good, float(len(points)), good, good)
    totals = metrics.counter_totals(since, now, backends=names, signals=[c.REQUESTS_TOTAL, c.REQUEST_ERRORS_TOTAL])
    requests = sum(d for (_, s, _), (d, _) in totals.items() if s == c.REQUESTS_TOTAL)
    errors = sum(d for (_, s, _), (d, _) in totals.items() if s == c.REQUEST_ERRORS_TOTAL)
    good = max(0.0, requests - errors)
    return Events(good, requests, good, good)


# --- burn-down: cumulative events per step over the SLO window ---------------------------------------
#: at most this many points in a burn-down (whatever the SLO window)
BURN_DOWN_POINTS: Final = 120
_NONE: Final = Events(0.0, 0.0, 0.0, 0.0)


def burn_down_ends(now: float, window: float, min_step: float, points: int = BURN_DOWN_POINTS) -> list[float]:
    """The step ends of a burn-down over ``(now - window, now]``: ``n`` equal steps, ``n`` at most
    ``points`` and each step at least ``min_step`` long (at least one step); the last end is ``now``.

    >>> burn_down_ends(3600.0, 3600.0, 15.0)[:3], len(burn_down_ends(3600.0, 3600.0, 15.0))
    ([30.0, 60.0, 90.0], 120)
    >>> burn_down_ends(300.0, 300.0, 15.0)[-2:]
    [285.0, 300.0]
    """
    n = max(1, min(points, math.floor(window / min_step) if min_step > 0 else points))
    step = window / n
    since = now - window
    return [since + step * (i + 1) for i in range(n - 1)] + [now]


def _slot(ts: float, ends: Sequence[float]) -> int:
    """The step ``(ends[i - 1], ends[i]]`` holding ``ts`` (clamped to the window)."""
    return min(len(ends) - 1, bisect_left(ends, ts))


def cumulative_events(slo: SLO, metrics: MetricsStore, backends: Sequence[BackendConfig], now: float, window: float,
                      ends: Sequence[float]) -> list[Events]:
    """Per step end ``t`` of ``ends`` (ascending, the last one ``now``), the SLI's events over
    ``(now - window, t]``: one pass over the window's rows (histogram deltas in one read; scrape
    statuses and request counters per backend, on their series index), slotted per step and
    summed up step by step.

    The last one holds every event of the window: ``events(slo, …, now, window)`` up to float
    rounding (a latency SLI merges the same histograms, step by step instead of all at once).
    """
    n = len(ends)
    names = _backends(slo, backends)
    if not names or n == 0:
        return [_NONE] * n
    since = now - window
    sli = slo.sli
    out: list[Events] = []
    if isinstance(sli, LatencySLI):
        per: list[list[tuple[Sequence[float], Sequence[float]]]] = [[] for _ in range(n)]
        for r in metrics.histogram_deltas(since, now, backends=names, signals=[sli.signal]):
            if len(r.bounds) > 1:  # mean-only: no buckets
                per[_slot(r.ts, ends)].append((r.bounds, r.counts))
        cum: tuple[tuple[float, ...], tuple[float, ...]] | None = None
        for rows in per:
            if rows:
                cum = merge([cum, *rows] if cum is not None else rows)
            if cum is None:
                out.append(_NONE)
                continue
            bounds, counts = cum
            g = good_count(bounds, counts, sli.threshold)
            out.append(Events(g.value, counts[-1], g.lower, g.upper, g.estimated))
        return out
    assert isinstance(sli, AvailabilitySLI)
    if sli.source == "up":
        ups = [0] * n
        scrapes = [0] * n
        for b in names:
            for ts, up, _ in metrics.status_series(b, since, now):
                i = _slot(ts, ends)
                scrapes[i] += 1
                ups[i] += 1 if up else 0
        good_sum = total_sum = 0
        for u, s in zip(ups, scrapes, strict=True):
            good_sum, total_sum = good_sum + u, total_sum + s
            out.append(Events(float(good_sum), float(total_sum), float(good_sum), float(good_sum)))
        return out
    # requests: every counter delta of the window, per backend (its series index), slotted per step
    requests = [0.0] * n
    errors = [0.0] * n
    for b in names:
        series = metrics.counter_series_many(b, [c.REQUESTS_TOTAL, c.REQUEST_ERRORS_TOTAL], since, now)
        for signal, into in ((c.REQUESTS_TOTAL, requests), (c.REQUEST_ERRORS_TOTAL, errors)):
            for ts, _, delta, _ in series.get(signal, []):
                into[_slot(ts, ends)] += delta
    req_sum = err_sum = 0.0
    for req, err in zip(requests, errors, strict=True):
        req_sum, err_sum = req_sum + req, err_sum + err
        good = max(0.0, req_sum - err_sum)
        out.append(Events(good, req_sum, good, good))
    return out


def _min_interval(slo: SLO, cfg: CollectorSettings) -> float:
    names = set(_backends(slo, cfg.backends))
    chosen = [cfg.interval_for(b) for b in cfg.backends if b.name in names]
    return min(chosen, default=cfg.scrape_interval)


def burn_down(slo: SLO, metrics: MetricsStore, cfg: CollectorSettings, now: float) -> list[tuple[float, float | None]]:
    """``[(t, error budget remaining over (now - window, t])]`` per step end ``t``; the last
    point is the whole window's ``error_budget(...).remaining``."""
    ends = burn_down_ends(now, slo.window, _min_interval(slo, cfg))
    return _remaining(slo, ends, cumulative_events(slo, metrics, cfg.backends, now, slo.window, ends))


def _remaining(slo: SLO, ends: Sequence[float], cumulative: Sequence[Events]) -> list[tuple[float, float | None]]:
    out: list[tuple[float, float | None]] = []
    for t, e in zip(ends, cumulative, strict=True):
        b = error_budget(e.good, e.total, slo.objective)
        out.append((t, None if b is None else b.remaining))
    return out


@dataclass(frozen=True, slots=True)
class SloStatus:
    """One SLO now: its SLI over the window (a range when estimated), error budget, burn rate per
    alert window, which burn-rate alerts hold, and the burn-down (``(t, budget left)`` per step)."""

    slo: SLO
    whole: Events
    budget: ErrorBudget | None
    burn_rates: dict[float, float | None]  # window seconds -> burn rate (None: no events)
    burning: frozenset[str]  # kinds of the MWMB alerts that hold now
    alerts: tuple[MWMBAlert, ...]
    burn_down_step: float
    burn_down: list[tuple[float, float | None]]

    @property
    def window_text(self) -> str:
        return format_window(self.slo.window)

    def to_json(self) -> Json:
        """What ``/api/v1/slos`` shows for this SLO."""
        slo, whole, budget = self.slo, self.whole, self.budget
        return {
            "name": slo.name, "objective": slo.objective, "window_seconds": slo.window,
            "window": format_window(slo.window), "good": slo.good,
            "description": slo.description,
            "sli": budget.sli if budget else None,
            "estimated": whole.estimated,
            "sli_lower": (whole.good_lower / whole.total) if whole.total else None,
            "sli_upper": (whole.good_upper / whole.total) if whole.total else None,
            "events": {"good": whole.good, "total": whole.total},
            "error_budget": None if budget is None else {
                "allowed_bad": budget.allowed_bad, "bad": budget.bad, "consumed": budget.consumed,
                "remaining": budget.remaining},
            "burn_rates": {format_window(w): r for w, r in sorted(self.burn_rates.items())},
            "alerts": [{"kind": a.kind, "severity": a.severity, "long_window": format_window(a.long_window),
                        "short_window": format_window(a.short_window), "burn_rate_factor": a.burn_rate_factor,
                        "burning": a.kind in self.burning} for a in self.alerts],
            "burn_down_step": self.burn_down_step,
            "burn_down": [[t, r] for t, r in self.burn_down],
        }


def slo_status(slo: SLO, metrics: MetricsStore, cfg: CollectorSettings, now: float) -> SloStatus:
    """Everything ``/api/v1/slos`` (and the SLO page) shows for one SLO."""
    ends = burn_down_ends(now, slo.window, _min_interval(slo, cfg))
    steps = cumulative_events(slo, metrics, cfg.backends, now, slo.window, ends)
    whole = steps[-1]  # the window's events: the burn-down's last step, in the same read
    group = mwmb_alerts(slo)
    ratios = _bad_ratios(slo, metrics, cfg, now)
    return SloStatus(
        slo=slo, whole=whole, budget=error_budget(whole.good, whole.total, slo.objective),
        burn_rates=_burn_rates(slo, ratios),
        burning=frozenset(a.kind for a in group.burning(ratios)), alerts=tuple(group.alerts()),
        burn_down_step=slo.window / len(ends), burn_down=_remaining(slo, ends, steps),
    )


@dataclass(frozen=True, slots=True)
class SloFigures:
    """An SLO's figures as ``/metrics`` exports them (no burn-down: that is the page's)."""

    slo: SLO
    budget: ErrorBudget | None
    burn_rates: dict[float, float | None]  # window seconds -> burn rate (None: no events)


def slo_figures(slo: SLO, metrics: MetricsStore, cfg: CollectorSettings, now: float) -> SloFigures:
    """The SLI and error budget over the SLO's window and the burn rate over each alert window."""
    whole = events(slo, metrics, cfg.backends, now, slo.window)
    return SloFigures(slo, error_budget(whole.good, whole.total, slo.objective),
                      _burn_rates(slo, _bad_ratios(slo, metrics, cfg, now)))


def _bad_ratios(slo: SLO, metrics: MetricsStore, cfg: CollectorSettings, now: float) -> dict[float, float | None]:
    """The bad-event ratio over each of the SLO's alert windows (seconds -> ratio)."""
    return {w: events(slo, metrics, cfg.backends, now, w).bad_ratio for w in mwmb_alerts(slo).windows()}


def _burn_rates(slo: SLO, ratios: Mapping[float, float | None]) -> dict[float, float | None]:
    return {w: (burn_rate(r, slo.objective) if r is not None else None) for w, r in ratios.items()}


def slo_view(slo: SLO, metrics: MetricsStore, cfg: CollectorSettings, now: float) -> Json:
    """``slo_status(…).to_json()``: the SLO as ``/api/v1/slos`` shows it."""
    return slo_status(slo, metrics, cfg, now).to_json()


# --- burn-rate alerts as rules of the engine -------------------------------------------------------
_SEVERITY = {"page": "critical", "ticket": "warning"}


@dataclass(frozen=True, slots=True)
class BurnRule:
    """One multi-window burn-rate alert of one SLO, as an engine ``Rule`` plus what it watches.

    The rule's value is the *lower* of the two windows' burn rates, its threshold the factor: the
    condition (value > factor) holds exactly when both windows burn faster than the factor.
    """

    slo: SLO
    alert: MWMBAlert
    rule: Rule


#: how long a burn-rate alert stays firing after its condition last held
BURN_KEEP_FIRING = "5m"


def burn_rules(slos: Sequence[SLO]) -> list[BurnRule]:
    out: list[BurnRule] = []
    for slo in slos:
        for a in mwmb_alerts(slo).alerts():
            long_w, short_w = format_window(a.long_window), format_window(a.short_window)
            rule = Rule.model_validate({
                # the expression's signal is a placeholder: the engine supplies the value itself
                "name": f"SLOBurnRate:{slo.name}:{a.kind}",
                "expr": f"error_ratio > {a.burn_rate_factor!r}",
                "severity": _SEVERITY[a.severity],
                # burn rates hover around the factor while an incident fades: hold the alert
                # until it has stayed below for 5 minutes, instead of resolving and firing again
                # within seconds (Prometheus's keep_firing_for)
                "keep_firing_for": BURN_KEEP_FIRING,
                "labels": {"slo": slo.name, "burn_window": f"{long_w}/{short_w}", "slo_alert": a.severity},
                "annotations": {"summary": f"SLO {slo.name} ({slo.objective:.4%} over {format_window(slo.window)}) "
                                           f"burns its error budget {{{{ value }}}}x over {long_w} and {short_w} "
                                           f"(threshold {a.burn_rate_factor:g}x)"},
            })
            out.append(BurnRule(slo, a, rule))
    return out


def burn_values(rules: Sequence[BurnRule], metrics: MetricsStore, cfg: CollectorSettings, now: float) -> Values:
    """Values for ``alerts.evaluate.evaluate``: per burn rule, one instance ``{slo}``."""
    cache: dict[tuple[str, float], float | None] = {}

    def ratio(slo: SLO, window: float) -> float | None:
        key = (slo.name, window)
        if key not in cache:
            cache[key] = events(slo, metrics, cfg.backends, now, window).bad_ratio
        return cache[key]

    out: dict[str, dict[LabelSet, float | None]] = {}
    for br in rules:
        long_r, short_r = ratio(br.slo, br.alert.long_window), ratio(br.slo, br.alert.short_window)
        value = None if long_r is None or short_r is None else \
            min(burn_rate(long_r, br.slo.objective), burn_rate(short_r, br.slo.objective))
        out[br.rule.name] = {labelset({"slo": br.slo.name}): value}
    return out
