"""SLO status from the store: good and total events per window, error budget, burn rates and
which multi-window burn-rate alerts hold. The I/O half of ``alerts/slo.py``.

Events, per SLI:

* latency (``ttft_seconds < 1``): every observation in the selected backends' histogram
  deltas; good ones read at the threshold with ``slo.good_count``. When the threshold falls
  inside a bucket the count is interpolated as ``histogram_quantile`` does, and the view says
  ``estimated: true`` with the SLI's possible range (``sli_lower`` … ``sli_upper``) — Sloth and
  Pyrra refuse such thresholds; an operator is better served by a bounded estimate.
* ``availability``: finished requests; bad = ``request_errors_total``.
* ``up``: scrapes; bad = failed scrapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alerts.slo import (
    SLO,
    AvailabilitySLI,
    LatencySLI,
    burn_rate,
    error_budget,
    good_count,
    mwmb_alerts,
)
from collector import conventions as c
from collector.config import BackendConfig, Config
from collector.quantiles import merge
from collector.store import Store


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


def events(slo: SLO, store: Store, backends: Sequence[BackendConfig], now: float, window: float) -> Events:
    names = _backends(slo, backends)
    if not names:
        return Events(0.0, 0.0, 0.0, 0.0)
    since = now - window
    sli = slo.sli
    if isinstance(sli, LatencySLI):
        rows = store.histogram_deltas(since, now, backends=names, signals=[sli.signal])
        merged = merge((r.bounds, r.counts) for r in rows if len(r.bounds) > 1)  # mean-only: no buckets
        if merged is None:
            return Events(0.0, 0.0, 0.0, 0.0)
        bounds, counts = merged
        g = good_count(bounds, counts, sli.threshold)
        return Events(g.value, counts[-1], g.lower, g.upper, g.estimated)
    assert isinstance(sli, AvailabilitySLI)
    if sli.source == "up":
        points = [up for b in names for _, up, _ in store.status_series(b, since, now)]
        good = float(sum(1 for up in points if up))
        return Events(good, float(len(points)), good, good)
    totals = store.counter_totals(since, now, backends=names)
    requests = sum(d for (_, s, _), (d, _) in totals.items() if s == c.REQUESTS_TOTAL)
    errors = sum(d for (_, s, _), (d, _) in totals.items() if s == c.REQUEST_ERRORS_TOTAL)
    good = max(0.0, requests - errors)
    return Events(good, requests, good, good)


def _window_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def slo_view(slo: SLO, store: Store, cfg: Config, now: float) -> dict[str, Any]:
    """Everything ``/api/v1/slos`` (and the SLO page) shows for one SLO."""
    whole = events(slo, store, cfg.backends, now, slo.window)
    budget = error_budget(whole.good, whole.total, slo.objective)
    group = mwmb_alerts(slo)
    ratios = {w: events(slo, store, cfg.backends, now, w).bad_ratio for w in group.windows()}
    burning = set(a.kind for a in group.burning(ratios))
    return {
        "name": slo.name, "objective": slo.objective, "window_seconds": slo.window, "good": slo.good,
        "description": slo.description,
        "sli": budget.sli if budget else None,
        "estimated": whole.estimated,
        "sli_lower": (whole.good_lower / whole.total) if whole.total else None,
        "sli_upper": (whole.good_upper / whole.total) if whole.total else None,
        "events": {"good": whole.good, "total": whole.total},
        "error_budget": None if budget is None else {
            "allowed_bad": budget.allowed_bad, "bad": budget.bad, "consumed": budget.consumed,
            "remaining": budget.remaining},
        "burn_rates": {_window_text(w): (burn_rate(r, slo.objective) if r is not None else None)
                       for w, r in sorted(ratios.items())},
        "alerts": [{"kind": a.kind, "severity": a.severity, "long_window": _window_text(a.long_window),
                    "short_window": _window_text(a.short_window), "burn_rate_factor": a.burn_rate_factor,
                    "burning": a.kind in burning} for a in group.alerts()],
    }
