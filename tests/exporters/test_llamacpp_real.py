"""inferwatch against a real llama.cpp ``llama-server`` (built from source by
``tests/llama_server.py``, tiny random-weight model written with llama.cpp's gguf-py), under
real streaming load from four clients: the figures agree with the engine's own counters and
with what the clients measured — in steady state, around a ``kill -9`` and restart, and around
a pause (SIGSTOP) without reset. The closing numbers are printed (``-s``) and recorded in
BENCHMARKS.md.

Skipped, saying why, where the binary cannot be built (no cmake or compiler, no registry);
``.ci/run`` builds it first, so CI runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from collector.live import LiveWindow
from collector.query import Reads
from collector.scheduler import Collector
from exporters.llamacpp import TABLE
from exporters.parser import parse
from inferwatch.config import parse as parse_config
from inferwatch.stores import Stores
from tests import llama_server
from web.app import create_app

CLIENTS = 4
MAX_TOKENS = 48
WINDOW = 20.0  # a shorter window makes 1 s edge effects (scrape timing, the sampler) a larger share
PROMPT = "The quick brown fox jumps over the lazy dog. " * 4  # the same each time: the prompt cache reuses it


@pytest.fixture(scope="module")
def server_binary() -> Path:
    try:
        return llama_server.build(log=False)
    except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:
        pytest.skip(f"llama-server could not be built from {llama_server.PACKAGE}=={llama_server.VERSION}: {exc}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Engine:
    """One ``llama-server --metrics`` process on a fixed port (a restart reuses it)."""

    def __init__(self, binary: Path, model: Path, port: int, log: Path) -> None:
        self.binary, self.model, self.port, self.log = binary, model, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(self.binary), "-m", str(self.model), "--host", "127.0.0.1", "--port", str(self.port),
                 "--metrics", "-np", str(CLIENTS), "-c", str(2048 * CLIENTS), "-t", "2", "--no-webui"],
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/health", timeout=1)).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise AssertionError(f"llama-server did not become healthy; log:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(30)

    async def counters(self) -> dict[tuple[str, str], float]:
        async with httpx.AsyncClient() as http:
            resp = await http.get(f"{self.url}/metrics", timeout=5)
        resp.raise_for_status()  # a restarting llama-server answers 503 (loading the model) with JSON
        return dict(TABLE.normalise(parse(resp.content)).counters)


@dataclass
class Load:
    """Four clients streaming completions in a loop; each finished request's tokens are spread
    evenly over its duration (what a client-side tokens/s over a window is)."""

    url: str
    done: list[tuple[float, float, int]] = field(default_factory=list)  # (start, end, completion tokens)
    errors: int = 0

    async def client(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            while not stop.is_set():
                start = time.time()
                try:
                    tokens = 0
                    async with http.stream("POST", f"{self.url}/v1/completions", json={
                        "prompt": PROMPT, "max_tokens": MAX_TOKENS, "ignore_eos": True, "stream": True,
                        "stream_options": {"include_usage": True}, "temperature": 1.0}) as resp:
                        resp.raise_for_status()
                        async for line in resp.aiter_lines():
                            if line.startswith("data: {"):
                                usage = json.loads(line[6:]).get("usage")
                                if usage:
                                    tokens = int(usage["completion_tokens"])
                    self.done.append((start, time.time(), tokens))
                except (httpx.HTTPError, json.JSONDecodeError):
                    self.errors += 1
                    await asyncio.sleep(0.05)

    def rate(self, since: float, until: float, serving: float) -> float:
        total = 0.0
        for start, end, n in self.done:
            overlap = min(end, until) - max(start, since)
            if overlap > 0 and end > start:
                total += n * overlap / (end - start)
        return total / serving


@dataclass
class Truth:
    """The engine's own generation counter read every 0.2 s, restarts added up: what it produced
    by when, at a finer grain than inferwatch's 1 s scrapes."""

    engine: Engine
    samples: list[tuple[float, float]] = field(default_factory=list)  # (time, tokens since the start)

    async def run(self, stop: asyncio.Event) -> None:
        offset, last = 0.0, 0.0
        while not stop.is_set():
            # one failed read (engine down or starting) must not end the sampling
            with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                value = (await self.engine.counters())[("generation_tokens_total", "")]
                if value < last:  # restarted: its count starts from zero
                    offset += last
                last = value
                self.samples.append((time.time(), offset + value))
            await asyncio.sleep(0.2)

    def produced(self, t: float) -> float:
        """Tokens produced by ``t`` (the last sample at or before it)."""
        before = [n for ts, n in self.samples if ts <= t]
        return before[-1] if before else 0.0

    def rate(self, since: float, until: float, serving: float) -> float:
        produced = self.produced(until) - self.produced(since)
        assert produced > 0 and serving > 0, (since, until, serving, [s for s in self.samples if since - 2 <= s[0]])
        return produced / serving


@contextlib.asynccontextmanager
async def running(load: Load) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(load.client(stop)) for _ in range(CLIENTS)]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.slow
async def test_inferwatch_agrees_with_a_real_llama_server(server_binary: Path, tmp_path: Path) -> None:
    model = llama_server.write_tiny_model(tmp_path / "tiny.gguf")
    engine = Engine(server_binary, model, _free_port(), tmp_path / "llama-server.log")
    await engine.start()
    cfg = parse_config({"storage": f"sqlite:///{tmp_path}/real.db", "scrape_interval": "1s", "scrape_timeout": "0.8s",
                        "gpus": {"nvml": "off"},
                        "backends": [{"name": "llama", "engine": "llamacpp", "url": engine.url}]}, "<real>")
    store = Stores.open(cfg.storage)
    store.migrate()
    live = LiveWindow(300.0, started=time.time())
    collector = Collector(cfg, store.metrics, store.observations, live=live)
    app = create_app(cfg, Reads(store.metrics, store.observations, live), store.alerts, store.silences, collector)
    api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://inferwatch")
    load = Load(engine.url)
    truth = Truth(engine)
    report: dict[str, object] = {}

    async def scrape_for(seconds: float) -> None:
        end = time.time() + seconds
        while time.time() < end:
            await collector.scrape_once()
            await collector.flush()
            await asyncio.sleep(max(0.0, 1.0 - time.time() % 1.0))

    async def figures() -> dict[str, object]:
        return (await api.get("/api/v1/backends/llama", params={"window": f"{WINDOW:g}s"})).json()

    try:
        sampling = asyncio.Event()
        sampler = asyncio.create_task(truth.run(sampling))
        async with running(load):
            # steady state: the clients warm up, then a window of scrapes under load, the engine's
            # counters read at its start and end
            await scrape_for(3)
            before = await engine.counters()
            t0 = time.time()
            await scrape_for(WINDOW)
            got = await figures()
            after = await engine.counters()
            t1 = time.time()
            gen = ("generation_tokens_total", "")
            engine_rate = (after[gen] - before[gen]) / (t1 - t0)
            client_rate = load.rate(t1 - WINDOW, t1, WINDOW)
            tps = got["tokens_per_second"]
            assert isinstance(tps, float)
            report["steady"] = {"inferwatch": round(tps, 1), "engine": round(engine_rate, 1),
                                "client": round(client_rate, 1)}
            assert tps == pytest.approx(engine_rate, rel=0.05)
            assert tps == pytest.approx(client_rate, rel=0.10)
            assert got["requests_running"] is not None and 0 <= got["requests_running"] <= CLIENTS
            # prompt tokens = evaluated + reused from the cache; the hit ratio is the cached share
            cached = after[("prefix_cache_hits_total", "")] - before[("prefix_cache_hits_total", "")]
            prompt = after[("prompt_tokens_total", "")] - before[("prompt_tokens_total", "")]
            assert cached > 0 and prompt > cached
            hit = got["prefix_cache_hit_ratio"]
            assert isinstance(hit, float) and hit == pytest.approx(cached / prompt, rel=0.15)
            report["prefix_cache_hit_ratio"] = {"inferwatch": round(hit, 3), "engine": round(cached / prompt, 3)}

            # kill -9, 3 s down, restart on the same port: counters start from zero
            engine.kill()
            down_from = time.time()
            await scrape_for(3)
            assert (await figures())["up"] is False
            assert (await figures())["tokens_per_second"] is None  # no present tense while down
            await engine.start()
            back = time.time()
            errors = []
            await scrape_for(1.5)  # one scrape after recovery, then every scrape from there on
            for _ in range(int(WINDOW) + 2):
                await scrape_for(1)
                now = time.time()
                lost = max(0.0, min(now, back) - max(now - WINDOW, down_from))
                tps = (await figures())["tokens_per_second"]
                assert isinstance(tps, float)
                errors.append(tps / truth.rate(now - WINDOW, now, WINDOW - lost) - 1)
            report["after restart (inferwatch / engine - 1)"] = [round(e, 3) for e in errors]
            assert max(map(abs, errors)) < 0.10, errors

            # SIGSTOP for 3 s, then SIGCONT: no reset; the gap's increase is spread over the gap
            assert engine.proc is not None
            engine.proc.send_signal(signal.SIGSTOP)
            paused = time.time()
            await scrape_for(3)
            engine.proc.send_signal(signal.SIGCONT)
            await scrape_for(1.5)
            errors = []
            for _ in range(int(WINDOW) + 2):
                await scrape_for(1)
                now = time.time()
                tps = (await figures())["tokens_per_second"]
                assert isinstance(tps, float)
                errors.append(tps / truth.rate(now - WINDOW, now, WINDOW) - 1)
            report["after pause (inferwatch / engine - 1)"] = [round(e, 3) for e in errors]
            assert time.time() - paused > WINDOW
            assert max(map(abs, errors)) < 0.10, errors
        sampling.set()
        await sampler
    finally:
        print("\nreal llama-server:", json.dumps(report))
        await api.aclose()
        await collector.stop()
        engine.stop()
        store.close()
    assert load.done and len(load.done) > 50
