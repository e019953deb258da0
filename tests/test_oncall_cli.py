"""The on-call command line against a running inferwatch (real HTTP, with a token):
``inferwatch alerts``, ``silence add|list|expire``, and ``routes test`` over a config file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from inferwatch.cli import main
from inferwatch.config import parse
from inferwatch.service import Service
from inferwatch.stores import Stores
from sim.engines import make_renderer
from sim.server import SimFleet
from sim.state import Profile, SimBackend
from tests.alertmanager_helpers import free_port

TOKEN = "oncall-token-0123456789"



@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[str]:
    """inferwatch with one simulated vLLM whose queue alert fires within a few seconds."""
    busy = SimBackend("vllm-a", make_renderer("vllm"), ("m",), Profile(queue_depth=3), seed=1, now=time.time())
    busy.incident.queue_extra = 150
    fleet = SimFleet([busy])
    await fleet.start()
    port = free_port()
    cfg = parse({"storage": f"sqlite:///{tmp_path / 'iw.db'}", "scrape_interval": "1s", "evaluation_interval": "1s",
                 "web": {"listen": f"127.0.0.1:{port}", "auth": {"tokens": [TOKEN]}},
                 "backends": [{"name": "vllm-a", "engine": "vllm", "url": fleet.url("vllm-a"),
                               "labels": {"region": "eu"}}],
                 "default_rules": False, "gpus": {"nvml": "off"},
                 "rules": [{"name": "QueueDepthHigh", "expr": "queue_depth > 100", "severity": "critical",
                            "annotations": {"summary": "{{ backend }} queue {{ value }}"}}]}, "<oncall>")
    stores = Stores.open(cfg.storage)
    stores.migrate()
    service = Service(cfg, stores)
    server = service.server()
    await service.start()
    serving = asyncio.create_task(server.serve())
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            for _ in range(100):
                try:
                    doc = (await http.get(f"{url}/api/v1/alerts")).json()
                    if any(a["state"] == "firing" for a in doc.get("active", [])):
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the queue alert did not fire")
        yield url
    finally:
        server.should_exit = True
        await serving
        await service.stop()
        await fleet.stop()
        stores.close()


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = await asyncio.to_thread(main, list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


async def test_alerts_and_silences_over_the_api(running: str, capsys: pytest.CaptureFixture[str]) -> None:
    api = ["--url", running, "--token", TOKEN]
    rc, out, _ = await _cli(capsys, "alerts", *api)
    assert rc == 0
    header, row = out.splitlines()
    assert header.split() == ["ALERTNAME", "STATE", "SINCE", "SUMMARY", "LABELS"]
    assert row.startswith("QueueDepthHigh  firing") and "vllm-a queue 15" in row
    assert "backend=vllm-a" in row and "region=eu" in row and "severity=critical" in row
    rc, out, _ = await _cli(capsys, "alerts", *api, "backend=~vllm-[bc]")
    assert (rc, out.strip()) == (0, "no active alerts")

    rc, _, err = await _cli(capsys, "alerts", "--url", running, "--token", "")
    assert rc == 1 and "--token or INFERWATCH_TOKEN" in err and TOKEN not in err
    rc, _, err = await _cli(capsys, "alerts", "--url", "http://127.0.0.1:9", "--token", TOKEN)
    assert rc == 1 and "cannot reach inferwatch at http://127.0.0.1:9" in err

    rc, out, _ = await _cli(capsys, "silence", "add", *api, "backend=vllm-a", "alertname=~Queue.*",
                            "-d", "2h", "-m", "draining for maintenance", "-a", "alice")
    assert rc == 0
    sid = out.strip()
    rc, out, _ = await _cli(capsys, "silence", "list", *api, "--state", "active")
    assert rc == 0 and sid in out and "backend=vllm-a, alertname=~Queue.*" in out and "alice" in out
    assert "in 1h59m" in out or "in 2h" in out
    rc, out, _ = await _cli(capsys, "silence", "expire", *api, sid)
    assert (rc, out.strip()) == (0, f"expired {sid}")
    rc, out, _ = await _cli(capsys, "silence", "list", *api, "--state", "active")
    assert out.strip() == "no silences"
    rc, _, err = await _cli(capsys, "silence", "add", *api, "backend", "-m", "x")
    assert rc == 1 and "matcher 'backend': write label=value or label=~regex" in err
    rc, _, err = await _cli(capsys, "silence", "expire", *api, "nope")
    assert rc == 1 and "HTTP 404" in err and "no silence with id 'nope'" in err


def test_routes_test_prints_the_receivers_and_groups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "inferwatch.yaml"
    cfg.write_text(yaml.safe_dump({
        "backends": [{"name": "a", "url": "http://127.0.0.1:9", "engine": "vllm"}],
        "notifiers": {"slack": {"webhook_url": "https://hooks.slack.com/services/T0/B0/x"},
                      "pagerduty": {"routing_key": "R0123456789abcdef0123456789abcde"}},
        "routes": [{"receiver": "pagerduty", "match": {"severity": "critical"}, "continue": True},
                   {"receiver": "slack", "match_re": {"alertname": "Queue.*"}, "group_by": ["alertname"]}],
    }))
    assert main(["routes", "test", "-c", str(cfg), "alertname=QueueDepthHigh", "severity=critical"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "pagerduty  (group {alertname='QueueDepthHigh', backend=''})",
        "slack  (group {alertname='QueueDepthHigh'})"]
    assert main(["routes", "test", "-c", str(cfg), "alertname=Other", "severity=info"]) == 1
    assert "no route matches" in capsys.readouterr().out
    assert main(["routes", "test", "-c", str(cfg), "severity"]) == 2
    assert "write label=value" in capsys.readouterr().err
