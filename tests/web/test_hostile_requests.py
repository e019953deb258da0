"""Hostile requests to the web app, as a browser on another site or a careless client sends them:
cross-site API writes, huge and deeply nested bodies, and what the app answers while the database
is away. Each test reproduces the attack and fails without its protection."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import httpx
import pytest

from inferwatch.config import parse
from inferwatch.stores import Stores
from web.app import create_app
from web.security import MAX_BODY_BYTES

BASIC = {"Authorization": "Basic " + base64.b64encode(b"oncall:correct horse battery").decode()}
BEARER = {"Authorization": "Bearer t0ken-123"}
SILENCE = {"matchers": {"alertname": "BackendDown"}, "duration": "2h", "created_by": "mallory"}
HEADERS = ("x-content-type-options", "x-frame-options", "content-security-policy", "referrer-policy")


def _app(tmp_path: Path, auth: dict[str, object] | None = None) -> tuple[httpx.AsyncClient, Stores]:
    auth = {"basic": [{"user": "oncall", "password": "${PW}"}], "tokens": ["${TOKEN}"]} if auth is None else auth
    cfg = parse({"storage": f"sqlite:///{tmp_path}/db/a.db", "web": {"auth": auth},
                 "backends": [{"name": "a", "engine": "vllm", "url": "http://127.0.0.1:1"}]},
                env={"PW": "correct horse battery", "TOKEN": "t0ken-123"})
    (tmp_path / "db").mkdir()
    store = Stores.open(cfg.storage)
    store.migrate()
    app = create_app(cfg, store.reads, store.alerts, store.silences)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://iw.local:8000"), store


async def _silences(client: httpx.AsyncClient) -> int:
    return len((await client.get("/api/v1/silences", headers=BEARER)).json())


@pytest.mark.parametrize("auth", [None, {}], ids=["basic auth", "open deployment"])
async def test_another_site_cannot_write_through_the_json_api(tmp_path: Path, auth: dict[str, object] | None) -> None:
    client, store = _app(tmp_path, auth)
    creds = BASIC if auth is None else {}
    async with client:
        # the attack: a form-like text/plain POST from a foreign page, browser credentials attached
        foreign = {**creds, "Origin": "https://evil.example", "Content-Type": "text/plain"}
        r = await client.post("/api/v1/silences", content=json.dumps(SILENCE), headers=foreign)
        assert r.status_code == 403
        # the same with the JSON content type (a fetch that would need a preflight), and as DELETE
        r = await client.post("/api/v1/silences", json=SILENCE, headers={**creds, "Origin": "https://evil.example"})
        assert r.status_code == 403
        r = await client.post("/api/v1/silences", json=SILENCE, headers={**creds, "Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403
        assert (await client.delete("/api/v1/silences/x", headers={**creds, "Origin": "null"})).status_code == 403
        # no Origin but not JSON: a form post from an old browser
        r = await client.post("/api/v1/silences", content=json.dumps(SILENCE),
                              headers={**creds, "Content-Type": "text/plain"})
        assert r.status_code == 415
        assert await _silences(client) == 0 if auth is None else (await client.get("/api/v1/silences")).json() == []
        # this site's own page (same Origin) and scripts without a browser still work
        r = await client.post("/api/v1/silences", json=SILENCE, headers={**creds, "Origin": "http://iw.local:8000"})
        assert r.status_code == 201
        r = await client.post("/api/v1/silences", json=SILENCE, headers=creds)
        assert r.status_code == 201
    store.close()


async def test_a_bearer_token_client_is_not_a_browser_and_is_not_checked(tmp_path: Path) -> None:
    client, store = _app(tmp_path)
    async with client:
        r = await client.post("/api/v1/silences", content=json.dumps(SILENCE),
                              headers={**BEARER, "Origin": "https://ci.example", "Content-Type": "text/plain"})
        assert r.status_code == 201
    store.close()


async def test_bodies_over_the_limit_are_refused_before_they_are_read(tmp_path: Path) -> None:
    client, store = _app(tmp_path)
    received = 0

    async def endless() -> object:  # a streamed (chunked) body with no declared length
        nonlocal received
        for _ in range(200):  # 200 MiB if read in full
            received += 1
            yield b"x" * (1024 * 1024)

    async with client:
        big = await client.post("/api/v1/silences", content=b"{" + b" " * (MAX_BODY_BYTES + 1) + b"}",
                                headers={**BEARER, "Content-Type": "application/json"})
        assert big.status_code == 413 and big.headers["x-content-type-options"] == "nosniff"
        streamed = await client.post("/api/v1/silences", content=endless(),
                                     headers={**BEARER, "Content-Type": "application/json"})
        assert streamed.status_code == 413
        assert received <= 3  # stopped at the limit, not after 200 MiB
        form = await client.post("/alerts/silences", content=endless(), headers=BASIC)
        assert form.status_code == 413
    store.close()


async def test_deeply_nested_json_is_a_400_not_a_500(tmp_path: Path) -> None:
    client, store = _app(tmp_path)
    async with client:
        r = await client.post("/api/v1/silences", content=b"[" * 100_000 + b"]" * 100_000,
                              headers={**BEARER, "Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["detail"] == "body: expected a JSON object"
    store.close()


async def test_a_401_carries_the_security_headers(tmp_path: Path) -> None:
    client, store = _app(tmp_path)
    async with client:
        r = await client.get("/api/v1/backends")
        assert r.status_code == 401
        assert all(h in r.headers for h in HEADERS), r.headers
        assert r.headers["cache-control"] == "no-store"
    store.close()


async def test_while_the_database_is_away_the_api_answers_503_and_logs_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    client, store = _app(tmp_path)
    db_dir, away = tmp_path / "db", tmp_path / "db-away"
    caplog.set_level(logging.WARNING, logger="inferwatch.web")
    async with client:
        assert (await client.get("/api/v1/backends", headers=BEARER)).status_code == 200
        db_dir.rename(away)
        store.db.engine.dispose()  # new connections find no database file
        answers = [await client.get("/api/v1/backends", headers=BEARER) for _ in range(20)]
        assert {r.status_code for r in answers} == {503}
        assert answers[0].headers["retry-after"] == "5" and all(h in answers[0].headers for h in HEADERS)
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        away.rename(db_dir)
        store.db.engine.dispose()
        assert (await client.get("/api/v1/backends", headers=BEARER)).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "inferwatch.web"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("database unavailable (OperationalError)") and lines[1] == "database available again"
    assert not any(r.exc_info for r in caplog.records)
    store.close()
