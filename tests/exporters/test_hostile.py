"""Hostile targets, on loopback: series floods, label abuse, gzip bombs, redirects to other
services, and a huge body that must not stall the event loop. Each test reproduces an attack the
hostile-targets issue describes and fails without its fix."""

from __future__ import annotations

import asyncio
import functools
import gzip
import time
import tracemalloc
import zlib

import httpx
import pytest

from exporters.adapters import make_adapter
from exporters.families import LimitError, SeriesLimits
from exporters.http import FetchError, Http, Limits
from exporters.parser import ParseError, parse
from exporters.scrape import THREAD_BODY_BYTES, EngineScrape
from tests.exporters.test_http import RawServer, ok

LIMITS = SeriesLimits(samples=1000, labels=8, label_name_length=32, label_value_length=64)


def flood(n: int, family: str = "vllm:num_requests_running") -> bytes:
    """``n`` distinct series of one vLLM family: each a 'model' of its own."""
    lines = [f"# TYPE {family} gauge"] + [f'{family}{{model_name="m{i:07d}"}} 1' for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


# --- limits in the parser ----------------------------------------------------------------------


def test_sample_limit_is_checked_before_any_line_is_parsed() -> None:
    body = flood(1001)
    with pytest.raises(LimitError) as info:
        parse(body, limits=LIMITS)
    assert info.value.reason == "sample_limit exceeded: 1001 samples in the body (limit 1000)"
    # comments and blank lines are not samples; exactly at the limit passes
    assert len(parse(b"# HELP x y\n\n" + flood(1000), limits=LIMITS)["vllm:num_requests_running"].samples) == 1000
    # a garbage line past the limit is still reported as the limit (never parsed)
    with pytest.raises(LimitError):
        parse(flood(1000) + b"not a { valid line\n", limits=LIMITS)
    assert parse(body, limits=SeriesLimits())  # 0: no limit


@pytest.mark.parametrize(("line", "reason"), [
    ('x{' + ",".join(f'l{i}="v"' for i in range(9)) + '} 1', "label_limit exceeded: a series with 9 labels (limit 8)"),
    ('x{' + "n" * 33 + '="v"} 1', "label_name_length_limit exceeded: a 33-character label name (limit 32)"),
    ('x{a="' + "v" * 65 + '"} 1', "label_value_length_limit exceeded: a 65-character label value (limit 64)"),
    # escapes count once unescaped: 62 + 3 characters (the general path: no memo for escapes)
    ('x{a="' + "v" * 62 + '\\\\\\"\\n"} 1', "label_value_length_limit exceeded: a 65-character label value (limit 64)"),
])
def test_label_limits(line: str, reason: str) -> None:
    body = f"# TYPE x gauge\n{line}\n".encode()
    with pytest.raises(LimitError) as info:
        parse(body, limits=LIMITS)
    assert info.value.reason == reason
    # a family the adapter does not read is never tokenised, so never judged (as after relabelling)
    assert parse(body, keep={"y"}, limits=LIMITS) == {}


def test_label_values_at_the_limit_pass_and_escapes_count_once_unescaped() -> None:
    ok_line = 'x{a="' + "v" * 62 + '\\\\"} 1'  # 62 + one escaped backslash = 63 characters
    fams = parse(f"# TYPE x gauge\n{ok_line}\n".encode(), limits=LIMITS)
    assert len(fams["x"].samples[0].labels["a"]) == 63


@pytest.mark.parametrize("body", [
    b"internal-admin-password=hunter2\n",
    b"# TYPE x gauge\nx{a=\"secret-token-123\" 1\n",
    b"# TYPE x gauge\nx secret-token-123\n",
    b"# TYPE x secret-token-123\n",
    b"# TYPE x gauge\n# TYPE x counter\n",
])
def test_a_parse_error_never_quotes_the_body(body: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse(body)
    text = str(info.value)
    assert "hunter2" not in text and "secret" not in text and "password" not in text, text
    assert text.startswith("line ")


# --- limits at the scrape: the scrape fails and stores nothing ----------------------------------


async def test_a_series_flood_fails_the_scrape_with_the_limit_named() -> None:
    body = flood(200_000)  # the attack: 200,000 'models', ~8 MB, under the body cap
    async with RawServer(lambda _: ok(body)) as srv, httpx.AsyncClient() as client:
        scrape = EngineScrape("flood", srv.url, make_adapter("vllm"), Limits(10.0, 16 * 1024 * 1024), 15.0,
                              series_limits=SeriesLimits(samples=50_000))
        result = await scrape.collect(Http(client))
    assert not result.up
    assert result.reason == "sample_limit exceeded: 200000 samples in the body (limit 50000)"
    assert result.snapshot is None  # nothing of it is stored


async def test_a_big_body_is_parsed_off_the_event_loop() -> None:
    """A body over THREAD_BODY_BYTES is parsed on a thread: the loop keeps ticking meanwhile."""
    body = flood(150_000)  # no limit: parsed and normalised in full
    assert len(body) > THREAD_BODY_BYTES
    gaps: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async with RawServer(lambda _: ok(body)) as srv, httpx.AsyncClient() as client:
        scrape = EngineScrape("big", srv.url, make_adapter("vllm"), Limits(30.0, 16 * 1024 * 1024), 15.0)
        http = Http(client)
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(stop))
        start = time.perf_counter()
        result = await scrape.collect(http)
        parse_wall = time.perf_counter() - start
        stop.set()
        await tick
    assert result.up, result.reason
    # the parse took far longer than any gap the loop saw (run inline, one gap would hold it all)
    assert max(gaps) < parse_wall / 2, (max(gaps), parse_wall)


# --- decompression ------------------------------------------------------------------------------


@functools.cache
def bomb(encoding: str, inflated: int = 256 * 1024 * 1024) -> bytes:
    """``inflated`` bytes of zeros, compressed: about 1/1000 of that on the wire."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    return b"".join(comp.compress(chunk) for _ in range(inflated // len(chunk))) + comp.flush()


@pytest.mark.parametrize("lean", [True, False])
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compression_bomb_is_cut_at_the_cap_without_inflating_it(lean: bool, encoding: str) -> None:
    wire = bomb(encoding)  # 256 MiB inflated, 16 times the cap
    assert len(wire) < 1024 * 1024
    cap = 16 * 1024 * 1024
    async with RawServer(lambda _: ok(wire, f"Content-Encoding: {encoding}")) as srv, \
            httpx.AsyncClient() as client:
        tracemalloc.start()
        try:
            with pytest.raises(FetchError) as info:
                await Http(client, lean=lean).exposition(srv.url, Limits(10.0, cap))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert info.value.reason == f"body over size cap (decompressed to more than {cap} bytes)"
    assert peak < 4 * cap, peak  # the cap and the wire bytes, not the 256 MiB


async def test_an_encoding_we_did_not_ask_for_is_refused() -> None:
    async with RawServer(lambda _: ok(gzip.compress(b"x 1\n"), "Content-Encoding: br")) as srv, \
            httpx.AsyncClient() as client:
        with pytest.raises(FetchError) as info:
            await Http(client).exposition(srv.url, Limits(5.0, 1000))
    assert info.value.reason == "unsupported content-encoding (gzip, deflate or none)"


def test_a_duplicate_series_fails_the_body_instead_of_adding_up() -> None:
    # the issue: 1 and 99 became 100
    body = b'# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="m"} 1\n' \
           b'vllm:num_requests_running{model_name="m"} 99\n'
    with pytest.raises(LimitError) as info:
        parse(body)
    assert info.value.reason.startswith("duplicate series")
    # the same name with other labels, and the same labels under another name, are fine
    ok_body = body.replace(b'"m"} 99', b'"n"} 99') + b'# TYPE x gauge\nx{model_name="m"} 1\n'
    assert len(parse(ok_body)["vllm:num_requests_running"].samples) == 2
