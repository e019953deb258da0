"""The rule evaluator: a pure state machine, one step per evaluation. No I/O, no clock.

``evaluate(rules, values, states, now)`` takes the value of every rule for every instance, the
states remembered from the previous step (persisted; keyed by fingerprint) and the time, and
returns the next states and the transitions it decided. Prometheus semantics::

    inactive --cond--> pending --cond for >= `for`--> firing --not cond for >= keep_firing_for--> resolved
       ^                  |                               (transition notified)        (notified)
       +---- not cond ----+  (no notification)

* ``for: 0`` goes straight from inactive to firing.
* ``keep_firing_for`` is measured from ``last_true``, the last evaluation with the condition true.
* a resolved alert stays in the states for ``resolved_retention`` (15 min) so the UI can show it,
  then is dropped; its transition is emitted once, when it resolves. A resolved alert whose
  condition comes back starts pending again (new ``active_since``).
* inactive alerts are not kept in the states at all.

Values and ``no_data``: ``values[rule.name][instance] = float | None``; None (or NaN) means no
data, handled by ``rule.no_data``: ``ok`` treats it as false, ``alerting`` as true,
``keep_state`` leaves the alert exactly as it was (timers included). An instance that has a
state but no entry in ``values`` at all (a backend removed, a fetch that failed) is handled as
no data too. A state whose labels no longer fit its rule (severity or rule labels changed) is
treated as ``ok`` whatever the policy, so it resolves instead of lingering.

States of rules that are gone from ``rules`` are dropped; a firing one emits firing → resolved
first so a receiver (PagerDuty) does not keep an incident open forever.

Every state change is a ``Transition`` (including inactive → pending and pending → inactive,
useful for history); only those with ``new`` in ``NOTIFY_STATES`` are meant to be notified.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from alerts.model import AlertState, State, Transition, fingerprint
from alerts.rules import Rule
from alerts.templates import render

__all__ = [
    "NOTIFY_STATES", "RESOLVED_RETENTION", "InstanceValues", "LabelSet", "Values",
    "alert_labels", "evaluate", "labelset", "notifiable",
]

#: An instance's identity: its label items, e.g. ``frozenset({("backend", "vllm-a")})``.
LabelSet = frozenset[tuple[str, str]]
#: Per instance of one rule: the rule's value (``Rule.compute``), None for no data.
InstanceValues = Mapping[LabelSet, float | None]
#: Per rule name.
Values = Mapping[str, InstanceValues]

RESOLVED_RETENTION = 15 * 60.0
NOTIFY_STATES: frozenset[State] = frozenset({"firing", "resolved"})


def labelset(labels: Mapping[str, str] | None = None, /, **more: str) -> LabelSet:
    """The hashable key of an instance: ``labelset(backend="vllm-a")``."""
    return frozenset({**(labels or {}), **more}.items())


def alert_labels(rule: Rule, instance: Mapping[str, str]) -> dict[str, str]:
    """Instance labels, then the rule's labels over them, then ``alertname`` and ``severity``."""
    return {**instance, **rule.labels, "alertname": rule.name, "severity": rule.severity}


def notifiable(transitions: Iterable[Transition]) -> list[Transition]:
    """The transitions receivers hear about: to firing and to resolved."""
    return [t for t in transitions if t.new in NOTIFY_STATES]


def evaluate(
    rules: Sequence[Rule],
    values: Values,
    states: Mapping[str, AlertState],
    now: float,
    *,
    resolved_retention: float = RESOLVED_RETENTION,
) -> tuple[dict[str, AlertState], list[Transition]]:
    """One evaluation step; returns (next states by fingerprint, transitions in rule order).

    >>> r = Rule.model_validate({"name": "Q", "expr": "queue_depth > 100", "for": "1m"})
    >>> s, t = evaluate([r], {"Q": {labelset(backend="a"): 150.0}}, {}, now=0.0)
    >>> [(x.old, x.new) for x in t], next(iter(s.values())).state
    ([('inactive', 'pending')], 'pending')
    >>> s, t = evaluate([r], {"Q": {labelset(backend="a"): 160.0}}, s, now=60.0)
    >>> [(x.old, x.new) for x in t]
    [('pending', 'firing')]
    """
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate rule names: {', '.join(dup)}")
    by_rule: dict[str, dict[str, AlertState]] = {}
    for fp, st in states.items():
        by_rule.setdefault(st.rule, {})[fp] = st

    out: dict[str, AlertState] = {}
    transitions: list[Transition] = []
    for rule in rules:
        seen: set[str] = set()
        instances = values.get(rule.name, {})
        for inst in sorted(instances, key=sorted):
            labels = alert_labels(rule, dict(inst))
            fp = fingerprint(labels)
            seen.add(fp)
            _step(rule, fp, labels, states.get(fp), instances[inst], now, resolved_retention,
                  out, transitions)
        for fp, prev in sorted(by_rule.get(rule.name, {}).items()):
            if fp in seen:
                continue
            _step(rule, fp, dict(prev.labels), prev, None, now, resolved_retention, out,
                  transitions, force_ok=not _fits(rule, prev))

    known = set(names)
    for _, prev in sorted(states.items()):
        if prev.rule in known:
            continue
        if prev.state == "firing":
            transitions.append(_transition(prev, "resolved", now, prev.value))
        elif prev.state == "pending":
            transitions.append(_transition(prev, "inactive", now, prev.value))
    return out, transitions


def _fits(rule: Rule, st: AlertState) -> bool:
    """Whether a remembered alert still has the labels its rule would give it now."""
    want = {**rule.labels, "alertname": rule.name, "severity": rule.severity}
    return all(st.labels.get(k) == v for k, v in want.items())


def _step(
    rule: Rule,
    fp: str,
    labels: dict[str, str],
    prev: AlertState | None,
    value: float | None,
    now: float,
    retention: float,
    out: dict[str, AlertState],
    transitions: list[Transition],
    *,
    force_ok: bool = False,
) -> None:
    """Advance one alert instance by one evaluation, writing into ``out`` and ``transitions``."""
    if value is not None and math.isnan(value):
        value = None
    old: State = prev.state if prev is not None else "inactive"
    threshold = rule.threshold_for(labels)

    if value is None and not force_ok and rule.no_data == "keep_state":
        if prev is not None and not _expired(prev, now, retention):
            out[fp] = prev  # no change at all: timers and value stay as they were
        return
    if value is None:
        cond = rule.no_data == "alerting" and not force_ok
    else:
        cond = rule.parsed.holds(value, threshold)

    p_since = prev.active_since if prev is not None else None
    p_fired = prev.fired_at if prev is not None else None
    p_resolved = prev.resolved_at if prev is not None else None
    last_true = now if cond else (prev.last_true if prev is not None else None)

    def state(new: State, active_since: float | None, fired_at: float | None,
              resolved_at: float | None) -> AlertState:
        return AlertState(
            fingerprint=fp, rule=rule.name, labels=labels, state=new, value=value,
            active_since=active_since, fired_at=fired_at, resolved_at=resolved_at,
            last_true=last_true, annotations=_annotations(rule, labels, value, threshold),
        )

    if cond:
        if old == "firing":
            out[fp] = state("firing", p_since, p_fired, p_resolved)
        elif old == "pending":
            assert prev is not None
            since = prev.active_since if prev.active_since is not None else now
            if now - since >= rule.for_:
                out[fp] = state("firing", since, now, p_resolved)
                transitions.append(_transition(out[fp], "firing", now, value, old=old))
            else:
                out[fp] = state("pending", since, None, p_resolved)
        else:  # inactive or resolved: a new episode
            if rule.for_ <= 0:
                out[fp] = state("firing", now, now, None)
                transitions.append(_transition(out[fp], "firing", now, value, old=old))
            else:
                out[fp] = state("pending", now, None, None)
                transitions.append(_transition(out[fp], "pending", now, value, old=old))
        return

    if old == "pending":
        gone = state("inactive", p_since, p_fired, p_resolved)
        transitions.append(_transition(gone, "inactive", now, value, old=old))
    elif old == "firing":
        assert prev is not None
        true_at = prev.last_true if prev.last_true is not None else prev.fired_at or now
        if now - true_at >= rule.keep_firing_for:
            out[fp] = state("resolved", p_since, p_fired, now)
            transitions.append(_transition(out[fp], "resolved", now, value, old=old))
        else:
            out[fp] = state("firing", p_since, p_fired, p_resolved)
    elif old == "resolved":
        assert prev is not None
        if not _expired(prev, now, retention):
            out[fp] = prev


def _expired(st: AlertState, now: float, retention: float) -> bool:
    return st.state == "resolved" and now - (st.resolved_at or now) >= retention


def _annotations(rule: Rule, labels: Mapping[str, str], value: float | None,
                 threshold: float) -> dict[str, str]:
    context = {"value": value, "threshold": threshold, "labels": labels}
    return {k: render(t, context) for k, t in rule.annotations.items()}


def _transition(st: AlertState, new: State, now: float, value: float | None, *,
                old: State | None = None) -> Transition:
    return Transition(
        fingerprint=st.fingerprint, rule=st.rule, labels=st.labels, annotations=st.annotations,
        old=st.state if old is None else old, new=new, ts=now, value=value,
        active_since=st.active_since, fired_at=st.fired_at,
    )
