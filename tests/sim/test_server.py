"""The simulated fleet server: hundreds of backends from one process, incidents per backend."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from exporters.parser import parse
from sim.fleet import uniform
from sim.server import SimFleet


@pytest.mark.slow
async def test_serves_three_hundred_backends_from_one_process() -> None:
    backends = uniform(300)
    fleet = SimFleet(backends)
    await fleet.start()
    try:
        assert len(set(fleet.ports.values())) == 300
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as client:
            resps = await asyncio.gather(*(client.get(fleet.url(b.name) + "/metrics") for b in backends))
        assert all(r.status_code == 200 for r in resps)
        fams = parse(resps[0].content)
        assert "vllm:num_requests_waiting" in fams
        assert fleet.requests[backends[0].name] == 1
    finally:
        await fleet.stop()


async def test_outage_refuses_then_serves_on_the_same_port() -> None:
    [b] = uniform(1)
    fleet = SimFleet([b])
    await fleet.start()
    url = fleet.url(b.name) + "/metrics"
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).status_code == 200
            await fleet.set_outage(b.name, True)
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(url)
            await fleet.set_outage(b.name, False)
            assert (await client.get(url)).status_code == 200
            b.incident.http_status = 503
            assert (await client.get(url)).status_code == 503
    finally:
        await fleet.stop()
