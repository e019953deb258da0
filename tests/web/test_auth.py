"""Access control: bearer tokens for scripts, basic auth for browsers, on pages and API alike;
health always open, /metrics open unless protected. Each case fails without its protection."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from inferwatch.config import ConfigError, parse
from inferwatch.stores import Stores
from web.app import create_app


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def _client(tmp_path: Path, **auth: object) -> tuple[httpx.AsyncClient, Stores]:
    cfg = parse({"storage": f"sqlite:///{tmp_path}/a.db", "web": {"auth": auth},
                 "backends": [{"name": "a", "engine": "vllm", "url": "http://127.0.0.1:1"}]},
                env={"PW": "correct horse battery", "TOKEN": "t0ken-123"})
    store = Stores.open(cfg.storage)
    store.migrate()
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(cfg, store.reads, store.alerts, store.silences)), base_url="http://t"), store


@pytest.mark.parametrize("path", ["/", "/alerts", "/backends/a", "/api/v1/backends", "/api/v1/alerts",
                                  "/audits", "/api/v1/audits"])
async def test_pages_and_api_need_credentials(tmp_path: Path, path: str) -> None:
    client, store = await _client(tmp_path, basic=[{"user": "oncall", "password": "${PW}"}], tokens=["${TOKEN}"])
    async with client:
        denied = await client.get(path)
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"].startswith("Basic realm=")
        assert (await client.get(path, headers=_basic("oncall", "wrong password!"))).status_code == 401
        assert (await client.get(path, headers=_basic("mallory", "correct horse battery"))).status_code == 401
        assert (await client.get(path, headers=_basic("oncall", "correct horse battery"))).status_code == 200
        assert (await client.get(path, headers={"Authorization": "Bearer t0ken-123"})).status_code == 200
        assert (await client.get(path, headers={"Authorization": "Basic !!notbase64"})).status_code == 401
    store.close()


async def test_health_always_open_and_metrics_protectable(tmp_path: Path) -> None:
    client, store = await _client(tmp_path, basic=[{"user": "oncall", "password": "${PW}"}])
    async with client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
    store.close()
    client, store = await _client(tmp_path, basic=[{"user": "oncall", "password": "${PW}"}], protect_metrics=True)
    async with client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers=_basic("oncall", "correct horse battery"))).status_code == 200
        assert (await client.get("/healthz")).status_code == 200
    store.close()


def test_short_basic_password_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse({"web": {"auth": {"basic": [{"user": "a", "password": "short"}]}}})
    assert info.value.problems[0].startswith("web.auth.basic[0].password: ")
