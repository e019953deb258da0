"""Service level objectives: error budgets and multi-window multi-burn-rate alerts. Pure, no I/O.

An SLO in config::

    slos:
      - {name: ttft-1s, objective: 0.99, window: 30d, good: "ttft_seconds < 1"}
      - {name: availability, objective: 99.9%, good: availability}   # 1 - errors / requests
      - {name: scrapes, objective: 0.999, good: up}                   # share of successful scrapes

Vocabulary (Google SRE workbook, chapter 5; slok/sloth):

* **bad ratio** over a window: bad events ÷ all events (for a latency SLO, requests slower than
  the threshold ÷ all requests).
* **error budget**: the bad ratio the objective allows, ``1 - objective`` (0.1 % at 99.9 %).
* **burn rate**: how fast the budget is being spent, ``bad_ratio / (1 - objective)``. A burn
  rate of 1 spends exactly the whole budget over the SLO window; 14.4 spends it in 1/14.4 of it.
* **multi-window multi-burn-rate alert**: fire when the burn rate is above a factor over a long
  window (enough budget is really gone) AND over a short window (it is still happening, so
  the alert resets quickly after recovery).

The alert windows are values (``AlertWindows``), configurable per SLO; the default derives each
factor from the share of the budget it guards, so it fits any SLO window (for 30d it is the
workbook's 14.4 / 6 / 3 / 1).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Final, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from alerts.rules import Selector, all_signals
from core.schema import ConfigModel
from core.units import Duration, parse_threshold

__all__ = [
    "SLO", "AlertWindows", "AvailabilitySLI", "BurnRateWindow", "ErrorBudget", "GoodCount",
    "LatencySLI", "MWMBAlert", "MWMBAlertGroup", "burn_rate", "burn_rate_factor",
    "default_alert_windows", "error_budget", "good_count", "mwmb_alerts", "parse_good",
]

DAY: Final = 86400.0
HOUR: Final = 3600.0


# --- the SLI: what counts as a good event -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatencySLI:
    """Good = an observation of histogram ``signal`` at or below ``threshold`` seconds."""

    signal: str
    threshold: float


@dataclass(frozen=True, slots=True)
class AvailabilitySLI:
    """``requests``: good = requests_total - request_errors_total; ``up``: good = successful scrapes."""

    source: Literal["requests", "up"]


SLI = LatencySLI | AvailabilitySLI
_GOOD_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|<)\s*(\S+)\s*")


def parse_good(text: str) -> SLI:
    """``"ttft_seconds < 1"`` / ``"availability"`` / ``"up"`` -> the SLI.

    ``<`` and ``<=`` mean the same: histogram buckets count observations ``<=`` their bound, and
    latencies are continuous.

    >>> parse_good("ttft_seconds < 500ms"), parse_good("availability")
    (LatencySLI(signal='ttft_seconds', threshold=0.5), AvailabilitySLI(source='requests'))
    """
    word = text.strip()
    if word == "availability":
        return AvailabilitySLI("requests")
    if word == "up":
        return AvailabilitySLI("up")
    m = _GOOD_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"invalid good {text!r}; write it like \"ttft_seconds < 1\", "
                         "availability or up")
    signal, _, number = m.groups()
    kinds = all_signals()
    if kinds.get(signal) != "histogram":
        hist = ", ".join(sorted(k for k, v in kinds.items() if v == "histogram"))
        raise ValueError(f"invalid good {text!r}: {signal!r} is not a latency histogram; "
                         f"expected one of {hist}")
    threshold = parse_threshold(number)
    if threshold <= 0:
        raise ValueError(f"invalid good {text!r}: the threshold must be above 0")
    return LatencySLI(signal, threshold)


# --- alert windows ---------------------------------------------------------------------------------


def burn_rate_factor(budget_share: float, slo_window: float, long_window: float) -> float:
    """The burn rate that spends ``budget_share`` of the budget within ``long_window``.

    At burn rate 1 the whole budget lasts the SLO window, so spending a share ``s`` of it takes
    ``s * slo_window``. Doing that within ``long_window`` needs ``s * slo_window / long_window``.
    Example, 30d SLO: 2 % of the budget is 0.02 × 720h = 14.4h of budget; in 1h that is ×14.4.
    5 % in 6h: 0.05 × 720h = 36h; in 6h, ×6.

    >>> burn_rate_factor(0.02, 30 * 86400, 3600)
    14.4
    """
    return budget_share * slo_window / long_window


class BurnRateWindow(ConfigModel):
    """One alert of the four: burn rate above ``factor`` over ``long`` AND over ``short``."""

    long: Duration
    short: Duration
    factor: float = Field(gt=0)

    @model_validator(mode="after")
    def _short_within_long(self) -> BurnRateWindow:
        if not 0 < self.short < self.long:
            raise ValueError("short window must be above 0 and shorter than the long one")
        return self


class AlertWindows(ConfigModel):
    """The four windows of the workbook's recommended alerting (sloth ``MWMBAlertGroup``)."""

    page_quick: BurnRateWindow
    page_slow: BurnRateWindow
    ticket_quick: BurnRateWindow
    ticket_slow: BurnRateWindow


#: (long window, short window, share of the error budget it guards); short = long / 12.
_GOOGLE: Final = {
    "page_quick": (1 * HOUR, 5 * 60.0, 0.02),  # 2 % of the budget in 1h   (30d: ×14.4)
    "page_slow": (6 * HOUR, 30 * 60.0, 0.05),  # 5 % in 6h                 (30d: ×6)
    "ticket_quick": (1 * DAY, 2 * HOUR, 0.10),  # 10 % in 1d               (30d: ×3)
    "ticket_slow": (3 * DAY, 6 * HOUR, 0.10),  # 10 % in 3d                (30d: ×1)
}


def default_alert_windows(slo_window: float = 30 * DAY) -> AlertWindows:
    """The workbook's windows with factors for ``slo_window``: 14.4 / 6 / 3 / 1 for 30 days."""
    return AlertWindows.model_validate({
        kind: {"long": long, "short": short,
               "factor": round(burn_rate_factor(share, slo_window, long), 9)}
        for kind, (long, short, share) in _GOOGLE.items()
    })


# --- the SLO model ---------------------------------------------------------------------------------


def _objective(value: object) -> object:
    if isinstance(value, str):
        return parse_threshold(value)  # "99.9%" -> 0.999
    return value


class SLO(ConfigModel):
    """One objective. ``good`` says what a good event is; ``alerting`` overrides the windows.

    >>> s = SLO(name="ttft-1s", objective=0.99, good="ttft_seconds < 1")
    >>> s.window, s.sli, s.alert_windows().page_quick.factor
    (2592000.0, LatencySLI(signal='ttft_seconds', threshold=1.0), 14.4)
    """

    name: str
    objective: Annotated[float, BeforeValidator(_objective)]
    window: Duration = 30 * DAY
    good: str
    selector: Selector = Field(default_factory=Selector)
    alerting: AlertWindows | None = None
    description: str = ""

    @field_validator("objective")
    @classmethod
    def _between(cls, v: float) -> float:
        if not 0 < v < 1:
            raise ValueError(f"objective must be between 0 and 1 (exclusive), like 0.99 or 99.9%, got {v}")
        return v

    @field_validator("good")
    @classmethod
    def _good(cls, v: str) -> str:
        parse_good(v)
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("window must be longer than 0")
        return v

    @property
    def sli(self) -> SLI:
        return parse_good(self.good)

    @property
    def error_budget_ratio(self) -> float:
        """The bad ratio allowed: ``1 - objective``."""
        return 1 - self.objective

    def alert_windows(self) -> AlertWindows:
        return self.alerting if self.alerting is not None else default_alert_windows(self.window)


# --- error budget ----------------------------------------------------------------------------------


def burn_rate(bad_ratio: float, objective: float) -> float:
    """How many times faster than allowed the budget burns: ``bad_ratio / (1 - objective)``.

    >>> round(burn_rate(0.0144, 0.999), 6)  # 1.44 % bad at 99.9 %: 14.4× the allowed 0.1 %
    14.4
    """
    return bad_ratio / (1 - objective)


@dataclass(frozen=True, slots=True)
class ErrorBudget:
    """Where an SLO stands over its window, from good and total event counts.

    ``allowed_bad = (1 - objective) × total``; ``consumed = bad ÷ allowed_bad``;
    ``remaining = 1 - consumed`` (negative once the budget is overspent).
    """

    total: float
    good: float
    bad: float
    allowed_bad: float
    consumed: float
    remaining: float
    sli: float  # good ÷ total: the achieved ratio, to compare with the objective


def error_budget(good: float, total: float, objective: float) -> ErrorBudget | None:
    """The budget from counts over the SLO window; None without any event (nothing to judge).

    >>> b = error_budget(good=99_950, total=100_000, objective=0.999)
    >>> b.bad, round(b.allowed_bad, 9), round(b.consumed, 9), round(b.remaining, 9)
    (50.0, 100.0, 0.5, 0.5)
    """
    if total <= 0 or math.isnan(total) or math.isnan(good):
        return None
    good = min(max(good, 0.0), total)  # a racing scrape can make good > total by a hair
    bad = total - good
    allowed = (1 - objective) * total
    consumed = bad / allowed
    return ErrorBudget(total=float(total), good=float(good), bad=float(bad), allowed_bad=allowed,
                       consumed=consumed, remaining=1 - consumed, sli=good / total)


# --- multi-window multi-burn-rate alerts ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MWMBAlert:
    """One burn-rate alert: fires when the bad ratio exceeds ``error_ratio_threshold`` on both windows.

    ``error_ratio_threshold = burn_rate_factor × (1 - objective)``: at 99.9 % and ×14.4 that is
    1.44 % of events bad, over 1h and over 5m.
    """

    kind: Literal["page_quick", "page_slow", "ticket_quick", "ticket_slow"]
    severity: Literal["page", "ticket"]
    long_window: float
    short_window: float
    burn_rate_factor: float
    error_ratio_threshold: float

    def is_burning(self, bad_ratio_long: float | None, bad_ratio_short: float | None) -> bool:
        """Both windows above the threshold (strictly, as the workbook's ``>``); no data: False."""
        if bad_ratio_long is None or bad_ratio_short is None:
            return False
        return bad_ratio_long > self.error_ratio_threshold and bad_ratio_short > self.error_ratio_threshold


@dataclass(frozen=True, slots=True)
class MWMBAlertGroup:
    """The four alerts of one SLO (sloth ``MWMBAlertGroup``)."""

    page_quick: MWMBAlert
    page_slow: MWMBAlert
    ticket_quick: MWMBAlert
    ticket_slow: MWMBAlert

    def alerts(self) -> tuple[MWMBAlert, ...]:
        return (self.page_quick, self.page_slow, self.ticket_quick, self.ticket_slow)

    def windows(self) -> tuple[float, ...]:
        """Every window a bad ratio is needed for, ascending (what the I/O layer fetches)."""
        return tuple(sorted({w for a in self.alerts() for w in (a.long_window, a.short_window)}))

    def burning(self, bad_ratios: Mapping[float, float | None]) -> tuple[MWMBAlert, ...]:
        """The alerts whose condition holds, given the bad ratio per window (seconds -> ratio)."""
        return tuple(a for a in self.alerts()
                     if a.is_burning(bad_ratios.get(a.long_window), bad_ratios.get(a.short_window)))


def mwmb_alerts(slo: SLO) -> MWMBAlertGroup:
    """The SLO's four burn-rate alerts as values.

    >>> g = mwmb_alerts(SLO(name="a", objective=0.999, good="availability"))
    >>> g.page_quick.burn_rate_factor, round(g.page_quick.error_ratio_threshold, 9)
    (14.4, 0.0144)
    """
    w = slo.alert_windows()
    budget = slo.error_budget_ratio

    def one(kind: Literal["page_quick", "page_slow", "ticket_quick", "ticket_slow"],
            bw: BurnRateWindow) -> MWMBAlert:
        severity: Literal["page", "ticket"] = "page" if kind.startswith("page") else "ticket"
        return MWMBAlert(kind, severity, bw.long, bw.short, bw.factor, bw.factor * budget)

    return MWMBAlertGroup(
        page_quick=one("page_quick", w.page_quick),
        page_slow=one("page_slow", w.page_slow),
        ticket_quick=one("ticket_quick", w.ticket_quick),
        ticket_slow=one("ticket_slow", w.ticket_slow),
    )


# --- latency SLI from histogram buckets ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GoodCount:
    """Observations at or below a threshold, read from a histogram.

    ``estimated`` is True when the threshold falls strictly inside a bucket with observations in
    it: ``value`` is then interpolated, and the truth lies in ``[lower, upper]`` — the cumulative
    counts at the bucket's lower and upper bound.
    """

    value: float
    estimated: bool
    lower: float
    upper: float


def _prepare(bounds: Sequence[float], counts: Sequence[float]) -> list[tuple[float, float]]:
    """Sort by bound, merge equal bounds, force counts monotonic (as ``histogram_quantile``)."""
    merged: list[list[float]] = []
    for b, c in sorted(zip(bounds, counts, strict=True), key=lambda p: p[0]):
        if merged and merged[-1][0] == b:
            merged[-1][1] += c
        else:
            merged.append([b, c])
    running = -math.inf
    for m in merged:
        m[1] = max(m[1], running)
        running = m[1]
    return [(b, c) for b, c in merged]


def good_count(bounds: Sequence[float], cumulative_counts: Sequence[float], threshold: float) -> GoodCount:
    """How many observations were ``<= threshold``, from cumulative bucket counts.

    * threshold equal to a bucket bound: that bound's count, exact;
    * strictly inside a bucket ``(lo, hi]``: linear interpolation, as ``histogram_quantile``
      assumes observations spread evenly within a bucket::

          value = count(lo) + (count(hi) - count(lo)) × (threshold - lo) / (hi - lo)

      with ``lower = count(lo)``, ``upper = count(hi)``. The first bucket's lower edge is 0 (when
      its bound is above 0), again as ``histogram_quantile``;
    * above the highest finite bound (inside the ``+Inf`` bucket) nothing can be interpolated:
      ``value`` is the count at the highest finite bound (conservative: only what is known to be
      good), ``upper`` the total.

    >>> good_count([0.5, 1.0, math.inf], [60, 90, 100], 1.0)
    GoodCount(value=90.0, estimated=False, lower=90.0, upper=90.0)
    >>> good_count([0.5, 1.0, math.inf], [60, 90, 100], 0.75)
    GoodCount(value=75.0, estimated=True, lower=60.0, upper=90.0)
    """
    buckets = _prepare(bounds, cumulative_counts)
    if not buckets or math.isnan(threshold):
        return GoodCount(0.0, False, 0.0, 0.0)
    lo_bound, lo_count = 0.0, 0.0  # the first bucket's lower edge and the count below it
    for i, (bound, count) in enumerate(buckets):
        if threshold == bound:
            return GoodCount(float(count), False, float(count), float(count))
        if threshold < bound:
            if i == 0 and bound <= 0:
                # (-Inf, bound] has no lower edge to interpolate from
                return _between(0.0, float(count), 0.0)
            if i == 0 and threshold <= 0:
                return GoodCount(0.0, False, 0.0, 0.0)  # nothing below the 0 edge (latencies)
            if math.isinf(bound):
                return _between(lo_count, float(count), lo_count)
            value = lo_count + (count - lo_count) * (threshold - lo_bound) / (bound - lo_bound)
            return _between(lo_count, float(count), value)
        lo_bound, lo_count = bound, float(count)
    # above every bound (the highest is finite): all observations are at or below it
    return GoodCount(lo_count, False, lo_count, lo_count)


def _between(lower: float, upper: float, value: float) -> GoodCount:
    """An answer known only to lie in [lower, upper]; exact when the bucket is empty."""
    return GoodCount(float(value), lower != upper, float(lower), float(upper))
