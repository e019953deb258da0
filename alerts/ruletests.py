"""Unit tests for inferwatch's own rules, written like ``promtool test rules`` (``inferwatch
test-rules FILE``). Pure: a parsed test document and the rules in, failures out.

The test file::

    rule_files: [inferwatch.yaml]          # configs or rule files (their rules in force)
    evaluation_interval: 1m                # default 1m
    tests:
      - name: queue builds up              # optional
        interval: 1m                       # between input samples (default: evaluation_interval)
        input_series:
          - series: 'queue_depth{backend="vllm-a"}'
            values: '50 150x10'            # promtool's notation: a, axN, a+bxN, a-bxN, _ (no sample)
          - series: 'ttft_seconds_bucket{backend="vllm-a",le="0.5"}'
            values: '0+60x20'
        alert_rule_test:
          - eval_time: 10m
            alertname: QueueDepthHigh
            exp_alerts:                    # the alerts firing at eval_time; [] for none
              - exp_labels: {backend: vllm-a, severity: warning}
                exp_annotations: {summary: "vllm-a: 150 requests waiting (threshold 100)"}

Series are named in the rules' vocabulary (``queue_depth``, ``requests_total``, a histogram's
``<signal>_bucket`` with ``le``); their labels (``le`` aside) are the alert instance's. Each
evaluation (every ``evaluation_interval`` from 0 to ``eval_time``) computes what the rule
reads as the service does: ``last`` the newest sample within 5 minutes; ``avg`` the mean of the
window's samples; ``rate`` a counter's increase (resets counted) over the window divided by the
time its samples span; ``ratio`` the ratio of two such increases; ``p50/p95/p99`` the quantile of
the buckets' increases over the window; baselines the median or mean of the reference window's
samples. Labels of an expected alert are compared exactly (instance labels, rule labels,
``alertname``, ``severity``); annotations exactly when given.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from alerts.evaluate import LabelSet, Values, evaluate
from alerts.model import AlertState
from alerts.rules import Need, Rule
from core.quantiles import quantile_or_none
from core.units import parse_duration

__all__ = ["Failure", "RuleTest", "expand_values", "parse_series", "parse_tests", "run_test"]

STALENESS = 300.0
_SERIES = re.compile(r'^\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(.*)\})?\s*$')
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_TOKEN = re.compile(r"^(_|stale|[-+]?[0-9.eE+-]+?)(?:([-+])([0-9.eE+-]+))?(?:x(\d+))?$")


class RuleTestError(ValueError):
    """A test document that is not valid: the message names the place."""


def parse_series(text: str) -> tuple[str, dict[str, str]]:
    """``'queue_depth{backend="a"}'`` -> ``("queue_depth", {"backend": "a"})``."""
    m = _SERIES.match(text)
    if m is None:
        raise ValueError(f"series {text!r}: write name{{label=\"value\", ...}}")
    name, body = m.group(1), (m.group(2) or "").strip()
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        lm = _LABEL.match(body, pos)
        if lm is None:
            raise ValueError(f"series {text!r}: bad label matcher at {body[pos:]!r}")
        labels[lm.group(1)] = lm.group(2).replace('\\"', '"').replace("\\\\", "\\")
        pos = lm.end()
    return name, labels


def expand_values(text: str) -> list[float | None]:
    """promtool's expanding notation; None is a missing sample.

    >>> expand_values("1 2+3x2 _x1 5-1x2 stale")
    [1.0, 2.0, 5.0, 8.0, None, None, 5.0, 4.0, 3.0, None]
    """
    out: list[float | None] = []
    for token in text.split():
        m = _TOKEN.match(token)
        if m is None:
            raise ValueError(f"values: cannot read {token!r} (write a, axN, a+bxN, a-bxN or _)")
        start, sign, step, times = m.groups()
        n = int(times) if times is not None else 0
        if start in ("_", "stale"):
            out.extend([None] * (n + 1))
            continue
        a = float(start)
        b = float(step) * (-1 if sign == "-" else 1) if step is not None else 0.0
        if step is not None and times is None:
            raise ValueError(f"values: {token!r} needs xN after the step")
        out.extend(a + i * b for i in range(n + 1))
    return out


@dataclass(frozen=True)
class ExpectedAlert:
    labels: Mapping[str, str]
    annotations: Mapping[str, str] | None


@dataclass(frozen=True)
class AlertCheck:
    eval_time: float
    alertname: str
    expected: tuple[ExpectedAlert, ...]


@dataclass(frozen=True)
class RuleTest:
    name: str
    interval: float
    series: Mapping[str, Sequence[tuple[Mapping[str, str], Sequence[tuple[float, float]]]]]
    checks: tuple[AlertCheck, ...]


@dataclass(frozen=True)
class Failure:
    test: str
    alertname: str
    eval_time: float
    expected: list[dict[str, object]]
    got: list[dict[str, object]]

    def __str__(self) -> str:
        return (f"{self.test}: alertname {self.alertname}, time {self.eval_time:g}s:\n"
                f"    expected: {self.expected}\n    got:      {self.got}")


def _str_map(raw: object, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) for k in raw):
        raise RuleTestError(f"{where}: expected a mapping of names to strings")
    return {k: str(v) for k, v in raw.items()}


def parse_tests(doc: object, default_interval: float) -> list[RuleTest]:
    """The ``tests:`` of a test document; ``RuleTestError`` naming the first problem."""
    if not isinstance(doc, Mapping):
        raise RuleTestError("the file must hold a mapping with rule_files and tests")
    tests = doc.get("tests")
    if not isinstance(tests, list) or not tests:
        raise RuleTestError("tests: expected a non-empty list")
    out: list[RuleTest] = []
    for i, t in enumerate(tests):
        at = f"tests[{i}]"
        if not isinstance(t, Mapping):
            raise RuleTestError(f"{at}: expected a mapping")
        try:
            interval = parse_duration(t.get("interval", default_interval))
        except ValueError as exc:
            raise RuleTestError(f"{at}.interval: {exc}") from None
        series: dict[str, list[tuple[Mapping[str, str], Sequence[tuple[float, float]]]]] = {}
        for j, s in enumerate(t.get("input_series") or []):
            where = f"{at}.input_series[{j}]"
            if not isinstance(s, Mapping) or not isinstance(s.get("series"), str):
                raise RuleTestError(f"{where}: expected {{series: '...', values: '...'}}")
            try:
                name, labels = parse_series(s["series"])
                values = expand_values(str(s.get("values", "")))
            except ValueError as exc:
                raise RuleTestError(f"{where}: {exc}") from None
            samples = [(k * interval, v) for k, v in enumerate(values) if v is not None]
            series.setdefault(name, []).append((labels, samples))
        checks = []
        for j, c in enumerate(t.get("alert_rule_test") or []):
            where = f"{at}.alert_rule_test[{j}]"
            if not isinstance(c, Mapping) or not isinstance(c.get("alertname"), str):
                raise RuleTestError(f"{where}: expected {{eval_time, alertname, exp_alerts}}")
            try:
                when = parse_duration(c.get("eval_time", 0))
            except ValueError as exc:
                raise RuleTestError(f"{where}.eval_time: {exc}") from None
            exp = []
            for k, e in enumerate(c.get("exp_alerts") or []):
                if not isinstance(e, Mapping):
                    raise RuleTestError(f"{where}.exp_alerts[{k}]: expected {{exp_labels, exp_annotations}}")
                ann = e.get("exp_annotations")
                exp.append(ExpectedAlert(_str_map(e.get("exp_labels"), f"{where}.exp_alerts[{k}].exp_labels"),
                                         None if ann is None else
                                         _str_map(ann, f"{where}.exp_alerts[{k}].exp_annotations")))
            checks.append(AlertCheck(when, c["alertname"], tuple(exp)))
        out.append(RuleTest(str(t.get("name", at)), interval, series, tuple(checks)))
    return out


# --- evaluation --------------------------------------------------------------------------------


@dataclass
class _Data:
    series: Mapping[str, Sequence[tuple[Mapping[str, str], Sequence[tuple[float, float]]]]]
    cache: dict[tuple[Need, float], dict[LabelSet, float | None]] = field(default_factory=dict)

    def need(self, n: Need, t: float) -> dict[LabelSet, float | None]:
        key = (n, t)
        if key not in self.cache:
            self.cache[key] = self._compute(n, t)
        return self.cache[key]

    def _compute(self, n: Need, t: float) -> dict[LabelSet, float | None]:
        out: dict[LabelSet, float | None] = {}
        if n.aggregation in ("p50", "p95", "p99"):
            return self._quantile(n, t)
        for labels, samples in self.series.get(n.signal, ()):
            inst = frozenset(labels.items())
            if n.aggregation == "last":
                recent = [v for ts, v in samples if t - STALENESS < ts <= t]
                out[inst] = recent[-1] if recent else None
                continue
            window = n.window or 0.0
            inside = [(ts, v) for ts, v in samples if t - window <= ts <= t]
            values = [v for _, v in inside]
            if n.aggregation == "avg" or n.aggregation == "mean":
                out[inst] = sum(values) / len(values) if values else None
            elif n.aggregation == "median":
                out[inst] = statistics.median(values) if values else None
            elif n.aggregation == "rate":
                span = inside[-1][0] - inside[0][0] if len(inside) > 1 else 0.0
                out[inst] = _increase(values) / span if span > 0 else None
        return out

    def _quantile(self, n: Need, t: float) -> dict[LabelSet, float | None]:
        q = int(n.aggregation[1:]) / 100
        window = n.window or 0.0
        per: dict[LabelSet, dict[float, float]] = {}
        for labels, samples in self.series.get(f"{n.signal}_bucket", ()):
            le = labels.get("le")
            if le is None:
                continue
            inst = frozenset((k, v) for k, v in labels.items() if k != "le")
            inside = [v for ts, v in samples if t - window <= ts <= t]
            per.setdefault(inst, {})[math.inf if le == "+Inf" else float(le)] = _increase(inside)
        out: dict[LabelSet, float | None] = {}
        for inst, buckets in per.items():
            bounds = sorted(buckets)
            out[inst] = quantile_or_none(q, bounds, [buckets[b] for b in bounds])
        return out


def _increase(values: Sequence[float]) -> float:
    """A counter's increase over consecutive samples, a drop counted as a reset."""
    total = 0.0
    for prev, cur in zip(values, values[1:], strict=False):
        total += cur - prev if cur >= prev else cur
    return total


def _values(rules: Sequence[Rule], data: _Data, t: float) -> Values:
    out: dict[str, dict[LabelSet, float | None]] = {}
    for rule in rules:
        fetched = [(n, data.need(n, t)) for n in rule.needs()]
        instances = set().union(*(set(v) for _, v in fetched)) if fetched else set()
        out[rule.name] = {inst: rule.compute({n: v.get(inst) for n, v in fetched}) for inst in instances}
    return out


def _firing(states: Mapping[str, AlertState], alertname: str) -> list[dict[str, object]]:
    found = sorted((s for s in states.values() if s.state == "firing" and s.labels.get("alertname") == alertname),
                   key=lambda s: sorted(s.labels.items()))
    return [{"labels": dict(s.labels), "annotations": dict(s.annotations)} for s in found]


def run_test(case: RuleTest, rules: Sequence[Rule], evaluation_interval: float) -> list[Failure]:
    """Evaluate ``rules`` over the case's series every ``evaluation_interval`` and compare each
    check's firing alerts with what it expects."""
    data = _Data(case.series)
    failures: list[Failure] = []
    checks = sorted(case.checks, key=lambda c: c.eval_time)
    states: dict[str, AlertState] = {}
    t = 0.0
    last = checks[-1].eval_time if checks else 0.0
    pending = list(checks)
    while t <= last + 1e-9:
        states, _ = evaluate(rules, _values(rules, data, t), states, t)
        while pending and pending[0].eval_time <= t + 1e-9:
            check = pending.pop(0)
            got = _firing(states, check.alertname)
            if not _matches(check.expected, got):
                failures.append(Failure(case.name, check.alertname, check.eval_time,
                                        [{"labels": dict(e.labels), "annotations": dict(e.annotations or {})}
                                         for e in check.expected], got))
        t += evaluation_interval
    return failures


def _matches(expected: Sequence[ExpectedAlert], got: list[dict[str, object]]) -> bool:
    if len(expected) != len(got):
        return False
    left = list(got)
    for e in expected:
        hit = next((g for g in left if g["labels"] == dict(e.labels)
                    and (e.annotations is None or g["annotations"] == dict(e.annotations))), None)
        if hit is None:
            return False
        left.remove(hit)
    return True
