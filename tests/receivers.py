"""Loopback stand-ins for the services alerts are sent to: Slack, PagerDuty, a webhook, Alertmanager.

Each receiver is a tiny asyncio HTTP/1.1 server on ``127.0.0.1`` that records every request,
validates its payload against the provider's documented schema (checks written out by hand:
required fields, types, enums, lengths), and answers like the real service::

    async with slack_receiver() as slack:           # also pagerduty_ / webhook_ / alertmanager_receiver
        outcome = await SlackNotifier({"webhook_url": slack.url}).send(n, http)
        assert slack.payloads == [...]              # accepted, valid JSON bodies
        assert slack.invalid == []                  # requests that failed validation (.errors says why)

Fail switches, honoured per request: ``fail(500)``, ``fail(429, retry_after="7")``, ``delay = 2.0``
(slow answer), ``await set_down(True)`` (listener closed: connection refused; ``False`` reopens
the same port), ``heal()``. Every request lands in ``.requests``; valid accepted ones in
``.received``, invalid ones in ``.invalid``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeGuard

__all__ = [
    "PAGERDUTY_SEVERITIES",
    "Receiver",
    "Received",
    "alertmanager_receiver",
    "check_alertmanager",
    "check_pagerduty",
    "check_slack",
    "check_webhook",
    "pagerduty_receiver",
    "slack_receiver",
    "webhook_receiver",
]

_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
_MAX_BODY = 1 << 20


@dataclass
class Received:
    """One request as the stand-in saw it; ``errors`` lists why its payload is invalid."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: Any = None
    errors: list[str] = field(default_factory=list)


Answer = tuple[int, dict[str, str], bytes]
Check = Callable[[Received], list[str]]


class Receiver:
    """A recording, validating loopback HTTP server; see the module docstring."""

    def __init__(self, name: str, check: Check, answer: Callable[[Received], Answer],
                 fail_body: Callable[[int], bytes], path: str = "/") -> None:
        self.name = name
        self._check = check
        self._answer = answer
        self._fail_body = fail_body
        self.path = path
        self.host = "127.0.0.1"
        self.port = 0
        self.requests: list[Received] = []
        self.received: list[Received] = []
        self.invalid: list[Received] = []
        self.status: int | None = None
        self.retry_after: str | None = None
        self.delay = 0.0
        self.down = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL to configure the notifier with (the webhook URL, the enqueue URL …)."""
        return self.base_url + (self.path if self.path != "/" else "")

    @property
    def payloads(self) -> list[Any]:
        return [r.json for r in self.received]

    # -- switches --------------------------------------------------------------------------
    def fail(self, status: int, retry_after: str | None = None) -> None:
        self.status, self.retry_after = status, retry_after

    def heal(self) -> None:
        self.status, self.retry_after, self.delay = None, None, 0.0

    async def set_down(self, down: bool) -> None:
        """Close the listener (connections refused) or listen again on the same port."""
        self.down = down
        if down:
            if self._server is not None:
                self._server.close()
                self._server = None
            for writer in list(self._writers):
                writer.close()
        elif self._server is None:
            await self._listen()

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await self._listen()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        try:
            while await self._serve_one(reader, writer):
                pass
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            pass  # stopped by stop()/set_down(), or the client went away
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        length = int(headers.get("content-length", "0") or 0)
        if length > _MAX_BODY:
            return False
        body = await reader.readexactly(length) if length else b""
        path, _, query = target.partition("?")
        req = Received(method, path, query, headers, body)
        with contextlib.suppress(ValueError):
            req.json = json.loads(body) if body else None
        self.requests.append(req)
        if self.delay:
            await asyncio.sleep(self.delay)
        req.errors = self._check(req)
        extra: dict[str, str] = {}
        if req.errors:
            self.invalid.append(req)
            status, extra, payload = self._answer(req)
        elif self.status is not None:
            status, payload = self.status, self._fail_body(self.status)
            if self.retry_after is not None:
                extra["Retry-After"] = self.retry_after
        else:
            self.received.append(req)
            status, extra, payload = self._answer(req)
        ctype = extra.pop("Content-Type", "application/json" if payload[:1] in (b"{", b"[", b'"')
                          else "text/plain; charset=utf-8")
        head_out = f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\nContent-Type: {ctype}\r\n"
        head_out += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
        head_out += f"Content-Length: {len(payload)}\r\n\r\n"
        writer.write(head_out.encode() + payload)
        await writer.drain()
        return headers.get("connection", "").lower() != "close"


@contextlib.asynccontextmanager
async def _running(receiver: Receiver) -> AsyncIterator[Receiver]:
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


# -- shared checks ---------------------------------------------------------------------------

def _is_str(v: Any, *, empty: bool = False) -> TypeGuard[str]:
    return isinstance(v, str) and (empty or v != "")


def _check_method_json(req: Received, path: str | None = None) -> list[str]:
    errors: list[str] = []
    if req.method != "POST":
        errors.append(f"method: expected POST, got {req.method}")
    if path is not None and req.path != path:
        errors.append(f"path: expected {path}, got {req.path}")
    if not req.headers.get("content-type", "").startswith("application/json"):
        errors.append(f"content-type: expected application/json, got {req.headers.get('content-type')!r}")
    if req.json is None:
        errors.append("body: not JSON")
    return errors


def _check_time(v: Any, where: str) -> list[str]:
    if not isinstance(v, str):
        return [f"{where}: expected an ISO 8601 string"]
    try:
        parsed = datetime.fromisoformat(v)
    except ValueError:
        return [f"{where}: not ISO 8601: {v!r}"]
    if parsed.tzinfo is None:
        return [f"{where}: no time zone: {v!r}"]
    return []


def _check_str_map(v: Any, where: str) -> list[str]:
    if not isinstance(v, dict):
        return [f"{where}: expected an object"]
    return [f"{where}.{k}: expected a string value" for k, x in v.items() if not isinstance(x, str)]


# -- Slack -----------------------------------------------------------------------------------

SLACK_PATH = re.compile(r"^/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+$")
_SLACK_TOP = {"text", "blocks", "attachments", "username", "icon_emoji", "icon_url", "channel",
              "mrkdwn", "thread_ts", "unfurl_links", "unfurl_media"}
_SLACK_COLOR = re.compile(r"^(#?[0-9a-fA-F]{6}|good|warning|danger)$")


def _slack_text(obj: Any, where: str, limit: int, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{where}: expected a text object"]
    errors = []
    kind = obj.get("type")
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if kind not in allowed:
        errors.append(f"{where}.type: expected one of {allowed}, got {kind!r}")
    text = obj.get("text")
    if not _is_str(text):
        errors.append(f"{where}.text: expected a non-empty string")
    elif len(text) > limit:
        errors.append(f"{where}.text: longer than {limit} characters")
    if "emoji" in obj and (kind != "plain_text" or not isinstance(obj["emoji"], bool)):
        errors.append(f"{where}.emoji: only a boolean on plain_text")
    if "verbatim" in obj and (kind != "mrkdwn" or not isinstance(obj["verbatim"], bool)):
        errors.append(f"{where}.verbatim: only a boolean on mrkdwn")
    unknown = set(obj) - {"type", "text", "emoji", "verbatim"}
    if unknown:
        errors.append(f"{where}: unknown keys {sorted(unknown)}")
    return errors


def _slack_element(el: Any, where: str) -> list[str]:
    if not isinstance(el, dict) or el.get("type") != "button":
        return [f"{where}: only button elements are checked here, got {el!r}"]
    errors = _slack_text(el.get("text"), f"{where}.text", 75, plain_only=True)
    if "url" in el:
        url = el["url"]
        if not _is_str(url) or len(url) > 3000 or not url.startswith(("http://", "https://")):
            errors.append(f"{where}.url: expected an http(s) URL of at most 3000 characters")
    if "action_id" in el and (not _is_str(el["action_id"]) or len(el["action_id"]) > 255):
        errors.append(f"{where}.action_id: at most 255 characters")
    if "style" in el and el["style"] not in ("primary", "danger"):
        errors.append(f"{where}.style: expected primary or danger")
    unknown = set(el) - {"type", "text", "url", "action_id", "value", "style", "confirm",
                         "accessibility_label"}
    if unknown:
        errors.append(f"{where}: unknown keys {sorted(unknown)}")
    return errors


def _slack_blocks(blocks: Any, where: str) -> list[str]:
    if not isinstance(blocks, list) or not blocks:
        return [f"{where}: expected a non-empty list"]
    if len(blocks) > 50:
        return [f"{where}: more than 50 blocks"]
    errors: list[str] = []
    for i, block in enumerate(blocks):
        at = f"{where}[{i}]"
        if not isinstance(block, dict):
            errors.append(f"{at}: expected an object")
            continue
        if "block_id" in block and (not _is_str(block["block_id"]) or len(block["block_id"]) > 255):
            errors.append(f"{at}.block_id: at most 255 characters")
        kind = block.get("type")
        if kind == "header":
            errors += _slack_text(block.get("text"), f"{at}.text", 150, plain_only=True)
            extra = set(block) - {"type", "text", "block_id"}
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"{at}: a section needs text or fields")
            if "text" in block:
                errors += _slack_text(block["text"], f"{at}.text", 3000)
            if "fields" in block:
                fields = block["fields"]
                if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
                    errors.append(f"{at}.fields: expected 1 to 10 text objects")
                else:
                    for j, f in enumerate(fields):
                        errors += _slack_text(f, f"{at}.fields[{j}]", 2000)
            extra = set(block) - {"type", "text", "fields", "accessory", "block_id"}
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                errors.append(f"{at}.elements: expected 1 to 25 elements")
            else:
                for j, el in enumerate(elements):
                    errors += _slack_element(el, f"{at}.elements[{j}]")
            extra = set(block) - {"type", "elements", "block_id"}
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                errors.append(f"{at}.elements: expected 1 to 10 elements")
            else:
                for j, el in enumerate(elements):
                    errors += _slack_text(el, f"{at}.elements[{j}]", 3000)
            extra = set(block) - {"type", "elements", "block_id"}
        elif kind == "divider":
            extra = set(block) - {"type", "block_id"}
        else:
            errors.append(f"{at}.type: unknown block type {kind!r}")
            continue
        if extra:
            errors.append(f"{at}: unknown keys {sorted(extra)}")
    return errors


def check_slack(req: Received) -> list[str]:
    """Slack incoming-webhook message rules (Block Kit limits, attachment colours)."""
    errors = _check_method_json(req)
    if not SLACK_PATH.match(req.path):
        errors.append(f"path: not a webhook path: {req.path}")
    msg = req.json
    if not isinstance(msg, dict):
        return errors + ["body: expected a JSON object"]
    unknown = set(msg) - _SLACK_TOP
    if unknown:
        errors.append(f"body: unknown keys {sorted(unknown)}")
    if not _is_str(msg.get("text")) and not msg.get("blocks"):
        errors.append("no_text: a message needs text or blocks")
    if "text" in msg and not _is_str(msg["text"]):
        errors.append("text: expected a non-empty string")
    if "blocks" in msg:
        errors += _slack_blocks(msg["blocks"], "blocks")
    if "attachments" in msg:
        atts = msg["attachments"]
        if not isinstance(atts, list) or not atts:
            errors.append("attachments: expected a non-empty list")
        else:
            for i, att in enumerate(atts):
                at = f"attachments[{i}]"
                if not isinstance(att, dict):
                    errors.append(f"{at}: expected an object")
                    continue
                if "color" in att and not (_is_str(att["color"]) and _SLACK_COLOR.match(att["color"])):
                    errors.append(f"{at}.color: expected #rrggbb, good, warning or danger")
                if not any(k in att for k in ("blocks", "text", "fields", "fallback")):
                    errors.append(f"{at}: no content")
                if "blocks" in att:
                    errors += _slack_blocks(att["blocks"], f"{at}.blocks")
    return errors


def _slack_answer(req: Received) -> Answer:
    if any(e.startswith("path") for e in req.errors):
        return 404, {}, b"no_service"
    if any(e.startswith("no_text") for e in req.errors):
        return 400, {}, b"no_text"
    if req.errors:
        return 400, {}, b"invalid_payload"
    return 200, {}, b"ok"


def slack_receiver(path: str = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                   ) -> contextlib.AbstractAsyncContextManager[Receiver]:
    """A Slack incoming webhook; ``.url`` is the full webhook URL (``path`` is its secret part)."""
    fail = {400: b"invalid_payload", 403: b"invalid_token", 404: b"no_service",
            429: b"rate_limited", 500: b"internal_error"}
    return _running(Receiver("slack", check_slack, _slack_answer,
                             lambda s: fail.get(s, b"service_unavailable"), path))


# -- PagerDuty -------------------------------------------------------------------------------

PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")
_PD_TOP = {"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client",
           "client_url"}
_PD_PAYLOAD = {"summary", "source", "severity", "timestamp", "component", "group", "class",
               "custom_details"}


def check_pagerduty(req: Received) -> list[str]:
    """Events API v2 event rules (``/v2/enqueue``)."""
    errors = _check_method_json(req, "/v2/enqueue")
    ev = req.json
    if not isinstance(ev, dict):
        return errors + ["body: expected a JSON object"]
    unknown = set(ev) - _PD_TOP
    if unknown:
        errors.append(f"body: unknown keys {sorted(unknown)}")
    key = ev.get("routing_key")
    if not _is_str(key) or len(key) != 32:
        errors.append("routing_key: expected a 32-character integration key")
    action = ev.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append(f"event_action: expected trigger, acknowledge or resolve, got {action!r}")
    if "dedup_key" in ev:
        dk = ev["dedup_key"]
        if not _is_str(dk) or len(dk) > 255:
            errors.append("dedup_key: expected a string of at most 255 characters")
    elif action in ("acknowledge", "resolve"):
        errors.append(f"dedup_key: required for {action}")
    if action == "trigger":
        p = ev.get("payload")
        if not isinstance(p, dict):
            errors.append("payload: required object for trigger")
        else:
            unknown = set(p) - _PD_PAYLOAD
            if unknown:
                errors.append(f"payload: unknown keys {sorted(unknown)}")
            summary = p.get("summary")
            if not _is_str(summary) or len(summary) > 1024:
                errors.append("payload.summary: expected 1 to 1024 characters")
            source = p.get("source")
            if not _is_str(source) or len(source) > 255:
                errors.append("payload.source: expected 1 to 255 characters")
            if p.get("severity") not in PAGERDUTY_SEVERITIES:
                errors.append(f"payload.severity: expected one of {PAGERDUTY_SEVERITIES}, "
                              f"got {p.get('severity')!r}")
            if "timestamp" in p:
                errors += _check_time(p["timestamp"], "payload.timestamp")
            for k in ("component", "group", "class"):
                if k in p and not _is_str(p[k]):
                    errors.append(f"payload.{k}: expected a string")
            if "custom_details" in p and not isinstance(p["custom_details"], dict | str):
                errors.append("payload.custom_details: expected an object")
    for name, required in (("links", "href"), ("images", "src")):
        if name in ev:
            items = ev[name]
            if not isinstance(items, list) or not all(isinstance(x, dict) and _is_str(x.get(required))
                                                      for x in items):
                errors.append(f"{name}: expected a list of objects with {required}")
            elif name == "links" and not all(_is_str(x.get("text", "t")) for x in items):
                errors.append("links.text: expected a string")
    for k in ("client", "client_url"):
        if k in ev and not _is_str(ev[k]):
            errors.append(f"{k}: expected a string")
    return errors


def _pagerduty_answer(req: Received) -> Answer:
    if req.errors:
        body = {"status": "invalid event", "message": "Event object is invalid", "errors": req.errors}
        return 400, {}, json.dumps(body).encode()
    ev = req.json
    dedup = ev.get("dedup_key") or hashlib.sha256(req.body).hexdigest()[:32]
    return 202, {}, json.dumps({"status": "success", "message": "Event processed",
                                "dedup_key": dedup}).encode()


def pagerduty_receiver() -> contextlib.AbstractAsyncContextManager[Receiver]:
    """The Events API v2 enqueue endpoint; ``.url`` ends in ``/v2/enqueue``."""
    def fail(status: int) -> bytes:
        if status == 400:
            return json.dumps({"status": "invalid event", "message": "Event object is invalid",
                               "errors": ["simulated"]}).encode()
        if status == 429:
            return json.dumps({"status": "throttle event", "message": "Requests for this service "
                               "are arriving too quickly. Please retry later."}).encode()
        return b"Internal Server Error"

    return _running(Receiver("pagerduty", check_pagerduty, _pagerduty_answer, fail, "/v2/enqueue"))


# -- generic webhook -------------------------------------------------------------------------

_WEBHOOK_KEYS = {"version", "kind", "status", "fingerprint", "rule", "labels", "annotations",
                 "value", "startsAt", "endsAt", "dashboardURL", "id"}


def check_webhook(req: Received, secret: str | None = None) -> list[str]:
    """inferwatch webhook v1 document; with ``secret``, the HMAC signature must verify."""
    errors = _check_method_json(req, "/hook")
    doc = req.json
    if secret is not None:
        sig = req.headers.get("x-inferwatch-signature", "")
        want = "sha256=" + hmac.new(secret.encode(), req.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(sig, want):
            errors.append("signature: X-Inferwatch-Signature does not verify")
        if not req.headers.get("x-inferwatch-timestamp", "").isdigit():
            errors.append("timestamp: X-Inferwatch-Timestamp missing or not Unix seconds")
    if not isinstance(doc, dict):
        return errors + ["body: expected a JSON object"]
    if doc.get("kind") == "group":
        return errors + _check_webhook_group(doc, req.headers.get("idempotency-key", ""))
    return errors + _check_webhook_doc(doc, req.headers.get("idempotency-key", ""))


_WEBHOOK_GROUP_KEYS = {"version", "kind", "status", "groupKey", "groupLabels", "alerts", "id"}


def _check_webhook_group(doc: dict[str, Any], key: str | None) -> list[str]:
    """A group message: its own keys, then every alert document as a single message's (without
    the Idempotency-Key, which names the group message)."""
    errors = []
    if set(doc) != _WEBHOOK_GROUP_KEYS:
        errors.append(f"body: keys {sorted(doc)} != {sorted(_WEBHOOK_GROUP_KEYS)}")
    if doc.get("version") != "1":
        errors.append("version: expected '1'")
    alerts = doc.get("alerts")
    if not isinstance(alerts, list) or len(alerts) < 2:
        return errors + ["alerts: expected a list of at least two documents"]
    want = "firing" if any(a.get("kind") != "resolve" for a in alerts if isinstance(a, dict)) else "resolved"
    if doc.get("status") != want:
        errors.append(f"status: {doc.get('status')!r}, expected {want!r}")
    if not _is_str(doc.get("groupKey")):
        errors.append("groupKey: expected a non-empty string")
    errors += _check_str_map(doc.get("groupLabels"), "groupLabels")
    for i, a in enumerate(alerts):
        if not isinstance(a, dict):
            errors.append(f"alerts[{i}]: expected an object")
            continue
        errors += [f"alerts[{i}].{e}" for e in _check_webhook_doc(a, None)]
    if key != doc.get("id"):
        errors.append("Idempotency-Key: header does not equal id")
    return errors


def _check_webhook_doc(doc: dict[str, Any], key: str | None) -> list[str]:
    errors: list[str] = []
    if set(doc) != _WEBHOOK_KEYS:
        errors.append(f"body: keys {sorted(doc)} != {sorted(_WEBHOOK_KEYS)}")
    if doc.get("version") != "1":
        errors.append("version: expected '1'")
    kind = doc.get("kind")
    if kind not in ("trigger", "resolve", "repeat"):
        errors.append(f"kind: unexpected {kind!r}")
    status = doc.get("status")
    if status != ("resolved" if kind == "resolve" else "firing"):
        errors.append(f"status: {status!r} does not match kind {kind!r}")
    if not (_is_str(doc.get("fingerprint")) and re.fullmatch(r"[0-9a-f]{16}", doc["fingerprint"])):
        errors.append("fingerprint: expected 16 hex digits")
    for k in ("rule", "id"):
        if not _is_str(doc.get(k)):
            errors.append(f"{k}: expected a non-empty string")
    errors += _check_str_map(doc.get("labels"), "labels")
    errors += _check_str_map(doc.get("annotations"), "annotations")
    value = doc.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        errors.append("value: expected a number or null")
    errors += _check_time(doc.get("startsAt"), "startsAt")
    if doc.get("endsAt") is not None:
        errors += _check_time(doc["endsAt"], "endsAt")
    elif kind == "resolve":
        errors.append("endsAt: required on a resolve")
    if doc.get("dashboardURL") is not None and not _is_str(doc["dashboardURL"]):
        errors.append("dashboardURL: expected a string or null")
    if key is not None and key != doc.get("id"):
        errors.append("Idempotency-Key: header does not equal id")
    elif key is None and not _is_str(doc.get("id")):
        errors.append("id: expected a non-empty string")
    return errors


def _webhook_answer(req: Received) -> Answer:
    if any(e.startswith("signature") for e in req.errors):
        return 401, {}, json.dumps({"error": "bad signature"}).encode()
    if req.errors:
        return 400, {}, json.dumps({"error": "; ".join(req.errors)}).encode()
    return 200, {}, b'{"ok":true}'


def webhook_receiver(secret: str | None = None) -> contextlib.AbstractAsyncContextManager[Receiver]:
    """A generic webhook at ``.url`` (``/hook``) verifying signatures made with ``secret``."""
    return _running(Receiver("webhook", lambda r: check_webhook(r, secret), _webhook_answer,
                             lambda s: b"upstream failure", "/hook"))


# -- Alertmanager ----------------------------------------------------------------------------

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_AM_KEYS = {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}


def check_alertmanager(req: Received) -> list[str]:
    """``postableAlerts`` of Alertmanager's API v2 (``api/v2/openapi.yaml``)."""
    errors = _check_method_json(req, "/api/v2/alerts")
    alerts = req.json
    if not isinstance(alerts, list) or not alerts:
        return errors + ["body: expected a non-empty list of alerts"]
    for i, a in enumerate(alerts):
        at = f"[{i}]"
        if not isinstance(a, dict):
            errors.append(f"{at}: expected an object")
            continue
        unknown = set(a) - _AM_KEYS
        if unknown:
            errors.append(f"{at}: unknown keys {sorted(unknown)}")
        labels = a.get("labels")
        if not isinstance(labels, dict) or not labels:
            errors.append(f"{at}.labels: at least one label pair required")
        else:
            errors += _check_str_map(labels, f"{at}.labels")
            errors += [f"{at}.labels: invalid label name {k!r}" for k in labels
                       if not _LABEL_NAME.match(k)]
            if "alertname" not in labels:
                errors.append(f"{at}.labels.alertname: required")
        if "annotations" in a:
            errors += _check_str_map(a["annotations"], f"{at}.annotations")
        for k in ("startsAt", "endsAt"):
            if k in a:
                errors += _check_time(a[k], f"{at}.{k}")
        if "generatorURL" in a and not isinstance(a["generatorURL"], str):
            errors.append(f"{at}.generatorURL: expected a string (uri)")
        try:
            if "startsAt" in a and "endsAt" in a and (
                    datetime.fromisoformat(a["endsAt"]) < datetime.fromisoformat(a["startsAt"])):
                errors.append(f"{at}: end time must not be before start time")
        except (TypeError, ValueError):
            pass
    return errors


def _alertmanager_answer(req: Received) -> Answer:
    if req.errors:
        return 400, {}, json.dumps("; ".join(req.errors)).encode()
    return 200, {}, b""


def alertmanager_receiver() -> contextlib.AbstractAsyncContextManager[Receiver]:
    """An Alertmanager; ``.url`` is its base URL (alerts go to ``/api/v2/alerts``)."""
    return _running(Receiver("alertmanager", check_alertmanager, _alertmanager_answer,
                             lambda s: json.dumps("simulated failure").encode(), "/"))
