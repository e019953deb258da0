"""Who may see what, what a request may send, and the headers every response carries.

Bearer ``tokens`` (scripts) and ``basic`` users (browsers) from ``web.auth``; ``/healthz`` and
``/readyz`` are always open, ``/metrics`` too unless ``protect_metrics``. Credentials are compared
in constant time. Every response, a 401 included, gets ``nosniff``, ``DENY`` framing, no
referrer and a strict Content-Security-Policy (``script-src 'self'``: the pages carry no inline
code); HSTS only over TLS; API and ``/metrics`` answers are never cached.

Cross-site requests: a browser sends basic-auth credentials (or none, on an open deployment) with
any request a page on another site makes, so a JSON API write (POST, PUT, PATCH, DELETE under
``/api/``) must say ``Content-Type: application/json`` (which a cross-site page cannot send
without a CORS preflight we never grant) and, when it carries an ``Origin`` (browsers always do
on such requests), come from this host: else 415 / 403. A request authenticated with a bearer
token is a script's (another site cannot make the browser attach one) and is not checked. The
``/alerts`` forms have their own double-submit token (``web.routes.alert_pages``).

Request bodies are limited to ``MAX_BODY_BYTES`` (413), counted as they arrive: a declared
``Content-Length`` over it is refused before a byte is read, a chunked body when it passes it.

While the database is down every route that needs it answers 503 with ``Retry-After``, and the
log gets one line when the outage starts and one when it ends (not a traceback per request).
"""

from __future__ import annotations

import base64
import hmac
import logging
import threading
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.config import AuthConfig

__all__ = ["CSP", "MAX_BODY_BYTES", "BodyLimit", "install"]

log = logging.getLogger("inferwatch.web")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
#: the largest request body accepted (a silence is well under 1 kB)
MAX_BODY_BYTES = 1024 * 1024
_WRITES = frozenset(("POST", "PUT", "PATCH", "DELETE"))
_RETRY_AFTER = "5"


#: the headers every response carries (``_headers``; the 413 sent before the app runs)
_SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                     "Referrer-Policy": "no-referrer", "Content-Security-Policy": CSP}


def _headers(request: Request, response: Response) -> Response:
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.url.scheme == "https":
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if request.url.path.startswith("/api/") or request.url.path == "/metrics":
        response.headers["Cache-Control"] = "no-store"
    return response


def _cross_site(request: Request) -> str | None:
    """Why this API write may be a browser's on another site's behalf (None: it is not)."""
    if request.headers.get("sec-fetch-site", "") == "cross-site":
        return "cross-site request refused"
    origin = request.headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)
        if origin == "null" or (parts.netloc or "").lower() != request.headers.get("host", "").lower():
            return "cross-origin request refused: Origin does not match this host"
    return None


class _DatabaseState:
    """Logs when the database stops and starts answering, once each."""

    def __init__(self) -> None:
        self._down = False
        self._lock = threading.Lock()

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if not self._down:
                self._down = True
                log.error("database unavailable (%s); answering 503 until it is back", type(exc).__name__)

    def answered(self) -> None:
        if self._down:
            with self._lock:
                if self._down:
                    self._down = False
                    log.warning("database available again")


_OPEN = frozenset({"/healthz", "/readyz"})


def install(app: FastAPI, auth_of: Callable[[], AuthConfig]) -> None:
    """Add the authentication, cross-site, body-size, header and outage handling to ``app``.
    ``auth_of`` gives the settings in force (read per request: a config reload changes them)."""
    database = _DatabaseState()

    def credentials(header: str, tokens: list[str], users: list[tuple[str, str]]) -> str | None:
        """``bearer`` or ``basic`` when the header holds valid credentials of that kind."""
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer":
            ok = any(hmac.compare_digest(given.encode(), t.encode()) for t in tokens)
            return "bearer" if ok else None
        if scheme.lower() == "basic" and users:
            try:
                user, _, password = base64.b64decode(given, validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            ok = any(hmac.compare_digest(user.encode(), u.encode()) & hmac.compare_digest(password.encode(), p.encode())
                     for u, p in users)
            return "basic" if ok else None
        return None

    @app.middleware("http")
    async def _guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        auth = auth_of()
        tokens = [t for t in auth.tokens if t]
        users = [(u.user, u.password) for u in auth.basic]
        open_paths = _OPEN if auth.protect_metrics else _OPEN | {"/metrics"}
        kind = credentials(request.headers.get("authorization", ""), tokens, users)
        if (tokens or users) and request.url.path not in open_paths and kind is None:
            challenge = 'Basic realm="inferwatch", charset="UTF-8"' if users else "Bearer"
            return _headers(request, JSONResponse({"detail": "authentication required"}, status_code=401,
                                                  headers={"WWW-Authenticate": challenge}))
        if request.method in _WRITES and request.url.path.startswith(("/api/", "/-/")) and kind != "bearer":
            why = _cross_site(request)
            if why is not None:
                return _headers(request, JSONResponse({"detail": why}, status_code=403))
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if request.method != "DELETE" and ctype != "application/json":
                return _headers(request, JSONResponse(
                    {"detail": "Content-Type: application/json required"}, status_code=415))
        try:
            response = await call_next(request)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            database.failed(exc)
            response = JSONResponse({"detail": "database unavailable; retry shortly"}, status_code=503,
                                    headers={"Retry-After": _RETRY_AFTER})
        else:
            if response.status_code < 500:
                database.answered()
        return _headers(request, response)

    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)


class BodyLimit:
    """ASGI middleware: request bodies over ``max_bytes`` are refused with 413, by their
    declared length before reading, or as soon as a streamed body passes it. A body within the
    limit is read here and handed to the app whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole: Message | None = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        async def replay() -> Message:
            nonlocal whole
            if whole is not None:
                message, whole = whole, None
                return message
            return await receive()  # (what follows the body: the disconnect)

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse({"detail": f"request body over {self.max_bytes} bytes"}, status_code=413,
                                headers={**_SECURITY_HEADERS, "Connection": "close"})
        await response({"type": "http"}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
