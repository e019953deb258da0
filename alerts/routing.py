"""Who hears about which alert, and when: routes, repeats, grouping, inhibition and silences.
Pure: no I/O, no clock. Alertmanager semantics, simplified:

**Routes** (``routes:``) are tried in order; the first whose matchers all hold wins, unless it
says ``continue: true`` (then the next ones are tried too)::

    routes:
      - {receiver: pagerduty, match: {severity: critical}, match_re: {backend: "vllm-.*"},
         continue: false, repeat_interval: 4h, group_by: [alertname, backend]}
    default_receiver: slack     # an alert no route matches (else: nobody, logged once)
    repeat_interval: 4h         # default of every route; 0 turns repeats off
    group_by: [alertname, backend]
    group_wait: 30s             # default of every route (default 0s)
    group_interval: 5m          # default of every route (default 0s)

``match`` compares label values exactly, ``match_re`` with a regex anchored at both ends (a
missing label is the empty string). A receiver reached by several routes gets one notification
per alert, with the first matching route's settings. **Without** ``routes:`` every configured
notifier receives every alert (``default_receiver`` is then unused).

**Repeat**: while an alert keeps firing, each of its receivers is notified again (``kind
"repeat"``) every ``repeat_interval`` after the last notification it got for that alert. What
was last sent to a receiver per alert is derived from the outbox (``SilenceStore.last_sent``):
it is loaded when the engine starts, so a restart neither repeats early nor forgets.

**Grouping** (Alertmanager's ``group_by``, ``group_wait``, ``group_interval``): the alerts a route
sends to a receiver fall into groups by the values of the route's ``group_by`` labels
(``[...]``: every label, so no grouping). Every notification is still planned per alert (and
stored per alert in the outbox, so nothing is lost on a restart), but it is *due* when its group
is: a new group's first message ``group_wait`` after its first alert (gathering the alerts that
arrive meanwhile), later changes (new alerts, resolves, repeats) ``group_interval`` after the
group's previous message, or with the pending one. The dispatcher sends a receiver's due
notifications of one group as **one message** listing them (Slack, webhook, Alertmanager);
PagerDuty keeps one incident per alert (``dedup_key`` = the alert's fingerprint; one backend's
alert never hides another's) unless its notifier says ``incident_per: group``. Defaults ``0s``/``0s``: no waiting, and one message per group per
evaluation round.

**Inhibition** (``inhibit_rules:``): an alert matching a rule's ``target_match``/``target_match_re``
sends nothing while another *firing* alert matches its ``source_match``/``source_match_re`` and
has the same values for the ``equal`` labels (a label missing on both counts as equal). Without
``inhibit_rules:`` the default is ``DEFAULT_INHIBIT_RULES``: a backend that is down silences
that backend's latency, error, queue and throughput alerts (``inhibit_rules: []`` turns it off).

**Silences** (``alerts/silences.py``, API ``/api/v1/silences``): matchers ``{label: value}`` or
``{label: "=~regex"}``, all must hold, active from ``starts_at`` until ``ends_at``.

**Muted** (silenced or inhibited) alerts send nothing at all: no trigger, no repeat, no
resolve. When a mute ends while the alert still fires, its receivers get a ``trigger`` then
(they never heard of this episode) — or a repeat, if they did hear of it before the mute and
``repeat_interval`` has passed. A **resolve** goes only to receivers that got a trigger (or
repeat) of that firing episode and only when the alert is not muted at that moment: an alert that
fired and resolved entirely under a silence sends nothing, and one notified before a silence
that resolves while still silenced is not resolved at the receiver (resolve it there by hand,
or expire the silence first).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from alerts.matchers import (
    Matcher,
    RoutingError,
    all_match,
    matchers_from,
)
from alerts.model import AlertState, Silence, Transition
from core.units import parse_duration

__all__ = [
    "DEFAULT_GROUP_BY", "DEFAULT_INHIBIT_RULES", "DEFAULT_REPEAT_INTERVAL", "InhibitRule", "Planned", "Route",
    "Router", "Sent", "group_messages", "inhibited", "parse_inhibit_rules", "plan", "silenced_by",
]

DEFAULT_REPEAT_INTERVAL = 4 * 3600.0
DEFAULT_GROUP_BY: tuple[str, ...] = ("alertname", "backend")
#: Used when ``inhibit_rules`` is not configured at all.
DEFAULT_INHIBIT_RULES: tuple[dict[str, Any], ...] = (
    {
        "source_match": {"alertname": "BackendDown"},
        "target_match_re": {"alertname": "TTFT.*|ErrorRate.*|QueueDepth.*|TokenThroughput.*"},
        "equal": ["backend"],
    },
)



@dataclass(frozen=True, slots=True)
class Route:
    receiver: str
    matchers: tuple[Matcher, ...] = ()
    continue_: bool = False
    repeat_interval: float = DEFAULT_REPEAT_INTERVAL  # 0: no repeats
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    group_wait: float = 0.0
    group_interval: float = 0.0

    def group(self, labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        """The alert's group labels under this route (``...``: all of its labels)."""
        if "..." in self.group_by:
            return tuple(sorted(labels.items()))
        return tuple((k, labels.get(k, "")) for k in self.group_by)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all_match(self.matchers, labels)


@dataclass(frozen=True, slots=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()


def parse_inhibit_rules(raw: Any, *, where: str = "inhibit_rules") -> tuple[InhibitRule, ...]:
    problems: list[str] = []
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise RoutingError([f"{where}: expected a list"])
    rules: list[InhibitRule] = []
    allowed = {"source_match", "source_match_re", "target_match", "target_match_re", "equal"}
    for i, r in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(r, Mapping):
            problems.append(f"{at}: expected a mapping")
            continue
        for key in sorted(set(r) - allowed):
            problems.append(f"{at}.{key}: unknown field; expected one of {', '.join(sorted(allowed))}")
        source = matchers_from(r.get("source_match"), False, f"{at}.source_match", problems) + \
            matchers_from(r.get("source_match_re"), True, f"{at}.source_match_re", problems)
        target = matchers_from(r.get("target_match"), False, f"{at}.target_match", problems) + \
            matchers_from(r.get("target_match_re"), True, f"{at}.target_match_re", problems)
        if not source:
            problems.append(f"{at}.source_match: at least one source matcher is required")
        if not target:
            problems.append(f"{at}.target_match: at least one target matcher is required")
        equal = r.get("equal", [])
        if not isinstance(equal, list) or not all(isinstance(x, str) for x in equal):
            problems.append(f"{at}.equal: expected a list of label names")
            equal = []
        rules.append(InhibitRule(tuple(source), tuple(target), tuple(equal)))
    if problems:
        raise RoutingError(problems)
    return tuple(rules)


_ROUTE_KEYS = {"receiver", "match", "match_re", "continue", "repeat_interval", "group_by", "group_wait",
               "group_interval"}


class Router:
    """The routing tree (a flat list) plus inhibition, built from config values.

    >>> r = Router.parse([{"receiver": "pd", "match": {"severity": "critical"}}], ["pd", "slack"],
    ...                  default_receiver="slack")
    >>> [x.receiver for x in r.routes_for({"severity": "critical"})], [x.receiver for x in r.routes_for({})]
    (['pd'], ['slack'])
    """

    def __init__(self, routes: Sequence[Route], notifiers: Sequence[str], *, default_receiver: str | None = None,
                 repeat_interval: float = DEFAULT_REPEAT_INTERVAL, group_by: Sequence[str] = DEFAULT_GROUP_BY,
                 inhibit_rules: Sequence[InhibitRule] | None = None, group_wait: float = 0.0,
                 group_interval: float = 0.0) -> None:
        self.routes = tuple(routes)
        self.notifiers = tuple(notifiers)
        self.default_receiver = default_receiver
        self.repeat_interval = repeat_interval
        self.group_by = tuple(group_by)
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.inhibit_rules = tuple(inhibit_rules) if inhibit_rules is not None else \
            parse_inhibit_rules(DEFAULT_INHIBIT_RULES)

    @classmethod
    def parse(cls, routes: Any, notifiers: Sequence[str], *, default_receiver: str | None = None,
              repeat_interval: float = DEFAULT_REPEAT_INTERVAL, group_by: Sequence[str] = DEFAULT_GROUP_BY,
              inhibit_rules: Any = None, group_wait: float = 0.0, group_interval: float = 0.0) -> Router:
        """From the config's raw values; ``RoutingError`` lists every problem with its path."""
        problems: list[str] = []
        known = ", ".join(notifiers) or "(none)"

        def receiver_ok(name: Any, where: str) -> bool:
            if not isinstance(name, str) or not name:
                problems.append(f"{where}: required; the name of a configured notifier ({known})")
                return False
            if name not in notifiers:
                problems.append(f"{where}: unknown notifier {name!r}; configured: {known}")
                return False
            return True

        out: list[Route] = []
        for i, raw in enumerate(routes or ()):
            at = f"routes[{i}]"
            if not isinstance(raw, Mapping):
                problems.append(f"{at}: expected a mapping with receiver, match, match_re, continue, ...")
                continue
            for key in sorted(set(raw) - _ROUTE_KEYS):
                problems.append(f"{at}.{key}: unknown field; expected one of {', '.join(sorted(_ROUTE_KEYS))}")
            ok = receiver_ok(raw.get("receiver"), f"{at}.receiver")
            matchers = matchers_from(raw.get("match"), False, f"{at}.match", problems) + \
                matchers_from(raw.get("match_re"), True, f"{at}.match_re", problems)
            cont = raw.get("continue", False)
            if not isinstance(cont, bool):
                problems.append(f"{at}.continue: expected true or false")
            timing = {"repeat_interval": repeat_interval, "group_wait": group_wait, "group_interval": group_interval}
            for key in timing:
                if key in raw:
                    try:
                        timing[key] = parse_duration(raw[key])
                    except ValueError as exc:
                        problems.append(f"{at}.{key}: {exc}")
            gb = raw.get("group_by", list(group_by))
            if not isinstance(gb, list) or not all(isinstance(x, str) for x in gb):
                problems.append(f"{at}.group_by: expected a list of label names")
                gb = list(group_by)
            if ok:
                out.append(Route(raw["receiver"], tuple(matchers), cont is True, timing["repeat_interval"], tuple(gb),
                                 timing["group_wait"], timing["group_interval"]))
        if default_receiver is not None:
            receiver_ok(default_receiver, "default_receiver")
        inhibit: tuple[InhibitRule, ...] | None = None
        if inhibit_rules is not None:
            try:
                inhibit = parse_inhibit_rules(inhibit_rules)
            except RoutingError as exc:
                problems.extend(exc.problems)
        if problems:
            raise RoutingError(problems)
        return cls(out, notifiers, default_receiver=default_receiver, repeat_interval=repeat_interval,
                   group_by=group_by, inhibit_rules=inhibit, group_wait=group_wait, group_interval=group_interval)

    def routes_for(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes an alert goes to, one per receiver (the first matching route's settings);
        empty when routes are configured, none matches and there is no ``default_receiver``."""
        if not self.routes:
            return [Route(n, (), True, self.repeat_interval, self.group_by, self.group_wait, self.group_interval)
                    for n in self.notifiers]
        out: dict[str, Route] = {}
        for route in self.routes:
            if route.matches(labels):
                out.setdefault(route.receiver, route)
                if not route.continue_:
                    break
        if not out and self.default_receiver is not None:
            return [Route(self.default_receiver, (), False, self.repeat_interval, self.group_by, self.group_wait,
                          self.group_interval)]
        return list(out.values())


def silenced_by(labels: Mapping[str, str], silences: Iterable[Silence], now: float) -> Silence | None:
    """The first silence active at ``now`` whose matchers all hold for ``labels``."""
    for s in silences:
        if s.starts_at <= now < s.ends_at and all_match(s.matchers, labels):
            return s
    return None


def inhibited(labels: Mapping[str, str], fp: str, firing: Iterable[AlertState],
              rules: Sequence[InhibitRule]) -> bool:
    """Whether another firing alert inhibits this one (an alert never inhibits itself)."""
    sources = [s for s in firing if s.state == "firing" and s.fingerprint != fp]
    for rule in rules:
        if not all_match(rule.target, labels):
            continue
        for s in sources:
            if all_match(rule.source, s.labels) and all(s.labels.get(k) == labels.get(k) for k in rule.equal):
                return True
    return False


@dataclass(frozen=True, slots=True)
class Sent:
    """The last notification enqueued for one (fingerprint, receiver)."""

    kind: Literal["trigger", "resolve", "repeat"]
    at: float


@dataclass(frozen=True, slots=True)
class Planned:
    """One notification to make: for a firing state (trigger, repeat) or a resolve transition."""

    receiver: str
    kind: Literal["trigger", "resolve", "repeat"]
    alert: AlertState | Transition
    group: tuple[tuple[str, str], ...]  # the group labels (route's group_by and their values)
    due: float = 0.0  # when it may be sent: its group's next message
    group_firing: int = 0  # alerts of the group (for this receiver) firing and not muted this round

    @property
    def fingerprint(self) -> str:
        return self.alert.fingerprint

    @property
    def group_key(self) -> str:
        """One string per (receiver, group): what the dispatcher gathers a message by."""
        return self.receiver + "{" + ",".join(f"{k}={v!r}" for k, v in self.group) + "}"


def _heard(last: Sent | None, episode: float) -> bool:
    """Whether the receiver got a trigger or repeat of the episode that began at ``episode``."""
    return last is not None and last.kind != "resolve" and last.at >= episode


def _repeat_every(route: Route, resend: Mapping[str, float]) -> float:
    """How often a still-firing alert goes to the route's receiver again: the route's
    ``repeat_interval``, or the receiver's own resend interval when shorter (Alertmanager must
    hear of a firing alert before its ``endsAt``); 0: never."""
    own = resend.get(route.receiver, 0.0)
    if own <= 0:
        return route.repeat_interval
    return min(route.repeat_interval, own) if route.repeat_interval > 0 else own


GroupId = tuple[str, tuple[tuple[str, str], ...]]  # (receiver, group labels)


def group_messages(states: Mapping[str, AlertState], router: Router,
                   sent: Mapping[tuple[str, str], Sent]) -> dict[GroupId, float]:
    """Per (receiver, group), when its newest message was due: the latest notification sent
    (or scheduled) to that receiver for an alert of the group that is still firing — what a
    restart derives the groups' timers from (``sent`` is loaded from the outbox)."""
    out: dict[GroupId, float] = {}
    for st in states.values():
        for route in router.routes_for(st.labels):
            last = sent.get((st.fingerprint, route.receiver))
            if last is not None and last.kind != "resolve":
                gid = (route.receiver, route.group(st.labels))
                out[gid] = max(out.get(gid, last.at), last.at)
    return out


def plan(states: Mapping[str, AlertState], transitions: Sequence[Transition], now: float, router: Router,
         silences: Sequence[Silence], sent: Mapping[tuple[str, str], Sent],
         resend: Mapping[str, float] | None = None, groups: Mapping[GroupId, float] | None = None,
         ) -> tuple[list[Planned], dict[str, str]]:
    """One round's notifications: triggers and repeats for every firing alert in ``states``,
    resolves for the ``transitions`` to resolved. Returns (planned, muted), ``muted`` mapping the
    fingerprints of muted alerts to why (``silenced by <id>`` / ``inhibited``). Ordered per
    receiver by group, then alertname and fingerprint. ``resend``: receivers that must hear of a
    firing alert at least that often (seconds), whatever the route's ``repeat_interval``."""
    resend = resend or {}
    groups = groups or {}
    firing = [s for s in states.values() if s.state == "firing"]
    muted: dict[str, str] = {}
    dues: dict[GroupId, float] = {}

    def due(route: Route, labels: Mapping[str, str]) -> tuple[tuple[tuple[str, str], ...], float]:
        """The group's labels and when its next message is due: with a pending one, then; for
        a live group (``groups``), group_interval after its last; for a new one, group_wait
        from now."""
        g = route.group(labels)
        gid = (route.receiver, g)
        if gid not in dues:
            last = groups.get(gid)
            if last is None:
                dues[gid] = now + route.group_wait
            else:
                dues[gid] = last if last > now else max(now, last + route.group_interval)
        return g, dues[gid]

    def mute(fp: str, labels: Mapping[str, str]) -> bool:
        silence = silenced_by(labels, silences, now)
        if silence is not None:
            muted[fp] = f"silenced by {silence.id}"
        elif inhibited(labels, fp, firing, router.inhibit_rules):
            muted[fp] = "inhibited"
        return fp in muted

    out: list[Planned] = []
    for st in firing:
        if mute(st.fingerprint, st.labels):
            continue
        episode = st.fired_at if st.fired_at is not None else (st.active_since or 0.0)
        for route in router.routes_for(st.labels):
            last = sent.get((st.fingerprint, route.receiver))
            if not _heard(last, episode):
                group, at = due(route, st.labels)
                out.append(Planned(route.receiver, "trigger", st, group, at))
            elif (every := _repeat_every(route, resend)) > 0 and last is not None and now - last.at >= every:
                group, at = due(route, st.labels)
                out.append(Planned(route.receiver, "repeat", st, group, at))
    for t in transitions:
        if t.new != "resolved" or mute(t.fingerprint, t.labels):
            continue
        episode = t.fired_at if t.fired_at is not None else (t.active_since or 0.0)
        for route in router.routes_for(t.labels):
            if _heard(sent.get((t.fingerprint, route.receiver)), episode):
                group, at = due(route, t.labels)
                out.append(Planned(route.receiver, "resolve", t, group, at))
    firing_in: dict[GroupId, int] = {}
    for st in firing:
        if st.fingerprint not in muted:
            for route in router.routes_for(st.labels):
                gid = (route.receiver, route.group(st.labels))
                firing_in[gid] = firing_in.get(gid, 0) + 1
    out = [replace(p, group_firing=firing_in.get((p.receiver, p.group), 0)) for p in out]
    out.sort(key=lambda p: (p.receiver, p.group, p.alert.labels.get("alertname", ""), p.fingerprint))
    return out, muted
