"""A dispatcher process for the crash test (``python -m tests.alerts.crash_worker``), and the
loopback webhook notifier the dispatcher tests share.

``enqueue DB URL N``: enqueue N notifications, print ``enqueued``, then dispatch forever (the
test kills it). ``drain DB URL``: dispatch until nothing is pending, then exit 0.
"""

from __future__ import annotations

import asyncio
import random
import sys
from urllib.parse import urlsplit

import httpx

from alerts.dispatcher import Dispatcher
from alerts.model import Notification, SendOutcome
from inferwatch.stores import Stores

T0 = 1_700_000_000.0


class LoopbackWebhook:
    """A minimal webhook notifier: POSTs JSON with ``Idempotency-Key: <id>``."""

    def __init__(self, url: str, name: str = "hook") -> None:
        self.url = url
        self.name = name

    def describe(self) -> str:
        return f"webhook to {urlsplit(self.url).hostname}"

    async def send(self, n: Notification, http: httpx.AsyncClient, timeout: float) -> SendOutcome:
        body = {"id": n.id, "kind": n.kind, "fingerprint": n.fingerprint, "labels": dict(n.labels)}
        try:
            r = await http.post(self.url, json=body, headers={"Idempotency-Key": n.id}, timeout=timeout)
        except httpx.TransportError as exc:
            return SendOutcome(ok=False, retry=True, error=type(exc).__name__)
        code = r.status_code
        if code == 429 or code >= 500:
            after = r.headers.get("Retry-After")
            return SendOutcome(
                ok=False, retry=True, status=code, error=f"HTTP {code}",
                retry_after=float(after) if after else None,
            )
        if code >= 400:
            return SendOutcome(ok=False, retry=False, status=code, error=f"HTTP {code}")
        return SendOutcome(ok=True, status=code)


def notifications(count: int) -> list[Notification]:
    return [
        Notification(
            id=f"crash-{i:03d}", receiver="hook", kind="trigger", fingerprint=f"fp{i}", rule="R",
            labels={"alertname": "R", "severity": "page"}, annotations={}, value=float(i),
            starts_at=T0, ends_at=None, created_at=T0 + i,
        )
        for i in range(count)
    ]


async def _dispatch(store: Stores, url: str, *, until_empty: bool) -> None:
    stop = asyncio.Event()
    async with httpx.AsyncClient() as http:
        dispatcher = Dispatcher(store.alerts, {"hook": LoopbackWebhook(url)}, http, rng=random.Random(1),
            timeout=2.0, backoff_base=0.01, backoff_cap=0.05, max_age=10 * 365 * 86400.0,
        )
        task = asyncio.create_task(dispatcher.run(stop))
        while until_empty and await asyncio.to_thread(store.alerts.pending_count) > 0:
            await asyncio.sleep(0.02)
        if not until_empty:
            await asyncio.Event().wait()  # until killed
        stop.set()
        await task


def main(argv: list[str]) -> int:
    mode, db, url = argv[:3]
    store = Stores.open(db)
    try:
        store.migrate()
        if mode == "enqueue":
            store.alerts.enqueue(notifications(int(argv[3])))
            print("enqueued", flush=True)
        asyncio.run(_dispatch(store, url, until_empty=mode == "drain"))
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
