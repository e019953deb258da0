"""Config reload without a restart (``POST /-/reload`` and SIGHUP), as Prometheus and
Alertmanager do it: backends added and removed, rules changed, alert states and pending timers
kept, an invalid file refused with the old config still running."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from inferwatch.config import load
from inferwatch.service import Service
from inferwatch.stores import Stores
from sim.engines import make_renderer
from sim.server import SimFleet
from sim.state import Profile, SimBackend
from tests.alertmanager_helpers import free_port

TOKEN = "reload-token-0123456789"



def _config(tmp: Path, port: int, fleet: SimFleet, names: list[str], **extra: Any) -> dict[str, Any]:
    return {"storage": f"sqlite:///{tmp / 'iw.db'}", "scrape_interval": "1s", "evaluation_interval": "1s",
            "web": {"listen": f"127.0.0.1:{port}", "auth": {"tokens": [TOKEN]}}, "gpus": {"nvml": "off"},
            "backends": [{"name": n, "engine": "vllm", "url": fleet.url(n)} for n in names],
            "default_rules": False,
            "rules": [{"name": "QueueDepthHigh", "expr": "queue_depth > 100", "for": "1h", "severity": "warning"}],
            **extra}


@pytest.fixture
async def fleet() -> AsyncIterator[SimFleet]:
    now = time.time()
    sims = [SimBackend(n, make_renderer("vllm"), ("m",), Profile(queue_depth=3), seed=i, now=now)
            for i, n in enumerate(("vllm-a", "vllm-b", "vllm-c"))]
    sims[0].incident.queue_extra = 150  # vllm-a's queue alert goes pending (for: 1h)
    f = SimFleet(sims)
    await f.start()
    yield f
    await f.stop()


async def _wait(check: Any, timeout: float = 15.0) -> Any:
    end = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.2)


async def test_post_reload_applies_backends_and_rules_and_keeps_alert_state(
        tmp_path: Path, fleet: SimFleet, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    path = tmp_path / "inferwatch.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path, port, fleet, ["vllm-a", "vllm-b"])))
    cfg = load(path)
    stores = Stores.open(cfg.storage)
    stores.migrate()
    service = Service(cfg, stores, config_path=path)
    server = service.server()
    await service.start()
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=10) as api:
            async def pending() -> Any:
                active = (await api.get("/api/v1/alerts")).json()["active"]
                return [a for a in active if a["state"] == "pending"]

            (before,) = await _wait(pending)
            assert before["labels"]["backend"] == "vllm-a"

            # add vllm-c, drop vllm-b, add a rule
            new = _config(tmp_path, port, fleet, ["vllm-a", "vllm-c"])
            new["rules"].append({"name": "Running", "expr": "requests_running > -1", "severity": "info"})
            path.write_text(yaml.safe_dump(new))
            async with httpx.AsyncClient(base_url=base, timeout=10) as anonymous:
                assert (await anonymous.post("/-/reload")).status_code == 401
            resp = await api.post("/-/reload")
            assert resp.status_code == 200, resp.text
            assert resp.json()["status"] == "success" and "2 backends, 2 rules" in resp.json()["message"]

            async def backends() -> Any:
                return sorted(b["name"] for b in (await api.get("/api/v1/backends")).json())

            assert await backends() == ["vllm-a", "vllm-c"]

            async def scraped_c() -> Any:
                doc = (await api.get("/api/v1/backends/vllm-c")).json()
                return doc.get("up") is True

            await _wait(scraped_c)

            async def running_fires() -> Any:
                active = (await api.get("/api/v1/alerts")).json()["active"]
                return {a["labels"]["backend"] for a in active if a["rule"] == "Running" and a["state"] == "firing"}

            assert await _wait(running_fires) >= {"vllm-a", "vllm-c"}
            (after,) = await pending()
            assert after["fingerprint"] == before["fingerprint"]
            assert after["active_since"] == before["active_since"]  # the pending timer kept running
            metrics = (await api.get("/metrics")).text
            assert "inferwatch_config_last_reload_successful 1.0" in metrics

            # an invalid file is refused: 500 naming the field, the running config stays
            path.write_text(yaml.safe_dump({**new, "scrape_intervall": "1s"}))
            resp = await api.post("/-/reload")
            assert resp.status_code == 500
            assert "scrape_intervall" in resp.json()["error"]
            assert "inferwatch_config_last_reload_successful 0.0" in (await api.get("/metrics")).text
            assert await backends() == ["vllm-a", "vllm-c"]
            assert any("refused; the running config stays" in r.getMessage() for r in caplog.records)

            path.write_text(yaml.safe_dump(new))
            assert (await api.post("/-/reload")).status_code == 200
            assert "inferwatch_config_last_reload_successful 1.0" in (await api.get("/metrics")).text
    finally:
        server.should_exit = True
        await serving
        await service.stop()
        stores.close()


@pytest.mark.slow
def test_sighup_reloads_a_running_inferwatch(tmp_path: Path) -> None:
    """The real process: SIGHUP adds a backend while ``inferwatch run`` keeps running."""
    async def main() -> None:
        now = time.time()
        sims = [SimBackend(n, make_renderer("vllm"), ("m",), Profile(), seed=i, now=now)
                for i, n in enumerate(("vllm-a", "vllm-b"))]
        fleet = SimFleet(sims)
        await fleet.start()
        port = free_port()
        path = tmp_path / "inferwatch.yaml"
        path.write_text(yaml.safe_dump(_config(tmp_path, port, fleet, ["vllm-a"])))
        proc = subprocess.Popen([sys.executable, "-m", "inferwatch", "run", "-c", str(path)], cwd=tmp_path,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5,
                                         headers={"Authorization": f"Bearer {TOKEN}"}) as api:
                async def names() -> Any:
                    try:
                        return sorted(b["name"] for b in (await api.get("/api/v1/backends")).json())
                    except httpx.HTTPError:
                        return None

                assert await _wait(names, 30) == ["vllm-a"]
                path.write_text(yaml.safe_dump(_config(tmp_path, port, fleet, ["vllm-a", "vllm-b"])))
                proc.send_signal(signal.SIGHUP)

                async def both() -> Any:
                    return await names() == ["vllm-a", "vllm-b"]

                await _wait(both)
                assert proc.poll() is None  # still the same process
        finally:
            proc.terminate()
            out = proc.communicate(timeout=20)[0].decode()
            await fleet.stop()
        assert "[service.reload] reloaded" in out, out[-2000:]

    asyncio.run(main())
