"""The alert engine's loop: every ``evaluation_interval``, fetch values (``alerts/data.py``),
evaluate (pure, ``alerts/evaluate.py``), commit the new states, their history and the
notifications they cause in one transaction (``alerts/outbox.py``), and wake the dispatcher.

Who is notified, and when, is decided by ``alerts/routing.py`` (routes, repeats, grouping,
inhibition, silences; read its docstring). With no ``routes:``, every configured notifier receives
every alert. The last notification per (alert, receiver) is kept in memory, loaded from the
outbox at the first evaluation (``SilenceStore.last_sent``) and updated after every commit, so a
restart never repeats early nor pages twice; active silences are read from the store every round.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import httpx

from alerts.config import AlertingConfig
from alerts.data import fetch_values, refresh_budget
from alerts.dispatcher import Dispatcher
from alerts.evaluate import evaluate, notifiable
from alerts.model import AlertState, Notification, Transition
from alerts.notifiers import Notifier
from alerts.outbox import AlertStore
from alerts.routing import GroupId, Planned, Router, Sent, group_messages, plan
from alerts.rules import Rule, value_units
from alerts.silences import SilenceStore
from alerts.slo_data import burn_values
from collector.query import Reads

log = logging.getLogger("inferwatch.alerts")


def to_notification(t: Transition, receiver: str, now: float, dashboard: str | None) -> Notification:
    return Notification(
        id=uuid.uuid4().hex, receiver=receiver, kind="trigger" if t.new == "firing" else "resolve",
        fingerprint=t.fingerprint, rule=t.rule, labels=dict(t.labels), annotations=dict(t.annotations),
        value=t.value, starts_at=t.fired_at or t.active_since or t.ts,
        ends_at=t.ts if t.new == "resolved" else None, created_at=now, dashboard_url=dashboard,
    )


def planned_notification(p: Planned, now: float, dashboard: str | None, seq: int, unit: str = "") -> Notification:
    """The notification for one routing decision, due (``created_at``) when its group's next
    message is. The id starts with the round's time and ``seq`` (its place in the round), so the
    dispatcher, which sends items due together in id order, keeps the order they were decided in
    (a resolve never before its trigger, even when both wait for the same group message)."""
    a = p.alert
    if isinstance(a, Transition):
        n = to_notification(a, p.receiver, now, dashboard)
    else:
        n = Notification(
            id="", receiver=p.receiver, kind=p.kind, fingerprint=a.fingerprint, rule=a.rule,
            labels=dict(a.labels), annotations=dict(a.annotations), value=a.value,
            starts_at=a.fired_at or a.active_since or now, ends_at=None, created_at=now, dashboard_url=dashboard,
        )
    order = f"{max(0, int(now * 1000)):012x}{seq:06x}"
    return replace(n, id=order + uuid.uuid4().hex[len(order):], kind=p.kind, created_at=max(now, p.due),
                   group_key=p.group_key, group_labels=dict(p.group), unit=unit, group_firing=p.group_firing)


def _resend(notifiers: Mapping[str, Notifier]) -> dict[str, float]:
    """Receivers with a resend interval of their own (the Alertmanager notifier's)."""
    return {name: every for name, n in notifiers.items() if (every := getattr(n, "resend_interval", 0.0)) > 0}


class AlertEngine:
    def __init__(self, cfg: AlertingConfig, reads: Reads, store: AlertStore, silences: SilenceStore, http: httpx.AsyncClient,
                 clock: Callable[[], float] = time.time,
                 notifiers: Mapping[str, Notifier] | None = None, rules: Sequence[Rule] | None = None,
                 router: Router | None = None) -> None:
        self.cfg = cfg
        self.reads = reads
        self.store = store
        self.silences = silences
        self.clock = clock
        self.rules = list(rules) if rules is not None else list(cfg.rules_in_force)
        self.burn_rules = cfg.burn_rules
        #: rule name -> the unit of its value (burn-rate alerts: a factor)
        self.units = value_units(self.rules, (b.rule for b in self.burn_rules))
        self.notifiers = dict(notifiers) if notifiers is not None else cfg.notifier_set
        self.dispatcher = Dispatcher(store, self.notifiers, http, clock=clock)
        self.router: Router = router if router is not None else cfg.router
        #: receivers that must hear of a firing alert at least this often (Alertmanager's endsAt)
        self.resend = _resend(self.notifiers)
        self.sent: dict[tuple[str, str], Sent] = {}
        self.groups: dict[GroupId, float] = {}  # (receiver, group) -> when its last message was due
        self.muted: dict[str, str] = {}  # fingerprint -> why (silenced by <id> / inhibited), last round
        self._unrouted: set[str] = set()  # fingerprints already logged as matching no route
        self.states: dict[str, AlertState] = {}
        self._loaded = False
        self.evaluations = 0
        self.failures = 0
        self._wake: asyncio.Event | None = None
        self._references: dict[tuple[str, str, str, float], tuple[float, float | None]] = {}
        self._budget = refresh_budget(self.rules, len(cfg.backends), cfg.evaluation_interval)

    def reconfigure(self, cfg: AlertingConfig) -> None:
        """A reloaded config's rules, SLOs, routes and notifiers. What the engine remembers stays:
        alert states (pending timers, firing alerts), what each receiver was last sent, group
        timers, and the outbox (items for a receiver no longer configured are marked dead by the
        dispatcher with that reason). States of rules that are gone end without a notification."""
        self.cfg = cfg
        self.rules = list(cfg.rules_in_force)
        self.burn_rules = cfg.burn_rules
        self.units = value_units(self.rules, (b.rule for b in self.burn_rules))
        self.notifiers = cfg.notifier_set
        self.dispatcher.set_notifiers(self.notifiers)
        self.router = cfg.router
        self.resend = _resend(self.notifiers)
        self._unrouted.clear()
        self._budget = refresh_budget(self.rules, len(cfg.backends), cfg.evaluation_interval)

    def dashboard_url(self, t: Transition | AlertState) -> str | None:
        base = self.cfg.dashboard_base()
        backend = t.labels.get("backend")
        return f"{base}/backends/{backend}" if backend else f"{base}/alerts"

    async def evaluate_once(self, now: float | None = None) -> list[Transition]:
        now = self.clock() if now is None else now
        if not self._loaded:  # a restart keeps pending timers, firing alerts and group timers
            self.states = await asyncio.to_thread(self.store.load_alert_states)
            self.sent = await asyncio.to_thread(self.store.last_sent, self.states)
            self.groups = group_messages(self.states, self.router, self.sent)
            self._loaded = True
        values = dict(await asyncio.to_thread(fetch_values, self.rules, self.reads, self.cfg, now, self._references,
                                              self._budget))
        if self.burn_rules:  # SLO multi-window burn-rate alerts share the state machine and routing
            values.update(await asyncio.to_thread(burn_values, self.burn_rules, self.reads.metrics, self.cfg, now))
        states, transitions = evaluate([*self.rules, *(b.rule for b in self.burn_rules)], values, self.states, now)
        silences = await asyncio.to_thread(self.silences.active_silences, now)
        planned, muted = plan(states, transitions, now, self.router, silences, self.sent, self.resend, self.groups)
        self._log_unrouted(states, transitions)
        routed = [x for x in planned if x.receiver in self.notifiers]
        notes = [planned_notification(p, now, self.dashboard_url(p.alert), i, self.units.get(p.alert.rule, ""))
                 for i, p in enumerate(routed)]
        await asyncio.to_thread(self.store.commit_evaluation, states, transitions, notes)
        self.states = states
        self.muted = muted
        for n in notes:
            self.sent[(n.fingerprint, n.receiver)] = Sent(n.kind, n.created_at)
        live = {s.fingerprint for s in states.values()}
        self.sent = {k: v for k, v in self.sent.items() if k[0] in live}
        # a group lives while an alert of it fires notified, or its last message is recent
        alive = group_messages(states, self.router, self.sent)
        for p in routed:
            self.groups[(p.receiver, p.group)] = max(self.groups.get((p.receiver, p.group), p.due), p.due)
        self.groups = {g: at for g, at in self.groups.items()
                       if g in alive or at + self._group_interval(g[0]) > now}
        self.evaluations += 1
        for t in notifiable(transitions):
            log.info("[alerts.engine] %s %s -> %s (value %s)", t.labels.get("alertname"), t.old, t.new, t.value)
        if notes:
            self.dispatcher.notify()
        return transitions

    def _log_unrouted(self, states: Mapping[str, AlertState], transitions: Sequence[Transition]) -> None:
        """Log once per alert that no route (and no default_receiver) takes it, or that its
        receiver has no notifier here. With no notifier configured at all there is nothing to say:
        alerts are then meant for the API and the /alerts page."""
        if not self.notifiers:
            return
        for t in notifiable(transitions):
            if t.new != "firing" or t.fingerprint in self._unrouted:
                continue
            receivers = [r.receiver for r in self.router.routes_for(t.labels)]
            missing = [r for r in receivers if r not in self.notifiers]
            if not receivers or missing:
                self._unrouted.add(t.fingerprint)
                why = f"receiver(s) {', '.join(missing)} not configured" if receivers else \
                    "no route matches and there is no default_receiver"
                log.warning("[alerts.engine] %s %s: notifies nobody: %s", t.labels.get("alertname"),
                            dict(t.labels), why)
        self._unrouted &= set(states)

    def _group_interval(self, receiver: str) -> float:
        intervals = [r.group_interval for r in self.router.routes if r.receiver == receiver]
        return max([self.router.group_interval, *intervals])

    def firing(self) -> list[AlertState]:
        return [s for s in self.states.values() if s.state == "firing"]

    def data_arrived(self) -> None:
        """The collector committed new data: evaluate soon instead of at the next tick (a breach
        then waits for no evaluation grid — what keeps inferwatch's time to page short)."""
        if self._wake is not None:
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Evaluate every ``evaluation_interval``, and early when new data arrives — but never
        twice within half an interval, so a busy fleet does not multiply evaluations."""
        dispatcher = asyncio.create_task(self.dispatcher.run(stop), name="dispatcher")
        self._wake = asyncio.Event()
        interval = self.cfg.evaluation_interval
        try:
            while not stop.is_set():
                started = self.clock()
                try:
                    await self.evaluate_once()
                except Exception:
                    self.failures += 1
                    log.exception("[alerts.engine] evaluation failed; next one in %ss", interval)
                self._wake.clear()
                earliest = started + interval / 2
                deadline = started + interval
                stopper = asyncio.create_task(stop.wait())
                waker = asyncio.create_task(self._wake.wait())
                await asyncio.wait({stopper, waker}, timeout=max(0.0, deadline - self.clock()),
                                   return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                waker.cancel()
                if self._wake.is_set() and not stop.is_set():  # early, but not before half an interval
                    pause = earliest - self.clock()
                    if pause > 0:
                        try:
                            await asyncio.wait_for(stop.wait(), timeout=pause)
                        except TimeoutError:
                            pass
        finally:
            stop.set()
            try:
                await dispatcher
            except asyncio.CancelledError:  # the service's stop ran out of patience
                dispatcher.cancel()
                raise
