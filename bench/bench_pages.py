"""Server-side render time of the dashboard pages, against the JSON API on the same data.

    .venv/bin/python -m bench.bench_pages [--backends 100] [--rounds 15]

Builds a SQLite store the way the collector fills it (simulated vLLM backends rendered, parsed,
normalised and diffed every 15 s): ``--backends`` backends with 10 minutes of data, and one of
them with 24 hours. Then times, in-process through the ASGI app (no network), the fleet overview
``/`` and ``/backends/<name>?range=24h`` against ``/api/v1/backends`` (the data the overview
shows) — median of ``--rounds`` after one warm-up. Goals: overview < 300 ms for 100 backends,
24 h backend detail < 500 ms.

``--live`` measures "with the demo running": the same history is written up to the present, the
simulated backends are served on loopback, and the whole service (collector scraping every
``--interval``, alert engine with the default rules, web app) runs in this process while the
pages are timed, so the renders compete with scraping, writing and rule evaluation as they do
in ``inferwatch demo``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from collector import deltas
from core.samples import EngineSnapshot, ScrapeRecord
from core.units import parse_duration
from exporters.adapters import make_adapter
from exporters.parser import parse as parse_text
from inferwatch.config import parse
from inferwatch.service import settle_heap
from inferwatch.stores import Stores
from sim.fleet import uniform
from web.app import create_app

STEP = 15.0


def fill(store: Stores, sims: list[Any], now: float) -> list[str]:
    """Write what the collector would have written scraping ``sims`` every 15 s: the first for
    24 hours up to ``now``, the others for 10 minutes."""
    adapter = make_adapter("vllm")
    cursors: dict[str, tuple[float, EngineSnapshot]] = {}
    batch: list[ScrapeRecord] = []
    for i, sim in enumerate(sims):
        start = now - (86400 if i == 0 else 600)
        sim.last = start - STEP
        t = start
        while t <= now:
            snap = adapter.normalise(parse_text(sim.render(t), keep=adapter.wanted()))
            c, h = deltas.diff(cursors.get(sim.name), t, snap)
            cursors[sim.name] = (t, snap)
            batch.append(ScrapeRecord(sim.name, t, True, None, 0.01, deltas.gauges(snap), c, h, snap))
            if len(batch) >= 2000:
                store.metrics.write(batch)
                batch = []
            t += STEP
    store.metrics.write(batch)
    return [s.name for s in sims]


async def timed(client: httpx.AsyncClient, url: str, rounds: int) -> float:
    resp = await client.get(url)
    assert resp.status_code == 200, (url, resp.status_code, resp.text[:200])
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        resp = await client.get(url)
        times.append(time.perf_counter() - t0)
        assert resp.status_code == 200
    return statistics.median(times)


async def measure(app: Any, names: list[str], rounds: int) -> tuple[float, float, float, float]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        api = await timed(client, "/api/v1/backends", rounds)
        fleet = await timed(client, "/", rounds)
        detail_api = await timed(client, f"/api/v1/backends/{names[0]}/series?signal=ttft_seconds&quantile=0.99"
                                         "&window=24h&step=5m", rounds)
        detail = await timed(client, f"/backends/{names[0]}?range=24h", rounds)
    return api, fleet, detail_api, detail


async def live(store: Stores, db: Path, sims: list[Any], interval: str, rounds: int) -> tuple[float, ...]:
    """Serve ``sims`` and run the whole service on ``db`` while timing the pages."""
    from inferwatch.service import Service
    from sim.server import SimFleet

    fleet = SimFleet(sims)
    await fleet.start()
    cfg = parse({"storage": f"sqlite:///{db}", "gpus": {"nvml": "off"}, "scrape_interval": interval,
                 "scrape_timeout": min(10.0, 0.8 * parse_duration(interval)),
                 "backends": [{"name": s.name, "engine": "vllm", "url": fleet.url(s.name)} for s in sims]})
    service = Service(cfg, store)
    await service.start()
    settle_heap()  # as `inferwatch run` and `demo` do
    try:
        await asyncio.sleep(2 * parse_duration(interval))  # two scrape rounds and evaluations first
        result = await measure(service.app, [s.name for s in sims], rounds)
        fresh = sum(1 for st in store.metrics.latest_status().values() if st.up and st.ts > time.time() - 2 * parse_duration(interval))
        print(f"  after timing: {fresh}/{len(sims)} backends scraped OK within the last 2 intervals", file=sys.stderr)
        return result
    finally:
        await service.stop()
        await fleet.stop()


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--live", action="store_true", help="time the pages while the collector and alert engine run")
    ap.add_argument("--interval", default="15s", help="scrape interval with --live (default 15s)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="iw-pages-"))
    db = work / "pages.db"
    now = time.time() if args.live else 1_700_000_000.0
    t0 = time.perf_counter()
    store = Stores.open(f"sqlite:///{db}")
    store.migrate()
    sims = uniform(args.backends, now=now - 86400)
    names = fill(store, sims, now)
    print(f"filled {args.backends} backends (one with 24 h) in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    if args.live:
        api, fleet, detail_api, detail = await live(store, db, sims, args.interval, args.rounds)
        mode = f"live: collector every {args.interval} + alert engine running"
    else:
        cfg = parse({"storage": f"sqlite:///{db}", "gpus": {"nvml": "off"},
                     "backends": [{"name": n, "engine": "vllm", "url": f"http://127.0.0.1:{9000 + i}"}
                                  for i, n in enumerate(names)]})
        app = create_app(cfg, store.reads, store.alerts, store.silences, clock=lambda: now)
        settle_heap()  # as Service.start does in `inferwatch run` and `demo`
        api, fleet, detail_api, detail = await measure(app, names, args.rounds)
        mode = "static"
    store.close()
    print(f"{args.backends} backends, median of {args.rounds} (in-process ASGI, SQLite, {mode})")
    print(f"  GET /api/v1/backends (baseline)        {api * 1000:7.1f} ms")
    print(f"  GET /  fleet overview                  {fleet * 1000:7.1f} ms  = {fleet / api:.2f}x the API  (goal < 300 ms)")
    print(f"  GET series ttft p99 24h/5m (baseline)  {detail_api * 1000:7.1f} ms")
    print(f"  GET /backends/{names[0]}?range=24h    {detail * 1000:7.1f} ms  = {detail / detail_api:.2f}x one series (goal < 500 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
