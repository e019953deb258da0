"""The simulated backends' OpenAI-compatible streaming endpoints, as seen on the wire."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from exporters.sse import SSEDecoder, parse_chunk
from sim.engines import make_renderer
from sim.server import SimFleet
from sim.state import Profile, SimBackend


@pytest.fixture
async def fleet() -> AsyncIterator[SimFleet]:
    now = 1_700_000_000.0
    backends = [SimBackend(name, make_renderer("vllm"), ("llama",),
                           Profile(stream_ttft=0.01, stream_token_interval=0.005), now=now)
                for name in ("a", "b")]
    f = SimFleet(backends, clock=lambda: now)
    await f.start()
    try:
        yield f
    finally:
        await f.stop()


async def _raw(url: str, path: str, body: dict[str, object]) -> tuple[str, bytes]:
    """POST with a bare socket; returns the response head and the de-chunked body."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    payload = json.dumps(body).encode()
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    out = b""
    while True:  # chunked transfer encoding
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        data = await reader.readexactly(size + 2)
        if size == 0:
            break
        out += data[:-2]
    writer.close()
    return head, out


async def test_chat_stream_bytes_look_like_openai(fleet: SimFleet) -> None:
    head, body = await _raw(fleet.url("a"), "/v1/chat/completions", {
        "model": "llama", "stream": True, "max_tokens": 3,
        "messages": [{"role": "user", "content": "Say hi"}],
        "stream_options": {"include_usage": True}})
    assert head.startswith("HTTP/1.1 200 OK\r\n")
    assert "Content-Type: text/event-stream" in head
    assert "Transfer-Encoding: chunked" in head
    assert body.endswith(b"data: [DONE]\n\n")
    events = SSEDecoder().feed(body)
    objs = [json.loads(e.data) for e in events[:-1]]
    assert len(objs) == 1 + 3 + 1  # role, 3 tokens, usage
    for o in objs:
        assert o["object"] == "chat.completion.chunk"
        assert o["id"] == objs[0]["id"] and o["id"].startswith("chatcmpl-")
        assert o["created"] == 1_700_000_000 and o["model"] == "llama"
    assert objs[0]["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                   "logprobs": None, "finish_reason": None}]
    assert [o["choices"][0]["finish_reason"] for o in objs[1:4]] == [None, None, "length"]
    assert all(o["choices"][0]["delta"]["content"] for o in objs[1:4])
    assert objs[4]["choices"] == []
    assert objs[4]["usage"] == {"prompt_tokens": 2, "total_tokens": 5, "completion_tokens": 3}
    chunks = [parse_chunk(e.data, "chat") for e in events]
    assert sum(1 for c in chunks if c.content) == 3 and chunks[-1].done


async def test_completions_stream_and_usage_only_when_asked(fleet: SimFleet) -> None:
    _, body = await _raw(fleet.url("a"), "/v1/completions", {
        "model": "llama", "prompt": "Once upon", "stream": True, "max_tokens": 4})
    events = SSEDecoder().feed(body)
    objs = [json.loads(e.data) for e in events[:-1]]
    assert len(objs) == 4  # no role chunk, no usage chunk
    assert all(o["object"] == "text_completion" and o["id"].startswith("cmpl-") for o in objs)
    assert all(o["choices"][0]["text"] for o in objs)
    assert all("usage" not in o for o in objs)
    assert events[-1].data == "[DONE]"


async def test_non_stream_request_gets_one_json_completion(fleet: SimFleet) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(fleet.url("a") + "/v1/chat/completions", json={
            "model": "llama", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        obj = r.json()
        assert obj["object"] == "chat.completion" and obj["usage"]["completion_tokens"] == 2
        bad = await client.post(fleet.url("a") + "/v1/completions", content=b"{nope")
        assert bad.status_code == 400 and "invalid JSON" in bad.json()["error"]["message"]
        # the /metrics endpoint is untouched
        assert (await client.get(fleet.url("a") + "/metrics")).status_code == 200


async def test_timing_follows_the_profile(fleet: SimFleet) -> None:
    fleet.backends["a"].profile = Profile(stream_ttft=0.1, stream_token_interval=0.02)
    async with httpx.AsyncClient() as client:
        t0 = time.perf_counter()
        arrivals: list[float] = []
        async with client.stream("POST", fleet.url("a") + "/v1/completions",
                                  json={"prompt": "x", "stream": True, "max_tokens": 5}) as r:
            async for part in r.aiter_raw():
                if b'"text"' in part:
                    arrivals.append(time.perf_counter() - t0)
    assert len(arrivals) == 5
    assert 0.1 <= arrivals[0] < 0.13
    assert 0.08 * 0.9 < arrivals[-1] - arrivals[0] < 0.08 * 1.25


async def test_stalled_backend_does_not_block_its_neighbour(fleet: SimFleet) -> None:
    fleet.backends["a"].incident.stream_fault = "stall"
    fleet.backends["a"].incident.stream_fault_after = 0
    async with httpx.AsyncClient() as client:
        async def stalled() -> None:
            async with client.stream("POST", fleet.url("a") + "/v1/completions",
                                     json={"prompt": "x", "stream": True}) as r:
                async for _ in r.aiter_raw():
                    pass

        task = asyncio.create_task(stalled())
        t0 = time.perf_counter()
        _, body = await _raw(fleet.url("b"), "/v1/completions",
                             {"prompt": "x", "stream": True, "max_tokens": 3})
        assert body.endswith(b"data: [DONE]\n\n")
        assert time.perf_counter() - t0 < 0.5
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("fault, expect", [
    ("cut", b'"text"'),  # two chunks, then the connection closes without [DONE]
    ("malformed", b"choices: oops"),
    ("empty", b"data: [DONE]"),
])
async def test_fault_switches(fleet: SimFleet, fault: str, expect: bytes) -> None:
    fleet.backends["a"].incident.stream_fault = fault
    async with httpx.AsyncClient() as client:
        body = b""
        try:
            async with client.stream("POST", fleet.url("a") + "/v1/completions",
                                     json={"prompt": "x", "stream": True, "max_tokens": 4}) as r:
                async for part in r.aiter_raw():
                    body += part
        except httpx.RemoteProtocolError:
            assert fault == "cut"
        else:
            assert fault != "cut"
    assert expect in body
    if fault == "cut":
        assert b"[DONE]" not in body and body.count(b'"text"') == 2
    if fault == "empty":
        assert all(not parse_chunk(e.data, "completions").content for e in SSEDecoder().feed(body))


@pytest.mark.parametrize("fault, status", [("http500", 500), ("http429", 429)])
async def test_http_error_faults(fleet: SimFleet, fault: str, status: int) -> None:
    fleet.backends["a"].incident.stream_fault = fault
    async with httpx.AsyncClient() as client:
        r = await client.post(fleet.url("a") + "/v1/chat/completions", json={"stream": True})
    assert r.status_code == status and r.json()["error"]["code"] == status
