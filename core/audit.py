"""The deployment checklist's value types: one check's verdict and one audit run. No I/O.

An audit (``exporters.audit``) walks the checklist an inference API should meet before it goes
live — DNS, TLS, HTTP headers, streaming through proxies, rate limiting, auth — and gives each
item a :class:`CheckResult`: ``pass`` / ``warn`` / ``fail`` with what it observed and, when not a
pass, a one-line fix. ``skip`` says the item could not apply (an IP address has no DNS records;
a plain-http URL has no ALPN): it is shown, never exported as a number and never fails a run.

``CHECKS`` is the checklist, in the order it is shown: the ``check`` label of
``inferwatch_audit_check`` takes these names and no others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["CHECKS", "GROUPS", "STATUS_VALUE", "AuditResult", "CheckResult", "Status", "check_order"]

Status = Literal["pass", "warn", "fail", "skip"]

#: the exported value of each status (``skip`` is not exported)
STATUS_VALUE: Final[dict[str, float]] = {"pass": 1.0, "warn": 0.5, "fail": 0.0}

#: check name -> (group, what it asks), in checklist order
CHECKS: Final[dict[str, tuple[str, str]]] = {
    "dns_resolves": ("dns", "the host name resolves to A/AAAA records"),
    "dns_ttl": ("dns", "address records' TTL at most 300 s (fast failover)"),
    "dns_cname": ("dns", "CNAME chain short and ending in addresses"),
    "dns_time": ("dns", "resolution time"),
    "tls_chain": ("tls", "certificate chain trusted and within its validity dates"),
    "tls_hostname": ("tls", "certificate covers the host name"),
    "tls_expiry": ("tls", "certificate not expiring within 30 days"),
    "tls13": ("tls", "TLS 1.3 offered"),
    "tls_legacy": ("tls", "TLS 1.0 and 1.1 refused"),
    "tls_ocsp": ("tls", "OCSP stapling"),
    "http2": ("http", "HTTP/2 negotiated (ALPN)"),
    "hsts": ("http", "Strict-Transport-Security with max-age of at least one year"),
    "content_type_options": ("http", "X-Content-Type-Options: nosniff"),
    "referrer_policy": ("http", "Referrer-Policy set"),
    "cors": ("http", "CORS never allows any origin together with credentials"),
    "cache_control": ("http", "Cache-Control: no-store on the inference endpoint"),
    "stream_incremental": ("streaming", "a streamed completion arrives token by token"),
    "stream_long": ("streaming", "a long generation is not cut by a proxy timeout"),
    "rate_limit": ("rate_limit", "a short burst meets 429 with Retry-After or rate-limit headers"),
    "auth_required": ("auth", "an unauthenticated inference request is refused"),
}

#: group -> its title on pages and in the table
GROUPS: Final[dict[str, str]] = {
    "dns": "DNS", "tls": "TLS", "http": "HTTP", "streaming": "Streaming", "rate_limit": "Rate limiting",
    "auth": "Auth",
}


def check_order(check: str) -> int:
    """Sort key putting checks in checklist order (unknown names last).

    >>> sorted(["auth_required", "x", "hsts"], key=check_order)
    ['hsts', 'auth_required', 'x']
    """
    return _ORDER.get(check, len(_ORDER))


_ORDER: Final[dict[str, int]] = {name: i for i, name in enumerate(CHECKS)}


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One checklist item's verdict. ``observed`` is what was seen ("max-age=300", "TLSv1.2
    only"); ``fix`` one line saying what to change (``None`` on a pass or a skip)."""

    check: str
    status: Status
    observed: str
    fix: str | None = None

    @property
    def value(self) -> float | None:
        """1 pass, 0.5 warn, 0 fail; ``None`` for a skip."""
        return STATUS_VALUE.get(self.status)


@dataclass(frozen=True, slots=True)
class AuditResult:
    """One run of the checklist against one endpoint (``target``: the audit's name)."""

    target: str
    url: str
    ts: float
    duration: float
    checks: tuple[CheckResult, ...]

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    def counts(self) -> dict[str, int]:
        """How many checks ended in each status, every status present (zeros included)."""
        out = {"pass": 0, "warn": 0, "fail": 0, "skip": 0}
        for c in self.checks:
            out[c.status] += 1
        return out
