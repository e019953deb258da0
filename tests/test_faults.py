"""Fault injection: each broken backend is reported down with a clear reason, and the healthy
backend next to it is scraped and reported as if nothing happened."""

from __future__ import annotations

import pytest

from sim.engines import make_renderer
from sim.state import Profile, SimBackend
from tests.e2e_helpers import Clock, harness

FAULTS = {
    "refused": "connection refused",
    "timeout": "timeout after 0.5s",
    "http500": "HTTP 500",
    "html": "not exposition text",
    "truncated": "truncated body",
    "oversized": "body over size cap",
    "garbage": "parse error at line 3",
}


@pytest.mark.slow
async def test_each_fault_has_its_reason_and_spares_the_healthy_backend(tmp_path: object) -> None:
    clock = Clock()
    healthy = SimBackend("healthy", make_renderer("vllm"), ("m",), Profile(queue_depth=3), seed=1, now=clock())
    broken = {name: SimBackend(name, make_renderer("vllm"), ("m",), Profile(), seed=2, now=clock()) for name in FAULTS}
    async with harness([healthy, *broken.values()], f"sqlite:///{tmp_path}/faults.db", clock,
                       scrape_timeout="0.5s", max_body_bytes="200KiB") as h:
        await h.collector.scrape_once()
        await h.fleet.set_outage("refused", True)
        broken["timeout"].incident.delay = 3.0
        broken["http500"].incident.http_status = 500
        broken["html"].incident.body = b"<!DOCTYPE html><html><body>Bad gateway</body></html>"
        broken["truncated"].incident.truncate = True
        broken["oversized"].incident.body = b"vllm:num_requests_waiting 1\n" * 20_000  # ~560 KB > 200 KiB
        broken["garbage"].incident.body = (b"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting 1\n"
                                           b"vllm:num_requests_waiting{model_name=\"m} 2\n")
        clock.advance(60)
        results = {r.backend: r for r in await h.collector.scrape_once()}
        got = await h.backends()
        for name, reason in FAULTS.items():
            assert results[name].up is False
            assert got[name]["up"] is False
            assert got[name]["reason"].startswith(reason), (name, got[name]["reason"])
            assert got[name]["queue_depth"] is None  # nothing reported for a backend that is down
        # the healthy backend: up, on time, with its numbers
        assert got["healthy"]["up"] is True and got["healthy"]["reason"] is None
        assert got["healthy"]["queue_depth"] == 3
        assert got["healthy"]["tokens_per_second"] > 0
        # the timeout cost at most its own timeout, not the other scrapes' time
        assert results["healthy"].duration < 0.5
        # the collector's own metrics count each failure by reason class
        text = (await h.api.get("/metrics")).text
        assert 'inferwatch_scrape_errors_total{backend="refused",reason="refused"} 1.0' in text
        assert 'inferwatch_backend_up{backend="healthy",engine="vllm",team="e2e"} 1.0' in text
        assert 'inferwatch_backend_up{backend="html",engine="vllm",team="e2e"} 0.0' in text


@pytest.mark.slow
async def test_backend_recovers_after_outage(tmp_path: object) -> None:
    clock = Clock()
    sim = SimBackend("flaky", make_renderer("vllm"), ("m",), Profile(), seed=3, now=clock())
    async with harness([sim], f"sqlite:///{tmp_path}/flaky.db", clock) as h:
        await h.collector.scrape_once()
        await h.fleet.set_outage("flaky", True)
        clock.advance(60)
        await h.collector.scrape_once()
        assert (await h.backends())["flaky"]["reason"] == "connection refused"
        await h.fleet.set_outage("flaky", False)
        clock.advance(60)
        await h.collector.scrape_once()
        got = (await h.backends())["flaky"]
        assert got["up"] is True and got["reason"] is None
        # the interval spanning the outage is counted once the backend is back (no lost requests)
        assert got["tokens_per_second"] is not None and got["tokens_per_second"] > 0
