"""Rule models, the expression parser, annotation templates and the default rule pack."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from alerts.rulepack import DEFAULT_RULES, default_rules, with_user_rules
from alerts.rules import (
    Baseline,
    Condition,
    Need,
    Query,
    Rule,
    Selector,
    parse_expr,
)
from alerts.templates import (
    format_duration,
    format_humanize,
    format_percent,
    render,
    template_problems,
)
from core.units import format_duration_text, parse_threshold

# --- parser: good expressions ---------------------------------------------------------------------

GOOD = {
    "a bare gauge is its last value": ("up == 0", Condition(Query("last", "up"), "==", 0.0)),
    "last() is the same as a bare gauge": ("last(up) == 0", Condition(Query("last", "up"), "==", 0.0)),
    "a percentile of a histogram over a window, threshold in ms": (
        "p50(ttft_seconds[5m]) > 500ms", Condition(Query("p50", "ttft_seconds", 300.0), ">", 0.5)),
    "p99 with seconds and a compound window": (
        "p99(probe_ttft_seconds[1h30m]) >= 1.5s",
        Condition(Query("p99", "probe_ttft_seconds", 5400.0), ">=", 1.5)),
    "rate of a counter": (
        "rate(requests_total[1m]) < 10", Condition(Query("rate", "requests_total", 60.0), "<", 10.0)),
    "ratio of two counters with a percentage": (
        "ratio(request_errors_total, requests_total[5m]) > 1%",
        Condition(Query("ratio", "request_errors_total", 300.0, "requests_total"), ">", 0.01)),
    "baseline against the 24h median": (
        "baseline(tokens_per_second[5m], median, 24h) < 0.5",
        Condition(Baseline("tokens_per_second", 300.0, "median", 86400.0), "<", 0.5)),
    "avg of a gauge, exponent number, no spaces": (
        "avg(queue_depth[10m])>1e2", Condition(Query("avg", "queue_depth", 600.0), ">", 100.0)),
    "percent on a ratio gauge keeps decimals exact": (
        "gpu_memory_used_ratio <= 99.9%", Condition(Query("last", "gpu_memory_used_ratio"), "<=", 0.999)),
    "negative numbers and !=": ("error_ratio != -0.5", Condition(Query("last", "error_ratio"), "!=", -0.5)),
}


@pytest.mark.parametrize(("text", "expected"), GOOD.values(), ids=GOOD.keys())
def test_parse_good_expressions(text: str, expected: Condition) -> None:
    assert parse_expr(text) == expected


@pytest.mark.parametrize("text", [t for t, _ in GOOD.values()], ids=GOOD.keys())
def test_printed_expression_parses_back_to_the_same_ast(text: str) -> None:
    c = parse_expr(text)
    assert parse_expr(str(c)) == c


# --- parser: bad expressions, exact messages ---------------------------------------------------------

BAD = {
    "empty": ("", "invalid expression '': it is empty; write one like queue_depth > 100"),
    "no comparison": (
        "queue_depth",
        "invalid expression 'queue_depth' at column 12: expected a comparison (>, >=, <, <=, ==, !=), "
        "found end of expression"),
    "no number": (
        "queue_depth >",
        "invalid expression 'queue_depth >' at column 14: expected a number, found end of expression"),
    "letters in the number": (
        "queue_depth > 1OO",
        "invalid expression 'queue_depth > 1OO' at column 16: unexpected 'OO' after the number"),
    "unclosed window": (
        "p99(ttft_seconds[5m) > 2",
        "invalid expression 'p99(ttft_seconds[5m) > 2' at column 20: expected ']', found ')'"),
    "missing window": (
        "p99(ttft_seconds) > 1",
        "invalid expression 'p99(ttft_seconds) > 1' at column 17: expected '[', found ')'"),
    "bad window unit": (
        "p99(ttft_seconds[5x]) > 1",
        "invalid expression 'p99(ttft_seconds[5x]) > 1' at column 18: expected a window like 5m, found '5x'"),
    "zero window": (
        "p99(ttft_seconds[0s]) > 1",
        "invalid expression 'p99(ttft_seconds[0s]) > 1' at column 18: the window must be longer than 0"),
    "misspelt signal gets a suggestion": (
        "p99(ttft_second[5m]) > 2",
        "invalid expression 'p99(ttft_second[5m]) > 2' at column 5: unknown signal 'ttft_second'; "
        "did you mean 'ttft_seconds'?"),
    "a histogram cannot be compared bare": (
        "ttft_seconds > 1",
        "invalid expression 'ttft_seconds > 1' at column 1: ttft_seconds is a histogram; "
        "use p50/p95/p99(ttft_seconds[5m])"),
    "a counter cannot be compared bare": (
        "requests_total > 5",
        "invalid expression 'requests_total > 5' at column 1: requests_total is a counter; "
        "use rate(requests_total[5m]) or ratio(requests_total, …[5m])"),
    "rate of a gauge": (
        "rate(queue_depth[5m]) > 1",
        "invalid expression 'rate(queue_depth[5m]) > 1' at column 6: queue_depth is a gauge; "
        "use queue_depth or avg(queue_depth[5m]), not rate(…)"),
    "unknown function": (
        "foo(queue_depth) > 1",
        "invalid expression 'foo(queue_depth) > 1' at column 1: unknown function 'foo'; "
        "expected one of avg, baseline, last, p50, p95, p99, rate, ratio"),
    "=> is not an operator": (
        "queue_depth => 1",
        "invalid expression 'queue_depth => 1' at column 13: expected a comparison "
        "(>, >=, <, <=, ==, !=), found '='"),
    "days are not a duration unit for cert_expiry_days": (
        "cert_expiry_days < 14d",
        "invalid expression 'cert_expiry_days < 14d' at column 22: cert_expiry_days is not measured "
        "in seconds; write a plain number, not 'd'"),
    "percent on a count": (
        "queue_depth > 90%",
        "invalid expression 'queue_depth > 90%' at column 17: queue_depth is not a ratio; % does not apply"),
    "seconds on a ratio": (
        "ratio(request_errors_total, requests_total[5m]) > 5s",
        "invalid expression 'ratio(request_errors_total, requests_total[5m]) > 5s' at column 52: "
        "a ratio takes a plain number or %, not 's'"),
    "ratio without a comma": (
        "ratio(request_errors_total requests_total[5m]) > 1%",
        "invalid expression 'ratio(request_errors_total requests_total[5m]) > 1%' at column 28: "
        "expected ',', found 'requests_total'"),
    "unknown baseline statistic": (
        "baseline(tokens_per_second[5m], mode, 24h) < 0.5",
        "invalid expression 'baseline(tokens_per_second[5m], mode, 24h) < 0.5' at column 33: "
        "unknown baseline statistic 'mode'; expected median or mean"),
    "baseline reference shorter than the window": (
        "baseline(tokens_per_second[5m], median, 1m) < 0.5",
        "invalid expression 'baseline(tokens_per_second[5m], median, 1m) < 0.5' at column 41: "
        "the reference window must be longer than the current window"),
    "boolean operators are not supported": (
        "p99(ttft_seconds[5m]) > 2 and up == 0",
        "invalid expression 'p99(ttft_seconds[5m]) > 2 and up == 0' at column 27: "
        "unexpected 'and' after the number"),
}


@pytest.mark.parametrize(("text", "message"), BAD.values(), ids=BAD.keys())
def test_parse_bad_expressions_name_the_column(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_expr(text)
    assert str(err.value) == message


def test_unknown_signal_without_close_match_lists_every_signal() -> None:
    with pytest.raises(ValueError, match=r"unknown signal 'zzz'; expected one of audit_check, audit_check_regressed, cert_expiry_days, "
                                         r"e2e_latency_seconds, .*, up$"):
        parse_expr("zzz > 1")


# --- needs and compute ----------------------------------------------------------------------------


def test_ratio_needs_both_rates_and_divides_them() -> None:
    rule = Rule(name="E", expr="ratio(request_errors_total, requests_total[5m]) > 1%")
    err, req = Need("request_errors_total", "rate", 300.0), Need("requests_total", "rate", 300.0)
    assert rule.needs() == (err, req)
    assert rule.compute({err: 0.5, req: 10.0}) == 0.05
    assert rule.compute({err: 0.0, req: 0.0}) is None  # no traffic: no data, not 0 % errors
    assert rule.compute({err: 0.5}) is None


def test_baseline_value_is_current_over_reference() -> None:
    rule = Rule(name="T", expr="baseline(tokens_per_second[5m], median, 24h) < 0.5")
    cur, ref = Need("tokens_per_second", "avg", 300.0), Need("tokens_per_second", "median", 86400.0)
    assert rule.needs() == (cur, ref)
    assert rule.compute({cur: 40.0, ref: 100.0}) == 0.4
    assert rule.holds(0.4, {"backend": "a"})
    assert rule.compute({cur: 40.0, ref: 0.0}) is None
    assert rule.compute({cur: math.nan, ref: 100.0}) is None


def test_format_duration_text_round_trips() -> None:
    assert [format_duration_text(x) for x in (0, 0.5, 90, 300, 86400, 5400, 0.0001)] == [
        "0s", "500ms", "1m30s", "5m", "1d", "1h30m", "0.0001s"]


# --- the Rule model --------------------------------------------------------------------------------


def test_rule_from_config_spelling() -> None:
    rule = Rule.model_validate({
        "name": "QueueDepthHigh", "expr": "queue_depth > 100", "for": "1m", "keep_firing_for": "30s",
        "severity": "critical", "selector": {"backend": "vllm-a", "labels": {"region": "eu"}},
        "per_backend": {"vllm-b": "200"}, "no_data": "keep_state",
    })
    assert (rule.for_, rule.keep_firing_for, rule.severity, rule.no_data) == (60.0, 30.0, "critical", "keep_state")
    assert rule.selector == Selector(backend=("vllm-a",), labels={"region": "eu"})
    assert rule.threshold_for({"backend": "vllm-b"}) == 200.0
    assert rule.threshold_for({"backend": "vllm-a"}) == 100.0
    assert Rule.model_validate({"name": "X", "expr": "up == 0", "for_": 5}).for_ == 5.0  # by field name


def test_rule_rejects_unknown_fields_and_bad_values() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "A", "expr": "up == 0", "fro": "1m"}, "fro\n  Extra inputs are not permitted"),
        ({"name": "A", "expr": "up == 0", "severity": "page"}, "Input should be 'info', 'warning' or 'critical'"),
        ({"name": "A", "expr": "up == 0", "for": "1 minute"}, "invalid duration '1 minute'"),
        ({"name": "A", "expr": "up ="}, "invalid expression 'up =' at column 4"),
        ({"name": "A b", "expr": "up == 0"}, "invalid rule name 'A b'"),
        ({"name": "A", "expr": "up == 0", "labels": {"severity": "x"}}, "label 'severity' is set by the engine"),
        ({"name": "A", "expr": "up == 0", "annotations": {"summary": "{{ value | secs }}"}},
         "summary: unknown filter 'secs'"),
        ({"name": "A", "expr": "up == 0", "no_data": "maybe"}, "Input should be 'ok', 'alerting' or 'keep_state'"),
    ]
    for data, message in cases:
        with pytest.raises(ValidationError) as err:
            Rule.model_validate(data)
        assert message in str(err.value), (data, str(err.value))


def test_rule_is_frozen() -> None:
    rule = Rule(name="A", expr="up == 0")
    with pytest.raises(ValidationError):
        rule.severity = "critical"


@pytest.mark.parametrize(("selector", "instance", "expected"), [
    (Selector(), {"backend": "a"}, True),
    (Selector(backend=("a",)), {"backend": "a"}, True),
    (Selector.model_validate({"backend": ["a", "b"]}), {"backend": "b"}, True),
    (Selector.model_validate({"backend": "a"}), {"backend": "c"}, False),
    (Selector(labels={"region": "eu"}), {"backend": "a", "region": "us"}, False),
    (Selector(gpu="GPU-1"), {"uuid": "GPU-1", "gpu": "0"}, True),
    (Selector(gpu="GPU-1"), {"uuid": "GPU-2"}, False),
], ids=["empty selects all", "one backend", "list of backends", "other backend",
        "label mismatch", "gpu uuid", "other gpu"])
def test_selector_matches(selector: Selector, instance: dict[str, str], expected: bool) -> None:
    assert selector.matches(instance) is expected


def test_parse_threshold() -> None:
    assert (parse_threshold("500ms"), parse_threshold("90%"), parse_threshold(3), parse_threshold("1e3")) == (
        0.5, 0.9, 3.0, 1000.0)
    with pytest.raises(ValueError, match="expected a number like 0.5, 500ms or 90%, got 'ten'"):
        parse_threshold("ten")


# --- templates ------------------------------------------------------------------------------------

CTX = {"value": 0.0123, "threshold": 0.01, "labels": {"backend": "vllm-a", "region": "eu", "n": "1234567"}}

TEMPLATES = {
    "label shortcut": ("{{ backend }}", "vllm-a"),
    "labels dot name": ("{{labels.region}}", "eu"),
    "bare value": ("{{ value }}", "0.0123"),
    "integral threshold prints without .0": ("{{ threshold }}", "0.01"),
    "duration milliseconds": ("{{ value | duration }}", "12.3ms"),
    "percent": ("{{ value | percent }}", "1.23%"),
    "humanize a numeric label": ("{{ labels.n | humanize }}", "1.23M"),
    "a filter on a non-number leaves it": ("{{ backend | duration }}", "vllm-a"),
    "unknown name renders empty": ("[{{ nope }}]", "[]"),
    "unknown label renders empty": ("[{{ labels.nope }}]", "[]"),
    "unknown filter renders empty": ("[{{ value | upper }}]", "[]"),
    "text around tags is kept": ("p99 {{ value|duration }} > {{ threshold|duration }}!", "p99 12.3ms > 10ms!"),
    "injection: a call renders empty": ("[{{ __import__('os') }}]", "[]"),
    "injection: dunder attribute renders empty": ("[{{ labels.__class__ }}]", "[]"),
    "injection: attribute of value renders empty": ("[{{ value.__class__ }}]", "[]"),
    "injection: jinja statements stay literal": ("{% for x in y %}", "{% for x in y %}"),
    "injection: expressions render empty": ("[{{ 7*7 }}][{{ value + 1 }}]", "[][]"),
}


@pytest.mark.parametrize(("template", "expected"), TEMPLATES.values(), ids=TEMPLATES.keys())
def test_render(template: str, expected: str) -> None:
    assert render(template, CTX) == expected


def test_substituted_label_values_are_not_rendered_again() -> None:
    ctx = {"value": 1.0, "labels": {"backend": "{{ value }}"}}
    assert render("{{ backend }} {{ value }}", ctx) == "{{ value }} 1"


@pytest.mark.parametrize(("fn", "x", "expected"), [
    (format_duration, 0.0123, "12.3ms"), (format_duration, 2.5, "2.5s"), (format_duration, 90, "1m30s"),
    (format_duration, 0, "0s"), (format_duration, 0.9999, "1s"), (format_duration, 0.000012, "12µs"),
    (format_duration, 1209600, "14d"), (format_duration, -2.5, "-2.5s"), (format_duration, math.nan, "NaN"),
    (format_percent, 0.0123, "1.23%"), (format_percent, 0.999, "99.9%"), (format_percent, 1, "100%"),
    (format_humanize, 1234567, "1.23M"), (format_humanize, 950, "950"), (format_humanize, 0.0015, "1.5m"),
    (format_humanize, 2.5e9, "2.5G"), (format_humanize, math.inf, "+Inf"),
])
def test_filters(fn: Any, x: float, expected: str) -> None:
    assert fn(x) == expected


def test_template_problems_for_config_validation() -> None:
    assert template_problems("{{ value | duration }} {{ labels.x }}") == []
    assert template_problems("{{ 1+1 }}") == [
        "invalid name '1+1' in '{{ 1+1 }}'; expected a name like value, threshold, backend or labels.region"]


# --- the default pack -------------------------------------------------------------------------------


def test_default_pack_contents() -> None:
    pack = {r.name: (r.expr, r.for_, r.severity) for r in DEFAULT_RULES}
    assert pack == {
        "TTFTp50High": ("p50(ttft_seconds[5m]) > 500ms", 300.0, "warning"),
        "TTFTp99High": ("p99(ttft_seconds[5m]) > 5s", 300.0, "warning"),
        "ErrorRateHigh": ("ratio(request_errors_total, requests_total[5m]) > 1%", 300.0, "critical"),
        "GPUMemoryHigh": ("gpu_memory_used_ratio > 98%", 600.0, "warning"),
        "KVCacheExhausted": ("kv_cache_usage_ratio > 95%", 300.0, "warning"),
        "QueueDepthHigh": ("queue_depth > 100", 60.0, "warning"),
        "TokenThroughputDegraded": ("baseline(tokens_per_second[5m], median, 24h) < 50%", 900.0, "warning"),
        "BackendDown": ("up == 0", 60.0, "critical"),
        "CertificateExpiringSoon": ("cert_expiry_days < 14", 0.0, "warning"),
        "CertificateExpiryCritical": ("cert_expiry_days < 3", 0.0, "critical"),
        "AuditCheckRegressed": ("audit_check_regressed == 1", 0.0, "critical"),
    }
    thresholds = {r.name: r.parsed.threshold for r in DEFAULT_RULES}
    assert thresholds["TTFTp50High"] == 0.5 and thresholds["TTFTp99High"] == 5.0
    assert thresholds["ErrorRateHigh"] == 0.01 and thresholds["GPUMemoryHigh"] == 0.98
    assert thresholds["TokenThroughputDegraded"] == 0.5
    assert default_rules() == list(DEFAULT_RULES)


def test_default_pack_annotations_render() -> None:
    err = next(r for r in DEFAULT_RULES if r.name == "ErrorRateHigh")
    ctx = {"value": 0.0234, "threshold": 0.01, "labels": {"backend": "vllm-a"}}
    assert render(err.annotations["summary"], ctx) == (
        "vllm-a: 2.34% of requests failed over 5m (threshold 1%)")


def test_overrides_change_threshold_fields_and_disable_rules() -> None:
    rules = default_rules({
        "QueueDepthHigh": {"threshold": 200, "for": "2m", "severity": "critical"},
        "TTFTp99High": {"threshold": "2s"},
        "GPUMemoryHigh": {"enabled": False},
    })
    by_name = {r.name: r for r in rules}
    assert "GPUMemoryHigh" not in by_name
    q = by_name["QueueDepthHigh"]
    assert (q.expr, q.for_, q.severity) == ("queue_depth > 200", 120.0, "critical")
    assert by_name["TTFTp99High"].expr == "p99(ttft_seconds[5m]) > 2"
    assert [r.name for r in rules] == [r.name for r in DEFAULT_RULES if r.name != "GPUMemoryHigh"]


def test_per_backend_thresholds_apply_only_to_that_backend() -> None:
    rules = default_rules(
        {"ErrorRateHigh": {"threshold": "2%"}},
        {"vllm-a": {"ErrorRateHigh": "5%", "TTFTp99High": "10s"}, "tgi-b": {"ErrorRateHigh": 0.1}},
    )
    err = next(r for r in rules if r.name == "ErrorRateHigh")
    assert err.threshold_for({"backend": "vllm-a"}) == 0.05
    assert err.threshold_for({"backend": "tgi-b"}) == 0.1
    assert err.threshold_for({"backend": "other"}) == 0.02
    assert not err.holds(0.04, {"backend": "vllm-a"}) and err.holds(0.04, {"backend": "other"})
    p99 = next(r for r in rules if r.name == "TTFTp99High")
    assert p99.threshold_for({"backend": "vllm-a"}) == 10.0


def test_overrides_reject_unknown_rules_and_fields() -> None:
    with pytest.raises(ValueError, match="overrides: unknown rule 'Nope'; expected one of TTFTp50High"):
        default_rules({"Nope": {"threshold": 1}})
    with pytest.raises(ValueError, match="per_backend.vllm-a: unknown rule 'Nope'"):
        default_rules(per_backend={"vllm-a": {"Nope": 1}})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        default_rules({"BackendDown": {"fro": "1m"}})


def test_user_rules_replace_defaults_by_name_and_add_the_rest() -> None:
    mine = Rule(name="QueueDepthHigh", expr="queue_depth > 5", severity="critical")
    extra = Rule(name="KVCacheFull", expr="kv_cache_usage_ratio > 95%")
    merged = with_user_rules(DEFAULT_RULES, [extra, mine])
    assert [r.name for r in merged] == [r.name for r in DEFAULT_RULES] + ["KVCacheFull"]
    assert next(r for r in merged if r.name == "QueueDepthHigh") is mine
