"""The real scheduler loop on a wall clock: intervals, timeouts, isolation of a slow backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from collector.scheduler import Collector, _offset
from inferwatch.config import parse
from inferwatch.stores import Stores
from sim.fleet import uniform
from sim.server import SimFleet


@pytest.mark.slow
async def test_slow_backend_does_not_delay_the_others(tmp_path: Path) -> None:
    backends = uniform(4)
    slow = backends[0]
    slow.incident.delay = 5.0
    fleet = SimFleet(backends)
    await fleet.start()
    cfg = parse({
        "storage": f"sqlite:///{tmp_path}/s.db", "scrape_interval": "0.3s", "scrape_timeout": "0.25s",
        "scrape_concurrency": 2,  # fewer slots than backends: a hung scrape must release its slot on timeout
        "backends": [{"name": b.name, "engine": "vllm", "url": fleet.url(b.name)} for b in backends],
    })
    store = Stores.open(cfg.storage)
    store.migrate()
    collector = Collector(cfg, store.metrics, store.observations, flush_interval=0.05)
    try:
        await collector.start()
        await asyncio.sleep(2.0)
    finally:
        await collector.stop()
        await fleet.stop()
    health = collector.health
    started = collector.start_lag.count  # every scrape's start lag is measured (/metrics)
    done = sum(h.scrapes for h in health.values())
    assert done <= started <= done + len(backends), (started, done)
    for b in backends[1:]:
        # ~6 ticks in 2 s at 0.3 s; allow for the start offset and a loaded CI machine
        assert health[b.name].scrapes >= 4, (b.name, health[b.name])
        assert health[b.name].errors == 0
    assert health[slow.name].errors >= 3
    assert health[slow.name].last_reason == "timeout after 0.25s"
    status = store.metrics.latest_status()
    assert status[slow.name].up is False
    assert all(status[b.name].up for b in backends[1:])
    store.close()


def test_offsets_spread_backends_over_the_interval() -> None:
    offsets = [_offset(f"b{i}", 15.0) for i in range(200)]
    assert all(0 <= o < 15.0 for o in offsets)
    assert _offset("b1", 15.0) == _offset("b1", 15.0)  # stable across restarts
    # spread: every 3 s slice of the interval gets some backends
    assert all(any(lo <= o < lo + 3 for o in offsets) for lo in (0, 3, 6, 9, 12))


def test_a_dead_backend_is_logged_when_its_state_changes_not_every_scrape(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from core.samples import ScrapeResult

    cfg = parse({"storage": f"sqlite:///{tmp_path}/l.db",
                 "backends": [{"name": "b", "engine": "vllm", "url": "http://127.0.0.1:9"}]})
    stores = Stores.open(cfg.storage)
    collector = Collector(cfg, stores.metrics, stores.observations)
    caplog.set_level(logging.INFO, logger="inferwatch.collector")
    for up, reason in [(True, None), (False, "connection refused"), (False, "connection refused"),
                       (False, "connection refused"), (False, "timeout after 10s"), (True, None), (True, None)]:
        collector._record_health(ScrapeResult("b", 0.0, up, reason, 0.01))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["[collector.scrape] b down: connection refused", "[collector.scrape] b down: timeout after 10s",
                     "[collector.scrape] b up again"]
    assert collector.health["b"].errors == 4


async def test_a_full_disk_makes_readyz_not_ready_and_is_logged_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The issue: /readyz said ready while the disk was full and nothing had been written for 36 s.
    SQLite's max_page_count makes the database full for real (SQLITE_FULL, as on a full disk)."""
    import logging

    import httpx
    import sqlalchemy as sa

    from web.app import create_app

    backends = uniform(2, models=4)
    fleet = SimFleet(backends)
    await fleet.start()
    cfg = parse({"storage": f"sqlite:///{tmp_path}/full.db", "scrape_interval": "0.2s",
                 "backends": [{"name": b.name, "engine": "vllm", "url": fleet.url(b.name)} for b in backends]})
    store = Stores.open(cfg.storage)
    store.migrate()
    limit = {"pages": 0}  # 0: no limit

    @sa.event.listens_for(store.db.engine, "connect")
    def _cap(dbapi_conn: object, _rec: object) -> None:
        if limit["pages"]:
            dbapi_conn.execute(f"PRAGMA max_page_count = {limit['pages']}")  # type: ignore[attr-defined]

    collector = Collector(cfg, store.metrics, store.observations, flush_interval=0.05)
    app = create_app(cfg, store.reads, store.alerts, store.silences, collector=collector)
    caplog.set_level(logging.ERROR, logger="inferwatch.collector")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as web:
        try:
            await collector.start()
            await asyncio.sleep(0.6)
            assert (await web.get("/readyz")).status_code == 200
            with store.db.engine.connect() as conn:
                limit["pages"] = conn.execute(sa.text("PRAGMA page_count")).scalar_one()
            store.db.engine.dispose()  # every new connection is capped at today's size: "disk full"
            await asyncio.sleep(1.0)
            ready = await web.get("/readyz")
            assert ready.status_code == 503, ready.text
            problem = ready.json()["problems"][0]
            assert problem.startswith("collector: writes failing for ") and "database or disk is full" in problem
            limit["pages"] = 0
            store.db.engine.dispose()  # space again: the kept records are written, ready again
            await asyncio.sleep(0.6)
            assert (await web.get("/readyz")).status_code == 200
        finally:
            await collector.stop()
            await fleet.stop()
    failures = [r for r in caplog.records if "writing failed" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in caplog.records]  # not one per retry
    assert collector.write_failures >= 3
    store.close()
