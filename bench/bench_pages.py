"""Server-side render time of the dashboard pages, against the JSON API on the same data.

    .venv/bin/python -m bench.bench_pages [--backends 100] [--rounds 15]

Builds a SQLite store the way the collector fills it (simulated vLLM backends rendered, parsed,
normalised and diffed every 15 s): ``--backends`` backends with 10 minutes of data, and one of
them with 24 hours. Then times, in-process through the ASGI app (no network), the fleet overview
``/`` and ``/backends/<name>?range=24h`` against ``/api/v1/backends`` (the data the overview
shows) — median of ``--rounds`` after one warm-up. Goals: overview < 300 ms for 100 backends,
24 h backend detail < 500 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from collector import deltas
from collector.config import parse
from collector.samples import EngineSnapshot, ScrapeRecord
from collector.store import Store
from exporters.adapters import make_adapter
from exporters.parser import parse as parse_text
from sim.fleet import uniform
from web.app import create_app

STEP = 15.0


def fill(store: Store, n: int, now: float) -> list[str]:
    adapter = make_adapter("vllm")
    sims = uniform(n, now=now - 86400)
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
                store.write(batch)
                batch = []
            t += STEP
    store.write(batch)
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


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="iw-pages-"))
    now = 1_700_000_000.0
    t0 = time.perf_counter()
    store = Store(f"sqlite:///{work / 'pages.db'}")
    store.migrate()
    names = fill(store, args.backends, now)
    print(f"filled {args.backends} backends (one with 24 h) in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    cfg = parse({"storage": f"sqlite:///{work / 'pages.db'}", "gpus": {"nvml": "off"},
                 "backends": [{"name": n, "engine": "vllm", "url": f"http://127.0.0.1:{9000 + i}"}
                              for i, n in enumerate(names)]})
    app = create_app(cfg, store, clock=lambda: now)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        api = await timed(client, "/api/v1/backends", args.rounds)
        fleet = await timed(client, "/", args.rounds)
        detail_api = await timed(client, f"/api/v1/backends/{names[0]}/series?signal=ttft_seconds&quantile=0.99"
                                         "&window=24h&step=5m", args.rounds)
        detail = await timed(client, f"/backends/{names[0]}?range=24h", args.rounds)
    store.close()
    print(f"{args.backends} backends, median of {args.rounds} (in-process ASGI, SQLite)")
    print(f"  GET /api/v1/backends (baseline)        {api * 1000:7.1f} ms")
    print(f"  GET /  fleet overview                  {fleet * 1000:7.1f} ms  = {fleet / api:.2f}x the API  (goal < 300 ms)")
    print(f"  GET series ttft p99 24h/5m (baseline)  {detail_api * 1000:7.1f} ms")
    print(f"  GET /backends/{names[0]}?range=24h    {detail * 1000:7.1f} ms  = {detail / detail_api:.2f}x one series (goal < 500 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
