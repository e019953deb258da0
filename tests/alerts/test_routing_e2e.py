"""Routing, repeats, silences and inhibition end to end: simulated backends, scrape, store, rule
evaluation, outbox and dispatcher to loopback Slack and PagerDuty stand-ins that validate every
payload. Critical alerts page PagerDuty only, warnings go to Slack only; exact counts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from alerts.engine import AlertEngine
from sim.engines import make_renderer
from sim.state import Profile, SimBackend
from tests.e2e_helpers import Clock, harness
from tests.receivers import Receiver, pagerduty_receiver, slack_receiver

KEY = "R0123456789abcdef0123456789abcde"
RULES = [
    # keep_state: a backend that stops answering keeps its queue alert firing (then inhibited)
    {"name": "QueueDepthHigh", "expr": "queue_depth > 100", "for": "0s", "severity": "warning", "no_data": "keep_state",
     "annotations": {"summary": "{{ backend }} queue depth {{ value }}"}},
    {"name": "QueueDepthCritical", "expr": "queue_depth > 500", "for": "0s", "severity": "critical",
     "no_data": "keep_state", "annotations": {"summary": "{{ backend }} queue depth {{ value }}"}},
    {"name": "BackendDown", "expr": "up == 0", "for": "0s", "severity": "critical",
     "annotations": {"summary": "{{ backend }} down"}},
]
ROUTES = [{"receiver": "pagerduty", "match": {"severity": "critical"}},
          {"receiver": "slack", "match": {"severity": "warning"}}]


def _sim(name: str, seed: int, clock: Clock) -> SimBackend:
    return SimBackend(name, make_renderer("vllm"), ("m",), Profile(queue_depth=3), seed=seed, now=clock())


def _slack(r: Receiver) -> list[str]:
    """``STATE alertname backend`` per Slack message, from its text."""
    out = []
    for p in r.payloads:
        text = str(p)
        state = "RESOLVED" if "RESOLVED" in text else "STILL FIRING" if "STILL FIRING" in text else "FIRING"
        backend = next(b for b in ("vllm-a", "vllm-b", "vllm-c") if b in text)
        alert = next(a for a in ("QueueDepthHigh", "QueueDepthCritical", "BackendDown") if a in text)
        out.append(f"{state} {alert} {backend}")
    return out


def _pd(r: Receiver) -> list[str]:
    return [f"{p['event_action']} {p['payload']['summary']}" for p in r.payloads]


@pytest.mark.slow
async def test_routes_repeats_silences_and_inhibition(store_url: str) -> None:
    clock = Clock()
    a, b, c = _sim("vllm-a", 1, clock), _sim("vllm-b", 2, clock), _sim("vllm-c", 3, clock)
    async with slack_receiver() as slack, pagerduty_receiver() as pd:
        notifiers: dict[str, Any] = {"slack": {"webhook_url": slack.url},
                                     "pagerduty": {"routing_key": KEY, "url": pd.url}}
        async with harness([a, b, c], store_url, clock, rules=RULES, default_rules=False, notifiers=notifiers,
                           routes=ROUTES, repeat_interval="1h", evaluation_interval="15s") as h:
            async with httpx.AsyncClient() as http:
                engine = AlertEngine(h.cfg, h.store.reads, h.store.alerts, h.store.silences, http, clock=clock)

                async def tick(seconds: float = 15) -> list[str]:
                    clock.advance(seconds)
                    await h.collector.scrape_once()
                    transitions = await engine.evaluate_once()
                    await engine.dispatcher.run_once(clock())
                    return sorted(f"{t.labels['alertname']}:{t.labels['backend']}:{t.new}" for t in transitions)

                assert await tick() == []
                resp = await h.api.post("/api/v1/silences", json={
                    "matchers": {"backend": "vllm-c", "alertname": "=~QueueDepth.*"}, "duration": "2h",
                    "created_by": "e2e", "comment": "maintenance"})
                assert resp.status_code == 201, resp.text
                silence_id = resp.json()["id"]

                # routing: warnings to Slack only, critical to PagerDuty only; vllm-c is silenced
                a.incident.queue_extra = 150
                b.incident.queue_extra = 600
                c.incident.queue_extra = 150
                assert await tick() == ["QueueDepthCritical:vllm-b:firing", "QueueDepthHigh:vllm-a:firing",
                                        "QueueDepthHigh:vllm-b:firing", "QueueDepthHigh:vllm-c:firing"]
                assert sorted(_slack(slack)) == ["FIRING QueueDepthHigh vllm-a", "FIRING QueueDepthHigh vllm-b"]
                assert _pd(pd) == ["trigger vllm-b queue depth 603"]
                assert list(engine.muted.values()) == [f"silenced by {silence_id}"]
                for _ in range(2):  # still firing, within repeat_interval: nothing more
                    assert await tick() == []
                assert len(slack.received) == 2 and len(pd.received) == 1

                # expiring the silence while vllm-c still fires notifies it (as a trigger)
                listed = (await h.api.get("/api/v1/silences")).json()
                assert [(s["id"], s["state"]) for s in listed] == [(silence_id, "active")]
                resp = await h.api.delete(f"/api/v1/silences/{silence_id}")
                assert resp.status_code == 200 and resp.json()["state"] == "expired"
                assert await tick() == []
                assert _slack(slack)[2:] == ["FIRING QueueDepthHigh vllm-c"]
                assert len(pd.received) == 1

                # repeat after repeat_interval: every firing alert once more, same receivers
                assert await tick(3600) == []
                assert sorted(_slack(slack)[3:]) == ["STILL FIRING QueueDepthHigh vllm-a",
                                                     "STILL FIRING QueueDepthHigh vllm-b",
                                                     "STILL FIRING QueueDepthHigh vllm-c"]
                assert _pd(pd)[1:] == ["trigger vllm-b queue depth 603"]
                assert await tick() == []
                assert len(slack.received) == 6 and len(pd.received) == 2

                # inhibition: vllm-a down pages BackendDown and mutes vllm-a's queue alert only
                a.incident.http_status = 500
                assert await tick() == ["BackendDown:vllm-a:firing"]
                assert _pd(pd)[2:] == ["trigger vllm-a down"]
                assert await tick(3600) == []  # repeats: vllm-b and vllm-c, not the inhibited vllm-a
                assert sorted(_slack(slack)[6:]) == ["STILL FIRING QueueDepthHigh vllm-b",
                                                     "STILL FIRING QueueDepthHigh vllm-c"]
                assert sorted(_pd(pd)[3:]) == ["trigger vllm-a down", "trigger vllm-b queue depth 603"]
                assert len(slack.received) == 8 and len(pd.received) == 5

        for r in (slack, pd):
            assert r.invalid == [], (r, [x.errors for x in r.invalid])
        keys: dict[str, set[str]] = {}  # one dedup_key per alert, repeats included
        for p in pd.payloads:
            keys.setdefault(p["payload"]["summary"], set()).add(p["dedup_key"])
        assert {k: len(v) for k, v in keys.items()} == {"vllm-b queue depth 603": 1, "vllm-a down": 1}
        assert len(set.union(*keys.values())) == 2


@pytest.mark.slow
async def test_restart_does_not_repeat_early(tmp_path: Any) -> None:
    """The last notification per alert and receiver is read back from the outbox at start."""
    from tests.receivers import webhook_receiver

    clock = Clock()
    sim = _sim("vllm-a", 1, clock)
    sim.incident.queue_extra = 150
    store_url = f"sqlite:///{tmp_path}/restart.db"
    async with webhook_receiver() as hook:
        extra: dict[str, Any] = {"rules": RULES[:1], "default_rules": False, "repeat_interval": "1h",
                                 "notifiers": {"webhook": {"url": hook.url}}}
        for advance, expected in ((0, ["trigger"]), (1800, ["trigger"]), (1799, ["trigger"]),
                                  (1, ["trigger", "repeat"]), (1800, ["trigger", "repeat"])):
            async with harness([sim], store_url, clock, **extra) as h, httpx.AsyncClient() as http:
                engine = AlertEngine(h.cfg, h.store.reads, h.store.alerts, h.store.silences, http, clock=clock)  # a fresh process each time
                clock.advance(advance)
                await h.collector.scrape_once()
                await engine.evaluate_once()
                await engine.dispatcher.run_once(clock())
            assert [p["kind"] for p in hook.payloads] == expected, advance
    assert hook.invalid == []
