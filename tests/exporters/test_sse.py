"""Server-Sent Events decoding and OpenAI streaming chunks: pure, bytes in, chunks out."""

from __future__ import annotations

import pytest

from exporters.sse import (
    MalformedChunk,
    SSEDecoder,
    SSEError,
    SSEEvent,
    StreamChunk,
    parse_chunk,
    parse_stream,
)

CHAT = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
    b'"usage":{"prompt_tokens":5,"total_tokens":7,"completion_tokens":2}}\n\n'
    b"data: [DONE]\n\n"
)

COMPLETIONS = (
    b'data: {"id":"x","object":"text_completion","created":1,"model":"m",'
    b'"choices":[{"index":0,"text":"Hi","logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"x","object":"text_completion","created":1,"model":"m",'
    b'"choices":[{"index":0,"text":"","logprobs":null,"finish_reason":"length"}]}\n\n'
    b"data: [DONE]\n\n"
)


def test_chat_stream_role_chunk_is_empty_then_content_usage_done() -> None:
    chunks = parse_stream(CHAT, "chat")
    assert [c.content for c in chunks] == ["", "Hel", "lo", "", ""]
    assert chunks[2].finish_reason == "stop"
    assert chunks[3].completion_tokens == 2 and chunks[3].prompt_tokens == 5
    assert chunks[-1].done
    assert not any(c.done for c in chunks[:-1])


def test_completions_stream_reads_text() -> None:
    chunks = parse_stream(COMPLETIONS, "completions")
    assert [c.content for c in chunks] == ["Hi", "", ""]
    assert chunks[1].finish_reason == "length"
    assert chunks[2] == StreamChunk(done=True)
    # read as chat, the same chunks carry no content (no delta)
    assert [c.content for c in parse_stream(COMPLETIONS, "chat")] == ["", "", ""]


def test_reasoning_delta_counts_as_content() -> None:
    data = '{"choices":[{"index":0,"delta":{"reasoning_content":"Hmm"}}]}'
    assert parse_chunk(data, "chat").content == "Hmm"


def test_comments_keepalives_and_other_fields() -> None:
    body = (b": keep-alive\n\n:ping\nevent: message\nid: 7\nretry: 100\ndata: {\"choices\":[]}\n\n"
            b"data:[DONE]\n\n")
    d = SSEDecoder()
    events = d.feed(body)
    assert events == [SSEEvent('{"choices":[]}', "message", "7"), SSEEvent("[DONE]", None, "7")]
    assert parse_chunk(events[1].data).done


def test_crlf_and_cr_line_endings() -> None:
    for eol in (b"\r\n", b"\r", b"\n"):
        body = CHAT.replace(b"\n", eol)
        assert parse_stream(body, "chat") == parse_stream(CHAT, "chat"), eol


def test_multi_line_data_is_joined_with_newline() -> None:
    d = SSEDecoder()
    events = d.feed(b'data: {"choices":\ndata: [{"index":0,"text":"a"}]}\n\n')
    assert events == [SSEEvent('{"choices":\n[{"index":0,"text":"a"}]}')]
    assert parse_chunk(events[0].data, "completions").content == "a"


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_split_across_reads_anywhere(size: int) -> None:
    body = CHAT.replace(b"\n", b"\r\n").replace(b"Hel", "Hé€".encode())  # CRLF + multi-byte UTF-8
    d = SSEDecoder()
    events: list[SSEEvent] = []
    for i in range(0, len(body), size):
        events += d.feed(body[i:i + size])
    events += d.close()
    chunks = [parse_chunk(e.data) for e in events]
    assert [c.content for c in chunks] == ["", "Hé€", "lo", "", ""]
    assert chunks[-1].done


def test_crlf_split_between_reads_is_one_line_end() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: a\r") == []
    assert d.feed(b"\n\r") == []  # the "\r\n" ended the data line; the "\r" may be half of another
    assert d.feed(b"\n") == [SSEEvent("a")]


def test_bom_is_skipped_even_when_split() -> None:
    d = SSEDecoder()
    assert d.feed(b"\xef\xbb") == []
    assert d.feed(b"\xbfdata: x\n\n") == [SSEEvent("x")]


def test_close_drops_an_unterminated_line_but_keeps_done() -> None:
    d = SSEDecoder()
    assert d.feed(b'data: {"choices":[]}\n\ndata: {"cho') == [SSEEvent('{"choices":[]}')]
    assert d.pending
    assert d.close() == []  # cut mid-line: no event
    d = SSEDecoder()
    d.feed(b"data: [DONE]")
    assert d.close() == [SSEEvent("[DONE]")]
    d = SSEDecoder()
    assert d.feed(b"data: x\n") == []  # complete line, missing only the blank line
    assert d.close() == [SSEEvent("x")]


def test_event_without_data_is_dropped() -> None:
    assert SSEDecoder().feed(b"event: ping\n\n\n\n") == []


def test_overlong_line_is_an_error() -> None:
    with pytest.raises(SSEError):
        SSEDecoder().feed(b"data: " + b"x" * (1 << 20) + b"y")


@pytest.mark.parametrize("data, message", [
    ("not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"id": "x"}', "without choices"),
    ('{"choices": {"0": {}}}', "without choices"),
    ('{"choices": ["a"]}', "not an object"),
    ('{"error": {"message": "model overloaded"}}', "error event in stream: model overloaded"),
    ('{"object": "error", "message": "bad"}', "error event in stream: bad"),
])
def test_malformed_chunks(data: str, message: str) -> None:
    with pytest.raises(MalformedChunk, match=message):
        parse_chunk(data, "chat")


def test_usage_ignores_non_integers() -> None:
    c = parse_chunk('{"choices":[],"usage":{"completion_tokens":"3","prompt_tokens":true}}')
    assert c.completion_tokens is None and c.prompt_tokens is None
