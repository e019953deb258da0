"""The ``Notifier`` seam and what every HTTP notifier shares.

A notifier is built from its config mapping (validated in ``__init__``: ``ValueError("field:
message")``), then turns one ``Notification`` into one HTTP request::

    build_payload(n) -> dict            pure: the JSON document the provider documents
    request(n) -> (url, headers, body)  pure: what goes on the wire
    async send(n, http, timeout)        one attempt -> SendOutcome (never raises)
    describe() -> str                   one line for logs and the UI, without secrets

Outcome of one attempt (``_HTTPNotifier.send``)::

    2xx                                   ok
    429 (+ Retry-After: seconds|date)      retry, retry_after
    408, 5xx, timeout, connection error    retry
    other 4xx                              give up; error = status + short body excerpt

Secrets (webhook URL paths, routing keys, HMAC secrets, header tokens) never reach ``error``,
``describe()``, ``repr()`` or log records: every notifier registers its secrets here, error texts
are scrubbed, and a filter on the ``httpx`` and ``alerts.notifiers`` loggers scrubs records —
httpx logs the full request URL at INFO, which for Slack *is* the secret.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx

from alerts.model import Notification, SendOutcome

__all__ = ["GroupNotifier", "Notifier", "iso", "parse_retry_after", "runbook_url"]

log = logging.getLogger("alerts.notifiers")

_EXCERPT = 200
_REDACTED = "…"
_MIN_SECRET = 4  # shorter strings would mangle unrelated text when scrubbed


@runtime_checkable
class Notifier(Protocol):
    """One alert receiver (Slack, PagerDuty, a webhook …): the seam the dispatcher sends through.

    ``send`` makes one delivery attempt and never raises (a failure is a ``SendOutcome``);
    ``describe`` names it in logs and pages without any secret. The HTTP notifiers here also
    split ``send`` into pure ``build_payload``/``request`` (see the module docstring)."""

    name: str

    async def send(self, n: Notification, http: httpx.AsyncClient, timeout: float) -> SendOutcome: ...

    def describe(self) -> str: ...


@runtime_checkable
class GroupNotifier(Notifier, Protocol):
    """A notifier that can send several notifications of one group (``Notification.group_key``)
    as one message; the dispatcher uses ``send_group`` when a group has more than one due."""

    async def send_group(self, ns: Sequence[Notification], http: httpx.AsyncClient,
                         timeout: float) -> SendOutcome: ...

    def merges_groups(self) -> bool:
        """Whether ``send_group`` makes one message of a group (else items go one by one)."""
        ...


# -- secrets ---------------------------------------------------------------------------------

_SECRETS: set[str] = set()


def _register_secrets(values: Iterable[str]) -> None:
    _SECRETS.update(v for v in values if v and len(v) >= _MIN_SECRET)


def _scrub(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every registered (and ``extra``) secret replaced by ``…``; longest first."""
    secrets = sorted({*_SECRETS, *(s for s in extra if len(s) >= _MIN_SECRET)}, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


class _ScrubSecrets(logging.Filter):
    """Rewrites log records so that no registered secret is printed (httpx logs request URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            message = record.getMessage()
            clean = _scrub(message)
            if clean != message:
                record.msg, record.args = clean, None
        return True


def _install_log_filter() -> None:
    for name in ("httpx", "alerts.notifiers"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ScrubSecrets) for f in logger.filters):
            logger.addFilter(_ScrubSecrets())


_install_log_filter()


# -- config helpers --------------------------------------------------------------------------

def _check_keys(cfg: Mapping[str, Any], allowed: Iterable[str]) -> None:
    if not isinstance(cfg, Mapping):
        raise ValueError(f"config: expected a mapping, got {type(cfg).__name__}")
    known = {*allowed, "type"}
    for key in cfg:
        if key not in known:
            raise ValueError(f"{key}: unknown field (expected one of {', '.join(sorted(known - {'type'}))})")


def _str_field(cfg: Mapping[str, Any], field: str, *, required: bool = True) -> str | None:
    value = cfg.get(field)
    if value is None or value == "":
        if required:
            raise ValueError(f"{field}: required")
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected a string, got {type(value).__name__}")
    return value


def _url_field(cfg: Mapping[str, Any], field: str, *, default: str | None = None) -> str:
    value = _str_field(cfg, field, required=default is None) or default
    assert value is not None  # required above when there is no default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # the value may be a secret (a Slack webhook URL): never echo it
        raise ValueError(f"{field}: expected an absolute http(s) URL")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"{field}: invalid port") from None
    return value


def _headers_field(cfg: Mapping[str, Any], field: str = "headers") -> dict[str, str]:
    value = cfg.get(field)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{field}: expected a mapping of header name to value")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k or any(c in k for c in " :\r\n"):
            raise ValueError(f"{field}: invalid header name {k!r}")
        if not isinstance(v, str) or "\r" in v or "\n" in v:
            raise ValueError(f"{field}.{k}: expected a single-line string")
        out[k] = v
    return out


def _url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that may carry credentials: userinfo, path, query, whole URL."""
    parts = urlsplit(url)
    out = [url]
    if parts.password:
        out.append(parts.password)
    if parts.username:
        out.append(f"{parts.username}:{parts.password or ''}@")
    if parts.path not in ("", "/"):
        out.append(parts.path)
    if parts.query:
        out.append(parts.query)
    return out


def _host(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: no userinfo, path or query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


# -- payload helpers -------------------------------------------------------------------------

def iso(ts: float) -> str:
    """RFC 3339 / ISO 8601 UTC timestamp, seconds resolution: ``2024-05-01T12:00:00Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _alertname(n: Notification) -> str:
    return n.labels.get("alertname") or n.rule


def _summary(n: Notification) -> str:
    """``annotations.summary``, else ``<alertname> on <backend>`` (or just the alertname)."""
    summary = n.annotations.get("summary")
    if summary:
        return summary
    backend = n.labels.get("backend")
    return f"{_alertname(n)} on {backend}" if backend else _alertname(n)


def runbook_url(n: Notification) -> str | None:
    """The alert's ``runbook_url`` annotation when it is an absolute http(s) URL (Prometheus's
    convention), else None."""
    url = (n.annotations.get("runbook_url") or "").strip()
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def _duration(seconds: float) -> str:
    """``3h 12m``, ``4m 05s``, ``42s``: the two largest units."""
    total = max(0, int(round(seconds)))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


# -- sending ---------------------------------------------------------------------------------

def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date; None if absent/bad.

    >>> parse_retry_after("7")
    7.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0)
    10.0
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _excerpt(text: str, limit: int = _EXCERPT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _HTTPNotifier:
    """Shared ``send``/``describe``/``repr`` for notifiers that POST one request per notification.

    Subclasses set ``kind``, build their request in ``request()`` and register their secrets with
    ``_secret()`` in ``__init__``.
    """

    kind: ClassVar[str]
    name: str
    _secrets: tuple[str, ...] = ()

    def _secret(self, *values: str) -> None:
        keep = tuple(v for v in values if v and len(v) >= _MIN_SECRET)
        self._secrets = (*self._secrets, *keep)
        _register_secrets(keep)

    def build_payload(self, n: Notification) -> Any:
        raise NotImplementedError

    def request(self, n: Notification) -> tuple[str, dict[str, str], bytes]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"

    def merges_groups(self) -> bool:
        return True

    def _accepted(self, response: httpx.Response) -> bool:
        return 200 <= response.status_code < 300

    async def send(self, n: Notification, http: httpx.AsyncClient,
                   timeout: float = 10.0) -> SendOutcome:
        """One delivery attempt; never raises for network or HTTP errors."""
        url, headers, body = self.request(n)
        return await self._post(url, headers, body, n.id, http, timeout)

    async def _post(self, url: str, headers: Mapping[str, str], body: bytes, what: str, http: httpx.AsyncClient,
                    timeout: float) -> SendOutcome:
        try:
            response = await http.post(url, headers=headers, content=body, timeout=timeout)
        except httpx.TimeoutException:
            outcome = SendOutcome(ok=False, retry=True, error=f"timeout after {timeout:g}s")
        except httpx.TransportError as exc:  # connect/read/write/protocol errors
            detail = _excerpt(_scrub(str(exc), self._secrets)) or type(exc).__name__
            outcome = SendOutcome(ok=False, retry=True, error=f"{type(exc).__name__}: {detail}")
        else:
            outcome = self._outcome(response)
        if outcome.ok:
            log.debug("[alerts.notifiers] %s: delivered %s (%s)", self.describe(), what, outcome.status)
        else:
            log.debug("[alerts.notifiers] %s: %s %s: %s", self.describe(), what,
                      "will retry" if outcome.retry else "gave up", outcome.error)
        return outcome

    def _outcome(self, response: httpx.Response) -> SendOutcome:
        status = response.status_code
        if self._accepted(response):
            return SendOutcome(ok=True, status=status)
        text = _excerpt(_scrub(response.text, self._secrets))
        error = f"HTTP {status}: {text}" if text else f"HTTP {status}"
        if status == 429:
            return SendOutcome(ok=False, retry=True, status=status, error=error,
                               retry_after=parse_retry_after(response.headers.get("retry-after")))
        if status == 408 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            return SendOutcome(ok=False, retry=True, status=status, error=error, retry_after=retry_after)
        return SendOutcome(ok=False, retry=False, status=status, error=error)
