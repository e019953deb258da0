"""Who may see what, and the headers every response carries.

Bearer ``tokens`` (scripts) and ``basic`` users (browsers) from ``web.auth``; ``/healthz`` and
``/readyz`` are always open, ``/metrics`` too unless ``protect_metrics``. Credentials are compared
in constant time. Every response gets ``nosniff``, ``DENY`` framing, no referrer and a strict
Content-Security-Policy (``script-src 'self'``: the pages carry no inline code); HSTS only over
TLS; API and ``/metrics`` answers are never cached.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from web.config import AuthConfig

__all__ = ["CSP", "install"]

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def install(app: FastAPI, auth: AuthConfig) -> None:
    """Add the authentication and header middleware to ``app``."""
    tokens = [t for t in auth.tokens if t]
    users = [(u.user, u.password) for u in auth.basic]
    open_paths = {"/healthz", "/readyz"} | (set() if auth.protect_metrics else {"/metrics"})

    def allowed(header: str) -> bool:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer":
            return any(hmac.compare_digest(credentials.encode(), t.encode()) for t in tokens)
        if scheme.lower() == "basic" and users:
            try:
                user, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return any(hmac.compare_digest(user.encode(), u.encode()) & hmac.compare_digest(password.encode(), p.encode())
                       for u, p in users)
        return False

    @app.middleware("http")
    async def _auth_and_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if (tokens or users) and request.url.path not in open_paths:
            if not allowed(request.headers.get("authorization", "")):
                challenge = 'Basic realm="inferwatch", charset="UTF-8"' if users else "Bearer"
                return JSONResponse({"detail": "authentication required"}, status_code=401,
                                    headers={"WWW-Authenticate": challenge})
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Content-Security-Policy", CSP)
        if request.url.scheme == "https":
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.url.path.startswith("/api/v1/") or request.url.path == "/metrics":
            response.headers["Cache-Control"] = "no-store"
        return response
