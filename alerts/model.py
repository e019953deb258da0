"""Value types of the alert engine. No I/O.

An *alert* is one instance of a rule: the rule plus a label set (``alertname``, ``severity``,
``backend`` …). Its ``fingerprint`` — a stable hash of the sorted labels — identifies it across
evaluations, restarts, notifications (PagerDuty ``dedup_key``) and silences.

States: ``inactive`` → ``pending`` (condition true, ``for`` not yet elapsed) → ``firing`` →
``resolved`` (condition false for longer than ``keep_firing_for``); a pending alert whose
condition clears goes back to ``inactive`` without notifying.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from alerts.matchers import Matcher, parse_silence_matchers
from core.formatting import fmt_unit

State = Literal["inactive", "pending", "firing", "resolved"]
Severity = Literal["info", "warning", "critical", "page", "ticket"]
SilenceState = Literal["pending", "active", "expired"]


def fingerprint(labels: Mapping[str, str]) -> str:
    """Stable 16-hex-digit identity of a label set (order-independent).

    >>> fingerprint({"alertname": "A", "backend": "b"}) == fingerprint({"backend": "b", "alertname": "A"})
    True
    """
    text = json.dumps(sorted(labels.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class AlertState:
    """What the engine remembers about one alert instance between evaluations (persisted)."""

    fingerprint: str
    rule: str
    labels: Mapping[str, str]
    state: State
    value: float | None = None
    active_since: float | None = None  # when the condition became true (pending start)
    fired_at: float | None = None
    resolved_at: float | None = None
    last_true: float | None = None  # last evaluation with the condition true (keep_firing_for)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change the evaluator decided; ``firing`` and ``resolved`` ones are notified."""

    fingerprint: str
    rule: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    old: State
    new: State
    ts: float
    value: float | None
    active_since: float | None
    fired_at: float | None


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one receiver, as stored in the outbox before it is sent."""

    id: str  # unique per message (uuid4 hex); the outbox key
    receiver: str  # notifier name from config: slack | pagerduty | webhook | alertmanager | <route receiver>
    kind: Literal["trigger", "resolve", "repeat"]
    fingerprint: str
    rule: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    value: float | None
    starts_at: float  # when the alert started firing (or pending start)
    ends_at: float | None  # resolve time, for resolves
    created_at: float
    dashboard_url: str | None = None  # link back (no secrets in it)
    #: the aggregation group (route receiver + ``group_by`` values): notifications of one group
    #: due at the same moment go out as one message (``Dispatcher``); "" for none
    group_key: str = ""
    group_labels: Mapping[str, str] = field(default_factory=dict)
    unit: str = ""  # of ``value``: the rule's (``Rule.unit``), for messages
    group_firing: int = 0  # alerts of its group firing (not muted) when it was decided

    @property
    def value_text(self) -> str:
        """The value in its unit ("734 ms", "1.2 %", "153"; "–" when there is none)."""
        return fmt_unit(self.value, self.unit)

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "warning")


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What one delivery attempt achieved.

    ``retry``: try again later (timeout, connection error, 429, 5xx); ``retry_after`` seconds
    when the receiver said so (``Retry-After``). Neither ``ok`` nor ``retry``: give up (other 4xx),
    ``error`` says why — without any secret.
    """

    ok: bool
    retry: bool = False
    retry_after: float | None = None
    status: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0

    def state(self, now: float) -> SilenceState:
        if now >= self.ends_at:
            return "expired"
        return "active" if now >= self.starts_at else "pending"

    def matchers_doc(self) -> dict[str, str]:
        """The matchers as written: ``{label: value}`` or ``{label: "=~regex"}``."""
        return {m.name: f"=~{m.value}" if m.regex else m.value for m in self.matchers}


def new_silence(matchers: object, *, starts_at: float, ends_at: float, created_by: str,
                comment: str = "", now: float | None = None) -> Silence:
    """A validated new silence with a fresh id; ``ValueError`` (``RoutingError``) when invalid."""
    parsed = parse_silence_matchers(matchers)
    if not ends_at > starts_at:
        raise ValueError("ends_at: must be after starts_at")
    created = starts_at if now is None else now
    return Silence(uuid.uuid4().hex, parsed, float(starts_at), float(ends_at), created_by, comment,
                   float(created), float(created))
