"""Generic JSON webhook, optionally signed with HMAC-SHA256.

Body (``version`` ``"1"``)::

    {"version": "1", "kind": "trigger"|"resolve"|"repeat", "status": "firing"|"resolved",
     "fingerprint", "rule", "labels", "annotations", "value", "startsAt", "endsAt",
     "dashboardURL", "id"}

Headers: ``Idempotency-Key: <id>`` (one per message: a retried message keeps it), and with a
``secret``: ``X-Inferwatch-Signature: sha256=<hex HMAC-SHA256(secret, exact body bytes)>`` plus
``X-Inferwatch-Timestamp`` (the message's creation time, Unix seconds). Receivers verify with::

    hmac.compare_digest(sig, "sha256=" + hmac.new(secret, body, "sha256").hexdigest())

>>> WebhookNotifier({"url": "https://hooks.internal/x?token=abc", "secret": "s3cret"}).describe()
'webhook → https://hooks.internal/… (signed)'
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from alerts.model import Notification
from alerts.notifiers.base import (
    _check_keys,
    _headers_field,
    _host,
    _HTTPNotifier,
    _json_bytes,
    _str_field,
    _url_field,
    _url_secrets,
    iso,
)
from core.numbers import finite

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookNotifier", "sign"]

SIGNATURE_HEADER = "X-Inferwatch-Signature"
TIMESTAMP_HEADER = "X-Inferwatch-Timestamp"
_RESERVED = {"content-type", "idempotency-key", SIGNATURE_HEADER.lower(), TIMESTAMP_HEADER.lower()}


def sign(secret: str, body: bytes) -> str:
    """The ``X-Inferwatch-Signature`` value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier(_HTTPNotifier):
    """POSTs the versioned JSON document to ``url`` with optional ``secret`` and extra ``headers``."""

    kind: ClassVar[str] = "webhook"

    def __init__(self, cfg: Mapping[str, Any], name: str = "webhook") -> None:
        _check_keys(cfg, ("url", "secret", "headers"))
        self.name = name
        self._url = _url_field(cfg, "url")
        self._signing_key = _str_field(cfg, "secret", required=False)
        self._headers = _headers_field(cfg)
        for key in self._headers:
            if key.lower() in _RESERVED:
                raise ValueError(f"headers.{key}: set by inferwatch, cannot be overridden")
        self._secret(*_url_secrets(self._url), *self._headers.values())
        if self._signing_key:
            self._secret(self._signing_key)

    def describe(self) -> str:
        parts = urlsplit(self._url)
        shown = "/…" if parts.path not in ("", "/") or parts.query else ""
        signed = " (signed)" if self._signing_key else ""
        return f"{self.kind} → {_host(self._url)}{shown}{signed}"

    def build_payload(self, n: Notification) -> dict[str, Any]:
        return {
            "version": "1",
            "kind": n.kind,
            "status": "resolved" if n.kind == "resolve" else "firing",
            "fingerprint": n.fingerprint,
            "rule": n.rule,
            "labels": dict(n.labels),
            "annotations": dict(n.annotations),
            "value": finite(n.value),
            "startsAt": iso(n.starts_at),
            "endsAt": iso(n.ends_at) if n.ends_at is not None else None,
            "dashboardURL": n.dashboard_url,
            "id": n.id,
        }

    def request(self, n: Notification) -> tuple[str, dict[str, str], bytes]:
        body = _json_bytes(self.build_payload(n))
        headers = {**self._headers, "Content-Type": "application/json", "User-Agent": "inferwatch",
                   "Idempotency-Key": n.id}
        if self._signing_key:
            headers[TIMESTAMP_HEADER] = str(int(n.created_at))
            headers[SIGNATURE_HEADER] = sign(self._signing_key, body)
        return self._url, headers, body
