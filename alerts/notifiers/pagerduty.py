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

from collections.abc import Mapping
from typing import Any, ClassVar

from alerts.model import Notification
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
        _check_keys(cfg, ("routing_key", "url"))
        self.name = name
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
