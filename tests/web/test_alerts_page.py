"""The /alerts page: alerts and history rendered safely, silences created and expired from the
browser form, and every POST refused without the CSRF token."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from alerts.model import AlertState, fingerprint
from inferwatch.config import parse
from inferwatch.stores import Stores
from web.app import create_app

NOW = 1_700_000_000.0
EVIL = "<script>alert(1)</script>"


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Stores]]:
    cfg = parse({"storage": f"sqlite:///{tmp_path}/p.db",
                 "backends": [{"name": "a", "engine": "vllm", "url": "http://127.0.0.1:1"}],
                 "slos": [{"name": "availability", "objective": 0.999, "good": "availability"}]})
    store = Stores.open(cfg.storage)
    store.migrate()
    labels = {"alertname": "QueueDepthHigh", "severity": "critical", "backend": EVIL}
    store.alerts.save_alert_states({fingerprint(labels): AlertState(
        fingerprint(labels), "QueueDepthHigh", labels, "firing", value=153.0, active_since=NOW - 90,
        fired_at=NOW - 30, annotations={"summary": f"{EVIL} queue depth 153 > 100"})})
    app = create_app(cfg, store.reads, store.alerts, store.silences, clock=lambda: NOW)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://inferwatch") as client:
        yield client, store
    store.close()


def _token(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


async def test_alerts_render_escaped_with_security_headers(page: tuple[httpx.AsyncClient, Stores]) -> None:
    client, _ = page
    resp = await client.get("/alerts")
    assert resp.status_code == 200
    assert EVIL not in resp.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in resp.text
    assert "QueueDepthHigh" in resp.text and "critical" in resp.text
    assert resp.headers["x-frame-options"] == "DENY" and resp.headers["cache-control"] == "no-store"
    assert "samesite=strict" in resp.headers["set-cookie"].lower() and "httponly" in resp.headers["set-cookie"].lower()


async def test_silence_created_and_expired_from_the_form(page: tuple[httpx.AsyncClient, Stores]) -> None:
    client, store = page
    token = _token((await client.get("/alerts")).text)
    resp = await client.post("/alerts/silences", data={
        "csrf": token, "matchers": "alertname=QueueDepthHigh\nbackend=~vllm-.*", "duration": "2h",
        "created_by": "oncall@example.com", "comment": "draining vllm-a"})
    assert resp.status_code == 303 and resp.headers["location"] == "/alerts"
    [silence] = store.silences.list_silences()
    assert silence.matchers_doc() == {"alertname": "QueueDepthHigh", "backend": "=~vllm-.*"}
    assert silence.ends_at == NOW + 7200 and silence.created_by == "oncall@example.com"
    html = (await client.get("/alerts")).text
    assert "draining vllm-a" in html and f'action="/alerts/silences/{silence.id}/expire"' in html
    resp = await client.post(f"/alerts/silences/{silence.id}/expire", data={"csrf": token})
    assert resp.status_code == 303
    assert store.silences.list_silences()[0].state(NOW) == "expired"


@pytest.mark.parametrize("csrf", [None, "forged-token"], ids=["no token", "wrong token"])
async def test_posts_without_the_csrf_token_are_refused(page: tuple[httpx.AsyncClient, Stores], csrf: str | None) -> None:
    client, store = page
    await client.get("/alerts")  # the browser has the cookie; the attacker's form lacks the token
    data = {"matchers": "alertname=QueueDepthHigh", "duration": "1h", "created_by": "mallory"}
    if csrf is not None:
        data["csrf"] = csrf
    resp = await client.post("/alerts/silences", data=data)
    assert resp.status_code == 403
    assert store.silences.list_silences() == []


async def test_bad_form_input_shows_the_error_and_creates_nothing(page: tuple[httpx.AsyncClient, Stores]) -> None:
    client, store = page
    token = _token((await client.get("/alerts")).text)
    resp = await client.post("/alerts/silences", data={"csrf": token, "matchers": "backend=~(", "duration": "1h",
                                                       "created_by": "me"})
    assert resp.status_code == 400
    assert 'role="alert"' in resp.text and "backend" in resp.text
    assert store.silences.list_silences() == []


async def test_fleet_page_shows_alerts_of_no_single_backend(page: tuple[httpx.AsyncClient, Stores]) -> None:
    """An SLO burn alert (no backend label) appears on the fleet page; a backend's alert counts in
    its row; the alerts page shows values in the rule's unit and a prefilled silence form."""
    client, store = page
    states = store.alerts.load_alert_states()
    slo = {"alertname": "SLOBurnRate:availability:page_quick", "severity": "critical", "slo": "availability",
           "burn_window": "1h/5m", "slo_alert": "page"}
    states[fingerprint(slo)] = AlertState(fingerprint(slo), "SLOBurnRate:availability:page_quick", slo, "firing",
                                          value=21.3, active_since=NOW - 60, fired_at=NOW - 60,
                                          annotations={"summary": "SLO availability burns 21x"})
    store.alerts.save_alert_states(states)
    fleet = (await client.get("/")).text
    section = fleet[fleet.index('<section id="fleet-alerts"'):fleet.index("</section>")]
    assert "hidden" not in section.split(">")[0]
    assert "1 firing beyond single backends" in section and "SLOBurnRate:availability:page_quick" in section
    assert "slo=availability" in section and "SLO availability burns 21x" in section
    alerts = (await client.get("/alerts")).text
    assert "21.3x" in alerts and "0.20851" not in alerts  # the burn rate as a factor
    prefilled = (await client.get("/alerts", params={"silence": fingerprint(slo)})).text
    assert "alertname=SLOBurnRate:availability:page_quick\nburn_window=1h/5m\nseverity=critical" in prefilled
