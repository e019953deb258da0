"""Slack incoming webhook: a Block Kit message with a coloured attachment.

Layout: ``text`` (the notification fallback), top-level ``blocks`` (a header with the severity
emoji and state, a section with the summary), and one ``attachments[]`` entry whose ``color``
paints the side bar and whose blocks hold the fields (backend, value, severity, started …) and a
dashboard button. Slack answers ``200 ok``; errors are 4xx with a bare word body
(``invalid_payload``, ``no_service``, ``invalid_token``).

>>> n = SlackNotifier({"webhook_url": "https://hooks.slack.com/services/T0/B0/secret"})
>>> n.describe()
'slack → https://hooks.slack.com/services/…'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from alerts.model import Notification, SendOutcome
from alerts.notifiers.base import (
    _alertname,
    _check_keys,
    _duration,
    _host,
    _HTTPNotifier,
    _json_bytes,
    _summary,
    _url_field,
    _url_secrets,
    iso,
    runbook_url,
)

__all__ = ["SlackNotifier"]

EMOJI = {"critical": "🔴", "page": "🔴", "warning": "🟠", "ticket": "🟠", "info": "🔵"}
COLOR = {"critical": "#d00000", "page": "#d00000", "warning": "#f2c744", "ticket": "#f2c744",
         "info": "#439fe0"}
RESOLVED_EMOJI = "✅"
_RANK = {"info": 0, "warning": 1, "ticket": 1, "critical": 2, "page": 2}
GROUP_LINES = 10  # alerts listed one per line in a group message
RESOLVED_COLOR = "#2eb886"

# Block Kit limits (https://api.slack.com/reference/block-kit/blocks)
_HEADER_MAX = 150
_SECTION_MAX = 3000
_FIELD_MAX = 2000


#: labels a message shows in fields of their own (or not at all)
_SHOWN = frozenset({"alertname", "severity", "backend"})


def _other_labels(n: Notification) -> str:
    """The alert's other labels (model, region, gpu, slo …) as ``k=v, …``; "" when none."""
    return ", ".join(f"{k}={v}" for k, v in sorted(n.labels.items()) if k not in _SHOWN and v)


def _esc(text: str) -> str:
    """Slack mrkdwn control characters (``& < >``) as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SlackNotifier(_HTTPNotifier):
    """Posts to a Slack incoming webhook (``webhook_url``); the URL itself is the secret."""

    kind: ClassVar[str] = "slack"

    def __init__(self, cfg: Mapping[str, Any], name: str = "slack") -> None:
        _check_keys(cfg, ("webhook_url",))
        self.name = name
        self._url = _url_field(cfg, "webhook_url")
        self._secret(*_url_secrets(self._url))

    def describe(self) -> str:
        path = urlsplit(self._url).path
        shown = "/services/…" if path.startswith("/services/") else "/…"
        return f"{self.kind} → {_host(self._url)}{shown}"

    def build_payload(self, n: Notification) -> dict[str, Any]:
        resolved = n.kind == "resolve"
        severity = n.severity
        summary = _summary(n)
        alertname = _alertname(n)
        if resolved:
            emoji, state, color = RESOLVED_EMOJI, "RESOLVED", RESOLVED_COLOR
        else:
            emoji = EMOJI.get(severity, EMOJI["warning"])
            color = COLOR.get(severity, COLOR["warning"])
            state = "STILL FIRING" if n.kind == "repeat" else "FIRING"
        title = f"{emoji} {state}: {alertname}"
        lasted = _duration(n.ends_at - n.starts_at) if resolved and n.ends_at is not None else None

        text = f"{title} — {summary}" + (f" (after {lasted})" if lasted else "")
        section = _esc(summary)
        description = n.annotations.get("description")
        if description:
            section += "\n" + _esc(description)
        if lasted:
            section += f"\n*Resolved* after {lasted}"

        fields = [
            ("Backend", n.labels.get("backend") or "—"),
            ("Value", n.value_text),
            ("Severity", severity),
            ("Started", iso(n.starts_at)),
        ]
        if resolved and n.ends_at is not None:
            fields.append(("Resolved", iso(n.ends_at)))
        others = _other_labels(n)
        if others:
            fields.append(("Labels", others))
        details: list[dict[str, Any]] = [{
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": _clip(f"*{k}*\n{_esc(v)}", _FIELD_MAX)}
                       for k, v in fields],
        }]
        buttons = [{"type": "button", "text": {"type": "plain_text", "text": label}, "url": url}
                   for label, url in (("Open dashboard", n.dashboard_url), ("Runbook", runbook_url(n))) if url]
        if buttons:
            details.append({"type": "actions", "elements": buttons})
        return {
            "text": _esc(text),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": _clip(title, _HEADER_MAX),
                                            "emoji": True}},
                {"type": "section", "text": {"type": "mrkdwn", "text": _clip(section, _SECTION_MAX)}},
            ],
            "attachments": [{"color": color, "blocks": details}],
        }

    def build_group_payload(self, ns: Sequence[Notification]) -> dict[str, Any]:
        """Several notifications of one group as one message: a header counting what fires and
        what resolved, one line per alert (the first ``GROUP_LINES``, then how many more), the
        group's labels, and one dashboard button."""
        if len(ns) == 1:
            return self.build_payload(ns[0])
        firing = [n for n in ns if n.kind != "resolve"]
        resolved = [n for n in ns if n.kind == "resolve"]
        names = sorted({_alertname(n) for n in ns})
        subject = names[0] if len(names) == 1 else f"{len(names)} rules"
        if firing:
            worst = max(firing, key=lambda n: _RANK.get(n.severity, 1)).severity
            emoji, color = EMOJI.get(worst, EMOJI["warning"]), COLOR.get(worst, COLOR["warning"])
        else:
            emoji, color = RESOLVED_EMOJI, RESOLVED_COLOR
        counts = " ".join(f"{label}:{len(part)}" for label, part in (("FIRING", firing), ("RESOLVED", resolved))
                          if part)
        title = f"{emoji} {counts} {subject}"
        lines = []
        for n in ns[:GROUP_LINES]:
            mark = RESOLVED_EMOJI if n.kind == "resolve" else EMOJI.get(n.severity, EMOJI["warning"])
            state = " (resolved)" if n.kind == "resolve" else ""
            lines.append(f"{mark} {_esc(_summary(n))}{state}")
        if len(ns) > GROUP_LINES:
            lines.append(f"…and {len(ns) - GROUP_LINES} more")
        group = ", ".join(f"{k}={v}" for k, v in ns[0].group_labels.items() if v) or "—"
        fields = [("Group", group), ("Firing", str(len(firing))), ("Resolved", str(len(resolved))),
                  ("Since", iso(min(n.starts_at for n in ns)))]
        details: list[dict[str, Any]] = [{
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": _clip(f"*{k}*\n{_esc(v)}", _FIELD_MAX)} for k, v in fields],
        }]
        links = {n.dashboard_url for n in ns if n.dashboard_url}
        if links:
            link = links.pop() if len(links) == 1 else next(iter(links)).rsplit("/backends/", 1)[0] + "/alerts"
            details.append({"type": "actions", "elements": [{
                "type": "button", "text": {"type": "plain_text", "text": "Open dashboard"}, "url": link}]})
        return {
            "text": _esc(f"{title} — " + "; ".join(_summary(n) for n in ns[:GROUP_LINES])),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": _clip(title, _HEADER_MAX), "emoji": True}},
                {"type": "section", "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), _SECTION_MAX)}},
            ],
            "attachments": [{"color": color, "blocks": details}],
        }

    def request(self, n: Notification) -> tuple[str, dict[str, str], bytes]:
        return self.request_group([n])

    def request_group(self, ns: Sequence[Notification]) -> tuple[str, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "inferwatch"}
        return self._url, headers, _json_bytes(self.build_group_payload(ns))

    async def send_group(self, ns: Sequence[Notification], http: httpx.AsyncClient,
                         timeout: float = 10.0) -> SendOutcome:
        url, headers, body = self.request_group(ns)
        return await self._post(url, headers, body, f"group of {len(ns)}", http, timeout)
