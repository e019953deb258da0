"""The simulated backends' OpenAI-compatible generation endpoints, streamed as vLLM streams them.

``POST /v1/chat/completions`` and ``POST /v1/completions`` with ``"stream": true`` answer
``200`` with ``Content-Type: text/event-stream`` and chunked transfer encoding: one
``data: {json}\\n\\n`` event per chunk, then ``data: [DONE]\\n\\n``. As in vLLM
(``vllm/entrypoints/openai/serving_chat.py``), a chat stream opens with a role-only chunk
(``delta: {"role": "assistant", "content": ""}``) sent at once; then one content chunk per token,
the first ``Profile.stream_ttft`` after the request, the next ones every
``Profile.stream_token_interval`` (both times ``Incident.latency_factor``), ``max_tokens`` of
them (default 16), the last with ``finish_reason: "length"``; then, when the request asked for
``stream_options: {"include_usage": true}``, a usage chunk with ``choices: []``. Chunks are
scheduled against absolute deadlines with real ``asyncio`` sleeps, so the timing a probe
measures is the configured one and a slow backend never blocks the others sharing the loop.

A request without ``"stream": true`` gets the whole completion as one JSON object after the same
total time. ``Incident.stream_fault`` breaks streams on purpose (see ``STREAM_FAULTS``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Mapping
from typing import Any

from sim.state import SimBackend

__all__ = ["STREAM_FAULTS", "STREAM_PATHS", "serve_completion"]

#: request path -> API flavour
STREAM_PATHS = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}

#: values of ``Incident.stream_fault``
STREAM_FAULTS = ("cut", "malformed", "http500", "http429", "empty", "stall")

_WORDS = (" Hello", ",", " I", " am", " a", " simulated", " model", " answering", " your",
          " prompt", " one", " token", " at", " a", " time", ".")
_ids = itertools.count(1)
_REASONS = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error"}


async def serve_completion(backend: SimBackend, api: str, body: bytes, headers: Mapping[str, str],
                           reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           now: float) -> bool:
    """Answer one generation request; False when the connection must be dropped afterwards."""
    try:
        req = json.loads(body or b"{}")
        if not isinstance(req, dict):
            raise ValueError("body is not a JSON object")
    except ValueError as exc:
        await _error(writer, 400, f"invalid JSON body: {exc}", "invalid_request_error")
        return True
    inc, prof = backend.incident, backend.profile
    fault = inc.stream_fault
    if fault == "http500":
        await _error(writer, 500, "simulated internal error", "internal_server_error")
        return True
    if fault == "http429":
        # echo the caller's key as some providers do ("Incorrect API key provided: sk-…"), so the
        # probe's redaction is exercised
        key = headers.get("authorization", "").removeprefix("Bearer ").strip() or "none"
        await _error(writer, 429, f"Rate limit reached for key {key}", "rate_limit_exceeded")
        return True

    model = str(req.get("model") or backend.model_names[0])
    max_tokens = _max_tokens(req)
    ttft = max(prof.stream_ttft * inc.latency_factor, 0.0)
    interval = max(prof.stream_token_interval * inc.latency_factor, 0.0)
    n_tokens = 0 if fault == "empty" else max_tokens
    prompt_tokens = _prompt_tokens(req, api)
    cid = f"{'chatcmpl' if api == 'chat' else 'cmpl'}-sim{next(_ids)}"
    created = int(now)
    loop = asyncio.get_running_loop()
    start = loop.time()

    if not req.get("stream"):
        await asyncio.sleep(ttft + interval * max(n_tokens - 1, 0) if n_tokens else 0.0)
        text = "".join(_word(i) for i in range(n_tokens))
        choice: dict[str, Any] = ({"index": 0, "message": {"role": "assistant", "content": text},
                                   "finish_reason": "length" if n_tokens else "stop"}
                                  if api == "chat" else
                                  {"index": 0, "text": text, "finish_reason": "length" if n_tokens else "stop"})
        obj = {"id": cid, "object": "chat.completion" if api == "chat" else "text_completion",
               "created": created, "model": model, "choices": [choice],
               "usage": _usage(prompt_tokens, n_tokens)}
        await _plain(writer, 200, json.dumps(obj).encode(), "application/json")
        return True

    opts = req.get("stream_options")
    include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
    obj_name = "chat.completion.chunk" if api == "chat" else "text_completion"

    def chunk(content: str | None, finish: str | None, role: bool = False) -> bytes:
        c: dict[str, Any]
        if api == "chat":
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {"content": content}
            c = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            c = {"index": 0, "text": content or "", "logprobs": None, "finish_reason": finish,
                 "stop_reason": None}
        return _event(json.dumps({"id": cid, "object": obj_name, "created": created, "model": model,
                                  "choices": [c]}))

    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                 b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
    if api == "chat":
        writer.write(_framed(chunk(None, None, role=True)))
    await writer.drain()

    for i in range(n_tokens):
        if i == inc.stream_fault_after and fault in ("cut", "stall", "malformed"):
            if fault == "cut":
                return False  # the caller closes the socket: no terminating chunk, no [DONE]
            if fault == "stall":
                while not (writer.is_closing() or reader.at_eof()):
                    await asyncio.sleep(0.05)
                return False
            writer.write(_framed(b"data: {\"id\": \"" + cid.encode() + b"\", choices: oops\n\n"))
        delay = start + ttft + i * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if writer.is_closing() or reader.at_eof():
            return False  # the client went away: stop generating, as vLLM aborts the request
        last = i == n_tokens - 1
        writer.write(_framed(chunk(_word(i), "length" if last else None)))
        await writer.drain()
    if n_tokens == 0:
        await asyncio.sleep(ttft)
        writer.write(_framed(chunk("", "stop")))
    if include_usage:
        writer.write(_framed(_event(json.dumps({"id": cid, "object": obj_name, "created": created,
                                                "model": model, "choices": [],
                                                "usage": _usage(prompt_tokens, n_tokens)}))))
    writer.write(_framed(b"data: [DONE]\n\n") + b"0\r\n\r\n")
    await writer.drain()
    return True


def _word(i: int) -> str:
    return _WORDS[i % len(_WORDS)]


def _max_tokens(req: Mapping[str, Any]) -> int:
    for key in ("max_tokens", "max_completion_tokens"):
        value = req.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return 16


def _prompt_tokens(req: Mapping[str, Any], api: str) -> int:
    if api == "chat":
        msgs = req.get("messages")
        text = " ".join(str(m.get("content", "")) for m in msgs if isinstance(m, dict)) \
            if isinstance(msgs, list) else ""
    else:
        text = str(req.get("prompt", ""))
    return max(1, len(text.split()))


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "total_tokens": prompt + completion, "completion_tokens": completion}


def _event(data: str) -> bytes:
    return b"data: " + data.encode() + b"\n\n"


def _framed(data: bytes) -> bytes:
    """One HTTP/1.1 chunk (chunked transfer encoding)."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def _plain(writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str) -> None:
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    writer.write(head + body)
    await writer.drain()


async def _error(writer: asyncio.StreamWriter, status: int, message: str, kind: str) -> None:
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": status}})
    await _plain(writer, status, body.encode(), "application/json")
