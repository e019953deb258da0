"""Our ``alertmanager`` notifier against a real Prometheus Alertmanager (Debian's
``prometheus-alertmanager``; skipped when absent): what we post is what Alertmanager holds
(``GET /api/v2/alerts``), a resolve ends the alert, and Alertmanager's own webhook receiver gets
both — the whole chain inferwatch → Alertmanager → receiver."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from alerts.engine import AlertEngine
from alerts.model import Notification
from alerts.notifiers import build
from sim.engines import make_renderer
from sim.state import Profile, SimBackend
from tests.alertmanager_helpers import real_alertmanager
from tests.e2e_helpers import Clock, harness

LABELS = {"alertname": "QueueDepthHigh", "severity": "critical", "backend": "vllm-a", "team": "e2e"}
ANNOTATIONS = {"summary": "vllm-a queue depth 153 > 100", "description": "queue building up"}
GENERATOR = "http://inferwatch.example:8080/backends/vllm-a"


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def _note(kind: str, starts: float, ends: float | None, now: float) -> Notification:
    return Notification(id=uuid.uuid4().hex, receiver="alertmanager", kind=kind,  # type: ignore[arg-type]
                        fingerprint="f" * 16, rule="QueueDepthHigh", labels=LABELS, annotations=ANNOTATIONS,
                        value=153.0, starts_at=starts, ends_at=ends, created_at=now, dashboard_url=GENERATOR)


def _ours(alerts: list[dict[str, Any]], alertname: str = "QueueDepthHigh") -> list[dict[str, Any]]:
    return [a for a in alerts if a["labels"].get("alertname") == alertname]


@pytest.mark.slow
async def test_trigger_and_resolve_reach_real_alertmanager_and_its_receiver() -> None:
    async with real_alertmanager() as am, httpx.AsyncClient() as http:
        notifier = build("alertmanager", {"url": am.url})
        starts = float(int(time.time()) - 30)  # whole seconds: the payload carries seconds
        outcome = await notifier.send(_note("trigger", starts, None, time.time()), http)
        assert outcome.ok, outcome

        [alert] = _ours(await am.alerts())
        assert alert["labels"] == LABELS
        assert alert["annotations"] == ANNOTATIONS
        assert _ts(alert["startsAt"]) == starts
        assert alert["generatorURL"] == GENERATOR
        assert alert["status"]["state"] == "active"
        assert _ts(alert["endsAt"]) > time.time()  # no endsAt sent: kept active for resolve_timeout

        [firing] = await am.wait_delivered(1)
        assert firing["status"] == "firing"
        [delivered] = firing["alerts"]
        assert delivered["labels"] == LABELS and delivered["annotations"] == ANNOTATIONS
        assert delivered["generatorURL"] == GENERATOR and _ts(delivered["startsAt"]) == starts
        assert firing["groupLabels"] == {"alertname": "QueueDepthHigh", "backend": "vllm-a"}

        ends = float(int(time.time()))
        outcome = await notifier.send(_note("resolve", starts, ends, time.time()), http)
        assert outcome.ok, outcome
        active = _ours(await am.alerts(active="true"))
        assert all(_ts(a["endsAt"]) <= time.time() for a in active), active  # gone, or ended

        payloads = await am.wait_delivered(2)
        resolved = payloads[1]
        assert resolved["status"] == "resolved"
        [delivered] = resolved["alerts"]
        assert delivered["status"] == "resolved" and _ts(delivered["endsAt"]) == ends
        assert delivered["labels"] == LABELS
        assert am.hook.invalid == [], [r.errors for r in am.hook.invalid]
        assert len(am.hook.received) == 2  # one trigger, one resolve; nothing else


@pytest.mark.slow
async def test_engine_queue_buildup_goes_through_real_alertmanager(tmp_path: Any) -> None:
    """AlertEngine on a simulated queue build-up, notifier ``alertmanager`` → real Alertmanager."""
    # a settable clock two minutes in the past: the resolve's endsAt (at +75 s) must not lie in
    # Alertmanager's future, the firing alert's endsAt (+4 min from +60 s) must
    clock = Clock(float(int(time.time()) - 120))
    busy = SimBackend("vllm-a", make_renderer("vllm"), ("m",), Profile(queue_depth=3), seed=1, now=clock())
    rule = {"name": "QueueDepthHigh", "expr": "queue_depth > 100", "for": "30s", "severity": "critical",
            "annotations": {"summary": "{{ backend }} queue depth {{ value }} > {{ threshold }}"}}
    async with real_alertmanager() as am:
        async with harness([busy], f"sqlite:///{tmp_path / 'am.db'}", clock, rules=[rule], default_rules=False,
                           notifiers={"alertmanager": {"url": am.url}}, evaluation_interval="15s") as h:
            async with httpx.AsyncClient() as http:
                engine = AlertEngine(h.cfg, h.store.reads, h.store.alerts, h.store.silences, http, clock=clock)

                async def tick(seconds: float = 15) -> list[str]:
                    clock.advance(seconds)
                    await h.collector.scrape_once()
                    transitions = await engine.evaluate_once()
                    await engine.dispatcher.run_once(clock())
                    return [f"{t.labels['backend']}:{t.old}->{t.new}" for t in transitions]

                assert await tick() == []
                busy.incident.queue_extra = 150
                assert await tick() == ["vllm-a:inactive->pending"]
                assert await tick(30) == ["vllm-a:pending->firing"]
                [alert] = _ours(await am.alerts())
                assert alert["labels"]["severity"] == "critical" and alert["labels"]["backend"] == "vllm-a"
                assert alert["annotations"]["summary"] == "vllm-a queue depth 153 > 100"
                assert alert["generatorURL"].endswith("/backends/vllm-a")
                assert alert["status"]["state"] == "active"
                [firing] = await am.wait_delivered(1)
                assert firing["status"] == "firing"
                assert await tick() == []  # still firing: nothing new
                busy.incident.queue_extra = 0
                assert await tick() == ["vllm-a:firing->resolved"]
                assert _ours(await am.alerts(active="true")) == []
                payloads = await am.wait_delivered(2)
    assert [p["status"] for p in payloads] == ["firing", "resolved"]
    assert am.hook.invalid == []


#: how long the long-firing test keeps its alert firing (real seconds): twice Alertmanager's
#: resolve_timeout (1m) and a little more
LONG_FIRING_S = 130.0


@pytest.mark.slow
async def test_a_long_firing_alert_stays_active_in_alertmanager_past_its_resolve_timeout(tmp_path: Any) -> None:
    """Real time, real Alertmanager with ``resolve_timeout: 1m``. inferwatch's alert fires for over
    2 minutes: re-sent every minute with endsAt ahead (as Prometheus's sender does), Alertmanager
    keeps it active throughout. A control alert posted once without endsAt (``resend_interval:
    0``, what the notifier did before) is resolved by Alertmanager after its resolve_timeout."""
    clock = Clock(time.time())
    busy = SimBackend("vllm-a", make_renderer("vllm"), ("m",), Profile(queue_depth=3), seed=1, now=clock())
    busy.incident.queue_extra = 150
    rule = {"name": "QueueDepthHigh", "expr": "queue_depth > 100", "severity": "critical",
            "annotations": {"summary": "{{ backend }} queue depth {{ value }}"}}
    async with real_alertmanager(resolve_timeout="1m") as am:
        control = build("alertmanager", {"url": am.url, "resend_interval": 0})
        async with harness([busy], f"sqlite:///{tmp_path / 'am.db'}", clock, rules=[rule], default_rules=False,
                           notifiers={"alertmanager": {"url": am.url}}, evaluation_interval="5s") as h:
            async with httpx.AsyncClient() as http:
                control_note = replace(_note("trigger", float(int(time.time())), None, time.time()),
                                       labels={**LABELS, "alertname": "ControlNoResend"})
                assert (await control.send(control_note, http)).ok
                engine = AlertEngine(h.cfg, h.store.reads, h.store.alerts, h.store.silences, http, clock=clock)
                started = time.monotonic()
                states: list[tuple[float, str, str]] = []  # (elapsed, ours, control)
                while time.monotonic() - started < LONG_FIRING_S:
                    clock.advance(time.time() - clock())
                    await h.collector.scrape_once()
                    await engine.evaluate_once()
                    await engine.dispatcher.run_once(clock())
                    alerts = await am.alerts()
                    ours = [a["status"]["state"] for a in _ours(alerts)]
                    ctl = [a["status"]["state"] for a in _ours(alerts, "ControlNoResend")]
                    states.append((time.monotonic() - started, ours[0] if ours else "absent",
                                   ctl[0] if ctl else "absent"))
                    await asyncio.sleep(5)
                posts = engine.dispatcher.sent_total["alertmanager"]
    firing_from = next(t for t, ours, _ in states if ours == "active")
    assert firing_from < 15, states
    assert all(ours == "active" for t, ours, _ in states if t >= firing_from), states  # never resolved by AM
    assert states[-1][0] >= 120, states
    assert states[0][2] == "active" and states[-1][2] == "absent", states  # the control expired after 1m
    assert 3 <= posts <= 4, posts  # the trigger and a re-send every minute
