"""Fetching an exposition over HTTP with the limits every scrape honours. Never hangs, never
buffers more than the cap.

``Http.exposition`` is shared by engine scrapes and dcgm-exporter scrapes; a failure raises
``FetchError`` whose ``reason`` an operator can act on: ``connection refused``, ``timeout after
2s``, ``HTTP 500``, ``not exposition text (content-type text/html)``, ``body over size cap
(16777216 bytes)``, ``truncated body: …``. The cap applies to the bytes on the wire and again
after decompression.

Plain-http targets (the common case inside a cluster) are fetched on a lean HTTP/1.1 path: one
keep-alive connection per origin on asyncio streams, the request written in one call, the
response framed by ``Content-Length``, chunked encoding or the connection's end, ``gzip`` and
``deflate`` decoded. At a thousand targets that path costs a quarter of a general client's CPU
per request (``bench/README.md``). A reused connection the server had closed is retried once on a
new one, as browsers and httpx do. https targets and anything the lean path does not speak go
through the shared ``httpx.AsyncClient``, with the same limits and the same reasons.

Compressed bodies are inflated incrementally and never past ``max_body_bytes`` (a 1 MiB gzip
bomb costs 16 MiB at most, then fails). Redirects (both paths) are followed here, at most
``MAX_REDIRECTS``, and only within the target's own origin (scheme, host, port) unless
``Limits.cross_origin_redirects``; credentials never go to another origin. A reason never quotes
the target's body or headers, only positions and lengths: what a target answers may be another
service's page it was redirected to.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

__all__ = ["ACCEPT", "FetchError", "Http", "Limits"]

ACCEPT = "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"
#: response head (status line and headers) at most this long
MAX_HEAD = 64 * 1024
#: redirects followed per fetch (Prometheus and httpx: 10)
MAX_REDIRECTS = 10
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
#: idle keep-alive connections kept per origin
IDLE_PER_ORIGIN = 2
_READ = 64 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """What one fetch may take: ``timeout`` seconds in all (redirects included),
    ``max_body_bytes`` of body (on the wire and inflated); whether redirects are followed, and
    to another origin."""

    timeout: float
    max_body_bytes: int
    follow_redirects: bool = True
    cross_origin_redirects: bool = False


class FetchError(Exception):
    """Why a fetch gave no exposition text (``reason``, fit for an operator)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Fallback(Exception):
    """The lean path does not handle this response (a redirect …): ask httpx instead."""


class _Redirect(Exception):
    """A 3xx with a Location: ``Http.exposition`` decides whether to follow it."""

    def __init__(self, status: int, location: str) -> None:
        super().__init__(status)
        self.status = status
        self.location = location


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


class _Stale(Exception):
    """A reused connection gave no byte of a response: the server had closed it."""


def _connect_reason(exc: BaseException) -> str:
    """Name the root cause of a failed connect (httpx wraps it two or three levels deep)."""
    seen: BaseException | None = exc
    depth = 0
    while seen is not None and depth < 10:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return f"DNS lookup failed: {seen.strerror or seen}"
        if isinstance(seen, OSError) and seen.errno is not None:
            return f"connect failed: {seen.strerror or seen}"
        seen = seen.__cause__ or seen.__context__
        depth += 1
    return f"connect failed: {exc}"


def _looks_like_html(head: bytes) -> bool:
    h = head.lstrip()[:64].lower()
    return h.startswith((b"<!doctype", b"<html", b"<head", b"<body", b"<?xml"))


def _check_type(ctype: str) -> None:
    ctype = ctype.lower()
    if "html" in ctype or "json" in ctype:
        raise FetchError(f"not exposition text (content-type {ctype.split(';')[0]})")


def _decoded(body: bytes, encoding: str, limits: Limits) -> bytes:
    """``body`` decompressed (``gzip``/``deflate``), never to more than the cap."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        d = zlib.decompressobj(zlib.MAX_WBITS if body[:1] == b"\x78" else -zlib.MAX_WBITS)
    else:
        raise _Fallback(encoding)
    try:  # at most cap + 1 bytes out, whatever the ratio: a bomb stops here
        out = d.decompress(body, limits.max_body_bytes + 1)
    except zlib.error as exc:
        raise FetchError(f"HTTP protocol error: bad {encoding} body ({exc})") from None
    if len(out) > limits.max_body_bytes:
        raise FetchError(f"body over size cap (decompressed to more than {limits.max_body_bytes} bytes)")
    if not d.eof:
        raise FetchError(f"truncated body: the {encoding} stream ends early")
    return out


class _Conn:
    __slots__ = ("reader", "writer", "reused")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class Http:
    """The collector's HTTP: a lean keep-alive path for plain-http exposition GETs and, for
    everything else, ``client`` (one ``httpx.AsyncClient``, which its owner closes)."""

    def __init__(self, client: httpx.AsyncClient, *, lean: bool = True) -> None:
        self.client = client
        self.lean = lean
        self._idle: dict[tuple[str, int], list[_Conn]] = {}

    async def exposition(self, url: str, limits: Limits, headers: Mapping[str, str] | None = None) -> bytes:
        """The body of ``GET url``, checked: status < 400, not HTML or JSON, within the size cap."""
        try:
            async with asyncio.timeout(limits.timeout):
                return await self._follow(url, limits, headers or {})
        except FetchError:
            raise
        except TimeoutError:
            raise FetchError(f"timeout after {limits.timeout:g}s") from None
        except httpx.ConnectError as exc:
            raise FetchError(_connect_reason(exc)) from None
        except httpx.TimeoutException:
            raise FetchError(f"timeout after {limits.timeout:g}s") from None
        except httpx.RemoteProtocolError as exc:
            text = str(exc)
            if "incomplete" in text.lower() or "closed" in text.lower():
                raise FetchError("truncated body: the connection closed before the announced length was sent") from None
            raise FetchError("HTTP protocol error: not a valid HTTP/1.1 response") from None
        except httpx.HTTPError as exc:  # (its message may quote the response: not shown)
            raise FetchError(f"HTTP error: {type(exc).__name__}") from None
        except OSError as exc:
            raise FetchError(f"network error: {exc.strerror or exc}") from None

    async def _follow(self, url: str, limits: Limits, headers: Mapping[str, str]) -> bytes:
        home = _origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                return await self._once(url, limits, headers)
            except _Redirect as r:
                if not limits.follow_redirects:
                    raise FetchError(f"HTTP {r.status} redirect not followed (follow_redirects is off)") from None
                nxt = urljoin(url, r.location.strip())
                parts = urlsplit(nxt)
                if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                    raise FetchError(f"HTTP {r.status} redirect to a location that is not http(s)") from None
                there = _origin(nxt)
                if there != home:
                    if not limits.cross_origin_redirects:
                        raise FetchError(
                            f"HTTP {r.status} redirect to another origin ({there[0]}://{there[1]}:{there[2]}) "
                            "not followed; set cross_origin_redirects: true on this backend to allow it") from None
                    headers = {}  # credentials stay with the origin they were configured for
                url = nxt
        raise FetchError(f"more than {MAX_REDIRECTS} redirects")

    async def _once(self, url: str, limits: Limits, headers: Mapping[str, str]) -> bytes:
        parts = urlsplit(url)
        if self.lean and parts.scheme == "http" and parts.hostname:
            try:
                return await self._lean(parts.hostname, parts.port or 80, url, limits, headers)
            except _Fallback:
                pass
        return await self._httpx(url, limits, headers)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    # -- the lean path ---------------------------------------------------------------------------
    async def _lean(self, host: str, port: int, url: str, limits: Limits, headers: Mapping[str, str]) -> bytes:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        shown = f"[{host}]" if ":" in host else host
        lines = [f"GET {target} HTTP/1.1", f"Host: {shown}" + (f":{port}" if port != 80 else ""),
                 f"Accept: {ACCEPT}", "Accept-Encoding: gzip", "User-Agent: inferwatch"]
        for name, value in headers.items():
            if name.lower() in ("accept", "host", "accept-encoding", "user-agent"):
                continue
            if any(c in name or c in value for c in "\r\n") or ":" in name:
                raise FetchError(f"invalid request header {name!r}")
            lines.append(f"{name}: {value}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        origin = (host, port)
        idle = self._idle.get(origin)
        conn = idle.pop() if idle else None
        if conn is not None:
            conn.reused = True
            try:
                return await self._exchange(conn, origin, request, limits)
            except _Stale:
                pass  # the server closed it while idle: once more, on a new connection
        try:
            reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEAD)
        except OSError as exc:
            raise FetchError(_connect_reason(exc)) from None
        try:
            return await self._exchange(_Conn(reader, writer), origin, request, limits)
        except _Stale:
            raise FetchError("HTTP protocol error: the server closed the connection without a response") from None

    async def _exchange(self, conn: _Conn, origin: tuple[str, int], request: bytes, limits: Limits) -> bytes:
        keep = False
        try:
            body, keep = await self._roundtrip(conn, request, limits)
            return body
        finally:
            if keep:
                pool = self._idle.setdefault(origin, [])
                if len(pool) < IDLE_PER_ORIGIN:
                    pool.append(conn)
                else:
                    conn.close()
            else:
                conn.close()

    async def _roundtrip(self, conn: _Conn, request: bytes, limits: Limits) -> tuple[bytes, bool]:
        reader = conn.reader
        try:
            conn.writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial and conn.reused:
                raise _Stale() from None
            if not exc.partial:
                raise FetchError("HTTP protocol error: the server closed the connection without a response") from None
            raise FetchError("HTTP protocol error: the response head was cut off") from None
        except asyncio.LimitOverrunError:
            raise FetchError(f"HTTP protocol error: response head over {MAX_HEAD // 1024} KiB") from None
        except (ConnectionResetError, BrokenPipeError):
            if conn.reused:
                raise _Stale() from None
            raise
        status_line, _, rest = head.partition(b"\r\n")
        version, _, tail = status_line.partition(b" ")
        code = tail[:3]
        if not version.startswith(b"HTTP/1.") or not code.isdigit():
            raise FetchError(f"HTTP protocol error: not an HTTP/1.x response (a {len(status_line)}-byte status line)")
        status = int(code)
        fields: dict[str, str] = {}
        for line in rest.split(b"\r\n"):
            if not line:
                continue
            name, sep, value = line.partition(b":")
            if not sep:
                raise FetchError("HTTP protocol error: a malformed response header")
            key = name.strip().lower().decode("latin-1")
            text = value.strip().decode("latin-1")
            fields[key] = f"{fields[key]}, {text}" if key in fields else text
        if status in _REDIRECTS and "location" in fields:
            raise _Redirect(status, fields["location"])  # (the connection is not kept: closed)
        if status < 200:
            raise _Fallback(str(status))  # the odd 1xx: httpx reads past it
        if 300 <= status < 400:
            raise FetchError(f"HTTP {status}")
        if status >= 400:
            raise FetchError(f"HTTP {status}")
        _check_type(fields.get("content-type", ""))
        if status == 204:  # no content, by definition
            return b"", "close" not in fields.get("connection", "").lower()
        cap = limits.max_body_bytes
        transfer = fields.get("transfer-encoding", "").lower()
        length = fields.get("content-length")
        if "chunked" in transfer:
            body = await self._chunked(reader, cap)
        elif length is not None:
            if not length.isdigit():
                raise FetchError(f"HTTP protocol error: a content-length that is not a number ({len(length)} characters)")
            if int(length) > cap:
                raise FetchError(f"body over size cap ({length} bytes > {cap} bytes)")
            try:
                body = await reader.readexactly(int(length))
            except asyncio.IncompleteReadError:
                raise FetchError("truncated body: the connection closed before the announced length was sent") from None
        else:  # framed by the connection's end
            chunks: list[bytes] = []
            size = 0
            while chunk := await reader.read(_READ):
                size += len(chunk)
                if size > cap:
                    raise FetchError(f"body over size cap (more than {cap} bytes)")
                chunks.append(chunk)
            body = b"".join(chunks)
        keep = (length is not None or "chunked" in transfer) and "close" not in fields.get("connection", "").lower() \
            and version != b"HTTP/1.0"
        body = _decoded(body, fields.get("content-encoding", ""), limits)
        if _looks_like_html(body):
            raise FetchError("not exposition text (the body is HTML)")
        return body, keep

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader, cap: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                line = await reader.readuntil(b"\r\n")
                text = line.split(b";", 1)[0].strip()
                try:
                    n = int(text, 16)
                except ValueError:
                    raise FetchError(f"HTTP protocol error: a chunk size that is not hex ({len(text)} bytes)") from None
                if n == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                        pass
                    return b"".join(chunks)
                size += n
                if size > cap:
                    raise FetchError(f"body over size cap (more than {cap} bytes)")
                chunks.append(await reader.readexactly(n))
                if await reader.readexactly(2) != b"\r\n":
                    raise FetchError("HTTP protocol error: a chunk without its CRLF")
        except asyncio.IncompleteReadError:
            raise FetchError("truncated body: the connection closed before the last chunk") from None
        except asyncio.LimitOverrunError:
            raise FetchError("HTTP protocol error: a chunk header over 64 KiB") from None

    # -- the general path ------------------------------------------------------------------------
    async def _httpx(self, url: str, limits: Limits, headers: Mapping[str, str]) -> bytes:
        async with self.client.stream("GET", url, headers={"Accept": ACCEPT, "Accept-Encoding": "gzip, deflate",
                                                           **headers},
                                      timeout=limits.timeout, follow_redirects=False) as resp:
            if resp.status_code in _REDIRECTS and "location" in resp.headers:
                raise _Redirect(resp.status_code, resp.headers["location"])
            if resp.status_code >= 300:
                raise FetchError(f"HTTP {resp.status_code}")
            _check_type(resp.headers.get("content-type", ""))
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
                raise FetchError(f"body over size cap ({declared} bytes > {limits.max_body_bytes} bytes)")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_raw():
                size += len(chunk)
                if size > limits.max_body_bytes:
                    raise FetchError(f"body over size cap (more than {limits.max_body_bytes} bytes)")
                chunks.append(chunk)
        # aiter_raw skips decoding so the cap applies to wire bytes; inflated here, capped again
        try:
            body = _decoded(b"".join(chunks), resp.headers.get("content-encoding", ""), limits)
        except _Fallback:
            raise FetchError("unsupported content-encoding (gzip, deflate or none)") from None
        if _looks_like_html(body):
            raise FetchError("not exposition text (the body is HTML)")
        return body
