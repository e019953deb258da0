"""The alerting config section, and ``AlertingConfig``: everything the alert engine reads.

The keys sit at the top level of the file (``rules:``, ``slos:``, ``notifiers:``, ``routes:`` …).
``rules`` and ``slos`` are parsed into their typed models by pydantic with the rest of the file;
``rule_overrides`` into ``RuleOverride``\\ s. What needs the whole section at once is built once,
when the file is checked (``alerting_problems``), and kept:

* ``rules_in_force``: the default pack with its overrides and the backends' ``alert_thresholds``,
  plus the user's rules (``alerts/rulepack.py``);
* ``notifier_set``: one ``Notifier`` per ``notifiers:`` entry (each validates its own section);
* ``router``: routes, ``default_receiver``, ``repeat_interval``, ``group_by``, ``inhibit_rules``
  (``alerts/routing.py``);
* ``burn_rules``: the multi-window burn-rate alerts of the SLOs (``alerts/slo_data.py``).
"""

from __future__ import annotations

from functools import cached_property

from pydantic import Field, JsonValue, ValidationError

from alerts.matchers import RoutingError
from alerts.notifiers import Notifier, build
from alerts.routing import Router
from alerts.rulepack import RuleOverride, RulePackError, default_rules, with_user_rules
from alerts.rules import Rule
from alerts.slo import SLO
from alerts.slo_data import BurnRule, burn_rules
from collector.config import CollectorSettings
from core.schema import ConfigModel
from core.units import Duration, PositiveDuration

__all__ = ["AlertSettings", "AlertingConfig", "alerting_problems"]


class AlertSettings(ConfigModel):
    """The alert engine's top-level keys (a part of the whole config, see ``inferwatch.config``)."""

    evaluation_interval: PositiveDuration = 15.0
    default_rules: bool = True  # the built-in rule pack (alerts/rulepack.py)
    #: per default rule: {threshold, for, severity, labels, annotations, enabled: false, …}
    rule_overrides: dict[str, RuleOverride] = Field(default_factory=dict)
    external_url: str | None = None  # how links in notifications reach the dashboard
    rules: list[Rule] = Field(default_factory=list)
    slos: list[SLO] = Field(default_factory=list)
    #: receiver name -> its section (``type:`` or the name itself says which notifier)
    notifiers: dict[str, JsonValue] = Field(default_factory=dict)
    routes: list[JsonValue] = Field(default_factory=list)  # alerts/routing.py
    default_receiver: str | None = None  # with routes: where an alert no route matches goes
    repeat_interval: Duration = 4 * 3600.0  # re-notify a still-firing alert (0: never)
    group_by: list[str] = Field(default_factory=lambda: ["alertname", "backend"])
    group_wait: Duration = 0.0  # hold a new group's first message this long to gather its alerts
    group_interval: Duration = 0.0  # at most one message per group this often (repeats aside)
    inhibit_rules: list[JsonValue] | None = None  # None: the built-in BackendDown rule

    @cached_property
    def notifier_set(self) -> dict[str, Notifier]:
        """One notifier per receiver; ``NotifierError`` naming every bad section."""
        built: dict[str, Notifier] = {}
        problems: list[str] = []
        for name, section in self.notifiers.items():
            try:
                built[name] = build(name, section)
            except ValueError as exc:
                field, _, message = str(exc).partition(": ")
                problems.append(f"notifiers.{name}.{field}: {message}" if message else f"notifiers.{name}: {exc}")
        if problems:
            raise NotifierError(problems)
        return built

    @cached_property
    def router(self) -> Router:
        """Who hears about which alert; ``RoutingError`` listing every problem."""
        return Router.parse(self.routes, list(self.notifiers), default_receiver=self.default_receiver,
                            repeat_interval=self.repeat_interval, group_by=self.group_by,
                            group_wait=self.group_wait, group_interval=self.group_interval,
                            inhibit_rules=self.inhibit_rules)

    @cached_property
    def burn_rules(self) -> list[BurnRule]:
        """The SLOs' multi-window burn-rate alerts, as rules of the engine."""
        return burn_rules(self.slos)


class NotifierError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class AlertingConfig(AlertSettings, CollectorSettings):
    """What the alert engine reads: its own section and the collector's (backends, intervals)."""

    @cached_property
    def rules_in_force(self) -> tuple[Rule, ...]:
        """The default pack (unless ``default_rules: false``) with ``rule_overrides`` and every
        backend's ``alert_thresholds``, plus the user's rules (a user rule named like a default
        replaces it); ``RulePackError`` when an override names no default rule."""
        if not self.default_rules:
            return tuple(self.rules)
        per_backend = {b.name: b.alert_thresholds for b in self.backends if b.alert_thresholds}
        return tuple(with_user_rules(default_rules(self.rule_overrides, per_backend), self.rules))

    def dashboard_base(self) -> str:
        """Where links in notifications point (``AppConfig`` knows the listen address)."""
        return (self.external_url or "http://127.0.0.1:8000").rstrip("/")


def _duplicates(names: list[str], section: str, what: str) -> list[str]:
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            problems.append(f"{section}[{i}].name: duplicate {what} name {name!r} (also {section}[{seen[name]}])")
        seen.setdefault(name, i)
    return problems


def alerting_problems(cfg: AlertingConfig) -> list[str]:
    """Every check that needs more than one field, each building what it checks once (the
    cached properties above keep it for the engine and the pages)."""
    problems = _duplicates([r.name for r in cfg.rules], "rules", "rule")
    problems += _duplicates([s.name for s in cfg.slos], "slos", "SLO")
    try:
        cfg.rules_in_force  # noqa: B018 - built (and kept) here
    except RulePackError as exc:
        if exc.backend is None:
            problems.append(f"rule_overrides: {exc.message}")
        else:
            index = next(i for i, b in enumerate(cfg.backends) if b.name == exc.backend)
            problems.append(f"backends[{index}].alert_thresholds: {exc.message}")
    except ValidationError as exc:  # an override that makes a rule invalid
        problems.append(f"rule_overrides: {exc.errors()[0]['msg']}")
    try:
        cfg.notifier_set  # noqa: B018
    except NotifierError as exc:
        problems.extend(exc.problems)
    try:
        cfg.router  # noqa: B018
    except RoutingError as exc:
        problems.extend(exc.problems)
    cfg.burn_rules  # noqa: B018
    return problems
