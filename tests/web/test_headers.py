"""Security headers on every response: pages, API, errors; no-store on live data; HSTS only over
TLS. Each assertion fails if the middleware stops setting its header."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from inferwatch.config import parse
from inferwatch.stores import Stores
from web.app import create_app
from web.security import CSP

PATHS = ["/", "/alerts", "/gpus", "/slos", "/backends/a", "/backends/nope", "/api/v1/backends", "/metrics",
         "/healthz"]


@pytest.mark.parametrize("path", PATHS)
async def test_every_response_carries_the_security_headers(tmp_path: Path, path: str) -> None:
    cfg = parse({"storage": f"sqlite:///{tmp_path}/h.db",
                 "backends": [{"name": "a", "engine": "vllm", "url": "http://127.0.0.1:1"}]})
    store = Stores.open(cfg.storage)
    store.migrate()
    app = create_app(cfg, store.reads, store.alerts, store.silences)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        resp = await http.get(path)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://t") as https:
        secure = await https.get(path)
    store.close()
    h = resp.headers
    assert h["x-content-type-options"] == "nosniff"
    assert h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] == "no-referrer"
    assert h["content-security-policy"] == CSP
    assert "strict-transport-security" not in h
    assert secure.headers["strict-transport-security"].startswith("max-age=")
    if path.startswith("/api/v1/") or path == "/metrics":
        assert h["cache-control"] == "no-store"
