"""End to end: the collector scrapes simulated engines over loopback into SQLite and
PostgreSQL, and the JSON API's figures match the simulator's known truth."""

from __future__ import annotations

import math

import pytest

from sim.engines import make_renderer
from sim.state import Profile, SimBackend
from tests.e2e_helpers import Clock, bucket_of, harness

PROFILE = Profile(request_rate=5.0, ttft=0.3, itl=0.04, queue_time=0.05, error_ratio=0.05,
                  queue_depth=7, running=11, kv_cache_usage=0.42)

# which latency percentiles each engine's own metrics can give (see each adapter's docstring)
PERCENTILES = {
    "vllm": {"ttft", "itl", "e2e"},
    "sglang": {"ttft", "itl", "e2e"},
    "tgi": {"e2e"},
    "triton": {"ttft"},
    "llamacpp": set(),
}
ENGINES = [("vllm", None), ("vllm", "v0"), ("sglang", None), ("tgi", None), ("triton", None),
           ("triton", "trtllm"), ("llamacpp", None)]


def _backends(now: float) -> list[SimBackend]:
    out = []
    for i, (engine, variant) in enumerate(ENGINES):
        models = ("ensemble",) if variant == "trtllm" else ("llama-3.1-8b",)
        out.append(SimBackend(f"{engine}-{variant or 'default'}", make_renderer(engine, variant), models,
                              PROFILE, seed=100 + i, now=now))
    return out


@pytest.mark.slow
async def test_api_matches_simulator_truth(store_url: str) -> None:
    clock = Clock()
    backends = _backends(clock())
    async with harness(backends, store_url, clock) as h:
        await h.collector.scrape_once()  # baseline
        base_t = clock()
        before = {b.name: {m: (st.generation_tokens, st.prompt_tokens, st.requests, st.errors)
                           for m, st in b.models.items()} for b in backends}
        for _ in range(4):
            clock.advance(60)
            await h.collector.scrape_once()
        got = await h.backends(window="5m")
        for b in backends:
            api = got[b.name]
            assert api["up"] is True, (b.name, api["reason"])
            engine = b.engine
            st = next(iter(b.models.values()))
            gen0, prompt0, req0, err0 = before[b.name][st.model]
            # gauges: exactly what the engine reported
            assert api["queue_depth"] == pytest.approx(PROFILE.queue_depth), b.name
            assert api["requests_running"] == pytest.approx(PROFILE.running), b.name
            # counters: exact rates over the 240 s covered by the window
            assert api["tokens_per_second"] == pytest.approx((st.generation_tokens - gen0) / 240), b.name
            if api["error_ratio"] is not None:
                assert api["error_ratio"] == pytest.approx((st.errors - err0) / (st.requests - req0)), b.name
            elif engine not in ("llamacpp",):
                pytest.fail(f"{b.name}: error ratio unavailable")
            # Triton: e2e is a per-interval mean from cumulative microsecond counters
            if engine == "triton":
                truth = [(v, w) for (m, k), ring in b.truth.items() if k == "e2e"
                         for ts, v, w in ring if ts > base_t]
                mean = sum(v * w for v, w in truth) / sum(w for _, w in truth)
                assert api["e2e"]["mean"] == pytest.approx(mean, abs=2e-6), b.name  # µs rounding
                assert api["e2e"]["p99"] is None
            # latency percentiles: within the bucket of the engine's own layout holding the truth
            for kind in ("ttft", "itl", "e2e"):
                block = api[kind]
                if kind not in PERCENTILES[engine]:
                    assert block is None or block["p99"] is None, (b.name, kind, block)
                    continue
                assert block is not None, (b.name, kind)
                layout = b.renderer.layouts[kind]
                for q in (0.5, 0.95, 0.99):
                    truth = b.true_quantile(kind, q, since=base_t)
                    assert truth is not None
                    lower, upper = bucket_of(truth, layout)
                    value = block[f"p{round(q * 100)}"]
                    if math.isinf(upper):
                        assert value == pytest.approx(lower), (b.name, kind, q)
                    else:
                        assert lower - 1e-9 <= value <= upper + 1e-9, (b.name, kind, q, truth, value)


@pytest.mark.slow
async def test_restart_continues_without_loss_or_double_counting(store_url: str) -> None:
    clock = Clock()
    sim = SimBackend("vllm-r", make_renderer("vllm"), ("m",), PROFILE, seed=7, now=clock())
    async with harness([sim], store_url, clock) as h:
        await h.collector.scrape_once()
        gen0 = sim.models["m"].generation_tokens
        clock.advance(60)
        await h.collector.scrape_once()
    # inferwatch restarts: a new store and collector on the same database; the engine keeps running
    async with harness([sim], store_url, clock) as h2:
        clock.advance(60)
        await h2.collector.scrape_once()
        got = (await h2.backends(window="5m"))["vllm-r"]
        # two intervals of 60 s, each counted once: the first by the old process, the second
        # diffed against the cursor the old process persisted
        assert got["tokens_per_second"] == pytest.approx((sim.models["m"].generation_tokens - gen0) / 120)


@pytest.mark.slow
async def test_engine_restart_counter_reset_gives_correct_rate(store_url: str) -> None:
    clock = Clock()
    sim = SimBackend("vllm-c", make_renderer("vllm"), ("m",), PROFILE, seed=8, now=clock())
    async with harness([sim], store_url, clock) as h:
        await h.collector.scrape_once()
        clock.advance(600)  # a large count before the restart
        await h.collector.scrape_once()
        clock.advance(30)
        sim.restart(clock())  # counters start from zero again
        clock.advance(30)
        await h.collector.scrape_once()
        after = sim.models["m"].generation_tokens  # everything since the restart
        got = (await h.backends(window="1m"))["vllm-c"]
        assert got["up"] is True
        # the last interval's increase is what the engine counted since its restart (not negative),
        # over the 30 s since it restarted (process_start_time_seconds), not the 60 s since the scrape
        assert got["tokens_per_second"] == pytest.approx(after / 30)
        assert got["tokens_per_second"] > 0
