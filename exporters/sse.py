"""Server-Sent Events and OpenAI streaming chunks: bytes in, events and chunks out. No I/O.

``SSEDecoder`` follows the WHATWG event-stream rules (https://html.spec.whatwg.org/multipage/
server-sent-events.html#event-stream-interpretation): lines end with ``\\r\\n``, ``\\n`` or
``\\r`` (a ``\\r\\n`` split across two reads is one line end); a line starting with ``:`` is a
comment (keep-alives); ``data:`` lines accumulate, joined by ``\\n``; a blank line dispatches the
event; an event with no ``data`` is dropped. It is incremental: ``feed()`` takes whatever a read
returned (a multi-byte character or a line may be split anywhere) and returns the events that
completed.

``parse_chunk`` reads one event's data as an OpenAI (or vLLM, SGLang, TGI, llama.cpp — they
copy it) streaming chunk: ``[DONE]`` ends the stream; otherwise a JSON object with ``choices``
whose first entry carries ``delta.content`` (chat completions) or ``text`` (completions), and
optionally ``usage`` (the final chunk when ``stream_options.include_usage`` was asked for, with
``choices: []``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Api",
    "MalformedChunk",
    "SSEDecoder",
    "SSEError",
    "SSEEvent",
    "StreamChunk",
    "parse_chunk",
    "parse_stream",
]

Api = Literal["chat", "completions"]

#: a single line longer than this is not an event stream we want to buffer
MAX_LINE_BYTES = 1 << 20

_EOL = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


class SSEError(ValueError):
    """The bytes are not a usable event stream (e.g. a line over ``MAX_LINE_BYTES``)."""


class MalformedChunk(ValueError):
    """An event's data is not an OpenAI streaming chunk."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: str
    event: str | None = None  # the `event:` field, None for the default "message"
    id: str | None = None


class SSEDecoder:
    """Incremental event-stream decoder.

    >>> d = SSEDecoder()
    >>> d.feed(b'data: {"a":\\r')
    []
    >>> d.feed(b'\\n: keep-alive\\r\\ndata: 1}\\r\\n\\r\\n')
    [SSEEvent(data='{"a":\\n1}', event=None, id=None)]
    """

    def __init__(self) -> None:
        self._buf = b""
        self._started = False
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk
        if not self._started:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._buf = buf
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[len(_BOM):]
        events: list[SSEEvent] = []
        pos = 0
        for m in _EOL.finditer(buf):
            if m.group() == b"\r" and m.end() == len(buf):
                break  # maybe the first half of a "\r\n" split across reads
            self._line(buf[pos:m.start()], events)
            pos = m.end()
        self._buf = buf[pos:]
        if len(self._buf) > MAX_LINE_BYTES:
            raise SSEError(f"event-stream line over {MAX_LINE_BYTES} bytes")
        return events

    def close(self) -> list[SSEEvent]:
        """End of input: a pending ``\\r`` ends its line; an unterminated last line is dropped
        (the stream was cut mid-line) unless it is ``data: [DONE]``; a complete event that only
        lacks its blank line is dispatched."""
        events: list[SSEEvent] = []
        buf, self._buf = self._buf, b""
        if buf.endswith(b"\r"):
            self._line(buf[:-1], events)
        elif buf.strip() in (b"data: [DONE]", b"data:[DONE]"):
            self._line(buf.strip(), events)
        self._dispatch(events)
        return events

    @property
    def pending(self) -> bool:
        """Bytes or data lines received that have not made a whole event yet."""
        return bool(self._buf.strip() or self._data)

    def _line(self, raw: bytes, events: list[SSEEvent]) -> None:
        if not raw:
            self._dispatch(events)
            return
        if raw.startswith(b":"):
            return  # comment / keep-alive
        line = raw.decode("utf-8", errors="replace")
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        # `retry` and unknown fields are ignored, as the spec says

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._data:
            events.append(SSEEvent("\n".join(self._data), self._event or None, self._id))
        self._data = []
        self._event = None  # the last event id persists across events (spec); the type does not


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """What one event means to a probe."""

    done: bool = False  # the `[DONE]` sentinel
    content: str = ""  # generated text in this chunk ("" for role-only / empty deltas)
    finish_reason: str | None = None
    completion_tokens: int | None = None  # from `usage`, when this chunk carries it
    prompt_tokens: int | None = None


DONE = StreamChunk(done=True)


def parse_chunk(data: str, api: Api = "chat") -> StreamChunk:
    """One event's data as a streaming chunk; ``MalformedChunk`` when it is not one.

    For chat, ``delta.content`` is the text; ``delta.reasoning_content`` (vLLM, SGLang, DeepSeek)
    or ``delta.reasoning`` counts too, since a reasoning model's first tokens are reasoning.
    """
    if data.strip() == "[DONE]":
        return DONE
    try:
        obj: Any = json.loads(data)
    except json.JSONDecodeError as exc:
        raise MalformedChunk(f"data is not JSON ({exc.msg} at char {exc.pos}): {_clip(data)}") from None
    except ValueError as exc:  # e.g. a number too long to convert
        raise MalformedChunk(f"data is not JSON ({exc}): {_clip(data)}") from None
    if not isinstance(obj, dict):
        raise MalformedChunk(f"data is not a JSON object: {_clip(data)}")
    choices = obj.get("choices")
    if not isinstance(choices, list):
        err = obj.get("error")
        if err is not None or obj.get("object") == "error":
            msg = err.get("message") if isinstance(err, dict) else (err or obj.get("message"))
            raise MalformedChunk(f"error event in stream: {_clip(str(msg))}")
        raise MalformedChunk(f"chunk without choices: {_clip(data)}")
    content, finish = "", None
    if choices:
        first = choices[0]
        if not isinstance(first, dict):
            raise MalformedChunk(f"choice is not an object: {_clip(data)}")
        if api == "chat":
            delta = first.get("delta")
            if isinstance(delta, dict):
                content = _text(delta.get("content")) or _text(delta.get("reasoning_content")) \
                    or _text(delta.get("reasoning"))
        else:
            content = _text(first.get("text"))
        fr = first.get("finish_reason")
        finish = fr if isinstance(fr, str) else None
    completion = prompt = None
    usage = obj.get("usage")
    if isinstance(usage, dict):
        completion = _int(usage.get("completion_tokens"))
        prompt = _int(usage.get("prompt_tokens"))
    return StreamChunk(content=content, finish_reason=finish, completion_tokens=completion,
                       prompt_tokens=prompt)


def parse_stream(body: bytes, api: Api = "chat") -> list[StreamChunk]:
    """A whole (or partial) stream body at once; convenient for tests and tools."""
    decoder = SSEDecoder()
    events = decoder.feed(body) + decoder.close()
    return [parse_chunk(e.data, api) for e in events]


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _clip(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
