"""The pure alert state machine: scenarios as tables of (time, value) steps."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from alerts.evaluate import RESOLVED_RETENTION, alert_labels, evaluate, labelset, notifiable
from alerts.model import AlertState, fingerprint
from alerts.rules import Rule

A = labelset(backend="vllm-a")
B = labelset(backend="tgi-b")

Step = tuple[float, float | None]
# per step: (state of the instance after it, or None when not kept; transitions as (old, new))
Expected = tuple[str | None, list[tuple[str, str]]]


def rule(**kw: Any) -> Rule:
    data: dict[str, Any] = {"name": "QueueDepthHigh", "expr": "queue_depth > 100", "for": "1m",
                            "severity": "critical"}
    if "for_" in kw:
        kw["for"] = kw.pop("for_")
    data.update(kw)
    return Rule.model_validate(data)


def run(r: Rule, steps: Sequence[Step], states: dict[str, AlertState] | None = None,
        instance: frozenset[tuple[str, str]] = A) -> tuple[list[Expected], dict[str, AlertState]]:
    states = dict(states or {})
    fp = fingerprint(alert_labels(r, dict(instance)))
    seen: list[Expected] = []
    for t, v in steps:
        states, transitions = evaluate([r], {r.name: {instance: v}}, states, now=t)
        st = states.get(fp)
        seen.append((st.state if st else None, [(x.old, x.new) for x in transitions]))
    return seen, states


P, F, R = "pending", "firing", "resolved"
HIGH, LOW = 150.0, 50.0

SCENARIOS: dict[str, tuple[dict[str, Any], list[Step], list[Expected]]] = {
    "A pending alert does not page before `for` has elapsed.": (
        {}, [(0, HIGH), (30, HIGH), (59, HIGH)],
        [(P, [("inactive", P)]), (P, []), (P, [])]),
    "An alert fires once, when `for` has elapsed (>=, as Prometheus).": (
        {}, [(0, HIGH), (30, HIGH), (60, HIGH)],
        [(P, [("inactive", P)]), (P, []), (F, [(P, F)])]),
    "A firing alert emits no duplicate transition while it keeps firing.": (
        {}, [(0, HIGH), (60, HIGH), (75, HIGH), (90, 500.0), (3600, HIGH)],
        [(P, [("inactive", P)]), (F, [(P, F)]), (F, []), (F, []), (F, [])]),
    "A firing alert resolves once when the condition clears, then stays resolved.": (
        {}, [(0, HIGH), (60, HIGH), (75, LOW), (90, LOW)],
        [(P, [("inactive", P)]), (F, [(P, F)]), (R, [(F, R)]), (R, [])]),
    "A resolved alert is dropped from the states after the retention, without a transition.": (
        {}, [(0, HIGH), (60, HIGH), (75, LOW), (75 + RESOLVED_RETENTION - 1, LOW), (75 + RESOLVED_RETENTION, LOW)],
        [(P, [("inactive", P)]), (F, [(P, F)]), (R, [(F, R)]), (R, []), (None, [])]),
    "A pending alert whose condition clears goes back to inactive, unnotified.": (
        {}, [(0, HIGH), (30, LOW)],
        [(P, [("inactive", P)]), (None, [(P, "inactive")])]),
    "keep_firing_for holds a firing alert after the condition clears, then resolves.": (
        {"keep_firing_for": "1m"}, [(0, HIGH), (60, HIGH), (75, LOW), (119, LOW), (120, LOW)],
        [(P, [("inactive", P)]), (F, [(P, F)]), (F, []), (F, []), (R, [(F, R)])]),
    "keep_firing_for restarts from the last evaluation with the condition true.": (
        {"keep_firing_for": "1m"}, [(0, HIGH), (60, HIGH), (75, LOW), (90, HIGH), (140, LOW), (150, LOW)],
        [(P, [("inactive", P)]), (F, [(P, F)]), (F, []), (F, []), (F, []), (R, [(F, R)])]),
    "Flapping restarts the pending timer each time the condition clears.": (
        {}, [(0, HIGH), (15, LOW), (30, HIGH), (75, HIGH), (90, HIGH)],
        [(P, [("inactive", P)]), (None, [(P, "inactive")]), (P, [("inactive", P)]), (P, []), (F, [(P, F)])]),
    "A rule with `for: 0` fires on the first true evaluation.": (
        {"for": 0}, [(0, HIGH), (15, LOW)],
        [(F, [("inactive", F)]), (R, [(F, R)])]),
    "A resolved alert whose condition returns starts pending again.": (
        {}, [(0, HIGH), (60, HIGH), (75, LOW), (90, HIGH), (150, HIGH)],
        [(P, [("inactive", P)]), (F, [(P, F)]), (R, [(F, R)]), (P, [(R, P)]), (F, [(P, F)])]),
    "no_data ok: missing data counts as false and resolves a firing alert.": (
        {"no_data": "ok"}, [(0, HIGH), (60, HIGH), (75, None)],
        [(P, [("inactive", P)]), (F, [(P, F)]), (R, [(F, R)])]),
    "no_data ok: missing data never starts an alert.": (
        {"no_data": "ok"}, [(0, None), (60, None)],
        [(None, []), (None, [])]),
    "no_data alerting: missing data counts as true and fires after `for`.": (
        {"no_data": "alerting"}, [(0, None), (60, None), (75, LOW)],
        [(P, [("inactive", P)]), (F, [(P, F)]), (R, [(F, R)])]),
    "no_data keep_state: a firing alert keeps firing through a gap, without transitions.": (
        {"no_data": "keep_state"}, [(0, HIGH), (60, HIGH), (75, None), (3600, None), (3615, LOW)],
        [(P, [("inactive", P)]), (F, [(P, F)]), (F, []), (F, []), (R, [(F, R)])]),
    "no_data keep_state: a pending timer keeps running through a gap.": (
        {"no_data": "keep_state"}, [(0, HIGH), (30, None), (60, HIGH)],
        [(P, [("inactive", P)]), (P, []), (F, [(P, F)])]),
    "no_data keep_state: nothing starts from no data.": (
        {"no_data": "keep_state"}, [(0, None)],
        [(None, [])]),
    "NaN is no data, not a comparison.": (
        {"no_data": "ok"}, [(0, HIGH), (60, HIGH), (75, float("nan"))],
        [(P, [("inactive", P)]), (F, [(P, F)]), (R, [(F, R)])]),
}


@pytest.mark.parametrize(("kw", "steps", "expected"), SCENARIOS.values(), ids=SCENARIOS.keys())
def test_scenario(kw: dict[str, Any], steps: list[Step], expected: list[Expected]) -> None:
    seen, _ = run(rule(**kw), steps)
    assert seen == expected


def test_transition_carries_times_value_labels_and_rendered_annotations() -> None:
    r = rule(labels={"team": "ml"}, per_backend={"vllm-a": 120},
             annotations={"summary": "{{ backend }} queue {{ value }} > {{ threshold }} ({{ team }})"})
    states, t0 = evaluate([r], {r.name: {A: 150.0}}, {}, now=1000.0)
    states, t1 = evaluate([r], {r.name: {A: 160.0}}, states, now=1060.0)
    (fired,) = t1
    assert fired.labels == {"backend": "vllm-a", "team": "ml", "alertname": "QueueDepthHigh",
                            "severity": "critical"}
    assert fired.fingerprint == fingerprint(fired.labels)
    assert (fired.old, fired.new, fired.ts, fired.value) == ("pending", "firing", 1060.0, 160.0)
    assert (fired.active_since, fired.fired_at) == (1000.0, 1060.0)
    assert fired.annotations == {"summary": "vllm-a queue 160 > 120 (ml)"}
    st = states[fired.fingerprint]
    assert (st.state, st.last_true, st.value) == ("firing", 1060.0, 160.0)
    assert notifiable(t0 + t1) == [fired]


def test_rule_labels_override_instance_labels_but_not_alertname() -> None:
    r = rule(labels={"region": "eu"})
    assert alert_labels(r, {"backend": "a", "region": "us", "alertname": "x"}) == {
        "backend": "a", "region": "eu", "alertname": "QueueDepthHigh", "severity": "critical"}


def test_instances_are_independent() -> None:
    r = rule()
    s, t = evaluate([r], {r.name: {A: HIGH, B: LOW}}, {}, now=0)
    assert [(x.labels["backend"], x.new) for x in t] == [("vllm-a", "pending")]
    s, t = evaluate([r], {r.name: {A: HIGH, B: HIGH}}, s, now=30)
    assert [(x.labels["backend"], x.new) for x in t] == [("tgi-b", "pending")]
    s, t = evaluate([r], {r.name: {A: HIGH, B: HIGH}}, s, now=60)
    assert [(x.labels["backend"], x.new) for x in t] == [("vllm-a", "firing")]
    s, t = evaluate([r], {r.name: {A: LOW, B: HIGH}}, s, now=90)
    assert sorted((x.labels["backend"], x.new) for x in t) == [("tgi-b", "firing"), ("vllm-a", "resolved")]
    assert sorted((st.labels["backend"], st.state) for st in s.values()) == [
        ("tgi-b", "firing"), ("vllm-a", "resolved")]


def test_per_backend_threshold_decides_per_instance() -> None:
    r = rule(for_=0, per_backend={"tgi-b": 200})
    s, t = evaluate([r], {r.name: {A: HIGH, B: HIGH}}, {}, now=0)
    assert [x.labels["backend"] for x in t] == ["vllm-a"]


def test_restart_from_persisted_states_continues_timers() -> None:
    r = rule()
    states, _ = evaluate([r], {r.name: {A: HIGH}}, {}, now=0)
    # persist and reload: through plain dicts, as a database row would
    rows = [dataclasses.asdict(st) for st in states.values()]
    reloaded = {row["fingerprint"]: AlertState(**row) for row in rows}
    states, t = evaluate([r], {r.name: {A: HIGH}}, reloaded, now=60)
    assert [(x.old, x.new, x.active_since) for x in t] == [("pending", "firing", 0)]


def test_restart_does_not_refire_a_firing_alert() -> None:
    r = rule()
    seen, states = run(r, [(0, HIGH), (60, HIGH)])
    reloaded = {fp: dataclasses.replace(st) for fp, st in states.items()}
    seen, _ = run(r, [(75, HIGH), (90, LOW)], reloaded)
    assert seen == [(F, []), (R, [(F, R)])]


def test_an_instance_missing_from_values_is_no_data() -> None:
    r = rule(for_=0)
    s, _ = evaluate([r], {r.name: {A: HIGH}}, {}, now=0)
    s, t = evaluate([r], {}, s, now=15)
    assert [(x.old, x.new, x.labels["backend"]) for x in t] == [("firing", "resolved", "vllm-a")]
    kept = rule(for_=0, no_data="keep_state")
    s, _ = evaluate([kept], {kept.name: {A: HIGH}}, {}, now=0)
    s2, t = evaluate([kept], {}, s, now=15)
    assert (s2, t) == (s, [])


def test_a_removed_rule_resolves_its_firing_alerts() -> None:
    r, other = rule(for_=0), rule(name="Other", expr="up == 0")
    s, _ = evaluate([r, other], {r.name: {A: HIGH}, other.name: {A: 0.0}}, {}, now=0)
    s, t = evaluate([other], {other.name: {A: 0.0}}, s, now=15)
    assert [(x.rule, x.old, x.new) for x in t] == [("QueueDepthHigh", "firing", "resolved")]
    assert {st.rule for st in s.values()} == {"Other"}


def test_changing_a_rules_severity_resolves_the_old_alert_even_with_keep_state() -> None:
    r = rule(for_=0, no_data="keep_state")
    s, _ = evaluate([r], {r.name: {A: HIGH}}, {}, now=0)
    changed = rule(for_=0, no_data="keep_state", severity="warning")
    s, t = evaluate([changed], {changed.name: {A: HIGH}}, s, now=15)
    assert sorted((x.labels["severity"], x.old, x.new) for x in t) == [
        ("critical", "firing", "resolved"), ("warning", "inactive", "firing")]


def test_ratio_rule_end_to_end_with_compute() -> None:
    r = Rule(name="ErrorRateHigh", expr="ratio(request_errors_total, requests_total[5m]) > 1%",
             annotations={"summary": "{{ value | percent }} > {{ threshold | percent }}"})
    value = r.compute({n: v for n, v in zip(r.needs(), (0.3, 10.0), strict=True)})
    _, t = evaluate([r], {r.name: {A: value}}, {}, now=0)
    assert t[0].annotations == {"summary": "3% > 1%"}


def test_duplicate_rule_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate rule names: QueueDepthHigh"):
        evaluate([rule(), rule()], {}, {}, now=0)


def test_evaluate_does_not_mutate_its_inputs() -> None:
    r = rule(for_=0)
    states: dict[str, AlertState] = {}
    values = {r.name: {A: HIGH}}
    evaluate([r], values, states, now=0)
    assert states == {} and values == {r.name: {A: HIGH}}
