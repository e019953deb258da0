"""Grouping like Alertmanager: ``group_by``, ``group_wait``, ``group_interval``.

Pure timing first (when each group's next message is due), then end to end: a fleet-wide
incident on 12 simulated backends, scraped, evaluated, stored in the outbox and dispatched to
loopback Slack, webhook and PagerDuty stand-ins that validate every payload — one Slack message
and one webhook document per group listing its alerts, one PagerDuty incident per alert."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from alerts.engine import AlertEngine
from alerts.model import AlertState, Transition, fingerprint
from alerts.routing import Router, Sent, plan
from sim.engines import make_renderer
from sim.state import Profile, SimBackend
from tests.e2e_helpers import Clock, harness
from tests.receivers import pagerduty_receiver, slack_receiver, webhook_receiver


def _labels(backend: str, alertname: str = "QueueDepthHigh") -> dict[str, str]:
    return {"alertname": alertname, "severity": "warning", "backend": backend}


def _firing(labels: dict[str, str], at: float) -> AlertState:
    return AlertState(fingerprint(labels), labels["alertname"], labels, "firing", 150.0, at, at)


ROUTER = Router.parse([], ["slack"], group_by=["alertname"], group_wait=30.0, group_interval=300.0)


def _dues(states: list[AlertState], now: float, sent: dict[tuple[str, str], Sent],
          groups: dict[Any, float], transitions: list[Transition] | None = None) -> list[tuple[str, str, float]]:
    planned, _ = plan({s.fingerprint: s for s in states}, transitions or [], now, ROUTER, [], sent, None, groups)
    return sorted((p.kind, p.alert.labels["backend"], p.due) for p in planned)


def test_a_new_group_waits_group_wait_and_later_alerts_join_its_pending_message() -> None:
    a, b, c = _firing(_labels("a"), 0), _firing(_labels("b"), 0), _firing(_labels("c"), 10)
    assert _dues([a, b], 0, {}, {}) == [("trigger", "a", 30.0), ("trigger", "b", 30.0)]
    gid = ("slack", (("alertname", "QueueDepthHigh"),))
    # c arrives while the group's first message is pending: it joins it
    assert _dues([a, b, c], 10, {(a.fingerprint, "slack"): Sent("trigger", 30.0),
                                 (b.fingerprint, "slack"): Sent("trigger", 30.0)}, {gid: 30.0}) == \
        [("trigger", "c", 30.0)]
    # after that message, a newcomer waits for group_interval after it, and so does a resolve
    sent = {(x.fingerprint, "slack"): Sent("trigger", 30.0) for x in (a, b, c)}
    d = _firing(_labels("d"), 100)
    assert _dues([a, b, c, d], 100, sent, {gid: 30.0}) == [("trigger", "d", 330.0)]
    gone = Transition(c.fingerprint, "QueueDepthHigh", c.labels, {}, "firing", "resolved", 120.0, 10.0, 10.0, 10.0)
    assert _dues([a, b], 120, sent, {gid: 30.0}, [gone]) == [("resolve", "c", 330.0)]
    # another alertname is another group: its own group_wait
    other = _firing(_labels("a", "KVCacheExhausted"), 100)
    assert _dues([a, b, c, other], 100, sent, {gid: 30.0}) == [("trigger", "a", 130.0)]


def test_defaults_send_at_once() -> None:
    router = Router.parse([], ["slack"])
    planned, _ = plan({"f": _firing(_labels("a"), 5)}, [], 5.0, router, [], {})
    assert [p.due for p in planned] == [5.0]


def _sim(name: str, seed: int, clock: Clock) -> SimBackend:
    return SimBackend(name, make_renderer("vllm"), ("m",), Profile(queue_depth=3), seed=seed, now=clock())


BACKENDS = 12
RULE = {"name": "QueueDepthHigh", "expr": "queue_depth > 100", "for": "0s", "severity": "warning",
        "annotations": {"summary": "{{ backend }} queue depth {{ value }}"}}


@pytest.mark.slow
async def test_a_fleet_wide_incident_is_one_message_per_group(store_url: str) -> None:
    clock = Clock()
    sims = [_sim(f"vllm-{i:02d}", i, clock) for i in range(BACKENDS)]
    async with slack_receiver() as slack, webhook_receiver() as hook, pagerduty_receiver() as pd, \
            pagerduty_receiver() as pd_group:
        key = "R0123456789abcdef0123456789abcde"
        notifiers: dict[str, Any] = {"slack": {"webhook_url": slack.url}, "webhook": {"url": hook.url},
                                     "pagerduty": {"routing_key": key, "url": pd.url},
                                     "oncall": {"type": "pagerduty", "routing_key": key, "url": pd_group.url,
                                                "incident_per": "group"}}
        async with harness(sims, store_url, clock, rules=[RULE], default_rules=False, notifiers=notifiers,
                           group_by=["alertname"], group_wait="30s", group_interval="2m",
                           evaluation_interval="15s") as h:
            async with httpx.AsyncClient() as http:
                engine = AlertEngine(h.cfg, h.store.reads, h.store.alerts, h.store.silences, http, clock=clock)

                async def tick(seconds: float = 15) -> None:
                    clock.advance(seconds)
                    await h.collector.scrape_once()
                    await engine.evaluate_once()
                    await engine.dispatcher.run_once(clock())

                await tick()
                for s in sims[:8]:  # the incident reaches 8 backends, then 4 more 15 s later
                    s.incident.queue_extra = 150
                await tick()
                assert (len(slack.received), len(hook.received)) == (0, 0)  # group_wait: gathering
                for s in sims[8:]:
                    s.incident.queue_extra = 150
                await tick()
                assert (len(slack.received), len(hook.received)) == (0, 0)
                await tick()  # 30 s after the first alert: one message for the group
                assert (len(slack.received), len(hook.received)) == (1, 1)
                [message] = slack.payloads
                assert message["blocks"][0]["text"]["text"] == "🟠 FIRING:12 QueueDepthHigh"
                lines = message["blocks"][1]["text"]["text"].splitlines()
                assert len(lines) == 11 and lines[-1] == "…and 2 more"
                [doc] = hook.payloads
                assert doc["kind"] == "group" and doc["groupLabels"] == {"alertname": "QueueDepthHigh"}
                assert sorted(a["labels"]["backend"] for a in doc["alerts"]) == [s.name for s in sims]
                # PagerDuty keeps one incident per alert
                assert len(pd.received) == 12
                assert len({p["dedup_key"] for p in pd.payloads}) == 12
                # incident_per: group: one incident for the group
                [incident] = pd_group.payloads
                assert incident["event_action"] == "trigger"
                assert incident["payload"]["summary"] == "12 alerts firing: QueueDepthHigh (alertname=QueueDepthHigh)"
                assert len(incident["payload"]["custom_details"]["alerts"]) == 12

                for s in sims:  # the incident ends: resolves wait for group_interval after the message
                    s.incident.queue_extra = 0
                await tick()
                assert (len(slack.received), len(hook.received), len(pd.received)) == (1, 1, 12)
                for _ in range(6):  # until 2m after the first message (the route's timing holds for every receiver)
                    await tick()
                assert (len(slack.received), len(hook.received), len(pd.received)) == (1, 1, 12)
                await tick()
                assert (len(slack.received), len(hook.received)) == (2, 2)
                assert len(pd.received) == 24  # still one resolve per alert
                assert sorted(p["event_action"] for p in pd.payloads[12:]) == ["resolve"] * 12
                assert [p["event_action"] for p in pd_group.payloads] == ["trigger", "resolve"]
                assert pd_group.payloads[1]["dedup_key"] == incident["dedup_key"]
                resolved = slack.payloads[1]
                assert resolved["blocks"][0]["text"]["text"] == "✅ RESOLVED:12 QueueDepthHigh"
                assert hook.payloads[1]["status"] == "resolved" and len(hook.payloads[1]["alerts"]) == 12
    assert slack.invalid == [] and hook.invalid == [] and pd.invalid == [] and pd_group.invalid == []


def test_route_timings_parse_and_bad_ones_name_the_field() -> None:
    r = Router.parse([{"receiver": "slack", "group_wait": "10s", "group_interval": "1m", "group_by": ["..."]}],
                     ["slack"], group_wait=30.0)
    (route,) = r.routes
    assert (route.group_wait, route.group_interval) == (10.0, 60.0)
    assert route.group({"b": "2", "a": "1"}) == (("a", "1"), ("b", "2"))  # "...": every label
    with pytest.raises(Exception) as info:
        Router.parse([{"receiver": "slack", "group_wait": "soon"}], ["slack"])
    assert "routes[0].group_wait" in str(info.value)


@pytest.mark.slow
async def test_a_restart_during_group_wait_loses_nothing_and_keeps_the_group_timer(store_url: str) -> None:
    """The engine restarts while a group's first message is pending: the new engine sends that
    one message when it is due (the outbox held it), and a newcomer after it waits for
    group_interval after that message (the timer was derived from the outbox)."""
    clock = Clock()
    sims = [_sim(f"vllm-{i}", i, clock) for i in range(3)]
    async with slack_receiver() as slack:
        async with harness(sims, store_url, clock, rules=[RULE], default_rules=False,
                           notifiers={"slack": {"webhook_url": slack.url}}, group_by=["alertname"],
                           group_wait="30s", group_interval="2m", evaluation_interval="15s") as h:
            async with httpx.AsyncClient() as http:
                def engine() -> AlertEngine:
                    return AlertEngine(h.cfg, h.store.reads, h.store.alerts, h.store.silences, http, clock=clock)

                async def tick(e: AlertEngine, seconds: float = 15) -> None:
                    clock.advance(seconds)
                    await h.collector.scrape_once()
                    await e.evaluate_once()
                    await e.dispatcher.run_once(clock())

                first = engine()
                await tick(first)
                sims[0].incident.queue_extra = sims[1].incident.queue_extra = 150
                await tick(first)  # t=30: two alerts fire, their message is due at 60
                second = engine()  # "restart"
                await tick(second)  # t=45
                assert len(slack.received) == 0
                await tick(second)  # t=60: the pending message goes, once
                assert len(slack.received) == 1
                assert slack.payloads[0]["blocks"][0]["text"]["text"] == "🟠 FIRING:2 QueueDepthHigh"
                third = engine()  # another restart: the group's timer comes from the outbox
                sims[2].incident.queue_extra = 150
                for _ in range(7):  # t=75 .. 165: within group_interval of the message at 60
                    await tick(third)
                assert len(slack.received) == 1
                await tick(third)  # t=180
                assert len(slack.received) == 2
                # a later message carries what changed (here one alert: the single-alert layout)
                assert slack.payloads[1]["text"] == "🟠 FIRING: QueueDepthHigh — vllm-2 queue depth 153"
    assert slack.invalid == []
