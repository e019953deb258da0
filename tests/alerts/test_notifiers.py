"""Notifiers: exact payloads, delivery against validating stand-ins, failure outcomes, secrets."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

import httpx
import pytest

from alerts.model import Notification, fingerprint
from alerts.notifiers import (
    NOTIFIERS,
    AlertmanagerNotifier,
    Notifier,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
    build,
    parse_retry_after,
)
from alerts.notifiers.webhook import sign
from tests.receivers import (
    Received,
    Receiver,
    alertmanager_receiver,
    check_pagerduty,
    pagerduty_receiver,
    slack_receiver,
    webhook_receiver,
)

T0 = 1714564800.0  # 2024-05-01T12:00:00Z
LABELS = {"alertname": "HighTTFT", "backend": "vllm-a", "severity": "critical", "engine": "vllm"}
ANNOTATIONS = {"summary": "TTFT p95 above 2s on vllm-a", "description": "p95 TTFT 3.2s over 5m"}
FP = fingerprint(LABELS)
DASH = "http://inferwatch.local/backends/vllm-a"
ROUTING_KEY = "R0123456789abcdef0123456789abcde"  # 32 characters, like a real integration key
SECRET = "hmac-shared-secret-0042"
SLACK_PATH = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
SLACK_URL = "https://hooks.slack.com" + SLACK_PATH


def notification(kind: str = "trigger", **over: Any) -> Notification:
    resolve = kind == "resolve"
    n = Notification(
        id="0123456789abcdef0123456789abcdef", receiver="slack", kind=kind,  # type: ignore[arg-type]
        fingerprint=FP, rule="high_ttft", labels=LABELS, annotations=ANNOTATIONS, value=3.2,
        starts_at=T0, ends_at=T0 + 754 if resolve else None,
        created_at=T0 + 754 if resolve else T0 + 5, dashboard_url=None if resolve else DASH, unit="seconds",
    )
    return replace(n, **over)


def config(kind: str, url: str) -> dict[str, Any]:
    configs: dict[str, dict[str, Any]] = {
        "slack": {"webhook_url": url},
        "pagerduty": {"routing_key": ROUTING_KEY, "url": url},
        "webhook": {"url": url, "secret": SECRET, "headers": {"Authorization": "Bearer tok-123456"}},
        "alertmanager": {"url": url},
    }
    return configs[kind]


RECEIVERS: dict[str, Callable[[], AbstractAsyncContextManager[Receiver]]] = {
    "slack": slack_receiver,
    "pagerduty": pagerduty_receiver,
    "webhook": lambda: webhook_receiver(SECRET),
    "alertmanager": alertmanager_receiver,
}
KINDS = list(RECEIVERS)
SECRETS = {
    "slack": [SLACK_PATH, "XXXXXXXXXXXXXXXXXXXXXXXX"],
    "pagerduty": [ROUTING_KEY],
    "webhook": [SECRET, "tok-123456", "/hook"],
    "alertmanager": [],
}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


# -- exact payloads --------------------------------------------------------------------------

SLACK_TRIGGER = {
    "text": "🔴 FIRING: HighTTFT — TTFT p95 above 2s on vllm-a",
    "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "🔴 FIRING: HighTTFT", "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": "TTFT p95 above 2s on vllm-a\np95 TTFT 3.2s over 5m"}},
    ],
    "attachments": [{"color": "#d00000", "blocks": [
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": "*Backend*\nvllm-a"},
            {"type": "mrkdwn", "text": "*Value*\n3.20 s"},
            {"type": "mrkdwn", "text": "*Severity*\ncritical"},
            {"type": "mrkdwn", "text": "*Started*\n2024-05-01T12:00:00Z"},
            {"type": "mrkdwn", "text": "*Labels*\nengine=vllm"},
        ]},
        {"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open dashboard"}, "url": DASH},
        ]},
    ]}],
}
SLACK_RESOLVE = {
    "text": "✅ RESOLVED: HighTTFT — TTFT p95 above 2s on vllm-a (after 12m 34s)",
    "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "✅ RESOLVED: HighTTFT", "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": (
            "TTFT p95 above 2s on vllm-a\np95 TTFT 3.2s over 5m\n*Resolved* after 12m 34s")}},
    ],
    "attachments": [{"color": "#2eb886", "blocks": [
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": "*Backend*\nvllm-a"},
            {"type": "mrkdwn", "text": "*Value*\n3.20 s"},
            {"type": "mrkdwn", "text": "*Severity*\ncritical"},
            {"type": "mrkdwn", "text": "*Started*\n2024-05-01T12:00:00Z"},
            {"type": "mrkdwn", "text": "*Resolved*\n2024-05-01T12:12:34Z"},
            {"type": "mrkdwn", "text": "*Labels*\nengine=vllm"},
        ]},
    ]}],
}
PAGERDUTY_TRIGGER = {
    "routing_key": ROUTING_KEY,
    "event_action": "trigger",
    "dedup_key": FP,
    "payload": {
        "summary": "TTFT p95 above 2s on vllm-a",
        "severity": "critical",
        "source": "vllm-a",
        "timestamp": "2024-05-01T12:00:00Z",
        "component": "vllm",
        "class": "high_ttft",
        "custom_details": {"labels": LABELS, "annotations": ANNOTATIONS, "value": 3.2, "value_text": "3.20 s"},
    },
    "links": [{"href": DASH, "text": "inferwatch dashboard"}],
    "client": "inferwatch",
    "client_url": DASH,
}
PAGERDUTY_RESOLVE = {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": FP}
WEBHOOK_TRIGGER = {
    "version": "1", "kind": "trigger", "status": "firing", "fingerprint": FP, "rule": "high_ttft",
    "labels": LABELS, "annotations": ANNOTATIONS, "value": 3.2, "startsAt": "2024-05-01T12:00:00Z",
    "endsAt": None, "dashboardURL": DASH, "id": "0123456789abcdef0123456789abcdef",
}
WEBHOOK_RESOLVE = {
    **WEBHOOK_TRIGGER, "kind": "resolve", "status": "resolved", "endsAt": "2024-05-01T12:12:34Z",
    "dashboardURL": None,
}
# endsAt of a firing alert: created (12:00:05) + 4 resend intervals (1m), as Prometheus sends it
ALERTMANAGER_TRIGGER = [{"labels": LABELS, "annotations": ANNOTATIONS,
                         "startsAt": "2024-05-01T12:00:00Z", "endsAt": "2024-05-01T12:04:05Z", "generatorURL": DASH}]
ALERTMANAGER_RESOLVE = [{"labels": LABELS, "annotations": ANNOTATIONS,
                         "startsAt": "2024-05-01T12:00:00Z", "endsAt": "2024-05-01T12:12:34Z",
                         "generatorURL": ""}]


@pytest.mark.parametrize(("kind", "event", "expected"), [
    ("slack", "trigger", SLACK_TRIGGER),
    ("slack", "resolve", SLACK_RESOLVE),
    ("pagerduty", "trigger", PAGERDUTY_TRIGGER),
    ("pagerduty", "resolve", PAGERDUTY_RESOLVE),
    ("webhook", "trigger", WEBHOOK_TRIGGER),
    ("webhook", "resolve", WEBHOOK_RESOLVE),
    ("alertmanager", "trigger", ALERTMANAGER_TRIGGER),
    ("alertmanager", "resolve", ALERTMANAGER_RESOLVE),
])
def test_build_payload_is_exactly_the_documented_shape(kind: str, event: str, expected: Any) -> None:
    url = {"slack": SLACK_URL, "pagerduty": "https://events.pagerduty.com/v2/enqueue",
           "webhook": "https://hooks.internal/hook", "alertmanager": "http://alertmanager:9093"}[kind]
    notifier = build(kind, config(kind, url))
    assert notifier.build_payload(notification(event)) == expected
    _, _, body = notifier.request(notification(event))
    assert json.loads(body) == expected  # the wire body is the payload


def test_alertmanager_endsat_follows_the_resend_interval() -> None:
    """A firing alert's endsAt lies four resend intervals ahead of its post (Prometheus's
    ValidUntil); ``resend_interval: 0`` sends none (Alertmanager's resolve_timeout then applies);
    a resolve's endsAt is the resolve time either way."""
    every_30s = build("alertmanager", {"url": "http://am:9093", "resend_interval": "30s"})
    assert every_30s.resend_interval == 30.0  # type: ignore[attr-defined]
    assert every_30s.build_payload(notification("repeat"))[0]["endsAt"] == "2024-05-01T12:02:05Z"
    once = build("alertmanager", {"url": "http://am:9093", "resend_interval": 0})
    assert "endsAt" not in once.build_payload(notification("trigger"))[0]
    assert once.build_payload(notification("resolve"))[0]["endsAt"] == "2024-05-01T12:12:34Z"


def test_messages_show_units_other_labels_and_runbook_links() -> None:
    """The value in the rule's unit, model/region labels, and a runbook_url annotation as a
    Slack button and a PagerDuty link (a non-URL runbook is not linked)."""
    n = notification(labels={**LABELS, "model": "llama-3.1-8b", "region": "eu"}, value=0.0123, unit="ratio",
                     annotations={**ANNOTATIONS, "runbook_url": "https://runbooks.internal/ttft"})
    slack = build("slack", config("slack", SLACK_URL)).build_payload(n)
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in slack["attachments"][0]["blocks"][0]["fields"]}
    assert fields["*Value*"] == "1.2 %"
    assert fields["*Labels*"] == "engine=vllm, model=llama-3.1-8b, region=eu"
    buttons = {e["text"]["text"]: e["url"] for e in slack["attachments"][0]["blocks"][1]["elements"]}
    assert buttons == {"Open dashboard": DASH, "Runbook": "https://runbooks.internal/ttft"}
    pd = build("pagerduty", config("pagerduty", "https://events.pagerduty.com/v2/enqueue")).build_payload(n)
    assert pd["links"] == [{"href": DASH, "text": "inferwatch dashboard"},
                           {"href": "https://runbooks.internal/ttft", "text": "Runbook"}]
    assert pd["client_url"] == DASH and pd["payload"]["custom_details"]["value_text"] == "1.2 %"
    plain = replace(n, annotations={**ANNOTATIONS, "runbook_url": "see the wiki"}, value=153.0, unit="")
    assert "Runbook" not in str(build("slack", config("slack", SLACK_URL)).build_payload(plain))
    assert build("slack", config("slack", SLACK_URL)).build_payload(plain)["attachments"][0]["blocks"][0][
        "fields"][1]["text"] == "*Value*\n153"


def test_pagerduty_incident_per_group_opens_one_and_resolves_when_the_group_is_clear() -> None:
    pd = build("pagerduty", {"routing_key": ROUTING_KEY, "incident_per": "group"})
    group = {"group_key": 'pagerduty{alertname=\'HighTTFT\'}', "group_labels": {"alertname": "HighTTFT"}}
    a = notification(**group, group_firing=2)
    b = notification(**group, group_firing=2, labels={**LABELS, "backend": "vllm-b"})
    trigger = pd.build_group_payload([a, b])  # type: ignore[attr-defined]
    assert trigger["event_action"] == "trigger" and trigger["payload"]["summary"] == \
        "2 alerts firing: HighTTFT (alertname=HighTTFT)"
    # one of two resolves: the incident stays open, nothing is sent
    assert pd.build_group_payload([notification("resolve", **group, group_firing=1)]) is None  # type: ignore[attr-defined]
    last = pd.build_group_payload([notification("resolve", **group, group_firing=0)])  # type: ignore[attr-defined]
    assert last == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": trigger["dedup_key"]}
    with pytest.raises(ValueError, match="incident_per: expected alert or group"):
        build("pagerduty", {"routing_key": ROUTING_KEY, "incident_per": "service"})


def test_request_is_pure_and_carries_url_and_headers() -> None:
    n = notification()
    webhook = WebhookNotifier(config("webhook", "https://hooks.internal/hook"))
    assert webhook.request(n) == webhook.request(n)
    url, headers, body = webhook.request(n)
    assert url == "https://hooks.internal/hook"
    assert headers["Idempotency-Key"] == n.id
    assert headers["X-Inferwatch-Timestamp"] == str(int(n.created_at))
    assert headers["X-Inferwatch-Signature"] == sign(SECRET, body)
    assert headers["Authorization"] == "Bearer tok-123456"
    am = AlertmanagerNotifier({"url": "http://am:9093/"})
    assert am.request(n)[0] == "http://am:9093/api/v2/alerts"
    assert AlertmanagerNotifier({"url": "http://proxy/am"}).request(n)[0] == "http://proxy/am/api/v2/alerts"
    pd = PagerDutyNotifier({"routing_key": ROUTING_KEY})
    assert pd.request(n)[0] == "https://events.pagerduty.com/v2/enqueue"


@pytest.mark.parametrize(("severity", "emoji", "color"), [
    ("critical", "🔴", "#d00000"), ("page", "🔴", "#d00000"), ("warning", "🟠", "#f2c744"),
    ("ticket", "🟠", "#f2c744"), ("info", "🔵", "#439fe0"),
])
def test_slack_severity_sets_emoji_and_colour(severity: str, emoji: str, color: str) -> None:
    payload = SlackNotifier({"webhook_url": SLACK_URL}).build_payload(
        notification(labels={**LABELS, "severity": severity}))
    assert payload["blocks"][0]["text"]["text"].startswith(emoji)
    assert payload["attachments"][0]["color"] == color


def test_slack_without_summary_names_alert_and_backend_and_escapes_mrkdwn() -> None:
    payload = SlackNotifier({"webhook_url": SLACK_URL}).build_payload(
        notification(annotations={}, labels={**LABELS, "backend": "a<b>&c"}, value=None))
    assert payload["blocks"][1]["text"]["text"] == "HighTTFT on a&lt;b&gt;&amp;c"
    assert payload["attachments"][0]["blocks"][0]["fields"][1]["text"] == "*Value*\n–"


def test_slack_repeat_says_still_firing() -> None:
    payload = SlackNotifier({"webhook_url": SLACK_URL}).build_payload(notification("repeat"))
    assert payload["blocks"][0]["text"]["text"] == "🔴 STILL FIRING: HighTTFT"


@pytest.mark.parametrize(("severity", "expected"), [
    ("critical", "critical"), ("page", "critical"), ("warning", "warning"), ("ticket", "warning"),
    ("info", "info"), ("error", "error"), ("weird", "warning"),
])
def test_pagerduty_severity_maps_onto_its_four_levels(severity: str, expected: str) -> None:
    payload = PagerDutyNotifier({"routing_key": ROUTING_KEY}).build_payload(
        notification(labels={**LABELS, "severity": severity}))
    assert payload["payload"]["severity"] == expected


def test_pagerduty_clips_summary_and_defaults_source_and_nulls_nan() -> None:
    n = notification(annotations={"summary": "x" * 5000}, labels={"alertname": "A"},
                     value=float("nan"), dashboard_url=None)
    payload = PagerDutyNotifier({"routing_key": ROUTING_KEY}).build_payload(n)
    assert len(payload["payload"]["summary"]) == 1024
    assert payload["payload"]["source"] == "inferwatch"
    assert payload["payload"]["custom_details"]["value"] is None
    assert "links" not in payload and "component" not in payload["payload"]
    req = Received("POST", "/v2/enqueue", "", {"content-type": "application/json"}, b"",
                   json.loads(PagerDutyNotifier({"routing_key": ROUTING_KEY}).request(n)[2]))
    assert check_pagerduty(req) == []


def test_alertmanager_labels_always_carry_alertname() -> None:
    n = notification(labels={"backend": "b", "severity": "warning"})
    alert = AlertmanagerNotifier({"url": "http://am:9093"}).build_payload(n)[0]
    assert alert["labels"] == {"backend": "b", "severity": "warning", "alertname": "high_ttft"}


# -- delivery against the stand-ins ----------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
async def test_send_is_accepted_and_valid(kind: str, http: httpx.AsyncClient) -> None:
    async with RECEIVERS[kind]() as r:
        notifier = build(kind, config(kind, r.url))
        for event in ("trigger", "repeat", "resolve"):
            outcome = await notifier.send(notification(event), http)
            assert outcome.ok, outcome
            assert outcome.status == (202 if kind == "pagerduty" else 200)
        assert [x.errors for x in r.invalid] == []
        assert r.payloads == [notifier.build_payload(notification(e))
                              for e in ("trigger", "repeat", "resolve")]
        assert all(x.headers["content-type"].startswith("application/json") for x in r.received)


async def test_webhook_signature_verifies_with_the_shared_secret(http: httpx.AsyncClient) -> None:
    async with webhook_receiver(SECRET) as r:
        good = WebhookNotifier({"url": r.url, "secret": SECRET})
        wrong = WebhookNotifier({"url": r.url, "secret": "not-the-secret"})
        unsigned = WebhookNotifier({"url": r.url})
        assert (await good.send(notification(), http)).ok
        for notifier in (wrong, unsigned):
            outcome = await notifier.send(notification(), http)
            assert (outcome.ok, outcome.retry, outcome.status) == (False, False, 401)
        assert len(r.received) == 1
        assert r.received[0].headers["idempotency-key"] == notification().id
        assert [x.errors[0] for x in r.invalid] == ["signature: X-Inferwatch-Signature does not verify"] * 2


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("status", "retry_after", "expect_retry", "expect_after"), [
    (429, "7", True, 7.0),
    (429, "Thu, 01 Jan 1970 00:00:00 GMT", True, 0.0),  # a date in the past: retry now
    (429, None, True, None),
    (500, None, True, None),
    (503, "30", True, 30.0),
    (400, None, False, None),
], ids=["429-seconds", "429-date", "429-bare", "500", "503-retry-after", "400"])
async def test_http_failures_map_to_retry_or_give_up(
        kind: str, status: int, retry_after: str | None, expect_retry: bool,
        expect_after: float | None, http: httpx.AsyncClient) -> None:
    async with RECEIVERS[kind]() as r:
        r.fail(status, retry_after)
        outcome = await build(kind, config(kind, r.url)).send(notification(), http)
        assert (outcome.ok, outcome.retry, outcome.status) == (False, expect_retry, status)
        assert outcome.retry_after == expect_after
        assert outcome.error is not None and outcome.error.startswith(f"HTTP {status}")
        r.heal()
        assert (await build(kind, config(kind, r.url)).send(notification(), http)).ok


async def test_error_carries_a_short_body_excerpt(http: httpx.AsyncClient) -> None:
    async with slack_receiver() as slack, pagerduty_receiver() as pd:
        wrong_path = SlackNotifier({"webhook_url": slack.base_url + "/services/nope"})
        outcome = await wrong_path.send(notification(), http)
        assert (outcome.retry, outcome.status) == (False, 404)
        assert outcome.error == "HTTP 404: no_service"
        short_key = PagerDutyNotifier({"routing_key": "short-key", "url": pd.url})
        outcome = await short_key.send(notification(), http)
        assert (outcome.retry, outcome.status) == (False, 400)
        assert outcome.error is not None and '"status": "invalid event"' in outcome.error
        assert "short-key" not in outcome.error


@pytest.mark.parametrize("kind", KINDS)
async def test_connection_refused_is_retried_and_recovers(kind: str, http: httpx.AsyncClient) -> None:
    async with RECEIVERS[kind]() as r:
        notifier = build(kind, config(kind, r.url))
        assert (await notifier.send(notification(), http)).ok  # a kept-alive connection exists
        await r.set_down(True)
        outcome = await notifier.send(notification(), http)
        assert (outcome.ok, outcome.retry, outcome.status) == (False, True, None)
        assert outcome.error is not None
        outcome = await notifier.send(notification(), http)
        assert outcome.retry and outcome.error is not None and outcome.error.startswith("ConnectError")
        await r.set_down(False)
        assert (await notifier.send(notification(), http)).ok


@pytest.mark.parametrize("kind", KINDS)
async def test_timeout_is_retried(kind: str, http: httpx.AsyncClient) -> None:
    async with RECEIVERS[kind]() as r:
        r.delay = 1.0
        outcome = await build(kind, config(kind, r.url)).send(notification(), http, timeout=0.1)
        assert (outcome.ok, outcome.retry, outcome.error) == (False, True, "timeout after 0.1s")


# -- secrets ---------------------------------------------------------------------------------

def _echo(request: httpx.Request) -> httpx.Response:
    """A hostile receiver: echoes the URL, headers and body back in a 400."""
    return httpx.Response(400, text=f"{request.url} {dict(request.headers)} {request.content.decode()}")


@pytest.mark.parametrize("kind", KINDS)
async def test_no_secret_in_error_describe_repr_or_logs(
        kind: str, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with RECEIVERS[kind]() as r:
        notifier = build(kind, config(kind, r.url))
        secrets = SECRETS[kind]
        errors = []
        assert (await notifier.send(notification(), http)).ok
        r.fail(500)
        errors.append((await notifier.send(notification(), http)).error)
        r.heal()
        await r.set_down(True)
        errors.append((await notifier.send(notification(), http)).error)
        async with httpx.AsyncClient(transport=httpx.MockTransport(_echo)) as echo:
            outcome = await notifier.send(notification(), echo)
        assert outcome.status == 400
        errors.append(outcome.error)
        shown = [*errors, notifier.describe(), repr(notifier), caplog.text]
        for secret in secrets:
            for text in shown:
                assert secret not in (text or ""), (secret, text)


def test_describe_is_one_safe_line() -> None:
    assert SlackNotifier({"webhook_url": SLACK_URL}).describe() == "slack → https://hooks.slack.com/services/…"
    assert repr(SlackNotifier({"webhook_url": SLACK_URL})) == (
        "SlackNotifier(slack → https://hooks.slack.com/services/…)")
    assert PagerDutyNotifier({"routing_key": ROUTING_KEY}).describe() == "pagerduty → https://events.pagerduty.com"
    assert WebhookNotifier({"url": "https://h.example/in?token=abc"}).describe() == "webhook → https://h.example/…"
    assert AlertmanagerNotifier({"url": "http://u:pw-secret@am:9093"}).describe() == "alertmanager → http://am:9093"
    assert "pw-secret" not in repr(AlertmanagerNotifier({"url": "http://u:pw-secret@am:9093"}))


# -- config ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "cfg", "message"), [
    ("slack", {}, "webhook_url: required"),
    ("slack", {"webhook_url": "hooks.slack.com/services/T0/B0/zzzz"}, "webhook_url: expected an absolute http(s) URL"),
    ("slack", {"webhook_url": 42}, "webhook_url: expected a string, got int"),
    ("slack", {"webhook_url": SLACK_URL, "colour": "red"}, "colour: unknown field"),
    ("pagerduty", {}, "routing_key: required"),
    ("pagerduty", {"routing_key": "has space"}, "routing_key: must not contain whitespace"),
    ("pagerduty", {"routing_key": ROUTING_KEY, "url": "ftp://x"}, "url: expected an absolute http(s) URL"),
    ("webhook", {"url": "https://h/x", "headers": ["a"]}, "headers: expected a mapping"),
    ("webhook", {"url": "https://h/x", "headers": {"X-A": 1}}, "headers.X-A: expected a single-line string"),
    ("webhook", {"url": "https://h/x", "headers": {"Idempotency-Key": "k"}}, "headers.Idempotency-Key: set by inferwatch"),
    ("webhook", {"url": "https://h/x", "secret": 5}, "secret: expected a string"),
    ("alertmanager", {"url": "http://am:notaport"}, "url: invalid port"),
    ("alertmanager", {"url": "http://am:9093", "resend_interval": "soon"}, "resend_interval: "),
    ("teams", {"url": "https://x"}, "teams: unknown notifier 'teams'"),
    ("oncall", {"type": "opsgenie"}, "type: unknown notifier 'opsgenie'"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_config_errors_name_the_field(name: str, cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        build(name, cfg)
    assert str(info.value).startswith(message)
    assert "zzzz" not in str(info.value)  # a rejected Slack URL is not echoed


# -- the seam --------------------------------------------------------------------------------

MINIMAL = {"slack": {"webhook_url": SLACK_URL}, "pagerduty": {"routing_key": ROUTING_KEY},
           "webhook": {"url": "https://h/x"}, "alertmanager": {"url": "http://am:9093"}}


@pytest.mark.parametrize("kind", sorted(NOTIFIERS))
def test_every_notifier_satisfies_the_protocol(kind: str) -> None:
    notifier = NOTIFIERS[kind](MINIMAL[kind])
    assert isinstance(notifier, Notifier)
    assert notifier.name == kind
    built = build(kind, MINIMAL[kind])
    assert type(built) is NOTIFIERS[kind]
    named = build(f"team-{kind}", {"type": kind, **MINIMAL[kind]})
    assert named.name == f"team-{kind}" and type(named) is NOTIFIERS[kind]


def test_registry_covers_every_stand_in() -> None:
    assert sorted(NOTIFIERS) == sorted(RECEIVERS) == sorted(MINIMAL)


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


# -- the stand-ins reject what the real services reject ---------------------------------------

@pytest.mark.parametrize(("kind", "body", "status", "reason"), [
    ("slack", {"attachments": [{"color": "red"}]}, 400, "no_text"),
    ("slack", {"text": "t", "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}]},
     400, "blocks[0].text.type"),
    ("slack", {"text": "t", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]},
     400, "blocks[0].text.text: longer than 150"),
    ("pagerduty", {**PAGERDUTY_TRIGGER, "payload": {**PAGERDUTY_TRIGGER["payload"], "severity": "page"}},  # type: ignore[dict-item]
     400, "payload.severity"),
    ("pagerduty", {**PAGERDUTY_TRIGGER, "dedup_key": "k" * 256}, 400, "dedup_key"),
    ("pagerduty", {**PAGERDUTY_RESOLVE, "event_action": "close"}, 400, "event_action"),
    ("webhook", {**WEBHOOK_TRIGGER, "status": "resolved"}, 401, "signature"),
    ("alertmanager", [{"labels": {"bad-name": "x", "alertname": "A"}}], 400, "[0].labels: invalid label name"),
    ("alertmanager", [{"labels": {"alertname": "A"}, "startsAt": "2024-05-01T12:00:00Z",
                       "endsAt": "2024-05-01T11:00:00Z"}], 400, "[0]: end time must not be before"),
])
async def test_stand_ins_reject_invalid_payloads(
        kind: str, body: Any, status: int, reason: str, http: httpx.AsyncClient) -> None:
    async with RECEIVERS[kind]() as r:
        url = r.url if kind != "alertmanager" else r.base_url + "/api/v2/alerts"
        response = await http.post(url, json=body)
        assert response.status_code == status
        assert r.received == []
        assert any(e.startswith(reason) for e in r.invalid[0].errors), r.invalid[0].errors
