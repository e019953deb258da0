"""Prometheus Alertmanager: ``POST {url}/api/v2/alerts`` with one ``postableAlert``.

Schema (``api/v2/openapi.yaml``, ``postableAlerts``): a list of ``{"labels": labelSet (required),
"annotations": labelSet, "startsAt": date-time, "endsAt": date-time, "generatorURL": uri}``.

``endsAt`` follows Alertmanager's semantics: a trigger omits it, so Alertmanager keeps the alert
active for its ``resolve_timeout`` after the last post (repeat notifications refresh it; set
``resolve_timeout`` at least as long as the repeat interval); a resolve sets it to the resolve
time, which ends the alert at once. Alertmanager answers ``200`` with an empty body; ``400`` with
a JSON string saying what is wrong.

>>> AlertmanagerNotifier({"url": "http://alertmanager:9093"}).describe()
'alertmanager → http://alertmanager:9093'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from alerts.model import Notification
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

__all__ = ["API_PATH", "AlertmanagerNotifier"]

API_PATH = "/api/v2/alerts"


class AlertmanagerNotifier(_HTTPNotifier):
    """Posts alerts to an Alertmanager at ``url`` (its base URL), with optional ``headers``."""

    kind: ClassVar[str] = "alertmanager"

    def __init__(self, cfg: Mapping[str, Any], name: str = "alertmanager") -> None:
        _check_keys(cfg, ("url", "headers"))
        self.name = name
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
        alert["generatorURL"] = n.dashboard_url or ""
        return [alert]

    def request(self, n: Notification) -> tuple[str, dict[str, str], bytes]:
        headers = {**self._headers, "Content-Type": "application/json", "User-Agent": "inferwatch"}
        return self._url, headers, _json_bytes(self.build_payload(n))
