"""Loopback servers the audit tests point ``inferwatch audit`` at, each set up to pass or to fail
checklist items:

* ``ApiApp``: an OpenAI-compatible ASGI app (``/v1/models``, ``/v1/chat/completions`` streamed or
  not) whose security headers, CORS, API key and rate limit are chosen per test;
* ``serve_hypercorn``: that app behind Hypercorn, a real HTTP/2 server, over TLS (modern, TLS 1.2
  only, or accepting TLS 1.0) or plain;
* ``nginx_front``: Debian's real nginx as the TLS/HTTP/2 front, with response buffering on or off;
* ``cutting_proxy``: a TCP proxy that drops every connection after N seconds, as a load balancer
  with a total request timeout does;
* ``DnsServer``: a dnspython DNS server on loopback UDP serving a test zone with CNAME chains
  (the discovery tests use it too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any, Literal

import dns.message
import dns.name
import dns.rdatatype
import dns.rrset
from hypercorn.asyncio import serve
from hypercorn.config import Config

from sim.certs import Issued
from tests.alertmanager_helpers import free_port

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: what a well-configured front sends
SECURE_HEADERS = {
    "strict-transport-security": "max-age=63072000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
KEY = "sk-audit-test-key-0123456789"
MODEL = "tiny-test-model"


class ApiApp:
    """An OpenAI-compatible endpoint. ``headers`` are added to every answer; ``cors``:
    ``None`` (no CORS), ``"star"`` (``*`` without credentials), ``"star_credentials"`` or
    ``"reflect_credentials"``; ``key``: required bearer token (None: anyone); ``rate_limit``:
    requests per second before 429 (None: no limit), with ``Retry-After`` when ``retry_after``."""

    def __init__(self, *, headers: dict[str, str] | None = None, cors: str | None = None, key: str | None = KEY,
                 rate_limit: int | None = 5, retry_after: bool = True, token_delay: float = 0.02) -> None:
        self.headers = SECURE_HEADERS if headers is None else headers
        self.cors = cors
        self.key = key
        self.rate_limit = rate_limit
        self.retry_after = retry_after
        self.token_delay = token_delay
        self._window = (0.0, 0)
        self.requests = 0

    def _extra(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        out = [(k.encode(), v.encode()) for k, v in self.headers.items()]
        origin = next((v.decode() for k, v in scope["headers"] if k == b"origin"), None)
        if origin and self.cors:
            allow = "*" if self.cors.startswith("star") else origin
            out.append((b"access-control-allow-origin", allow.encode()))
            if self.cors.endswith("credentials"):
                out.append((b"access-control-allow-credentials", b"true"))
        return out

    async def _send_json(self, send: Send, scope: Scope, status: int, body: object,
                         extra: list[tuple[bytes, bytes]] | None = None) -> None:
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                                *self._extra(scope), *(extra or [])]})
        await send({"type": "http.response.body", "body": data})

    def _limited(self) -> bool:
        if self.rate_limit is None:
            return False
        now = int(time.monotonic())
        start, n = self._window
        if start != now:
            self._window = (now, 1)
            return False
        self._window = (start, n + 1)
        return n + 1 > self.rate_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        self.requests += 1
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        path, method = scope["path"], scope["method"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if method == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": self._extra(scope)})
            await send({"type": "http.response.body", "body": b""})
            return
        if self.key is not None and headers.get("authorization") != f"Bearer {self.key}":
            await self._send_json(send, scope, 401, {"error": {"message": "invalid API key"}})
            return
        if self._limited():
            extra = [(b"retry-after", b"1")] if self.retry_after else []
            await self._send_json(send, scope, 429, {"error": {"message": "rate limited"}}, extra)
            return
        if path == "/v1/models" and method == "GET":
            await self._send_json(send, scope, 200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
            return
        if path != "/v1/chat/completions" or method != "POST":
            await self._send_json(send, scope, 404, {"error": {"message": "not found"}})
            return
        req = json.loads(body or b"{}")
        n = int(req.get("max_tokens") or 16)
        if not req.get("stream"):
            await asyncio.sleep(self.token_delay * n)
            await self._send_json(send, scope, 200, {
                "id": "x", "object": "chat.completion", "model": MODEL,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi " * n},
                             "finish_reason": "length"}]})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), *self._extra(scope)]})

        async def event(obj: object) -> None:
            await send({"type": "http.response.body", "body": f"data: {json.dumps(obj)}\n\n".encode(),
                        "more_body": True})

        base = {"id": "x", "object": "chat.completion.chunk", "model": MODEL}
        await event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        for i in range(n):
            await asyncio.sleep(self.token_delay)
            last = i == n - 1
            await event({**base, "choices": [{"index": 0, "delta": {"content": f" t{i}"},
                                              "finish_reason": "length" if last else None}]})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


TlsMode = Literal["modern", "tls12", "legacy"]


class _Config(Config):
    tls_mode: TlsMode = "modern"

    def create_ssl_context(self) -> ssl.SSLContext | None:
        if not self.ssl_enabled:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if self.tls_mode == "legacy":
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                ctx.minimum_version = ssl.TLSVersion.TLSv1
            else:
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            if self.tls_mode == "tls12":
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(self.alpn_protocols)
        ctx.load_cert_chain(certfile=self.certfile, keyfile=self.keyfile)
        return ctx


def write_chain(leaf: Issued, chain: list[Issued], directory: Path) -> tuple[str, str]:
    cert = directory / f"leaf-{leaf.cert.serial_number:x}.pem"
    key = directory / f"leaf-{leaf.cert.serial_number:x}.key"
    cert.write_bytes(leaf.pem() + b"".join(c.pem() for c in chain))
    key.write_bytes(leaf.key_pem())
    return str(cert), str(key)


@contextlib.contextmanager
def serve_hypercorn(app: Any, *, cert: tuple[str, str] | None = None, tls: TlsMode = "modern",
                    h2: bool = True) -> Iterator[int]:
    """``app`` served by Hypercorn on 127.0.0.1 in a thread for the block; yields the port."""
    port = free_port()
    config = _Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.tls_mode = tls
    config.graceful_timeout = 0.5
    if cert is not None:
        config.certfile, config.keyfile = cert
    config.alpn_protocols = ["h2", "http/1.1"] if h2 else ["http/1.1"]
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        with contextlib.suppress(Exception):
            loop.run_until_complete(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(5)
    _wait_port(port)
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


# --- nginx -----------------------------------------------------------------------------------------
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

_NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fcgi;
  uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;
    add_header X-Content-Type-Options nosniff always;
    add_header Referrer-Policy no-referrer always;
    location / {{
      proxy_pass http://127.0.0.1:{upstream};
      proxy_http_version 1.1;
      proxy_buffering {buffering};
      proxy_read_timeout 30s;
    }}
  }}
}}
"""


@contextlib.contextmanager
def nginx_front(upstream: int, cert: tuple[str, str], directory: Path, *, buffering: bool) -> Iterator[int]:
    """Debian's nginx on 127.0.0.1 as the TLS + HTTP/2 front of ``upstream`` (plain http)."""
    assert NGINX is not None
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    conf.write_text(_NGINX_CONF.format(user="user root;" if os.geteuid() == 0 else "", dir=directory, port=port,
                                       cert=cert[0], key=cert[1], upstream=upstream,
                                       buffering="on" if buffering else "off"))
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(directory)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        _wait_port(port)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- a proxy with a total request timeout ----------------------------------------------------------
@contextlib.asynccontextmanager
async def cutting_proxy(upstream: int, cut_after: float) -> AsyncIterator[int]:
    """A TCP proxy to ``upstream`` that closes each connection ``cut_after`` seconds after it opened."""
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            tasks.add(task)
        up_r, up_w = await asyncio.open_connection("127.0.0.1", upstream)
        try:
            async with asyncio.timeout(cut_after):
                await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        except (TimeoutError, asyncio.CancelledError):
            pass
        finally:
            for w in (writer, up_w):
                w.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


# --- DNS ---------------------------------------------------------------------------------------------
class DnsServer(threading.Thread):
    """A DNS server on loopback UDP (dnspython). ``zone`` maps (name, type) to (ttl, answers);
    a CNAME at a name is followed within the answer, as a recursive resolver returns it."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.zone: dict[tuple[str, str], tuple[int, list[str]]] = {}
        self.delay = 0.0

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def run(self) -> None:
        while True:
            data, addr = self.sock.recvfrom(4096)
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            q = query.question[0]
            rtype = dns.rdatatype.to_text(q.rdtype)
            name = q.name.to_text()
            found = False
            for _ in range(10):
                if (name, "CNAME") in self.zone:
                    ttl, targets = self.zone[(name, "CNAME")]
                    response.answer.append(dns.rrset.from_text_list(dns.name.from_text(name), ttl, "IN", "CNAME", targets))
                    name, found = targets[0], True
                    continue
                if (name, rtype) in self.zone:
                    ttl, answers = self.zone[(name, rtype)]
                    response.answer.append(dns.rrset.from_text_list(dns.name.from_text(name), ttl, "IN", rtype, answers))
                    found = True
                elif any(n == name for n, _ in self.zone):
                    found = True  # the name exists, without this type: NOERROR, no answer
                break
            if not found:
                response.set_rcode(3)  # NXDOMAIN
            if self.delay:
                time.sleep(self.delay)
            self.sock.sendto(response.to_wire(), addr)


# --- OCSP stapling (pyOpenSSL: the server side of status_request) -----------------------------------
def ocsp_response(leaf: Issued, issuer: Issued, status: Literal["good", "revoked"]) -> bytes:
    """A signed OCSP response about ``leaf`` from its ``issuer`` (DER), as a CA's responder gives."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    now = dt.datetime.now(dt.UTC)
    revoked = status == "revoked"
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=leaf.cert, issuer=issuer.cert, algorithm=hashes.SHA1(),
        cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
        this_update=now - dt.timedelta(hours=1), next_update=now + dt.timedelta(days=3),
        revocation_time=now - dt.timedelta(hours=2) if revoked else None,
        revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, issuer.cert)
    return builder.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@contextlib.contextmanager
def stapling_server(cert: tuple[str, str], staple: bytes | None) -> Iterator[int]:
    """A TLS server (pyOpenSSL) that staples ``staple`` when the client asks (None: staples nothing)."""
    from OpenSSL import SSL

    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.use_certificate_chain_file(cert[0])
    ctx.use_privatekey_file(cert[1])
    if staple is not None:
        ctx.set_ocsp_server_callback(lambda _conn, _data: staple)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    port = int(listener.getsockname()[1])
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with client:
                client.setblocking(True)
                conn = SSL.Connection(ctx, client)
                conn.set_accept_state()
                with contextlib.suppress(SSL.Error, OSError):
                    conn.do_handshake()
                    conn.shutdown()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(2)
        listener.close()
