"""Alert rules: typed models and the expression they compare. Pure, no I/O.

A rule is written in config like::

    - name: TTFTp99High
      expr: "p99(ttft_seconds[5m]) > 2s"
      for: 5m
      severity: warning
      selector: {backend: [vllm-a, vllm-b]}
      annotations: {summary: "{{ backend }} p99 TTFT {{ value | duration }}"}

``expr`` is parsed once, at validation, into a small typed AST (``Rule.parsed``)::

    condition := term OP number                     OP: >  >=  <  <=  ==  !=
    term      := signal                             last value of a gauge (same as last(signal))
               | last(signal)
               | avg(signal[window])                mean of a gauge over the window
               | p50|p95|p99(histogram[window])     histogram_quantile over the window
               | rate(counter[window])              per-second increase over the window
               | ratio(counter, counter[window])    increase(numerator) / increase(denominator)
               | baseline(signal[window], median|mean, reference)
    number    := 42 | 0.5 | 1e3 | 500ms | 5s | 1m | 2h | 1d | 90%

``baseline(tokens_per_second[5m], median, 24h) < 0.5`` compares *current ÷ reference*: the
signal's mean over the last 5m divided by the median of the same signal over the last 24h, so it
fires when throughput drops below 50 % of its usual level.

Duration units are allowed only on ``*_seconds`` signals, ``%`` only on ratios (``*_ratio``,
``ratio(…)``, ``baseline(…)``), so ``cert_expiry_days < 14d`` is caught instead of silently
meaning 1,209,600 days.

``Rule.needs()`` lists the ``Need``\\s (signal, aggregation, window) the I/O layer must fetch per
instance; ``Rule.compute(fetched)`` turns the fetched numbers into the value the evaluator
compares (``alerts.evaluate``).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Annotated, Final, Literal, get_args

from pydantic import BeforeValidator, ConfigDict, Field, field_validator

from alerts.templates import template_problems
from core import conventions as cv
from core.labels import is_label_name
from core.numbers import nan_to_none
from core.schema import ConfigModel
from core.units import (
    NUMBER_RE,
    UNIT_FACTORS,
    Duration,
    Threshold,
    clean_scaled,
    format_duration_text,
    format_number,
    parse_duration,
)

__all__ = [
    "DERIVED_SIGNALS", "Baseline", "Condition", "Need", "Query", "Rule", "Selector", "all_signals", "parse_expr",
]

Op = Literal[">", ">=", "<", "<=", "==", "!="]
QueryFn = Literal["last", "avg", "p50", "p95", "p99", "rate", "ratio"]
#: what an alert's value is measured in ("x": a burn-rate factor; "": a plain number)
ValueUnit = Literal["seconds", "ratio", "days", "per_second", "x", ""]
BaselineStat = Literal["median", "mean"]
Aggregation = Literal["last", "avg", "p50", "p95", "p99", "rate", "median", "mean"]
NoData = Literal["ok", "alerting", "keep_state"]
RuleSeverity = Literal["info", "warning", "critical"]

#: Signals the lead computes from the stored ones (not in ``core.conventions.SIGNALS``).
DERIVED_SIGNALS: Final[dict[str, cv.SignalKind]] = {
    "up": "gauge",  # 1 when the last scrape succeeded, else 0
    "error_ratio": "gauge",  # request_errors_total / requests_total, 0..1
    "tokens_per_second": "gauge",  # generation tokens per second
    "gpu_memory_used_ratio": "gauge",  # per GPU, used / total, 0..1
    "cert_expiry_days": "gauge",  # per TLS target, days until the leaf expires
    "audit_check": "gauge",  # per audit target and check: 1 pass, 0.5 warn, 0 fail (last run)
    "audit_check_regressed": "gauge",  # per audit target and check: 1 when it fails now and passed before
    "probe_success_ratio": "gauge",  # share of probes that succeeded, 0..1
    "probe_ttft_seconds": "histogram",  # probe observations (exact percentiles)
}

_QUANTILE_FNS: Final = ("p50", "p95", "p99")
_WINDOWED_FNS: Final = ("avg", *_QUANTILE_FNS, "rate")
_OPS: Final = (">=", "<=", "==", "!=", ">", "<")  # two-character ones first
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")
_UNIT = re.compile(r"ms|s|m|h|d|%")


def all_signals() -> dict[str, cv.SignalKind]:
    """Every signal an expression may name: the normalised vocabulary plus the derived ones."""
    return {**cv.SIGNALS, **DERIVED_SIGNALS}


# --- the AST --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Need:
    """One number the I/O layer fetches per instance: ``aggregation`` of ``signal`` over ``window``.

    ``last``: latest value (window None). ``avg``: mean of a gauge. ``p50/p95/p99``: merged
    histogram deltas through ``histogram_quantile``. ``rate``: per-second increase of a counter.
    ``median``/``mean``: of the signal's stored per-step values over ``window`` (baselines).
    """

    signal: str
    aggregation: Aggregation
    window: float | None = None


@dataclass(frozen=True, slots=True)
class Query:
    """A term that reads data: ``last(up)``, ``p99(ttft_seconds[5m])``, ``ratio(a, b[5m])``."""

    fn: QueryFn
    signal: str
    window: float | None = None
    denominator: str | None = None  # ratio only

    def needs(self) -> tuple[Need, ...]:
        if self.fn == "ratio":
            assert self.denominator is not None
            # increase(a)/increase(b) over one window == rate(a)/rate(b): fetch both rates
            return (Need(self.signal, "rate", self.window), Need(self.denominator, "rate", self.window))
        return (Need(self.signal, self.fn, self.window),)

    def compute(self, fetched: Mapping[Need, float | None]) -> float | None:
        """The term's value from fetched numbers; None when any is missing (or a ratio's base is 0)."""
        got = [nan_to_none(fetched.get(n)) for n in self.needs()]
        if any(v is None for v in got):
            return None
        if self.fn == "ratio":
            num, den = got
            assert num is not None and den is not None
            return None if den <= 0 else num / den
        return got[0]

    def __str__(self) -> str:
        if self.fn == "last":
            return self.signal
        assert self.window is not None
        w = format_duration_text(self.window)
        if self.fn == "ratio":
            return f"ratio({self.signal}, {self.denominator}[{w}])"
        return f"{self.fn}({self.signal}[{w}])"


@dataclass(frozen=True, slots=True)
class Baseline:
    """``baseline(signal[window], stat, reference)``: current mean ÷ ``stat`` over ``reference``."""

    signal: str
    window: float
    stat: BaselineStat
    reference: float

    def needs(self) -> tuple[Need, ...]:
        return (Need(self.signal, "avg", self.window), Need(self.signal, self.stat, self.reference))

    def compute(self, fetched: Mapping[Need, float | None]) -> float | None:
        """``current / reference``; None without data or with a reference of 0 (nothing to compare)."""
        current, ref = (nan_to_none(fetched.get(n)) for n in self.needs())
        if current is None or ref is None or ref <= 0:
            return None
        return current / ref

    def __str__(self) -> str:
        return (f"baseline({self.signal}[{format_duration_text(self.window)}], {self.stat}, "
                f"{format_duration_text(self.reference)})")


Term = Query | Baseline


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed ``expr``: ``term op threshold``.

    >>> c = parse_expr("p99(ttft_seconds[5m]) > 2s")
    >>> c.left, c.op, c.threshold
    (Query(fn='p99', signal='ttft_seconds', window=300.0, denominator=None), '>', 2.0)
    >>> c.holds(2.5), str(c)
    (True, 'p99(ttft_seconds[5m]) > 2')
    """

    left: Term
    op: Op
    threshold: float

    def holds(self, value: float, threshold: float | None = None) -> bool:
        t = self.threshold if threshold is None else threshold
        if math.isnan(value):
            return False
        match self.op:
            case ">":
                return value > t
            case ">=":
                return value >= t
            case "<":
                return value < t
            case "<=":
                return value <= t
            case "==":
                return value == t
            case "!=":
                return value != t

    def needs(self) -> tuple[Need, ...]:
        return self.left.needs()

    def with_threshold(self, threshold: float) -> Condition:
        return replace(self, threshold=threshold)

    def __str__(self) -> str:
        return f"{self.left} {self.op} {format_number(self.threshold)}"


# --- the parser -----------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the expression text; every error names its 1-based column."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.signals = all_signals()

    def fail(self, message: str, pos: int | None = None) -> ValueError:
        col = (self.pos if pos is None else pos) + 1
        return ValueError(f"invalid expression {self.text!r} at column {col}: {message}")

    def _found(self) -> str:
        if self.pos >= len(self.text):
            return "end of expression"
        m = _IDENT.match(self.text, self.pos) or NUMBER_RE.match(self.text, self.pos)
        return repr(m.group(0) if m else self.text[self.pos])

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def expect(self, token: str) -> None:
        self.skip()
        if not self.text.startswith(token, self.pos):
            raise self.fail(f"expected {token!r}, found {self._found()}")
        self.pos += len(token)

    def ident(self, what: str) -> tuple[str, int]:
        self.skip()
        m = _IDENT.match(self.text, self.pos)
        if m is None:
            raise self.fail(f"expected {what}, found {self._found()}")
        self.pos = m.end()
        return m.group(0), m.start()

    def signal(self, allowed: tuple[cv.SignalKind, ...], fn: str) -> tuple[str, int]:
        name, at = self.ident("a signal name")
        kind = self.signals.get(name)
        if kind is None:
            close = difflib.get_close_matches(name, self.signals, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "expected one of " + ", ".join(sorted(self.signals))
            raise self.fail(f"unknown signal {name!r}; {hint}", at)
        if kind not in allowed:
            raise self.fail(f"{name} is a {kind}; {_usage(name, kind)}"
                            + ("" if fn == "last" else f", not {fn}(…)"), at)
        return name, at

    def window(self) -> float:
        self.expect("[")
        self.skip()
        m = _DURATION.match(self.text, self.pos)
        if m is None:
            end = self.text.find("]", self.pos)
            found = repr(self.text[self.pos:end]) if end > self.pos else self._found()
            raise self.fail(f"expected a window like 5m, found {found}")
        self.pos = m.end()
        value = parse_duration(m.group(0))
        if value <= 0:
            raise self.fail("the window must be longer than 0", m.start())
        self.expect("]")
        return value

    def term(self) -> Term:
        name, at = self.ident("a signal or a function such as p99(…)")
        self.skip()
        if self.text.startswith("(", self.pos):
            return self.call(name, at)
        self.pos = at  # a bare signal: re-read it as one
        signal, _ = self.signal(("gauge",), "last")
        return Query("last", signal)

    def call(self, fn: str, at: int) -> Term:
        self.expect("(")
        term: Term
        if fn == "last":
            term = Query("last", self.signal(("gauge",), fn)[0])
        elif fn in _WINDOWED_FNS:
            kind: cv.SignalKind = "histogram" if fn in _QUANTILE_FNS else "counter" if fn == "rate" else "gauge"
            signal, _ = self.signal((kind,), fn)
            term = Query(fn, signal, self.window())  # type: ignore[arg-type]
        elif fn == "ratio":
            num, _ = self.signal(("counter",), fn)
            self.expect(",")
            den, _ = self.signal(("counter",), fn)
            term = Query("ratio", num, self.window(), den)
        elif fn == "baseline":
            signal, _ = self.signal(("gauge",), fn)
            window = self.window()
            self.expect(",")
            stat, stat_at = self.ident("median or mean")
            if stat not in get_args(BaselineStat):
                raise self.fail(f"unknown baseline statistic {stat!r}; expected median or mean", stat_at)
            self.expect(",")
            self.skip()
            m = _DURATION.match(self.text, self.pos)
            if m is None:
                raise self.fail(f"expected a reference window like 24h, found {self._found()}")
            self.pos = m.end()
            reference = parse_duration(m.group(0))
            if reference <= window:
                raise self.fail("the reference window must be longer than the current window", m.start())
            term = Baseline(signal, window, stat, reference)  # type: ignore[arg-type]
        else:
            raise self.fail(f"unknown function {fn!r}; expected one of avg, baseline, last, p50, "
                            "p95, p99, rate, ratio", at)
        self.expect(")")
        return term

    def op(self) -> Op:
        self.skip()
        for op in _OPS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return op
        raise self.fail(f"expected a comparison (>, >=, <, <=, ==, !=), found {self._found()}")

    def number(self, term: Term) -> float:
        self.skip()
        m = NUMBER_RE.match(self.text, self.pos)
        if m is None:
            raise self.fail(f"expected a number, found {self._found()}")
        self.pos = m.end()
        value = float(m.group(0))
        u = _UNIT.match(self.text, self.pos)
        if u is not None and not _IDENT.match(self.text, u.end()):
            unit = u.group(0)
            if problem := _unit_problem(term, unit):
                raise self.fail(problem, u.start())
            self.pos = u.end()
            value = clean_scaled(value * UNIT_FACTORS[unit])
        return value

    def parse(self) -> Condition:
        left = self.term()
        op = self.op()
        threshold = self.number(left)
        self.skip()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self._found()} after the number")
        return Condition(left, op, threshold)


def _usage(name: str, kind: cv.SignalKind) -> str:
    if kind == "histogram":
        return f"use p50/p95/p99({name}[5m])"
    if kind == "counter":
        return f"use rate({name}[5m]) or ratio({name}, …[5m])"
    return f"use {name} or avg({name}[5m])"


def _unit_problem(term: Term, unit: str) -> str | None:
    if isinstance(term, Baseline) or (isinstance(term, Query) and term.fn == "ratio"):
        return None if unit == "%" else f"a ratio takes a plain number or %, not {unit!r}"
    signal = term.signal
    if unit == "%":
        return None if signal.endswith("_ratio") else f"{signal} is not a ratio; % does not apply"
    if signal.endswith("_seconds") and term.fn != "rate":
        return None
    return f"{signal} is not measured in seconds; write a plain number, not {unit!r}"


@lru_cache(maxsize=1024)
def parse_expr(text: str) -> Condition:
    """Parse ``expr`` text into a ``Condition``; ``ValueError`` names the column of the problem.

    >>> parse_expr("queue_depth > 1OO")
    Traceback (most recent call last):
    ...
    ValueError: invalid expression 'queue_depth > 1OO' at column 16: unexpected 'OO' after the number
    """
    if not text.strip():
        raise ValueError("invalid expression '': it is empty; write one like queue_depth > 100")
    return _Parser(text).parse()


# --- the models -----------------------------------------------------------------------------------

_RULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]*")
_RESERVED_LABELS: Final = frozenset({"alertname", "severity"})


def _tuple_of_names(value: object) -> object:
    if isinstance(value, str):
        return (value,)
    return value


class Selector(ConfigModel):
    """Which instances a rule (or SLO) covers; every given part must match.

    ``backend``: one name or a list. ``labels``: the backend's configured labels (subset match).
    ``gpu``: a GPU uuid (matched against the instance's ``uuid`` or ``gpu`` label).
    """

    backend: Annotated[tuple[str, ...] | None, BeforeValidator(_tuple_of_names)] = None
    labels: dict[str, str] = Field(default_factory=dict)
    gpu: str | None = None

    def matches(self, instance: Mapping[str, str]) -> bool:
        """Whether an instance with these labels (``backend`` plus the backend's labels …) is covered.

        >>> Selector(backend="a", labels={"region": "eu"}).matches({"backend": "a", "region": "eu"})
        True
        """
        if self.backend is not None and instance.get(cv.LABEL_BACKEND) not in self.backend:
            return False
        if any(instance.get(k) != v for k, v in self.labels.items()):
            return False
        return self.gpu is None or self.gpu in (instance.get("uuid"), instance.get("gpu"))


class Rule(ConfigModel):
    """One alerting rule. ``expr`` is validated and parsed when the rule is built.

    >>> r = Rule.model_validate({"name": "QueueDepthHigh", "expr": "queue_depth > 100", "for": "1m"})
    >>> r.for_, r.parsed.threshold, r.needs()
    (60.0, 100.0, (Need(signal='queue_depth', aggregation='last', window=None),))
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True)

    name: str
    expr: str
    for_: Duration = Field(default=0.0, alias="for")
    keep_firing_for: Duration = 0.0
    severity: RuleSeverity = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    selector: Selector = Field(default_factory=Selector)
    no_data: NoData = "ok"
    #: backend name -> threshold replacing the one in ``expr`` for that backend's instances
    per_backend: dict[str, Threshold] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _RULE_NAME.fullmatch(v):
            raise ValueError(f"invalid rule name {v!r}; use letters, digits, _ . : - (like QueueDepthHigh)")
        return v

    @field_validator("expr")
    @classmethod
    def _expr(cls, v: str) -> str:
        parse_expr(v)
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if k in _RESERVED_LABELS:
                raise ValueError(f"label {k!r} is set by the engine; use the rule's name/severity instead")
            if not is_label_name(k):
                raise ValueError(f"invalid label name {k!r}; use letters, digits and _")
        return v

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, v: dict[str, str]) -> dict[str, str]:
        problems = [f"{k}: {p}" for k, text in v.items() for p in template_problems(text)]
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @property
    def parsed(self) -> Condition:
        """The expression's AST (parsed once per distinct text; cached)."""
        return parse_expr(self.expr)

    def needs(self) -> tuple[Need, ...]:
        """What the I/O layer must fetch per instance to evaluate this rule."""
        return self.parsed.needs()

    def compute(self, fetched: Mapping[Need, float | None]) -> float | None:
        """The value ``evaluate`` compares, from the fetched ``needs()`` (None = no data)."""
        return self.parsed.left.compute(fetched)

    @property
    def unit(self) -> ValueUnit:
        """What the rule's value is measured in, for messages (``core.formatting.fmt_unit``):
        a latency in seconds, a ratio, days, a per-second rate, or a plain number.

        >>> [Rule(name="x", expr=e).unit for e in ("p99(ttft_seconds[5m]) > 1s", "kv_cache_usage_ratio > 90%",
        ...  "ratio(request_errors_total, requests_total[5m]) > 1%", "cert_expiry_days < 3",
        ...  "rate(generation_tokens_total[1m]) < 10", "queue_depth > 100")]
        ['seconds', 'ratio', 'ratio', 'days', 'per_second', '']
        """
        left = self.parsed.left
        if isinstance(left, Baseline):
            return "ratio"  # the value is a share of the baseline
        if left.fn == "ratio" or left.signal.endswith("_ratio") or left.signal == "up":
            return "ratio" if left.signal != "up" else ""
        if left.fn == "rate":
            return "per_second"
        if left.signal.endswith("_seconds"):
            return "seconds"
        if left.signal.endswith("_days"):
            return "days"
        return ""

    def threshold_for(self, instance: Mapping[str, str]) -> float:
        """The threshold for one instance: its backend's override, else the one in ``expr``."""
        backend = instance.get(cv.LABEL_BACKEND)
        if backend is not None and backend in self.per_backend:
            return self.per_backend[backend]
        return self.parsed.threshold

    def holds(self, value: float, instance: Mapping[str, str]) -> bool:
        """Whether the condition is true for this instance's value."""
        return self.parsed.holds(value, self.threshold_for(instance))


def value_units(rules: Iterable[Rule], burn_rules: Iterable[Rule] = ()) -> dict[str, str]:
    """Rule name -> the unit of its alerts' value (``Rule.unit``); an SLO's burn-rate rules give
    a factor ("x")."""
    return {**{r.name: r.unit for r in rules}, **{r.name: "x" for r in burn_rules}}
