"""Service discovery: Prometheus file_sd / http_sd target groups and DNS SRV/A records become
backends, appear and disappear while inferwatch runs, and keep their history. Real files, a real
HTTP server and a real DNS server (dnspython) on loopback."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from collector.config import DiscoveryConfig
from collector.discovery import Discoverer, parse_groups, targets_to_backends
from inferwatch.config import ConfigError, load, parse
from inferwatch.service import Service
from inferwatch.stores import Stores
from sim.engines import make_renderer
from sim.server import SimFleet
from sim.state import Profile, SimBackend
from tests.alertmanager_helpers import free_port
from tests.audit_servers import DnsServer


def _sd(**kw: Any) -> DiscoveryConfig:
    return DiscoveryConfig.model_validate({"name": "t", "file_sd": {"files": ["x.json"]}, **kw})


def test_target_groups_become_backends() -> None:
    groups, problems = parse_groups([
        {"targets": ["10.0.0.1:8000", "10.0.0.2:8000"], "labels": {"engine": "sglang", "region": "eu", "__x": "y"}},
        {"targets": ["10.0.0.3:9000"], "labels": {"backend": "big-one", "__scheme__": "https",
                                                   "__metrics_path__": "/prom"}},
        {"targets": ["10.0.0.4:1"], "labels": {"engine": "nope"}},
        {"labels": {}},
    ], "targets.json")
    assert problems == ['targets.json[3].targets: expected a list of "host:port" strings']
    backends, problems = targets_to_backends(groups, _sd(engine="vllm", labels={"team": "serving"}), "targets.json")
    assert [(b.name, b.engine, b.url, b.metrics_path, b.labels) for b in backends] == [
        ("10.0.0.1:8000", "sglang", "http://10.0.0.1:8000", "/metrics", {"team": "serving", "region": "eu"}),
        ("10.0.0.2:8000", "sglang", "http://10.0.0.2:8000", "/metrics", {"team": "serving", "region": "eu"}),
        ("big-one", "vllm", "https://10.0.0.3:9000", "/prom", {"team": "serving"}),
    ]
    assert len(problems) == 1 and problems[0].startswith("targets.json[2] target '10.0.0.4:1': engine")
    _, problems = targets_to_backends(groups[:1], _sd(), "f")
    assert problems == []  # the group names its engine
    _, problems = targets_to_backends([groups[1]], _sd(), "f")
    assert problems == ["f[0]: no engine: give the group an engine label or the discovery entry 't' an engine"]


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        parse({"discovery": [{"name": "a", "file_sd": {"files": ["x"]}, "http_sd": {"url": "http://h/sd"}},
                             {"name": "b", "dns_sd": {"names": ["vllm.internal"], "type": "A"}},
                             {"name": "c", "http_sd": {"url": "sd.internal/targets"}}]}, "f.yaml")
    text = str(info.value)
    assert "discovery[0]" in text and "exactly one of file_sd, http_sd, dns_sd" in text
    assert "discovery[1]" in text and "port: required for A records" in text
    assert "discovery[2].http_sd.url" in text and "absolute http(s) URL" in text


def _sim(name: str, seed: int) -> SimBackend:
    return SimBackend(name, make_renderer("vllm"), ("m",), Profile(), seed=seed, now=time.time())


@pytest.fixture
async def fleet() -> AsyncIterator[SimFleet]:
    f = SimFleet([_sim("one", 1), _sim("two", 2)])
    await f.start()
    yield f
    await f.stop()


def _hostport(fleet: SimFleet, name: str) -> str:
    return fleet.url(name).split("://", 1)[1].rstrip("/")


async def _until(check: Any, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.2)


async def test_file_sd_backends_come_and_go_while_running_and_keep_their_history(
        tmp_path: Path, fleet: SimFleet) -> None:
    targets = tmp_path / "targets" / "vllm.json"
    targets.parent.mkdir()
    targets.write_text(json.dumps([{"targets": [_hostport(fleet, "one")],
                                    "labels": {"backend": "vllm-one", "region": "eu"}}]))
    path = tmp_path / "inferwatch.yaml"
    path.write_text(yaml.safe_dump({
        "storage": f"sqlite:///{tmp_path / 'iw.db'}", "scrape_interval": "1s", "gpus": {"nvml": "off"},
        "discovery": [{"name": "files", "engine": "vllm", "file_sd": {"files": ["targets/*.json", "targets/*.yaml"],
                                                                        "refresh_interval": "1s"}}]}))
    cfg = load(path)
    stores = Stores.open(cfg.storage)
    stores.migrate()
    service = Service(cfg, stores, config_path=path)
    await service.start()
    api = httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://iw")
    try:
        async def names() -> list[str]:
            return sorted(b["name"] for b in (await api.get("/api/v1/backends")).json())

        assert await names() == ["vllm-one"]  # discovered before the first scrape
        (one,) = (await api.get("/api/v1/backends")).json()
        assert one["labels"] == {"region": "eu"} and one["engine"] == "vllm"

        async def scraped() -> bool:
            return bool((await api.get("/api/v1/backends/vllm-one")).json().get("up"))

        await _until(scraped)
        # a second file appears: its target joins without a restart
        (targets.parent / "more.yaml").write_text(yaml.safe_dump([{"targets": [_hostport(fleet, "two")],
                                                                   "labels": {"engine": "vllm"}}]))

        async def two() -> bool:
            return await names() == sorted(["vllm-one", _hostport(fleet, "two")])

        await _until(two)
        # the first file is emptied: vllm-one leaves; its history stays in the store
        targets.write_text("[]")

        async def one_left() -> bool:
            return await names() == [_hostport(fleet, "two")]

        await _until(one_left)
        assert "vllm-one" not in [s.name for s in service.collector.sources]
        status = await asyncio.to_thread(stores.metrics.latest_status)
        assert status["vllm-one"].up  # its rows stay in the store (a target that comes back continues)
        # a broken file keeps the last good targets and says why in the log
        (targets.parent / "more.yaml").write_text("- targets: [unclosed")
        await asyncio.sleep(2.5)
        assert await names() == [_hostport(fleet, "two")]
        assert any("more.yaml: not valid YAML" in p for p in service.discoverer.problems["files"])
    finally:
        await api.aclose()
        await service.stop()
        stores.close()


class _HttpSD(threading.Thread):
    """A loopback HTTP server answering every GET with ``self.body`` (JSON)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.body: object = []
        self.status = 200
        self.port = free_port()
        self.ready = threading.Event()

    def run(self) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            body = json.dumps(self.body).encode()
            writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
            writer.close()

        async def main() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", self.port)
            self.ready.set()
            async with server:
                await server.serve_forever()

        asyncio.run(main())


async def test_http_sd_follows_the_endpoint_and_keeps_targets_while_it_fails() -> None:
    sd = _HttpSD()
    sd.start()
    assert sd.ready.wait(5)
    sd.body = [{"targets": ["10.1.0.1:8000", "10.1.0.2:8000"], "labels": {"engine": "tgi", "zone": "a"}}]
    cfg = DiscoveryConfig.model_validate({"name": "http", "http_sd": {"url": f"http://127.0.0.1:{sd.port}/sd",
                                                                      "refresh_interval": "10s"}})
    async with httpx.AsyncClient() as http:
        d = Discoverer([cfg], http)
        assert await d.refresh(0.0) is True
        assert [(b.name, b.engine, b.labels) for b in d.backends] == [
            ("10.1.0.1:8000", "tgi", {"zone": "a"}), ("10.1.0.2:8000", "tgi", {"zone": "a"})]
        assert await d.refresh(5.0) is False  # not due
        sd.body = [{"targets": ["10.1.0.2:8000"], "labels": {"engine": "tgi", "zone": "a"}}]
        assert await d.refresh(10.0) is True and [b.name for b in d.backends] == ["10.1.0.2:8000"]
        sd.status = 503
        assert await d.refresh(20.0) is False
        assert [b.name for b in d.backends] == ["10.1.0.2:8000"]  # kept while the endpoint fails
        assert d.errors()["http"] == f"RuntimeError: http://127.0.0.1:{sd.port}/sd: HTTP 503"


async def test_dns_srv_and_a_records_become_backends() -> None:
    server = DnsServer()
    server.start()
    server.zone[("_vllm._tcp.fleet.test.", "SRV")] = (30, ["10 50 8001 node-b.fleet.test.",
                                                         "10 50 8000 node-a.fleet.test."])
    server.zone[("tgi.fleet.test.", "A")] = (30, ["10.2.0.1", "10.2.0.2"])
    ns = f"127.0.0.1:{server.port}"
    srv = DiscoveryConfig.model_validate({"name": "srv", "engine": "vllm", "labels": {"pool": "srv"},
                                          "dns_sd": {"names": ["_vllm._tcp.fleet.test"], "nameserver": ns}})
    a = DiscoveryConfig.model_validate({"name": "a", "engine": "tgi",
                                        "dns_sd": {"names": ["tgi.fleet.test", "gone.fleet.test"], "type": "A",
                                                   "port": 3000, "nameserver": ns}})
    async with httpx.AsyncClient() as http:
        d = Discoverer([srv, a], http)
        assert await d.refresh(0.0)
        assert [(b.name, b.engine, b.url, b.labels) for b in d.backends] == [
            ("node-a.fleet.test:8000", "vllm", "http://node-a.fleet.test:8000", {"pool": "srv"}),
            ("node-b.fleet.test:8001", "vllm", "http://node-b.fleet.test:8001", {"pool": "srv"}),
            ("10.2.0.1:3000", "tgi", "http://10.2.0.1:3000", {}),
            ("10.2.0.2:3000", "tgi", "http://10.2.0.2:3000", {}),
        ]
        server.zone[("_vllm._tcp.fleet.test.", "SRV")] = (30, ["10 50 8000 node-a.fleet.test."])
        assert await d.refresh(60.0)
        assert [b.name for b in d.backends][:1] == ["node-a.fleet.test:8000"] and len(d.backends) == 3
