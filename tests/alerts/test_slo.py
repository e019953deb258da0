"""SLO maths against hand-computed numbers: burn rates, error budgets, MWMB alerts, good counts."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from alerts.slo import (
    SLO,
    AvailabilitySLI,
    GoodCount,
    LatencySLI,
    burn_rate,
    burn_rate_factor,
    default_alert_windows,
    error_budget,
    good_count,
    mwmb_alerts,
    parse_good,
)
from core.quantiles import histogram_quantile

H, D = 3600.0, 86400.0
INF = math.inf


# --- burn rate and error budget ---------------------------------------------------------------------


@pytest.mark.parametrize(("bad_ratio", "objective", "expected"), [
    (0.0144, 0.999, 14.4),  # 1.44 % bad against 0.1 % allowed
    (0.01, 0.99, 1.0),  # exactly the allowed rate: the budget lasts the window
    (0.002, 0.999, 2.0),
    (0.0, 0.99, 0.0),
], ids=["page threshold at 99.9%", "burn rate 1 at 99%", "twice too fast", "no errors"])
def test_burn_rate(bad_ratio: float, objective: float, expected: float) -> None:
    assert burn_rate(bad_ratio, objective) == pytest.approx(expected)


def test_error_budget_half_spent() -> None:
    b = error_budget(good=99_950, total=100_000, objective=0.999)
    assert b is not None
    # allowed bad = 0.1 % of 100 000 = 100; 50 bad spend half of it
    assert (b.bad, b.allowed_bad, b.consumed, b.remaining, b.sli) == pytest.approx(
        (50, 100, 0.5, 0.5, 0.9995))


def test_error_budget_overspent_goes_negative() -> None:
    b = error_budget(good=9_700, total=10_000, objective=0.99)
    assert b is not None
    # allowed 100, bad 300: three budgets consumed, two over
    assert (b.consumed, b.remaining) == pytest.approx((3.0, -2.0))


def test_error_budget_without_events_is_none_and_good_is_clamped() -> None:
    assert error_budget(good=0, total=0, objective=0.99) is None
    b = error_budget(good=101, total=100, objective=0.99)
    assert b is not None and (b.bad, b.remaining) == (0.0, 1.0)


# --- alert windows ------------------------------------------------------------------------------------


def test_burn_rate_factor_arithmetic() -> None:
    # 30d = 720h; 2 % of it is 14.4h of budget; spent in 1h -> x14.4
    assert burn_rate_factor(0.02, 30 * D, 1 * H) == pytest.approx(14.4)
    assert burn_rate_factor(0.05, 30 * D, 6 * H) == pytest.approx(6.0)
    assert burn_rate_factor(0.10, 30 * D, 1 * D) == pytest.approx(3.0)
    assert burn_rate_factor(0.10, 30 * D, 3 * D) == pytest.approx(1.0)


def test_default_windows_for_30d_are_the_workbooks() -> None:
    w = default_alert_windows(30 * D)
    got = [(x.long, x.short, x.factor) for x in (w.page_quick, w.page_slow, w.ticket_quick, w.ticket_slow)]
    assert got == [(1 * H, 300.0, 14.4), (6 * H, 1800.0, 6.0), (1 * D, 2 * H, 3.0), (3 * D, 6 * H, 1.0)]


def test_default_windows_scale_with_the_slo_window() -> None:
    w = default_alert_windows(7 * D)  # 168h
    got = [x.factor for x in (w.page_quick, w.page_slow, w.ticket_quick, w.ticket_slow)]
    # 0.02*168/1, 0.05*168/6, 0.1*7/1, 0.1*7/3
    assert got == pytest.approx([3.36, 1.4, 0.7, 0.7 / 3])


def test_mwmb_alert_group_for_99_9() -> None:
    g = mwmb_alerts(SLO(name="avail", objective=0.999, good="availability"))
    rows = [(a.kind, a.severity, a.long_window, a.short_window, a.burn_rate_factor) for a in g.alerts()]
    assert rows == [
        ("page_quick", "page", 1 * H, 300.0, 14.4),
        ("page_slow", "page", 6 * H, 1800.0, 6.0),
        ("ticket_quick", "ticket", 1 * D, 2 * H, 3.0),
        ("ticket_slow", "ticket", 3 * D, 6 * H, 1.0),
    ]
    # bad-ratio thresholds: factor x 0.1 %
    assert [a.error_ratio_threshold for a in g.alerts()] == pytest.approx([0.0144, 0.006, 0.003, 0.001])
    assert g.windows() == (300.0, 1800.0, 1 * H, 2 * H, 6 * H, 1 * D, 3 * D)


BURNS = {
    "both windows above 14.4x page quickly": ({H: 0.02, 300.0: 0.03}, ["page_quick"]),
    "long window burning but short recovered does not page": ({H: 0.02, 300.0: 0.001}, []),
    "short spike without long burn does not page": ({H: 0.005, 300.0: 0.5}, []),
    "a slower burn raises page_slow and the tickets": (
        {6 * H: 0.007, 1800.0: 0.008, D: 0.007, 2 * H: 0.007, 3 * D: 0.004},
        ["page_slow", "ticket_quick", "ticket_slow"]),
    "missing data never fires": ({H: None, 300.0: 0.5}, []),
}


@pytest.mark.parametrize(("ratios", "expected"), BURNS.values(), ids=BURNS.keys())
def test_mwmb_burning(ratios: dict[float, float | None], expected: list[str]) -> None:
    g = mwmb_alerts(SLO(name="avail", objective=0.999, good="availability"))
    assert [a.kind for a in g.burning(ratios)] == expected


def test_alert_windows_are_configurable() -> None:
    s = SLO.model_validate({
        "name": "x", "objective": "99%", "good": "up",
        "alerting": {
            "page_quick": {"long": "30m", "short": "2m", "factor": 20},
            "page_slow": {"long": "6h", "short": "30m", "factor": 6},
            "ticket_quick": {"long": "1d", "short": "2h", "factor": 3},
            "ticket_slow": {"long": "3d", "short": "6h", "factor": 1},
        },
    })
    g = mwmb_alerts(s)
    assert (g.page_quick.long_window, g.page_quick.short_window, g.page_quick.burn_rate_factor) == (1800.0, 120.0, 20.0)
    assert g.page_quick.error_ratio_threshold == pytest.approx(0.2)
    with pytest.raises(ValidationError, match="short window must be above 0 and shorter than the long one"):
        SLO.model_validate({"name": "x", "objective": 0.99, "good": "up", "alerting": {
            "page_quick": {"long": "5m", "short": "1h", "factor": 14.4},
            "page_slow": {"long": "6h", "short": "30m", "factor": 6},
            "ticket_quick": {"long": "1d", "short": "2h", "factor": 3},
            "ticket_slow": {"long": "3d", "short": "6h", "factor": 1}}})


# --- the SLO model ---------------------------------------------------------------------------------


def test_slo_from_config() -> None:
    s = SLO.model_validate({"name": "ttft-1s", "objective": 0.99, "window": "28d",
                            "good": "ttft_seconds < 1", "selector": {"backend": ["a", "b"]}})
    assert (s.window, s.sli, s.selector.backend) == (28 * D, LatencySLI("ttft_seconds", 1.0), ("a", "b"))
    assert s.error_budget_ratio == pytest.approx(0.01)
    assert SLO(name="a", objective="99.9%", good="availability").objective == 0.999  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "expected"), [
    ("ttft_seconds < 1", LatencySLI("ttft_seconds", 1.0)),
    ("e2e_latency_seconds <= 2500ms", LatencySLI("e2e_latency_seconds", 2.5)),
    ("probe_ttft_seconds<500ms", LatencySLI("probe_ttft_seconds", 0.5)),
    ("availability", AvailabilitySLI("requests")),
    ("up", AvailabilitySLI("up")),
])
def test_parse_good(text: str, expected: object) -> None:
    assert parse_good(text) == expected


@pytest.mark.parametrize(("data", "message"), [
    ({"objective": 1.0}, "objective must be between 0 and 1 (exclusive), like 0.99 or 99.9%, got 1.0"),
    ({"objective": 99.9}, "objective must be between 0 and 1"),
    ({"good": "ttft_seconds > 1"}, "invalid good 'ttft_seconds > 1'; write it like \"ttft_seconds < 1\""),
    ({"good": "queue_depth < 1"}, "'queue_depth' is not a latency histogram; expected one of "
                                  "e2e_latency_seconds, itl_seconds, probe_ttft_seconds"),
    ({"good": "ttft_seconds < 0"}, "the threshold must be above 0"),
    ({"window": "0s"}, "window must be longer than 0"),
    ({"objectiv": 0.9}, "Extra inputs are not permitted"),
], ids=["objective 1", "objective as percent number", "wrong comparison", "not a histogram",
        "zero threshold", "zero window", "typo"])
def test_slo_rejects(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        SLO.model_validate({"name": "x", "objective": 0.99, "good": "ttft_seconds < 1", **data})
    assert message in str(err.value)


# --- good events from histogram buckets -----------------------------------------------------------

BOUNDS = [0.1, 0.5, 1.0, INF]
COUNTS = [10.0, 60.0, 90.0, 100.0]

GOOD = {
    "threshold on a bucket bound is exact": (0.5, GoodCount(60, False, 60, 60)),
    "threshold on the first bound is exact": (0.1, GoodCount(10, False, 10, 10)),
    "inside a bucket interpolates linearly, bounded by the bucket's counts": (
        0.75, GoodCount(75, True, 60, 90)),  # 60 + 30 x (0.25 / 0.5)
    "inside the first bucket interpolates from 0": (0.05, GoodCount(5, True, 0, 10)),  # 10 x 0.05/0.1
    "above the highest finite bound counts only what is known good": (2.0, GoodCount(90, True, 90, 100)),
    "+Inf threshold is every observation": (INF, GoodCount(100, False, 100, 100)),
    "zero threshold has no good latency": (0.0, GoodCount(0, False, 0, 0)),
}


@pytest.mark.parametrize(("threshold", "expected"), GOOD.values(), ids=GOOD.keys())
def test_good_count(threshold: float, expected: GoodCount) -> None:
    assert good_count(BOUNDS, COUNTS, threshold) == expected


def test_good_count_in_an_empty_bucket_is_exact() -> None:
    assert good_count(BOUNDS, [10.0, 60.0, 60.0, 100.0], 0.75) == GoodCount(60, False, 60, 60)


def test_good_count_sorts_merges_and_repairs_buckets_like_histogram_quantile() -> None:
    # unsorted, a duplicated bound, a non-monotonic count (a scrape racing an increment)
    got = good_count([1.0, 0.1, INF, 0.5, 0.5], [90.0, 10.0, 100.0, 30.0, 30.0], 0.75)
    assert got == GoodCount(75, True, 60, 90)
    assert good_count([0.1, 0.5, INF], [10.0, 8.0, 20.0], 0.5) == GoodCount(10, False, 10, 10)


def test_good_count_without_buckets() -> None:
    assert good_count([], [], 1.0) == GoodCount(0, False, 0, 0)


@pytest.mark.parametrize("q", [0.05, 0.3, 0.75, 0.85])
def test_good_count_inverts_histogram_quantile(q: float) -> None:
    # the q-quantile's value has q x total observations at or below it, on the same interpolation
    x = histogram_quantile(q, BOUNDS, COUNTS)
    assert good_count(BOUNDS, COUNTS, x).value == pytest.approx(q * 100)
