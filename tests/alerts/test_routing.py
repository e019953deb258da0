"""Pure routing decisions: routes, repeats, grouping, inhibition and silences (alerts/routing.py)."""

from __future__ import annotations

from typing import Any

import pytest

from alerts.matchers import RoutingError, parse_silence_matchers
from alerts.model import AlertState, Silence, Transition, fingerprint
from alerts.routing import Router, Sent, plan
from inferwatch.config import ConfigError, parse

NOTIFIERS = ["pagerduty", "slack", "webhook"]
ROUTES = [
    {"receiver": "pagerduty", "match": {"severity": "critical"}, "match_re": {"backend": "vllm-.*"},
     "repeat_interval": "1h"},
    {"receiver": "slack", "match": {"severity": "critical"}, "continue": True},
    {"receiver": "webhook", "match": {"severity": "critical"}},
    {"receiver": "slack", "match_re": {"severity": "warning|info"}, "group_by": ["backend"]},
]


def lab(alertname: str = "QueueDepthHigh", severity: str = "warning", backend: str = "vllm-a") -> dict[str, str]:
    return {"alertname": alertname, "severity": severity, "backend": backend}


def firing(labels: dict[str, str], fired_at: float = 0.0) -> AlertState:
    return AlertState(fingerprint(labels), labels["alertname"], labels, "firing", 1.0, fired_at, fired_at)


def resolved(labels: dict[str, str], fired_at: float, at: float) -> Transition:
    return Transition(fingerprint(labels), labels["alertname"], labels, {}, "firing", "resolved", at, 0.0,
                      fired_at, fired_at)


@pytest.mark.parametrize(("labels", "default", "receivers"), [
    pytest.param(lab(severity="critical"), None, ["pagerduty"], id="the first matching route wins"),
    pytest.param(lab(severity="critical", backend="tgi-a"), None, ["slack", "webhook"],
                 id="continue true goes on to the next matching route"),
    pytest.param(lab(severity="warning"), None, ["slack"], id="a warning goes to slack only"),
    pytest.param(lab(severity="ticket"), None, [], id="an alert matching no route goes nowhere"),
    pytest.param(lab(severity="ticket"), "webhook", ["webhook"], id="an unmatched alert goes to the default receiver"),
    pytest.param({"alertname": "X", "severity": "critical"}, None, ["slack", "webhook"],
                 id="a missing label is the empty string to match_re"),
])
def test_routes(labels: dict[str, str], default: str | None, receivers: list[str]) -> None:
    router = Router.parse(ROUTES, NOTIFIERS, default_receiver=default)
    assert [r.receiver for r in router.routes_for(labels)] == receivers


def test_without_routes_every_notifier_gets_every_alert() -> None:
    router = Router.parse([], NOTIFIERS, default_receiver="slack")
    assert [r.receiver for r in router.routes_for(lab())] == NOTIFIERS


def test_route_settings_come_from_the_route_or_the_top_level() -> None:
    router = Router.parse(ROUTES, NOTIFIERS, repeat_interval=7200.0, group_by=["alertname"])
    pd, = router.routes_for(lab(severity="critical"))
    slack, = router.routes_for(lab())
    assert (pd.repeat_interval, pd.group_by) == (3600.0, ("alertname",))
    assert (slack.repeat_interval, slack.group_by) == (7200.0, ("backend",))


@pytest.mark.parametrize(("data", "problem"), [
    pytest.param({"routes": [{"receiver": "slack"}, {"receiver": "pd"}]},
                 "routes[1].receiver: unknown notifier 'pd'; configured: slack, webhook", id="unknown receiver"),
    pytest.param({"routes": [{"match": {"severity": "critical"}}]}, "routes[0].receiver: required",
                 id="missing receiver"),
    pytest.param({"routes": [{"receiver": "slack", "match_re": {"backend": "vllm-("}}]},
                 "routes[0].match_re.backend: invalid regex 'vllm-('", id="bad regex"),
    pytest.param({"routes": [{"receiver": "slack", "repeat_interval": "soon"}]},
                 "routes[0].repeat_interval: invalid duration 'soon'", id="bad repeat interval"),
    pytest.param({"routes": [{"receiver": "slack", "mtch": {}}]}, "routes[0].mtch: unknown field", id="typo"),
    pytest.param({"routes": [{"receiver": "slack"}], "default_receiver": "pd"},
                 "default_receiver: unknown notifier 'pd'", id="unknown default receiver"),
    pytest.param({"inhibit_rules": [{"source_match": {"alertname": "BackendDown"}}]},
                 "inhibit_rules[0].target_match: at least one target matcher", id="inhibit rule without target"),
    pytest.param({"repeat_interval": "often"}, "repeat_interval: invalid duration", id="bad top-level repeat"),
])
def test_config_errors_name_the_field(data: dict[str, Any], problem: str) -> None:
    notifiers = {"slack": {"webhook_url": "https://hooks.slack.com/services/T0/B0/X"},
                 "webhook": {"url": "https://example.com/hook"}}
    with pytest.raises(ConfigError) as exc:
        parse({"notifiers": notifiers, **data}, "<test>")
    assert any(p.startswith(problem) for p in exc.value.problems), exc.value.problems


def test_valid_routing_config_parses() -> None:
    cfg = parse({"notifiers": {"webhook": {"url": "https://example.com/hook"}},
                 "routes": [{"receiver": "webhook", "match": {"severity": "critical"}, "repeat_interval": "30m"}],
                 "repeat_interval": "2h", "inhibit_rules": []}, "<test>")
    assert cfg.repeat_interval == 7200.0 and cfg.inhibit_rules == []


def silence(matchers: dict[str, str], start: float = 0.0, end: float = 100.0) -> Silence:
    return Silence("s1", parse_silence_matchers(matchers), start, end, "ops")


A_Q, B_Q = lab(backend="vllm-a"), lab(backend="vllm-b")
A_DOWN = lab("BackendDown", "critical", "vllm-a")
NO_ROUTES = Router.parse([], ["slack"])


def kinds(states: list[AlertState], now: float, sent: dict[tuple[str, str], Sent] | None = None,
          silences: list[Silence] | None = None, transitions: list[Transition] | None = None,
          router: Router = NO_ROUTES) -> list[str]:
    planned, _ = plan({s.fingerprint: s for s in states}, transitions or [], now, router, silences or [],
                      sent or {})
    return [f"{p.kind} {p.alert.labels['alertname']} {p.alert.labels['backend']}" for p in planned]


def sent(labels: dict[str, str], kind: str, at: float) -> dict[tuple[str, str], Sent]:
    return {(fingerprint(labels), "slack"): Sent(kind, at)}  # type: ignore[arg-type]


@pytest.mark.parametrize(("args", "expected"), [
    pytest.param(dict(states=[firing(A_Q, 10)], now=10), ["trigger QueueDepthHigh vllm-a"],
                 id="a newly firing alert triggers"),
    pytest.param(dict(states=[firing(A_Q, 10)], now=20, sent=sent(A_Q, "trigger", 10)), [],
                 id="a firing alert already notified sends nothing within the repeat interval"),
    pytest.param(dict(states=[firing(A_Q, 10)], now=10 + 4 * 3600, sent=sent(A_Q, "trigger", 10)),
                 ["repeat QueueDepthHigh vllm-a"], id="it repeats after the default 4h"),
    pytest.param(dict(states=[firing(A_Q, 10)], now=10 + 4 * 3600 - 1, sent=sent(A_Q, "repeat", 10)), [],
                 id="not a second early"),
    pytest.param(dict(states=[firing(A_Q, 500)], now=500, sent=sent(A_Q, "trigger", 10)),
                 ["trigger QueueDepthHigh vllm-a"], id="a trigger of an older episode does not count"),
    pytest.param(dict(states=[firing(A_Q, 10)], now=20, silences=[silence({"backend": "vllm-a"})]), [],
                 id="a silenced alert sends nothing"),
    pytest.param(dict(states=[firing(A_Q, 10)], now=20, silences=[silence({"backend": "=~vllm-[bc]"})]),
                 ["trigger QueueDepthHigh vllm-a"], id="a regex silence matching another backend does not"),
    pytest.param(dict(states=[firing(A_Q, 10)], now=100, silences=[silence({"backend": "vllm-a"})]),
                 ["trigger QueueDepthHigh vllm-a"], id="when the silence ends it triggers"),
    pytest.param(dict(states=[firing(A_Q, 10)], now=5, silences=[silence({"backend": "vllm-a"}, start=6)]),
                 ["trigger QueueDepthHigh vllm-a"], id="a silence not yet started does nothing"),
    pytest.param(dict(states=[], now=50, transitions=[resolved(A_Q, 10, 50)], sent=sent(A_Q, "trigger", 10)),
                 ["resolve QueueDepthHigh vllm-a"], id="a notified alert resolves"),
    pytest.param(dict(states=[], now=50, transitions=[resolved(A_Q, 10, 50)]), [],
                 id="an alert never notified (it fired silenced) sends no resolve"),
    pytest.param(dict(states=[], now=50, transitions=[resolved(A_Q, 10, 50)], sent=sent(A_Q, "trigger", 10),
                      silences=[silence({"alertname": "QueueDepthHigh"})]), [],
                 id="a resolve under a silence is not sent"),
    pytest.param(dict(states=[firing(A_DOWN, 10), firing(A_Q, 10), firing(B_Q, 10)], now=10),
                 ["trigger BackendDown vllm-a", "trigger QueueDepthHigh vllm-b"],
                 id="BackendDown inhibits its own backend's queue alert but not another backend's"),
    pytest.param(dict(states=[firing(A_DOWN, 10), firing(lab("GPUMemoryHigh"), 10)], now=10),
                 ["trigger BackendDown vllm-a", "trigger GPUMemoryHigh vllm-a"],
                 id="the default inhibit rule leaves other alerts alone"),
    pytest.param(dict(states=[firing(A_DOWN, 10), firing(A_Q, 10)], now=10,
                      router=Router.parse([], ["slack"], inhibit_rules=[])),
                 ["trigger BackendDown vllm-a", "trigger QueueDepthHigh vllm-a"],
                 id="inhibit_rules empty turns inhibition off"),
    pytest.param(dict(states=[firing(lab("X", backend="b")), firing(lab("Y", backend="a")),
                              firing(lab("X", backend="a"))], now=0,
                      router=Router.parse([], ["slack"], group_by=["backend"])),
                 ["trigger X a", "trigger Y a", "trigger X b"], id="group_by orders a receiver's round by group"),
])
def test_plan(args: dict[str, Any], expected: list[str]) -> None:
    assert kinds(**args) == expected


def test_a_receiver_that_needs_resends_hears_of_a_firing_alert_that_often() -> None:
    """Alertmanager's receiver re-hears a firing alert every resend interval (1m) whatever the
    route's repeat_interval (4h), even with repeats off; the others keep the route's."""
    def planned(now: float, last: float, router: Router) -> list[str]:
        got, _ = plan({fingerprint(A_Q): firing(A_Q, 10)}, [], now, router, [],
                      {(fingerprint(A_Q), "am"): Sent("trigger", last), (fingerprint(A_Q), "slack"): Sent("trigger", last)},
                      {"am": 60.0})
        return [f"{p.receiver} {p.kind}" for p in got]

    router = Router.parse([], ["am", "slack"])
    assert planned(69, 10, router) == []
    assert planned(70, 10, router) == ["am repeat"]
    assert planned(10 + 4 * 3600, 10, router) == ["am repeat", "slack repeat"]
    assert planned(70, 10, Router.parse([], ["am", "slack"], repeat_interval=0.0)) == ["am repeat"]


def test_repeat_zero_turns_repeats_off() -> None:
    router = Router.parse([], ["slack"], repeat_interval=0.0)
    assert kinds([firing(A_Q, 10)], 10 + 10 * 86400, sent=sent(A_Q, "trigger", 10), router=router) == []


def test_plan_reports_why_alerts_are_muted() -> None:
    states = [firing(A_DOWN), firing(A_Q), firing(B_Q)]
    _, muted = plan({s.fingerprint: s for s in states}, [], 1.0, NO_ROUTES, [silence({"backend": "vllm-b"})], {})
    assert muted == {fingerprint(A_Q): "inhibited", fingerprint(B_Q): "silenced by s1"}


@pytest.mark.parametrize("matchers", [{}, {"bad-name": "x"}, {"backend": "=~("}, {"backend": 3}, []])
def test_invalid_silence_matchers(matchers: Any) -> None:
    with pytest.raises(RoutingError):
        parse_silence_matchers(matchers)
