"""Alert notifiers: one module per provider behind the ``Notifier`` Protocol, one table.

``NOTIFIERS`` maps a provider kind to its class; ``build(name, cfg)`` makes one from the config
section ``notifiers.<name>``. ``name`` is the kind itself (``slack``) or any receiver name whose
config says ``type: <kind>``::

    >>> build("oncall", {"type": "pagerduty", "routing_key": "R0123456789abcdef0123456789abcde"}).name
    'oncall'
"""

from __future__ import annotations

from collections.abc import Mapping

from alerts.notifiers.alertmanager import AlertmanagerNotifier
from alerts.notifiers.base import Notifier, parse_retry_after
from alerts.notifiers.pagerduty import PagerDutyNotifier
from alerts.notifiers.slack import SlackNotifier
from alerts.notifiers.webhook import WebhookNotifier

__all__ = [
    "NOTIFIERS",
    "AlertmanagerNotifier",
    "Notifier",
    "PagerDutyNotifier",
    "SlackNotifier",
    "WebhookNotifier",
    "build",
    "parse_retry_after",
]

NOTIFIERS: dict[str, type] = {
    "slack": SlackNotifier,
    "pagerduty": PagerDutyNotifier,
    "webhook": WebhookNotifier,
    "alertmanager": AlertmanagerNotifier,
}


def build(name: str, cfg: object) -> Notifier:
    """The notifier for config section ``name``; ``ValueError("field: message")`` when invalid."""
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{name}: expected a mapping, got {type(cfg).__name__}")
    kind = cfg.get("type", name)
    cls = NOTIFIERS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        field = "type" if "type" in cfg else name
        raise ValueError(f"{field}: unknown notifier {kind!r} (expected one of {', '.join(NOTIFIERS)})")
    notifier: Notifier = cls(cfg, name=name)
    return notifier
