"""The alert engine's loop: every ``evaluation_interval``, fetch values (``alerts/data.py``),
evaluate (pure, ``alerts/evaluate.py``), commit the new states, their history and the
notifications they cause in one transaction (``alerts/outbox.py``), and wake the dispatcher.

With no ``routes:``, every configured notifier receives every firing and resolved alert.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from alerts.data import fetch_values
from alerts.dispatcher import Dispatcher
from alerts.evaluate import evaluate, notifiable
from alerts.model import AlertState, Notification, Transition
from alerts.notifiers import build
from alerts.rulepack import default_rules, with_user_rules
from alerts.rules import Rule
from collector.config import Config
from collector.store import Store

log = logging.getLogger("inferwatch.alerts")


def rules_from_config(cfg: Config) -> list[Rule]:
    """The default pack (unless ``default_rules: false``) plus the user's rules (a user rule named
    like a default replaces it). Already validated by ``collector.config``."""
    user = [Rule.model_validate(r) for r in cfg.rules]
    if not cfg.default_rules:
        return user
    return with_user_rules(default_rules({}, {}), user)


def notifiers_from_config(cfg: Config) -> dict[str, Any]:
    return {name: build(name, conf) for name, conf in cfg.notifiers.items()}


def to_notification(t: Transition, receiver: str, now: float, dashboard: str | None) -> Notification:
    return Notification(
        id=uuid.uuid4().hex, receiver=receiver, kind="trigger" if t.new == "firing" else "resolve",
        fingerprint=t.fingerprint, rule=t.rule, labels=dict(t.labels), annotations=dict(t.annotations),
        value=t.value, starts_at=t.fired_at or t.active_since or t.ts,
        ends_at=t.ts if t.new == "resolved" else None, created_at=now, dashboard_url=dashboard,
    )


class AlertEngine:
    def __init__(self, cfg: Config, store: Store, http: httpx.AsyncClient, clock: Callable[[], float] = time.time,
                 notifiers: Mapping[str, Any] | None = None, rules: Sequence[Rule] | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.clock = clock
        self.rules = list(rules) if rules is not None else rules_from_config(cfg)
        self.notifiers = dict(notifiers) if notifiers is not None else notifiers_from_config(cfg)
        self.dispatcher = Dispatcher(store, self.notifiers, http, clock=clock)
        self.states: dict[str, AlertState] = {}
        self._loaded = False
        self.evaluations = 0
        self.failures = 0

    def dashboard_url(self, t: Transition) -> str | None:
        base = self.cfg.external_url or f"http://{self.cfg.web.listen}"
        backend = t.labels.get("backend")
        return f"{base.rstrip('/')}/backends/{backend}" if backend else f"{base.rstrip('/')}/alerts"

    async def evaluate_once(self, now: float | None = None) -> list[Transition]:
        now = self.clock() if now is None else now
        if not self._loaded:  # a restart keeps pending timers and firing alerts
            self.states = await asyncio.to_thread(self.store.load_alert_states)
            self._loaded = True
        values = await asyncio.to_thread(fetch_values, self.rules, self.store, self.cfg, now)
        states, transitions = evaluate(self.rules, values, self.states, now)
        notes = [to_notification(t, receiver, now, self.dashboard_url(t))
                 for t in notifiable(transitions) for receiver in self.notifiers]
        await asyncio.to_thread(self.store.commit_evaluation, states, transitions, notes)
        self.states = states
        self.evaluations += 1
        for t in notifiable(transitions):
            log.info("[alerts.engine] %s %s -> %s (value %s)", t.labels.get("alertname"), t.old, t.new, t.value)
        if notes:
            self.dispatcher.notify()
        return transitions

    def firing(self) -> list[AlertState]:
        return [s for s in self.states.values() if s.state == "firing"]

    async def run(self, stop: asyncio.Event) -> None:
        dispatcher = asyncio.create_task(self.dispatcher.run(stop), name="dispatcher")
        try:
            next_at = self.clock()
            while not stop.is_set():
                try:
                    await self.evaluate_once()
                except Exception:
                    self.failures += 1
                    log.exception("[alerts.engine] evaluation failed; next one in %ss", self.cfg.evaluation_interval)
                next_at += self.cfg.evaluation_interval
                delay = max(0.0, next_at - self.clock())
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass
                if next_at < self.clock():
                    next_at = self.clock()
        finally:
            stop.set()
            await dispatcher
