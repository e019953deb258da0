"""Fetching expositions: the lean keep-alive HTTP/1.1 path against raw loopback servers that
answer exactly as scripted (framing, encodings, errors, hostile sizes), and the same reasons as
the httpx path for https and redirects."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from exporters.http import FetchError, Http, Limits

BODY = b"# TYPE x gauge\nx 1\n"
LIMITS = Limits(timeout=2.0, max_body_bytes=1000)

Reply = Callable[[bytes], bytes | None]  # request bytes -> raw response (None: close without answering)


class RawServer:
    """A loopback server that answers each request on a connection with ``reply(request)``,
    counting connections and requests."""

    def __init__(self, reply: Reply, *, close_after: int | None = None) -> None:
        self.reply = reply
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/metrics"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(request)
                answer = self.reply(request)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                served += 1
                if self.close_after is not None and served >= self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(body: bytes = BODY, *headers: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", *headers]
    if not any(h.lower().startswith("content-type") for h in headers):
        head.insert(1, "Content-Type: text/plain; version=0.0.4")
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@pytest.fixture
async def http() -> AsyncIterator[Http]:
    async with httpx.AsyncClient(follow_redirects=True, trust_env=False) as client:
        h = Http(client)
        yield h
        await h.aclose()


async def test_keep_alive_reuses_one_connection_and_sends_the_headers(http: Http) -> None:
    async with RawServer(lambda _: ok()) as srv:
        for _ in range(5):
            assert await http.exposition(srv.url, LIMITS, {"Authorization": "Bearer t0k"}) == BODY
    assert srv.connections == 1 and len(srv.requests) == 5
    first = srv.requests[0].decode()
    assert first.startswith("GET /metrics HTTP/1.1\r\n")
    assert "\r\nAuthorization: Bearer t0k\r\n" in first and "\r\nAccept: text/plain;version=0.0.4" in first
    assert "\r\nHost: 127.0.0.1:" in first


async def test_a_connection_the_server_closed_while_idle_is_retried_on_a_new_one(http: Http) -> None:
    async with RawServer(lambda _: ok(), close_after=1) as srv:
        for _ in range(3):
            assert await http.exposition(srv.url, LIMITS) == BODY
    assert srv.connections == 3


@pytest.mark.parametrize(("reply", "body"), [
    pytest.param(lambda _: ok(b"", "Transfer-Encoding: chunked")
                 + b"6;ext=1\r\n# TYPE\r\nd\r\n x gauge\nx 1\n\r\n0\r\nX-Trailer: t\r\n\r\n", BODY, id="chunked"),
    pytest.param(lambda _: ok(gzip.compress(BODY), "Content-Encoding: gzip"), BODY, id="gzip"),
    pytest.param(lambda _: ok(zlib.compress(BODY), "Content-Encoding: deflate"), BODY, id="deflate"),
    pytest.param(lambda _: b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + BODY, BODY, id="until close"),
])
async def test_bodies_framed_and_encoded_every_way(http: Http, reply: Reply, body: bytes) -> None:
    async with RawServer(reply, close_after=1) as srv:
        assert await http.exposition(srv.url, LIMITS) == body


@pytest.mark.parametrize(("reply", "reason"), [
    pytest.param(lambda _: ok(b"oops", status="500 Internal Server Error"), "HTTP 500", id="status"),
    pytest.param(lambda _: ok(b"{}", "Content-Type: application/json"), "not exposition text (content-type application/json)",
                 id="json"),
    pytest.param(lambda _: ok(b"  <!DOCTYPE html><p>login</p>"), "not exposition text (the body is HTML)", id="html body"),
    pytest.param(lambda _: ok(b"x" * 10, "Content-Length: 5000"), "body over size cap (5000 bytes > 1000 bytes)",
                 id="declared too big"),
    pytest.param(lambda _: b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"x 1\n" * 400,
                 "body over size cap (more than 1000 bytes)", id="streamed too big"),
    pytest.param(lambda _: ok(b"", "Transfer-Encoding: chunked") + b"400\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n",
                 "body over size cap (more than 1000 bytes)", id="chunked too big"),
    pytest.param(lambda _: ok(gzip.compress(b"x 1\n" * 100_000), "Content-Encoding: gzip"),
                 "body over size cap (decompressed to more than 1000 bytes)", id="gzip bomb"),
    pytest.param(lambda _: ok(gzip.compress(BODY)[:-12], "Content-Encoding: gzip"), "truncated body", id="gzip cut"),
    pytest.param(lambda _: ok(BODY)[:-5], "truncated body: the connection closed before the announced length was sent",
                 id="cut"),
    pytest.param(lambda _: b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "HTTP protocol error: not an HTTP/1.x response", id="not http"),
    pytest.param(lambda _: b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\n\r\n",
                 "HTTP protocol error: response head over 64 KiB", id="endless headers"),
    pytest.param(lambda _: None, "HTTP protocol error: the server closed the connection without a response",
                 id="no answer"),
])
async def test_each_failure_has_its_reason(http: Http, reply: Reply, reason: str) -> None:
    async with RawServer(reply, close_after=1) as srv:
        with pytest.raises(FetchError) as info:
            await http.exposition(srv.url, LIMITS)
    assert info.value.reason.startswith(reason), info.value.reason


async def test_a_stalled_server_times_out(http: Http) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nx")  # then nothing
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(stall, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(FetchError) as info:
            await http.exposition(f"http://127.0.0.1:{port}/metrics", Limits(0.3, 1000))
    finally:
        server.close()
    assert info.value.reason == "timeout after 0.3s"


async def test_refused_and_header_injection(http: Http) -> None:
    async with RawServer(lambda _: ok()) as srv:
        url = srv.url
    with pytest.raises(FetchError) as info:
        await http.exposition(url, LIMITS)
    assert info.value.reason == "connection refused"
    async with RawServer(lambda _: ok()) as srv:
        with pytest.raises(FetchError) as info:
            await http.exposition(srv.url, LIMITS, {"Authorization": "Bearer x\r\nX-Evil: 1"})
        assert srv.requests == []
    assert info.value.reason == "invalid request header 'Authorization'"


SECRET_PAGE = b"internal-admin-password=hunter2\n"


@pytest.mark.parametrize("lean", [True, False])
async def test_a_redirect_to_another_origin_is_refused_and_its_body_never_shown(http: Http, lean: bool) -> None:
    client = Http(http.client, lean=lean)
    async with RawServer(lambda _: ok(SECRET_PAGE)) as other:
        async with RawServer(lambda _: ok(b"", f"Location: {other.url}", status="302 Found")) as srv:
            with pytest.raises(FetchError) as info:
                await client.exposition(srv.url, LIMITS, {"Authorization": "Bearer tok"})
    assert "another origin" in info.value.reason and "cross_origin_redirects" in info.value.reason
    assert other.requests == []  # not even asked


@pytest.mark.parametrize("lean", [True, False])
async def test_redirects_within_the_origin_are_followed_with_the_credentials(http: Http, lean: bool) -> None:
    client = Http(http.client, lean=lean)

    def reply(request: bytes) -> bytes:
        if request.startswith(b"GET /metrics "):
            return ok(b"", "Location: /real/metrics?x=1", status="301 Moved Permanently")
        return ok()

    async with RawServer(reply) as srv:
        assert await client.exposition(srv.url, LIMITS, {"Authorization": "Bearer tok"}) == BODY
    assert [r.split(b" ")[1] for r in srv.requests] == [b"/metrics", b"/real/metrics?x=1"]
    assert all(b"Authorization: Bearer tok" in r for r in srv.requests)
    with pytest.raises(FetchError) as info:
        async with RawServer(reply) as srv:
            await client.exposition(srv.url, Limits(2.0, 1000, follow_redirects=False))
    assert info.value.reason == "HTTP 301 redirect not followed (follow_redirects is off)"


@pytest.mark.parametrize("lean", [True, False])
async def test_a_cross_origin_redirect_allowed_by_config_drops_the_credentials(http: Http, lean: bool) -> None:
    client = Http(http.client, lean=lean)
    async with RawServer(lambda _: ok()) as other:
        async with RawServer(lambda _: ok(b"", f"Location: {other.url}", status="307 Temporary Redirect")) as srv:
            allowed = Limits(2.0, 1000, cross_origin_redirects=True)
            assert await client.exposition(srv.url, allowed, {"Authorization": "Bearer tok"}) == BODY
    assert b"Authorization" in srv.requests[0] and b"Authorization" not in other.requests[0]


async def test_a_redirect_loop_ends_with_a_reason(http: Http) -> None:
    async with RawServer(lambda _: ok(b"", "Location: /metrics", status="302 Found")) as srv:
        with pytest.raises(FetchError) as info:
            await http.exposition(srv.url, LIMITS)
    assert info.value.reason == "more than 10 redirects" and len(srv.requests) == 11


async def test_the_lean_path_can_be_turned_off(http: Http) -> None:
    async with RawServer(lambda _: ok()) as srv:
        plain = Http(http.client, lean=False)
        assert await plain.exposition(srv.url, LIMITS) == BODY
        assert b"python-httpx" in srv.requests[0]
