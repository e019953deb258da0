"""Silences in the store (SQLite and PostgreSQL), ``last_sent`` from the outbox, and the
``/api/v1/silences`` endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from alerts.model import Notification, new_silence
from alerts.routing import Sent
from inferwatch.config import parse
from inferwatch.stores import Stores
from tests.e2e_helpers import Clock
from web.app import create_app


def test_silence_round_trip(store: Stores) -> None:
    s = new_silence({"backend": "vllm-a", "alertname": "=~TTFT.*"}, starts_at=100.0, ends_at=200.0,
                    created_by="alice", comment="deploy", now=90.0)
    store.silences.create_silence(s)
    assert store.silences.get_silence(s.id) == s
    assert s.matchers_doc() == {"backend": "vllm-a", "alertname": "=~TTFT.*"}
    assert store.silences.active_silences(99.0) == [] and store.silences.active_silences(100.0) == [s]
    assert store.silences.active_silences(200.0) == []
    assert store.silences.list_silences() == [s] and store.silences.list_silences(since=200.0) == []
    expired = store.silences.expire_silence(s.id, now=150.0)
    assert expired is not None and expired.ends_at == 150.0 and expired.state(150.0) == "expired"
    assert store.silences.get_silence(s.id) == expired and store.silences.active_silences(149.0) == [expired]
    assert store.silences.expire_silence(s.id, now=180.0) == expired  # already over: unchanged
    assert store.silences.expire_silence("nope", now=1.0) is None


def test_last_sent_is_the_newest_outbox_row_per_alert_and_receiver(store: Stores) -> None:
    def note(i: int, receiver: str, kind: Any, fp: str, at: float) -> Notification:
        return Notification(f"n{i}", receiver, kind, fp, "R", {}, {}, 1.0, 0.0, None, at)

    store.alerts.enqueue([note(1, "slack", "trigger", "f1", 10.0), note(2, "slack", "repeat", "f1", 20.0),
                   note(3, "pd", "trigger", "f1", 10.0), note(4, "slack", "trigger", "f2", 30.0)])
    assert store.alerts.last_sent(["f1", "f3"]) == {("f1", "slack"): Sent("repeat", 20.0), ("f1", "pd"): Sent("trigger", 10.0)}


@pytest.fixture
async def api(store: Stores) -> AsyncIterator[tuple[httpx.AsyncClient, Clock]]:
    clock = Clock(1_000_000.0)
    app = create_app(parse({}, "<test>"), store.reads, store.alerts, store.silences, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client, clock


async def test_create_list_expire(api: tuple[httpx.AsyncClient, Clock]) -> None:
    client, clock = api
    resp = await client.post("/api/v1/silences", json={"matchers": {"backend": "vllm-a"}, "duration": "2h",
                                                       "created_by": "alice", "comment": "upgrade"})
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert made["starts_at"] == clock() and made["ends_at"] == clock() + 7200 and made["state"] == "active"
    later = await client.post("/api/v1/silences", json={"matchers": {"alertname": "=~TTFT.*"},
                                                        "starts_at": clock() + 60, "ends_at": "1970-01-13T00:00:00Z",
                                                        "created_by": "bob"})
    assert later.status_code == 201 and later.json()["state"] == "pending"
    listed = (await client.get("/api/v1/silences")).json()
    assert [s["id"] for s in listed] == [later.json()["id"], made["id"]]
    assert listed[1]["matchers"] == {"backend": "vllm-a"} and listed[1]["comment"] == "upgrade"
    clock.advance(10)
    gone = await client.delete(f"/api/v1/silences/{made['id']}")
    assert gone.status_code == 200 and gone.json()["state"] == "expired" and gone.json()["ends_at"] == clock()
    assert [s["id"] for s in (await client.get("/api/v1/silences", params={"state": "active"})).json()] == []
    assert [s["id"] for s in (await client.get("/api/v1/silences", params={"state": "expired"})).json()] == [made["id"]]
    assert (await client.delete("/api/v1/silences/unknown")).status_code == 404


@pytest.mark.parametrize(("body", "message"), [
    pytest.param({"duration": "1h", "created_by": "a"}, "matchers: expected a non-empty mapping", id="no matchers"),
    pytest.param({"matchers": {}, "duration": "1h", "created_by": "a"}, "matchers:", id="empty matchers"),
    pytest.param({"matchers": {"backend": "=~("}, "duration": "1h", "created_by": "a"},
                 "matchers.backend: invalid regex", id="bad regex"),
    pytest.param({"matchers": {"backend": "a"}, "created_by": "a"}, "duration: give either", id="no end"),
    pytest.param({"matchers": {"backend": "a"}, "duration": "1h", "ends_at": 2e9, "created_by": "a"},
                 "duration: give either", id="both ends"),
    pytest.param({"matchers": {"backend": "a"}, "duration": "soon", "created_by": "a"}, "duration: invalid duration",
                 id="bad duration"),
    pytest.param({"matchers": {"backend": "a"}, "ends_at": 10, "created_by": "a"}, "ends_at: must be in the future",
                 id="ends in the past"),
    pytest.param({"matchers": {"backend": "a"}, "ends_at": "tomorrow", "created_by": "a"},
                 "ends_at: expected Unix seconds or an ISO 8601 time", id="bad ends_at"),
    pytest.param({"matchers": {"backend": "a"}, "duration": "1h"}, "created_by: required", id="no author"),
    pytest.param({"matchers": {"backend": "a"}, "duration": "1h", "created_by": "a", "x": 1}, "x: unknown field",
                 id="unknown field"),
    pytest.param([1], "body: expected a JSON object", id="not an object"),
])
async def test_validation_errors(api: tuple[httpx.AsyncClient, Clock], body: Any, message: str) -> None:
    client, _ = api
    resp = await client.post("/api/v1/silences", json=body)
    assert resp.status_code == 400 and resp.json()["detail"].startswith(message), resp.text
    assert (await client.get("/api/v1/silences")).json() == []
