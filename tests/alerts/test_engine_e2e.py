"""The alert engine end to end: a queue build-up on a simulated backend goes through scrape,
store, rule evaluation, outbox and dispatcher to loopback Slack, PagerDuty and webhook
stand-ins that validate every payload: one trigger, nothing more while it fires, one resolve."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from alerts.engine import AlertEngine
from sim.engines import make_renderer
from sim.state import Profile, SimBackend
from tests.e2e_helpers import Clock, harness
from tests.receivers import pagerduty_receiver, slack_receiver, webhook_receiver

RULE = {"name": "QueueDepthHigh", "expr": "queue_depth > 100", "for": "1m", "severity": "critical",
        "annotations": {"summary": "{{ backend }} queue depth {{ value }} > {{ threshold }}"}}
KEY = "R0123456789abcdef0123456789abcde"


@pytest.mark.slow
async def test_incident_pages_once_and_resolves_once(store_url: str, tmp_path: Path) -> None:
    clock = Clock()
    busy = SimBackend("vllm-a", make_renderer("vllm"), ("m",), Profile(queue_depth=3), seed=1, now=clock())
    calm = SimBackend("vllm-b", make_renderer("vllm"), ("m",), Profile(queue_depth=3), seed=2, now=clock())
    async with slack_receiver() as slack, pagerduty_receiver() as pd, webhook_receiver("s3cret") as hook:
        notifiers = {"slack": {"webhook_url": slack.url}, "pagerduty": {"routing_key": KEY, "url": pd.url},
                     "webhook": {"url": hook.url, "secret": "s3cret"}}
        async with harness([busy, calm], store_url, clock, rules=[RULE], default_rules=False,
                           notifiers=notifiers, evaluation_interval="15s") as h:
            async with httpx.AsyncClient() as http:
                engine = AlertEngine(h.cfg, h.store.reads, h.store.alerts, h.store.silences, http, clock=clock)

                async def tick(seconds: float = 15) -> list[str]:
                    clock.advance(seconds)
                    await h.collector.scrape_once()
                    transitions = await engine.evaluate_once()
                    await engine.dispatcher.run_once(clock())
                    return [f"{t.labels['backend']}:{t.old}->{t.new}" for t in transitions]

                assert await tick() == []
                busy.incident.queue_extra = 150  # 153 waiting
                assert await tick() == ["vllm-a:inactive->pending"]
                assert await tick(30) == []  # pending: for 1m not elapsed, nobody paged
                assert slack.received == [] and pd.received == [] and hook.received == []
                assert await tick(30) == ["vllm-a:pending->firing"]
                for _ in range(4):  # still firing: no duplicate page
                    assert await tick() == []
                busy.incident.queue_extra = 0
                assert await tick() == ["vllm-a:firing->resolved"]
                assert await tick() == []
                api = (await h.api.get("/api/v1/alerts", params={"since": "1h"})).json()
                metrics = (await h.api.get("/metrics")).text

        for r in (slack, pd, hook):
            assert r.invalid == [], (r, [x.errors for x in r.invalid])
            assert len(r.received) == 2, r.payloads
        trigger, resolve = pd.payloads
        assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
        assert trigger["dedup_key"] == resolve["dedup_key"]
        assert trigger["payload"]["summary"] == "vllm-a queue depth 153 > 100"
        assert trigger["payload"]["severity"] == "critical" and trigger["payload"]["source"] == "vllm-a"
        assert [p["status"] for p in hook.payloads] == ["firing", "resolved"]
        assert "RESOLVED" in str(slack.payloads[1])
        assert [x["to"] for x in api["history"]] == ["resolved", "firing", "pending"]
        assert api["active"] == []
        assert KEY not in metrics and "s3cret" not in metrics


@pytest.mark.slow
async def test_restart_keeps_pending_timer_and_does_not_page_twice(tmp_path: Path) -> None:
    clock = Clock()
    sim = SimBackend("vllm-a", make_renderer("vllm"), ("m",), Profile(queue_depth=3), seed=1, now=clock())
    store_url = f"sqlite:///{tmp_path}/restart.db"
    async with webhook_receiver() as hook:
        cfg_extra = {"rules": [RULE], "default_rules": False, "notifiers": {"webhook": {"url": hook.url}}}
        sim.incident.queue_extra = 150
        async with harness([sim], store_url, clock, **cfg_extra) as h, httpx.AsyncClient() as http:
            engine = AlertEngine(h.cfg, h.store.reads, h.store.alerts, h.store.silences, http, clock=clock)
            await h.collector.scrape_once()
            assert [t.new for t in await engine.evaluate_once()] == ["pending"]
            clock.advance(45)
        # restart: new process state, same database; the pending timer continues
        async with harness([sim], store_url, clock, **cfg_extra) as h, httpx.AsyncClient() as http:
            engine = AlertEngine(h.cfg, h.store.reads, h.store.alerts, h.store.silences, http, clock=clock)
            clock.advance(20)
            await h.collector.scrape_once()
            assert [t.new for t in await engine.evaluate_once()] == ["firing"]  # 65 s since pending
            await engine.dispatcher.run_once(clock())
        async with harness([sim], store_url, clock, **cfg_extra) as h, httpx.AsyncClient() as http:
            engine = AlertEngine(h.cfg, h.store.reads, h.store.alerts, h.store.silences, http, clock=clock)
            clock.advance(15)
            await h.collector.scrape_once()
            assert await engine.evaluate_once() == []  # still firing after a restart: no second page
            await engine.dispatcher.run_once(clock())
    assert [p["status"] for p in hook.payloads] == ["firing"]
