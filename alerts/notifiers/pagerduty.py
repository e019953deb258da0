"""PagerDuty Events API v2: ``trigger`` / ``resolve`` events keyed by the alert fingerprint.

The alert ``fingerprint`` is the ``dedup_key``, so repeats of a firing alert update one incident
and the resolve closes it. Severity maps onto PagerDuty's four levels (``page`` → ``critical``,
``ticket`` → ``warning``). PagerDuty answers ``202 {"status": "success", …}``; ``400 {"status":
"invalid event", "errors": [...]}``; ``429`` when rate limited. The routing key travels in the
body only and is never shown.

>>> PagerDutyNotifier({"routing_key": "R0123456789abcdef0123456789abcde"}).describe()
'pagerduty → https://events.pagerduty.com'
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx

from alerts.model import Notification, SendOutcome
from alerts.notifiers.base import (
    _check_keys,
    _host,
    _HTTPNotifier,
    _json_bytes,
    _str_field,
    _summary,
    _url_field,
    _url_secrets,
    iso,
    runbook_url,
)
from core.numbers import finite

__all__ = ["DEFAULT_URL", "PagerDutyNotifier"]

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
SEVERITY = {"critical": "critical", "page": "critical", "error": "error", "warning": "warning",
            "ticket": "warning", "info": "info"}
_SUMMARY_MAX = 1024
_FIELD_MAX = 255


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class PagerDutyNotifier(_HTTPNotifier):
    """Sends Events API v2 events with ``routing_key`` (an integration key) to ``url``."""

    kind: ClassVar[str] = "pagerduty"

    def __init__(self, cfg: Mapping[str, Any], name: str = "pagerduty") -> None:
        _check_keys(cfg, ("routing_key", "url", "incident_per"))
        self.name = name
        per = cfg.get("incident_per", "alert")
        if per not in ("alert", "group"):
            raise ValueError(f"incident_per: expected alert or group, got {per!r}")
        self.incident_per: str = per
        key = _str_field(cfg, "routing_key")
        assert key is not None
        if key != key.strip() or any(c.isspace() for c in key):
            raise ValueError("routing_key: must not contain whitespace")
        if len(key) > 64:
            raise ValueError("routing_key: too long for an integration key (32 characters expected)")
        self._routing_key = key
        self._url = _url_field(cfg, "url", default=DEFAULT_URL)
        self._secret(key)
        if self._url != DEFAULT_URL:
            self._secret(*_url_secrets(self._url)[1:])  # userinfo, path, query of a custom URL

    def describe(self) -> str:
        return f"{self.kind} → {_host(self._url)}"

    def build_payload(self, n: Notification) -> dict[str, Any]:
        if n.kind == "resolve":
            return {"routing_key": self._routing_key, "event_action": "resolve",
                    "dedup_key": n.fingerprint}
        backend = n.labels.get("backend")
        payload: dict[str, Any] = {
            "summary": _clip(_summary(n), _SUMMARY_MAX),
            "severity": SEVERITY.get(n.severity, "warning"),
            "source": _clip(backend, _FIELD_MAX) if backend else "inferwatch",
            "timestamp": iso(n.starts_at),
        }
        component = n.labels.get("component") or n.labels.get("engine")
        if component:
            payload["component"] = component
        group = n.labels.get("group")
        if group:
            payload["group"] = group
        payload["class"] = n.rule
        payload["custom_details"] = {"labels": dict(n.labels), "annotations": dict(n.annotations),
                                     "value": finite(n.value), "value_text": n.value_text}
        event: dict[str, Any] = {
            "routing_key": self._routing_key,
            "event_action": "trigger",
            "dedup_key": n.fingerprint,
            "payload": payload,
        }
        links = [{"href": url, "text": text} for url, text in
                 ((n.dashboard_url, "inferwatch dashboard"), (runbook_url(n), "Runbook")) if url]
        if links:
            event["links"] = links
        event["client"] = "inferwatch"
        if n.dashboard_url:
            event["client_url"] = n.dashboard_url
        return event

    def request(self, n: Notification) -> tuple[str, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json", "User-Agent": "inferwatch"}
        return self._url, headers, _json_bytes(self.build_payload(n))

    def build_group_payload(self, ns: Sequence[Notification]) -> dict[str, Any] | None:
        """With ``incident_per: group``: one incident per group (``dedup_key`` from the group's
        key), triggered (or updated) while any alert of the group fires, resolved when none
        does; None when there is nothing to send (a resolve while others of the group fire).
        With the default ``incident_per: alert``, one event per notification (``send`` each)."""
        last = ns[-1]
        dedup = hashlib.sha256(last.group_key.encode()).hexdigest()[:32] if last.group_key else last.fingerprint
        firing = [n for n in ns if n.kind != "resolve"]
        if not firing:
            if last.group_firing > 0:
                return None
            return {"routing_key": self._routing_key, "event_action": "resolve", "dedup_key": dedup}
        event = self.build_payload(firing[0])
        names = sorted({n.labels.get("alertname", n.rule) for n in firing})
        group = ", ".join(f"{k}={v}" for k, v in last.group_labels.items() if v)
        count = max(last.group_firing, len(firing))
        event["dedup_key"] = dedup
        event["payload"]["summary"] = _clip(f"{count} alert{'s' if count != 1 else ''} firing: {', '.join(names)}"
                                            + (f" ({group})" if group else ""), _SUMMARY_MAX)
        event["payload"]["custom_details"] = {
            "group": dict(last.group_labels),
            "alerts": [{"labels": dict(n.labels), "summary": n.annotations.get("summary", ""),
                        "value": n.value_text, "status": "resolved" if n.kind == "resolve" else "firing"}
                       for n in ns]}
        return event

    def merges_groups(self) -> bool:
        return self.incident_per == "group"

    async def send(self, n: Notification, http: httpx.AsyncClient, timeout: float = 10.0) -> SendOutcome:
        if self.incident_per == "group":
            return await self.send_group([n], http, timeout)
        return await super().send(n, http, timeout)

    async def send_group(self, ns: Sequence[Notification], http: httpx.AsyncClient,
                         timeout: float = 10.0) -> SendOutcome:
        doc = self.build_group_payload(ns)
        if doc is None:  # others of the group still fire: the incident stays open
            return SendOutcome(ok=True)
        headers = {"Content-Type": "application/json", "User-Agent": "inferwatch"}
        return await self._post(self._url, headers, _json_bytes(doc), f"group of {len(ns)}", http, timeout)
