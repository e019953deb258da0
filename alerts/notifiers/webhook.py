"""Generic JSON webhook, optionally signed with HMAC-SHA256.

Body (``version`` ``"1"``)::

    {"version": "1", "kind": "trigger"|"resolve"|"repeat", "status": "firing"|"resolved",
     "fingerprint", "rule", "labels", "annotations", "value", "startsAt", "endsAt",
     "dashboardURL", "id"}

Several notifications of one group due together (see ``alerts/routing.py``) go as one message::

    {"version": "1", "kind": "group", "status": "firing"|"resolved", "groupKey", "groupLabels",
     "alerts": [<one document as above per notification>], "id"}

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
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from alerts.model import Notification, SendOutcome
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

    def build_group_payload(self, ns: Sequence[Notification]) -> dict[str, Any]:
        """Several notifications of one group as one document: ``kind: group``, the group's
        key and labels, ``status`` firing while any of them fires, and each notification's own
        document under ``alerts``; ``id`` is derived from theirs (the same group message, the
        same id)."""
        return {
            "version": "1",
            "kind": "group",
            "status": "firing" if any(n.kind != "resolve" for n in ns) else "resolved",
            "groupKey": ns[0].group_key,
            "groupLabels": dict(ns[0].group_labels),
            "alerts": [self.build_payload(n) for n in ns],
            "id": hashlib.sha256(" ".join(n.id for n in ns).encode()).hexdigest()[:32],
        }

    def request(self, n: Notification) -> tuple[str, dict[str, str], bytes]:
        return self._signed(self.build_payload(n), n.id, n.created_at)

    def request_group(self, ns: Sequence[Notification]) -> tuple[str, dict[str, str], bytes]:
        doc = self.build_group_payload(ns)
        return self._signed(doc, str(doc["id"]), max(n.created_at for n in ns))

    def _signed(self, doc: Mapping[str, Any], id: str, created_at: float) -> tuple[str, dict[str, str], bytes]:
        body = _json_bytes(doc)
        headers = {**self._headers, "Content-Type": "application/json", "User-Agent": "inferwatch",
                   "Idempotency-Key": id}
        if self._signing_key:
            headers[TIMESTAMP_HEADER] = str(int(created_at))
            headers[SIGNATURE_HEADER] = sign(self._signing_key, body)
        return self._url, headers, body

    async def send_group(self, ns: Sequence[Notification], http: httpx.AsyncClient,
                         timeout: float = 10.0) -> SendOutcome:
        url, headers, body = self.request_group(ns)
        return await self._post(url, headers, body, f"group of {len(ns)}", http, timeout)
