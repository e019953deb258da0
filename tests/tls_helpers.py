"""Loopback TLS servers for tests; the certificates come from ``sim.certs``::

    root = make_ca("Test Root")
    inter = make_ca("Test Intermediate", issuer=root, not_after=now + 3 * DAY)
    leaf = make_leaf(inter, "localhost", "127.0.0.1", not_after=now + 60 * DAY)
    ctx = server_context(leaf, [inter], tmp_path)
    async with tls_server(ctx) as port:
        ...
    root.write_pem(tmp_path / "ca.pem")   # a ca_file for the client

``raw_server(handler)`` serves plain TCP with any ``handler(reader, writer)`` (a plain-HTTP answer, a
server that never speaks, …).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

from sim.certs import DAY, Issued, make_ca, make_leaf, server_context

__all__ = ["DAY", "Issued", "make_ca", "make_leaf", "raw_server", "server_context", "tls_server", "unused_port"]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()


async def _drain_until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ssl.SSLError):
        while await reader.read(4096):
            pass
    await _close(writer)


@contextlib.asynccontextmanager
async def _serve(handler: Handler, ctx: ssl.SSLContext | None) -> AsyncIterator[int]:
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            tasks.add(task)
        try:
            await handler(reader, writer)
            await _close(writer)
        except asyncio.CancelledError:  # teardown: end quietly (asyncio logs a cancelled handler)
            writer.transport.abort()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ctx)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def raw_server(handler: Handler) -> contextlib.AbstractAsyncContextManager[int]:
    """Serve ``handler`` on 127.0.0.1 (plain TCP) for the block; yields the port."""
    return _serve(handler, None)


def tls_server(ctx: ssl.SSLContext, handler: Handler | None = None) -> contextlib.AbstractAsyncContextManager[int]:
    """A TLS server on 127.0.0.1 for the block; yields the port.

    asyncio completes the handshake before ``handler`` runs; the default handler reads until the
    client closes.
    """
    return _serve(handler or _drain_until_eof, ctx)


def unused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
