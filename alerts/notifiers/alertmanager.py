"""Prometheus Alertmanager: ``POST {url}/api/v2/alerts`` with one ``postableAlert``.

Schema (``api/v2/openapi.yaml``, ``postableAlerts``): a list of ``{"labels": labelSet (required),
"annotations": labelSet, "startsAt": date-time, "endsAt": date-time, "generatorURL": uri}``.

``endsAt`` as Prometheus's sender sets it (``rules/alerting.go``: ``ValidUntil = now + 4 ×
max(resend delay, evaluation interval)``; ``notifier``): a firing alert is posted again every
``resend_interval`` (default 1m, the engine re-sends it whatever the route's
``repeat_interval``) with ``endsAt`` four resend intervals ahead, so Alertmanager keeps it active
as long as inferwatch does — whatever its ``resolve_timeout`` — and ends it by itself only if
inferwatch stops talking to it. A resolve sets ``endsAt`` to the resolve time, which ends the
alert at once. ``resend_interval: 0`` restores the old behaviour (one post without ``endsAt``;
Alertmanager then resolves the alert ``resolve_timeout`` after the last post). Alertmanager
answers ``200`` with an empty body; ``400`` with a JSON string saying what is wrong.

>>> AlertmanagerNotifier({"url": "http://alertmanager:9093"}).describe()
'alertmanager → http://alertmanager:9093'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from alerts.model import Notification, SendOutcome
from alerts.notifiers.base import (
    _alertname,
    _check_keys,
    _headers_field,
    _host,
    _HTTPNotifier,
    _json_bytes,
    _url_field,
    _url_secrets,
    iso,
)
from core.units import parse_duration

__all__ = ["API_PATH", "AlertmanagerNotifier"]

API_PATH = "/api/v2/alerts"
DEFAULT_RESEND = "1m"  # Prometheus's --rules.alert.resend-delay
VALID_FOR = 4  # endsAt = sent + 4 resend intervals, as Prometheus


class AlertmanagerNotifier(_HTTPNotifier):
    """Posts alerts to an Alertmanager at ``url`` (its base URL), with optional ``headers``."""

    kind: ClassVar[str] = "alertmanager"

    def __init__(self, cfg: Mapping[str, Any], name: str = "alertmanager") -> None:
        _check_keys(cfg, ("url", "headers", "resend_interval"))
        self.name = name
        raw = cfg.get("resend_interval", DEFAULT_RESEND)
        try:
            self.resend_interval = parse_duration(raw)
        except ValueError as exc:
            raise ValueError(f"resend_interval: {exc}") from None
        base = _url_field(cfg, "url")
        parts = urlsplit(base)
        path = parts.path.rstrip("/")
        if not path.endswith(API_PATH):
            path += API_PATH
        self._base = base
        self._url = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
        self._headers = _headers_field(cfg)
        secrets = _url_secrets(base)
        # the base path (e.g. /alertmanager behind a proxy) is not a secret; credentials are
        self._secret(*(s for s in secrets if s != parts.path), *self._headers.values())

    def describe(self) -> str:
        return f"{self.kind} → {_host(self._base)}"

    def build_payload(self, n: Notification) -> list[dict[str, Any]]:
        labels = {**n.labels, "alertname": _alertname(n)}
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": dict(n.annotations),
            "startsAt": iso(n.starts_at),
        }
        if n.kind == "resolve":
            alert["endsAt"] = iso(n.ends_at if n.ends_at is not None else n.created_at)
        elif self.resend_interval > 0:
            alert["endsAt"] = iso(n.created_at + VALID_FOR * self.resend_interval)
        alert["generatorURL"] = n.dashboard_url or ""
        return [alert]

    def request(self, n: Notification) -> tuple[str, dict[str, str], bytes]:
        return self.request_group([n])

    def request_group(self, ns: Sequence[Notification]) -> tuple[str, dict[str, str], bytes]:
        """One POST carrying every alert of ``ns`` (``postableAlerts`` is a list)."""
        headers = {**self._headers, "Content-Type": "application/json", "User-Agent": "inferwatch"}
        return self._url, headers, _json_bytes([a for n in ns for a in self.build_payload(n)])

    async def send_group(self, ns: Sequence[Notification], http: httpx.AsyncClient,
                         timeout: float = 10.0) -> SendOutcome:
        url, headers, body = self.request_group(ns)
        return await self._post(url, headers, body, f"{len(ns)} alerts", http, timeout)
