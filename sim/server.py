"""A loopback HTTP server that serves a whole simulated fleet from one process.

Each ``SimBackend`` gets its own listening port (``http://127.0.0.1:<port>/metrics``, as a real
engine would), all served by one asyncio loop with a minimal HTTP/1.1 implementation: hundreds
of backends cost a socket each, not a thread or a framework app each.

Incident switches (``SimBackend.incident``) are honoured per request: ``outage`` closes the
listening socket (connections are refused) and reopens it on the same port when cleared;
``delay`` stalls the answer; ``http_status``/``body`` replace the answer; ``truncate`` announces
the full length, sends half and closes.

``POST /v1/chat/completions`` and ``POST /v1/completions`` are the OpenAI-compatible generation
endpoints of ``sim/stream.py`` (SSE streaming with configurable timing and broken-stream
switches). ``ssl=`` serves every backend, or those named in a mapping, over TLS (``https://``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as _ssl
import time
from collections.abc import Callable, Mapping

from sim.state import SimBackend
from sim.stream import STREAM_PATHS, serve_completion

_MAX_HEADER = 64 * 1024
_REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}
_MAX_BODY = 1 << 20


class SimFleet:
    """Serve ``backends`` on loopback; ``url(name)`` gives each one's base URL once started."""

    def __init__(self, backends: list[SimBackend], host: str = "127.0.0.1",
                 clock: Callable[[], float] = time.time,
                 ssl: _ssl.SSLContext | Mapping[str, _ssl.SSLContext] | None = None) -> None:
        self.backends = {b.name: b for b in backends}
        self._ssl = ssl
        self.host = host
        self.clock = clock
        self.ports: dict[str, int] = {}
        self._servers: dict[str, asyncio.Server] = {}
        self.requests: dict[str, int] = dict.fromkeys(self.backends, 0)
        self._writers: dict[str, set[asyncio.StreamWriter]] = {}

    def url(self, name: str) -> str:
        scheme = "https" if self._ssl_context(name) is not None else "http"
        return f"{scheme}://{self.host}:{self.ports[name]}"

    def _ssl_context(self, name: str) -> _ssl.SSLContext | None:
        if self._ssl is None or isinstance(self._ssl, _ssl.SSLContext):
            return self._ssl
        return self._ssl.get(name)

    async def start(self) -> None:
        for name in self.backends:
            await self._listen(name, self.ports.get(name, 0))

    async def _listen(self, name: str, port: int) -> None:
        backend = self.backends[name]

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conns = self._writers.setdefault(name, set())
            conns.add(writer)
            try:
                await self._serve_connection(backend, reader, writer)
            except (asyncio.CancelledError, ConnectionError, _ssl.SSLError):
                pass
            finally:
                conns.discard(writer)

        server = await asyncio.start_server(handle, self.host, port, reuse_address=True, backlog=512,
                                            ssl=self._ssl_context(name))
        self._servers[name] = server
        self.ports[name] = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for server in self._servers.values():
            server.close()
        for conns in self._writers.values():  # idle keep-alive connections would hold wait_closed()
            for writer in list(conns):
                writer.close()
        for server in self._servers.values():
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()

    async def set_outage(self, name: str, down: bool) -> None:
        """Refuse connections (close the listener) or serve again on the same port."""
        self.backends[name].incident.outage = down
        server = self._servers.pop(name, None)
        if down:
            if server is not None:
                server.close()
            for writer in list(self._writers.get(name, ())):  # kept-alive connections die too
                writer.close()
        else:
            if server is not None:
                self._servers[name] = server
            else:
                await self._listen(name, self.ports[name])

    # -- HTTP ----------------------------------------------------------------------------------
    async def _serve_connection(self, backend: SimBackend, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                if len(head) > _MAX_HEADER:
                    return
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) < 3:
                    return
                method, path = parts[0], parts[1].split("?", 1)[0]
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                length = int(headers.get("content-length", "0") or 0)
                if length > _MAX_BODY:
                    return
                body = await reader.readexactly(length) if length else b""
                keep = headers.get("connection", "").lower() != "close"
                if path in STREAM_PATHS and method == "POST":
                    self.requests[backend.name] = self.requests.get(backend.name, 0) + 1
                    if backend.incident.delay:
                        await asyncio.sleep(backend.incident.delay)
                    if not await serve_completion(backend, STREAM_PATHS[path], body, headers, reader,
                                                  writer, self.clock()):
                        return
                elif not await self._respond(backend, method, path, writer):
                    return
                if not keep:
                    return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _respond(self, backend: SimBackend, method: str, path: str, writer: asyncio.StreamWriter) -> bool:
        """Write one response; False when the connection must be dropped."""
        self.requests[backend.name] = self.requests.get(backend.name, 0) + 1
        inc = backend.incident
        if inc.delay:
            await asyncio.sleep(inc.delay)
        if path != "/metrics" or method not in ("GET", "HEAD"):
            await self._write(writer, 404, b"not found\n", "text/plain")
            return True
        if inc.http_status is not None:
            await self._write(writer, inc.http_status, b"simulated failure\n", "text/plain")
            return True
        if inc.body is not None:
            ctype = "text/html; charset=utf-8" if inc.body.lstrip().startswith(b"<") else "text/plain; version=0.0.4"
            await self._write(writer, 200, inc.body, ctype)
            return True
        body = backend.render(self.clock())
        if inc.truncate:
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: {backend.renderer.content_type}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            writer.write(head + body[: len(body) // 2])
            await writer.drain()
            return False
        await self._write(writer, 200, body if method == "GET" else b"", backend.renderer.content_type,
                          length=len(body))
        return True

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str,
                     length: int | None = None) -> None:
        reason = _REASONS.get(status, "Status")
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body) if length is None else length}\r\n\r\n").encode()
        writer.write(head + body)
        await writer.drain()
