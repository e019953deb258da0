"""Synthetic streaming request to an OpenAI-compatible endpoint, timed phase by phase.

``probe()`` sends one real ``stream: true`` request (``/v1/chat/completions`` or
``/v1/completions``) over a *new* connection and returns a ``ProbeResult``: DNS, TCP connect and
TLS handshake durations, time to first token (the first non-empty content delta; role-only and
empty deltas do not count), the gaps between tokens, end-to-end time to ``[DONE]``, output
tokens (``usage.completion_tokens`` of the final usage chunk when the server sends it, else the
number of content chunks) and the decode rate (output tokens - 1) / (last token - first token).

The connection phases are measured by ``TimingBackend``, an httpcore network backend around
``httpcore.AnyIOBackend``: it resolves the host itself (``getaddrinfo``, timed as DNS), connects
to the resolved addresses in order (timed as connect) and times ``start_tls`` (TLS; httpcore
passes the original host name for SNI and the ``Host`` header is the URL's). A probe builds its
own one-connection pool with no keep-alive, so every probe pays, and measures, every phase.

A probe never raises (bar cancellation): a failure is a result with ``ok=False`` and one of
``PROBE_ERROR_KINDS``. The API key is sent as ``Authorization: Bearer`` and scrubbed from every
error text (servers do echo keys in 401/429 messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import re
import socket
import ssl
import time
import typing
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import anyio
import httpcore
import httpx

from core.samples import ProbeResult
from exporters.base import Clock, Schedule
from exporters.http import Http
from exporters.sse import Api, MalformedChunk, SSEDecoder, SSEError, SSEEvent, parse_chunk

__all__ = ["ConnectTimings", "OneShotTransport", "StreamProbe", "TimingBackend", "api_base", "endpoint_url", "probe"]

_ERROR_BODY_BYTES = 1024
_ERROR_TEXT_CHARS = 200
_MEDIA_TYPE = re.compile(r"[\w.+-]{1,40}/[\w.+-]{1,60}")


@dataclass
class ConnectTimings:
    """What ``TimingBackend`` saw while opening one connection (durations in seconds)."""

    dns_seconds: float | None = None
    connect_seconds: float | None = None
    tls_seconds: float | None = None
    tls_version: str | None = None
    address: str | None = None  # the IP address connected to
    phase: str | None = None  # dns | connect | tls while under way, then "connected"
    error_kind: str | None = None  # dns | refused | connect | tls when a phase failed
    error: str | None = None


class TimingBackend(httpcore.AsyncNetworkBackend):
    """Records DNS / connect / TLS durations of the connections it opens into ``timings``.

    Meant for one connection (one probe); a second connection overwrites ``timings``.
    """

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()
        self.timings = ConnectTimings()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        t = self.timings = ConnectTimings(phase="dns")
        t0 = time.perf_counter()
        if _is_ip(host):  # nothing to resolve (and no resolver thread to wait for)
            addresses = [host]
        else:
            try:
                with anyio.fail_after(timeout):
                    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except TimeoutError:
                raise httpcore.ConnectTimeout(f"DNS lookup of {host} timed out") from None
            except OSError as exc:  # socket.gaierror
                t.error_kind, t.error = "dns", f"DNS lookup of {host} failed: {_os_text(exc)}"
                raise httpcore.ConnectError(t.error) from exc
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        t.dns_seconds = time.perf_counter() - t0
        if not addresses:
            t.error_kind, t.error = "dns", f"DNS lookup of {host} returned no address"
            raise httpcore.ConnectError(t.error)

        t.phase = "connect"
        t1 = time.perf_counter()
        failures: list[tuple[str, BaseException]] = []
        stream: httpcore.AsyncNetworkStream | None = None
        for addr in addresses:
            try:
                stream = await self._inner.connect_tcp(addr, port, timeout=timeout,
                                                       local_address=local_address,
                                                       socket_options=socket_options)
            except httpcore.ConnectTimeout:
                raise
            except Exception as exc:
                failures.append((addr, exc))
                continue
            t.address = addr
            break
        if stream is None:
            refused = all(_is_refused(exc) for _, exc in failures)
            where = ", ".join(f"{a}:{port}" for a, _ in failures)
            t.error_kind = "refused" if refused else "connect"
            t.error = (f"connection refused by {where}" if refused else
                       f"connect to {where} failed: {_os_text(failures[-1][1])}")
            raise httpcore.ConnectError(t.error) from failures[-1][1]
        t.connect_seconds = time.perf_counter() - t1
        t.phase = "connected"
        return _TimedStream(stream, t)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _TimedStream(httpcore.AsyncNetworkStream):
    """A plain TCP stream whose ``start_tls`` is timed."""

    def __init__(self, stream: httpcore.AsyncNetworkStream, timings: ConnectTimings) -> None:
        self._stream = stream
        self._t = timings

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        t = self._t
        t.phase = "tls"
        t0 = time.perf_counter()
        try:
            tls = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        except httpcore.ConnectTimeout:
            raise
        except Exception as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, ssl.SSLError) else exc
            t.error_kind = "tls"
            t.error = f"TLS handshake with {server_hostname} failed: {_ssl_text(cause)}"
            raise
        t.tls_seconds = time.perf_counter() - t0
        obj = tls.get_extra_info("ssl_object")
        t.tls_version = obj.version() if obj is not None else None
        t.phase = "connected"
        return tls

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class OneShotTransport(httpx.AsyncBaseTransport):
    """An httpx transport over a one-connection httpcore pool with no keep-alive, whose
    connection phases land in ``self.backend.timings``. One per probe."""

    def __init__(self, verify: ssl.SSLContext | bool = True) -> None:
        self.backend = TimingBackend()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(verify), max_connections=1, max_keepalive_connections=0,
            http1=True, http2=False, retries=0, network_backend=self.backend)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host,
                             port=request.url.port, target=request.url.raw_path),
            headers=request.headers.raw, content=request.stream, extensions=request.extensions)
        resp = await self._pool.handle_async_request(req)
        assert isinstance(resp.stream, typing.AsyncIterable)
        return httpx.Response(status_code=resp.status, headers=resp.headers,
                              stream=_ResponseStream(resp.stream), extensions=resp.extensions)

    async def aclose(self) -> None:
        await self._pool.aclose()


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: typing.AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


_default_ssl: ssl.SSLContext | None = None


def _ssl_context(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    global _default_ssl
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify:
        if _default_ssl is None:  # loading the system CA store costs milliseconds: do it once
            _default_ssl = ssl.create_default_context()
        return _default_ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _Failed(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class _Run:
    """Mutable state of one probe, turned into a ``ProbeResult`` at the end."""

    def __init__(self) -> None:
        self.start = time.perf_counter()  # reset just before the request is sent
        self.phase = "connecting"
        self.status: int | None = None
        self.token_times: list[float] = []
        self.chunk_tokens = 0
        self.usage_tokens: int | None = None
        self.end: float | None = None
        self.done = False


def api_base(url: str) -> str:
    """An OpenAI-compatible API's ``/v1`` root under a base URL (added unless the URL ends so)."""
    base = url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


def endpoint_url(url: str, api: Api) -> str:
    """The completions endpoint under a base URL."""
    return api_base(url) + ("/chat/completions" if api == "chat" else "/completions")


async def probe(backend: str, url: str, *, model: str, prompt: str, max_tokens: int, timeout: float,
                api: Literal["chat", "completions"] = "chat", api_key: str | None = None,
                verify: ssl.SSLContext | bool = True,
                clock: Callable[[], float] = time.time) -> ProbeResult:
    """One streaming request to ``url`` (the base URL; ``/v1`` is added unless it ends so).

    ``timeout`` bounds the whole probe, connection to ``[DONE]``. Never raises.
    """
    ts = clock()
    run = _Run()
    transport: OneShotTransport | None = None
    kind: str | None = None
    detail: str | None = None
    try:
        transport = OneShotTransport(verify)
        await _warm_up()
        async with asyncio.timeout(timeout):
            await _exchange(transport, run, url, api, model, prompt, max_tokens, api_key)
    except TimeoutError:
        kind, detail = "timeout", f"timed out after {timeout:g}s {_waiting_for(run, transport)}"
    except _Failed as exc:
        kind, detail = exc.kind, exc.detail
    except Exception as exc:  # a probe reports, it does not raise
        kind, detail = _classify(exc, run, transport)
    finally:
        if transport is not None:
            with contextlib.suppress(Exception):
                await transport.aclose()
    t = transport.backend.timings if transport is not None else ConnectTimings()
    return _result(backend, ts, run, t, kind, detail, api_key)


_warm = False


async def _warm_up() -> None:
    """Load, once per process, what anyio and httpcore import lazily on first use (tens of
    milliseconds), so that the first probe's timings do not include it."""
    global _warm
    if _warm:
        return
    import anyio.streams.tls  # noqa: F401

    await anyio.sleep(0)
    anyio.Event().set()
    _ = (anyio.getaddrinfo, anyio.connect_tcp, anyio.fail_after)
    _warm = True


async def _exchange(transport: OneShotTransport, run: _Run, url: str, api: Api, model: str,
                    prompt: str, max_tokens: int, api_key: str | None) -> None:
    body: dict[str, object] = {"model": model, "stream": True, "max_tokens": max_tokens,
                               "stream_options": {"include_usage": True}}
    if api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity",
               "User-Agent": "inferwatch-probe"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    # trust_env=False: an HTTP(S)_PROXY from the environment would mount another transport
    async with httpx.AsyncClient(transport=transport, timeout=None, follow_redirects=False,
                                 trust_env=False) as client:
        request = client.build_request("POST", endpoint_url(url, api), json=body, headers=headers)
        run.start = time.perf_counter()
        resp = await client.send(request, stream=True)
        async with contextlib.aclosing(resp):
            run.status = resp.status_code
            run.phase = "response"
            if resp.status_code >= 400:
                raise _Failed("http_5xx" if resp.status_code >= 500 else "http_4xx",
                              await _error_text(resp))
            if resp.status_code >= 300:  # a misconfigured URL (http -> https, a login page …)
                where = resp.headers.get("location", "nowhere")
                raise _Failed("http_4xx", f"HTTP {resp.status_code} redirect to {where} (probes do not follow redirects)")
            ctype = resp.headers.get("content-type", "")
            if ctype and not ctype.lower().startswith("text/event-stream"):
                raise _Failed("malformed_sse", f"response is not an event stream (Content-Type: {ctype})")
            run.phase = "stream"
            await _read_stream(resp, run, api)


async def _read_stream(resp: httpx.Response, run: _Run, api: Api) -> None:
    decoder = SSEDecoder()
    try:
        async for part in resp.aiter_raw():
            now = time.perf_counter()
            if _consume(decoder.feed(part), run, api, now):
                return
        now = time.perf_counter()
        _consume(decoder.close(), run, api, now)
    except SSEError as exc:
        raise _Failed("malformed_sse", str(exc)) from None
    run.end = now
    if not run.done:
        raise _Failed("stream_cut", f"stream ended before [DONE] after {len(run.token_times)} content chunks")


def _consume(events: list[SSEEvent], run: _Run, api: Api, now: float) -> bool:
    for ev in events:
        try:
            chunk = parse_chunk(ev.data, api)
        except MalformedChunk as exc:
            raise _Failed("malformed_sse", str(exc)) from None
        if chunk.done:
            run.done, run.end = True, now
            return True
        if chunk.content:
            run.token_times.append(now)
            run.chunk_tokens += 1
        if chunk.completion_tokens is not None:
            run.usage_tokens = chunk.completion_tokens
    return False


async def _error_text(resp: httpx.Response) -> str:
    raw = b""
    with contextlib.suppress(Exception):
        async for part in resp.aiter_raw():
            raw += part
            if len(raw) >= _ERROR_BODY_BYTES:
                break
    text = raw[:_ERROR_BODY_BYTES].decode("utf-8", errors="replace")
    message = None
    with contextlib.suppress(Exception):
        obj = json.loads(text)
        if isinstance(obj, dict):
            err = obj.get("error")
            message = err.get("message") if isinstance(err, dict) else (err if isinstance(err, str) else obj.get("message"))
    if not message:  # not the API's JSON error: the body is not shown, only its size and type
        kind = resp.headers.get("content-type", "").split(";")[0].strip()
        kind = kind if _MEDIA_TYPE.fullmatch(kind) else "untyped"
        return f"HTTP {resp.status_code}" + (f" ({len(raw)}-byte {kind} body)" if raw else "")
    detail = " ".join(str(message).split())
    if len(detail) > _ERROR_TEXT_CHARS:
        detail = detail[: _ERROR_TEXT_CHARS - 1] + "…"
    return f"HTTP {resp.status_code}" + (f": {detail}" if detail else "")


def _classify(exc: Exception, run: _Run, transport: OneShotTransport | None) -> tuple[str, str]:
    t = transport.backend.timings if transport is not None else None
    if t is not None and t.error_kind is not None:
        return t.error_kind, t.error or t.error_kind
    if isinstance(exc, (httpcore.TimeoutException, httpx.TimeoutException)):
        return "timeout", f"timed out {_waiting_for(run, transport)}"
    text = _exc_text(exc)
    if run.status is None:
        if t is None or t.phase != "connected":
            return "connect", f"connect failed: {text}"
        return "stream_cut", f"connection closed before response headers: {text}"
    return "stream_cut", f"stream broken after {len(run.token_times)} content chunks: {text}"


def _waiting_for(run: _Run, transport: OneShotTransport | None) -> str:
    t = transport.backend.timings if transport is not None else None
    if run.phase == "response":
        return "reading the response"
    if run.phase == "connecting":
        phase = t.phase if t is not None else None
        return {"dns": "resolving the host", "connect": "connecting", "tls": "in the TLS handshake",
                }.get(phase or "", "waiting for response headers")
    if not run.token_times:
        return "waiting for the first token"
    return f"after {len(run.token_times)} content chunks"


def _result(backend: str, ts: float, run: _Run, t: ConnectTimings, kind: str | None,
            detail: str | None, api_key: str | None) -> ProbeResult:
    times = [x - run.start for x in run.token_times]
    ttft = times[0] if times else None
    itl = capped_gaps([b - a for a, b in zip(times, times[1:], strict=False)])
    if run.usage_tokens is not None:
        output, from_usage = run.usage_tokens, True
    elif run.status is not None and run.phase == "stream":
        output, from_usage = run.chunk_tokens, False
    else:
        output, from_usage = None, False
    tps = None
    if output is not None and output >= 2 and len(times) >= 2 and times[-1] > times[0]:
        tps = (output - 1) / (times[-1] - times[0])
    if kind is None and run.done and not times:
        kind, detail = "empty", "[DONE] without any content"
    return ProbeResult(
        backend=backend, ts=ts, ok=kind is None, error_kind=kind,
        error=_scrub(detail, api_key) if detail is not None else None,
        status=run.status, dns_seconds=t.dns_seconds, connect_seconds=t.connect_seconds,
        tls_seconds=t.tls_seconds, ttft_seconds=ttft,
        e2e_seconds=run.end - run.start if run.end is not None else None,
        output_tokens=output, tokens_from_usage=from_usage, tokens_per_second=tps, itl=itl,
        tls_version=t.tls_version)


#: at most this many inter-token gaps are kept per probe result (a stored row stays under ~5 kB
#: however many events a server streams)
MAX_GAPS = 256


def capped_gaps(gaps: list[float], most: int = MAX_GAPS) -> tuple[float, ...]:
    """``gaps`` as they came when there are at most ``most``; else ``most`` evenly spaced order
    statistics of them (minimum and maximum included): the percentiles the dashboard and rules
    read stay within one rank step of the exact ones.

    >>> capped_gaps([0.5, 0.1, 0.3]), capped_gaps([float(x) for x in range(1001)], most=3)
    ((0.5, 0.1, 0.3), (0.0, 500.0, 1000.0))
    """
    if len(gaps) <= most:
        return tuple(gaps)
    ordered = sorted(gaps)
    step = (len(ordered) - 1) / (most - 1)
    return tuple(ordered[round(i * step)] for i in range(most))


def _scrub(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
        if len(secret) >= 12:  # a server may echo part of it ("sk-abc…xyz")
            text = text.replace(secret[:8], "***").replace(secret[-6:], "***")
    return text


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _is_refused(exc: BaseException | None) -> bool:
    seen: set[int] = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError) or (isinstance(e, OSError) and e.errno == errno.ECONNREFUSED):
            return True
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        stack.extend((e.__cause__, e.__context__))
    return False


def _os_text(exc: BaseException) -> str:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:  # the innermost OSError says what happened
        seen.add(id(e))
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        if isinstance(e, BaseExceptionGroup) and e.exceptions:
            e = e.exceptions[0]
            continue
        e = e.__cause__ or e.__context__
    return _exc_text(exc)


def _ssl_text(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return _exc_text(exc)


def _exc_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


@dataclass(frozen=True, slots=True)
class StreamProbe:
    """The probe source of one backend: ``probe`` every ``interval``, never overlapping itself
    (it opens its own connection each time: the timings are a new user's)."""

    backend: str
    url: str
    model: str
    prompt: str
    max_tokens: int
    timeout: float
    interval: float
    api: Api = "chat"
    api_key: str | None = None
    verify: ssl.SSLContext | bool = True
    schedule: Schedule = "after"

    @property
    def name(self) -> str:
        return f"probe {self.backend}"

    async def collect(self, http: Http, clock: Clock = time.time) -> ProbeResult:
        return await probe(self.backend, self.url, model=self.model, prompt=self.prompt, max_tokens=self.max_tokens,
                           timeout=self.timeout, api=self.api, api_key=self.api_key, verify=self.verify, clock=clock)
