"""The streaming probe against real loopback servers: the simulated fleet's OpenAI-compatible
endpoints (plain and TLS) and a few hand-written servers for what the simulator does not do."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator

import pytest
import trustme

from core.samples import PROBE_ERROR_KINDS
from exporters.probe import probe
from exporters.sse import Api
from sim.engines import make_renderer
from sim.server import SimFleet
from sim.state import Profile, SimBackend

KEY = "sk-test-0123456789abcdefSECRET"


def _backend(name: str, ttft: float = 0.01, interval: float = 0.005) -> SimBackend:
    return SimBackend(name, make_renderer("vllm"), ("llama",),
                      Profile(stream_ttft=ttft, stream_token_interval=interval), now=time.time())


@pytest.fixture
async def fleet() -> AsyncIterator[SimFleet]:
    f = SimFleet([_backend("timed", ttft=0.2, interval=0.02), _backend("fast")])
    await f.start()
    try:
        yield f
    finally:
        await f.stop()


@pytest.mark.parametrize("api", ["chat", "completions"])
async def test_timings_match_the_simulated_backend(fleet: SimFleet, api: Api) -> None:
    # one probe at a time: TTFT counts DNS and connect too, and must be within 10 ms
    r = await probe("timed", fleet.url("timed"), model="llama", prompt="Say hi", max_tokens=20,
                    timeout=5, api=api, clock=lambda: 1234.5)
    assert r.ok, r.error
    assert r.backend == "timed" and r.ts == 1234.5 and r.status == 200
    assert r.error_kind is None and r.error is None
    assert r.ttft_seconds is not None and abs(r.ttft_seconds - 0.2) < 0.010
    assert r.tokens_per_second is not None and abs(r.tokens_per_second - 50.0) / 50.0 < 0.05
    assert r.output_tokens == 20 and r.tokens_from_usage is True
    assert len(r.itl) == 19 and all(g >= 0 for g in r.itl)
    assert r.e2e_seconds is not None and r.e2e_seconds >= r.ttft_seconds + sum(r.itl) - 1e-9
    # a new connection per probe: every phase is measured; no TLS on http
    assert r.dns_seconds is not None and r.dns_seconds >= 0
    assert r.connect_seconds is not None and r.connect_seconds > 0
    assert r.tls_seconds is None and r.tls_version is None


async def test_each_probe_opens_its_own_connection(fleet: SimFleet) -> None:
    results = await asyncio.gather(*(probe("fast", fleet.url("fast"), model="m", prompt="x",
                                           max_tokens=3, timeout=5) for _ in range(3)))
    assert all(r.ok and r.connect_seconds is not None for r in results)
    assert fleet.requests["fast"] == 3


@pytest.mark.parametrize("fault, kind, status", [
    ("cut", "stream_cut", 200),
    ("malformed", "malformed_sse", 200),
    ("empty", "empty", 200),
    ("http500", "http_5xx", 500),
    ("http429", "http_4xx", 429),
])
@pytest.mark.parametrize("api", ["chat", "completions"])
async def test_broken_streams(fleet: SimFleet, fault: str, kind: str, status: int, api: Api) -> None:
    fleet.backends["fast"].incident.stream_fault = fault
    r = await probe("fast", fleet.url("fast"), model="llama", prompt="x", max_tokens=5, timeout=5,
                    api=api, api_key=KEY)
    assert not r.ok
    assert r.error_kind == kind and kind in PROBE_ERROR_KINDS
    assert r.status == status
    assert r.error and KEY not in r.error
    if fault == "cut":
        assert len(r.itl) == 1 and r.ttft_seconds is not None  # two tokens came before the cut
    if fault.startswith("http"):
        assert r.output_tokens is None and r.ttft_seconds is None and r.e2e_seconds is None
    if fault == "http429":
        assert r.error.startswith("HTTP 429: Rate limit reached for key ***")  # the echo is scrubbed
    if fault == "empty":
        assert r.ttft_seconds is None and r.output_tokens == 0 and r.e2e_seconds is not None


async def test_stall_hits_the_probe_timeout(fleet: SimFleet) -> None:
    fleet.backends["fast"].incident.stream_fault = "stall"
    t0 = time.perf_counter()
    r = await probe("fast", fleet.url("fast"), model="llama", prompt="x", max_tokens=5, timeout=0.5)
    assert time.perf_counter() - t0 < 0.8
    assert (r.ok, r.error_kind, r.status) == (False, "timeout", 200)
    assert r.error == "timed out after 0.5s after 2 content chunks"
    assert r.ttft_seconds is not None and r.e2e_seconds is None


async def test_closed_port_is_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = await probe("gone", f"http://127.0.0.1:{port}", model="m", prompt="x", max_tokens=1, timeout=2)
    assert (r.ok, r.error_kind, r.status) == (False, "refused", None)
    assert r.dns_seconds is not None and r.connect_seconds is None
    assert r.error == f"connection refused by 127.0.0.1:{port}"


async def test_unresolvable_host_is_dns() -> None:
    r = await probe("nx", "http://no-such-host.invalid", model="m", prompt="x", max_tokens=1, timeout=3)
    if r.error_kind == "timeout":
        pytest.skip("this machine's resolver does not answer for .invalid")
    assert (r.ok, r.error_kind) == (False, "dns")
    assert r.error is not None and r.error.startswith("DNS lookup of no-such-host.invalid failed")


async def test_nonsense_url_is_a_result_not_an_exception() -> None:
    r = await probe("bad", "ftp://127.0.0.1:1", model="m", prompt="x", max_tokens=1, timeout=1)
    assert not r.ok and r.error_kind in PROBE_ERROR_KINDS


# -- hand-written servers ------------------------------------------------------------------------


async def _serve(parts: list[bytes], heads: list[bytes]) -> tuple[asyncio.Server, str]:
    """Answer every request with ``parts`` (written one by one, 10 ms apart), then close."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            heads.append(head)
            length = next((int(ln.split(b":")[1]) for ln in head.split(b"\r\n")
                           if ln.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            for i, part in enumerate(parts):
                if i:
                    await asyncio.sleep(0.01)
                writer.write(part)
                await writer.drain()
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def _chat(content: str) -> bytes:
    return b'data: {"choices":[{"index":0,"delta":{"content":"' + content.encode() + b'"},"finish_reason":null}]}'


async def test_close_delimited_stream_with_comments_crlf_and_split_events() -> None:
    heads: list[bytes] = []
    parts = [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
        b": keep-alive\r\n\r\n",
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}\r\n\r\n',
        _chat("Hel")[:20], _chat("Hel")[20:] + b"\r\n\r\n",
        b'data: {"choices":\r\ndata: [{"index":0,"delta":{"content":"lo"}}]}\r\n\r\n',
        _chat("!") + b"\r\n\r\ndata: [DONE]\r\n\r\n",
    ]
    server, url = await _serve(parts, heads)
    async with server:
        r = await probe("hand", url + "/v1/", model="m", prompt="x", max_tokens=8, timeout=5,
                        api_key=KEY)
    assert r.ok, r.error
    assert r.output_tokens == 3 and r.tokens_from_usage is False  # no usage chunk: counted
    assert len(r.itl) == 2 and r.tokens_per_second is not None
    assert r.ttft_seconds is not None and r.ttft_seconds >= 0.03  # role chunk and comment don't count
    [head] = heads
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")  # no doubled /v1
    assert f"\r\nAuthorization: Bearer {KEY}\r\n".encode() in head


async def test_stream_ending_without_done_is_cut_and_json_answer_is_malformed() -> None:
    parts = [b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
             _chat("a") + b"\n\n"]
    server, url = await _serve(parts, [])
    async with server:
        r = await probe("cut", url, model="m", prompt="x", max_tokens=8, timeout=5)
    assert (r.error_kind, r.output_tokens) == ("stream_cut", 1)
    assert r.error == "stream ended before [DONE] after 1 content chunks"
    body = b'{"choices": []}'
    parts = [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
             % (len(body), body)]
    server, url = await _serve(parts, [])
    async with server:
        r = await probe("json", url, model="m", prompt="x", max_tokens=8, timeout=5)
    assert r.error_kind == "malformed_sse" and r.error is not None and "application/json" in r.error


# -- TLS ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_https_probe_measures_the_tls_handshake(ca: trustme.CA) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    fleet = SimFleet([_backend("tls")], ssl=server_ctx)
    await fleet.start()
    try:
        url = fleet.url("tls")
        assert url.startswith("https://127.0.0.1:")
        by_name = url.replace("127.0.0.1", "localhost")  # SNI and certificate check on a host name
        r = await probe("tls", by_name, model="m", prompt="x", max_tokens=4, timeout=5, verify=client_ctx)
        assert r.ok, r.error
        assert r.tls_seconds is not None and r.tls_seconds > 0
        assert r.tls_version is not None and r.tls_version.startswith("TLSv1.")
        assert r.connect_seconds is not None and r.connect_seconds > 0 and r.dns_seconds is not None
        assert r.output_tokens == 4
        # the same server, not trusted: a tls failure, with the reason
        bad = await probe("tls", by_name, model="m", prompt="x", max_tokens=4, timeout=5, verify=True)
        assert (bad.ok, bad.error_kind, bad.status) == (False, "tls", None)
        assert bad.error is not None and "certificate verify failed" in bad.error
        assert bad.connect_seconds is not None and bad.tls_seconds is None
        # plain HTTP to a TLS port: the server drops the connection before any response
        plain = await probe("tls", url.replace("https", "http"), model="m", prompt="x", max_tokens=4,
                            timeout=5)
        assert not plain.ok and plain.error_kind == "stream_cut" and plain.status is None
    finally:
        await fleet.stop()


async def test_an_event_flood_keeps_a_bounded_number_of_gaps_with_their_percentiles() -> None:
    """A server streaming 20,000 content events (the issue stored 665 kB of gaps in one row)."""
    import statistics

    from exporters.probe import MAX_GAPS

    events = b"".join(_chat("x") + b"\n\n" for _ in range(20_000))
    parts = [b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
             events[: len(events) // 2], events[len(events) // 2 :] + b"data: [DONE]\n\n"]
    server, url = await _serve(parts, [])
    async with server:
        r = await probe("flood", url, model="m", prompt="x", max_tokens=8, timeout=10)
    assert r.ok, r.error
    assert r.output_tokens == 20_000 and len(r.itl) == MAX_GAPS
    # the one slow gap (the 10 ms pause between the two writes) is still the maximum
    assert max(r.itl) >= 0.005 and min(r.itl) >= 0
    assert statistics.median(r.itl) < 0.001
