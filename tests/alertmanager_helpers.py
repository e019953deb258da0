"""A real Prometheus Alertmanager on loopback, for end-to-end tests of the ``alertmanager`` notifier.

    async with real_alertmanager() as am:        # skips the test when the binary is absent
        await notifier.send(n, http)             # notifier built with {"url": am.url}
        alerts = await am.alerts()               # GET /api/v2/alerts
        await am.wait_delivered(1)               # what Alertmanager's webhook receiver delivered
        am.hook.payloads                         # [{"version": "4", "status": "firing", ...}]

Starts the ``prometheus-alertmanager`` binary (Debian's package; ``alertmanager`` on PATH also
works) on ``127.0.0.1`` with a free port, a temporary ``--storage.path``, no gossip
(``--cluster.listen-address=``) and a config whose single route delivers to a webhook receiver:
a loopback capture server (``tests/receivers.Receiver``) that checks every delivery against
Alertmanager's webhook payload (version 4). ``group_wait: 0s``, ``group_interval: 1s``,
``send_resolved: true``: a trigger is delivered at once, a resolve within about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.receivers import Answer, Received, Receiver

__all__ = ["RealAlertmanager", "alertmanager_binary", "am_config", "check_am_webhook", "free_port",
           "real_alertmanager"]

_CANDIDATES = ("/usr/bin/prometheus-alertmanager", "prometheus-alertmanager", "alertmanager")


def alertmanager_binary() -> str | None:
    for c in _CANDIDATES:
        found = shutil.which(c)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def am_config(webhook_url: str, group_wait: str = "0s", group_interval: str = "1s",
              repeat_interval: str = "1h", resolve_timeout: str = "5m") -> dict[str, Any]:
    """One route, grouped by alertname + backend, to one webhook receiver with ``send_resolved``."""
    return {
        "global": {"resolve_timeout": resolve_timeout},
        "route": {"receiver": "hook", "group_by": ["alertname", "backend"], "group_wait": group_wait,
                  "group_interval": group_interval, "repeat_interval": repeat_interval},
        "receivers": [{"name": "hook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
    }


def check_am_webhook(req: Received) -> list[str]:
    """Alertmanager's webhook payload (``notify/webhook``, version 4)."""
    if req.method != "POST":
        return [f"method {req.method}"]
    body = req.json
    if not isinstance(body, dict):
        return ["body: expected a JSON object"]
    errors = []
    if body.get("version") != "4":
        errors.append(f"version: {body.get('version')!r}")
    if body.get("status") not in ("firing", "resolved"):
        errors.append(f"status: {body.get('status')!r}")
    for key in ("receiver", "groupKey", "externalURL"):
        if not isinstance(body.get(key), str):
            errors.append(f"{key}: expected a string")
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        if not isinstance(body.get(key), dict):
            errors.append(f"{key}: expected an object")
    alerts = body.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        return errors + ["alerts: expected a non-empty list"]
    for i, a in enumerate(alerts):
        if not isinstance(a, dict):
            errors.append(f"alerts[{i}]: expected an object")
            continue
        for key in ("status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"):
            if key not in a:
                errors.append(f"alerts[{i}].{key}: missing")
    return errors


def _hook_answer(req: Received) -> Answer:
    if req.errors:
        return 400, {}, json.dumps({"error": "; ".join(req.errors)}).encode()
    return 200, {}, b"{}"


def hook_capture() -> Receiver:
    """A loopback server (``.url``, ``/hook``) recording Alertmanager's webhook deliveries."""
    return Receiver("am-webhook", check_am_webhook, _hook_answer, lambda s: b"upstream failure", "/hook")


@dataclass
class RealAlertmanager:
    url: str  # base URL: the notifier's {"url": ...}
    hook: Receiver  # what Alertmanager delivered to its webhook receiver
    proc: subprocess.Popen[bytes]
    log: Path

    async def alerts(self, **params: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=10) as http:
            resp = await http.get(f"{self.url}/api/v2/alerts", params=params)
            resp.raise_for_status()
            result: list[dict[str, Any]] = resp.json()
            return result

    async def wait_delivered(self, count: int, timeout: float = 15.0) -> list[Any]:
        """Wait until the webhook receiver has ``count`` valid deliveries; returns their payloads."""
        end = time.monotonic() + timeout
        while len(self.hook.received) < count:
            if time.monotonic() > end:
                raise AssertionError(f"Alertmanager delivered {len(self.hook.received)} of {count} within "
                                     f"{timeout:g}s; invalid: {[r.errors for r in self.hook.invalid]}; "
                                     f"log: {self.log.read_text()[-2000:]}")
            await asyncio.sleep(0.05)
        return self.hook.payloads


@contextlib.asynccontextmanager
async def real_alertmanager(**config: str) -> AsyncIterator[RealAlertmanager]:
    """Start Alertmanager (skips the test when the binary is absent); kill it on exit."""
    binary = alertmanager_binary()
    if binary is None:
        pytest.skip("the real-Alertmanager test needs the prometheus-alertmanager binary "
                    "(Debian package 'prometheus-alertmanager'; .ci/run installs it)")
    hook = hook_capture()
    await hook.start()
    work = Path(tempfile.mkdtemp(prefix="iw-am-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        (work / "alertmanager.yml").write_text(yaml.safe_dump(am_config(hook.url, **config)))
        port = free_port()
        log = work / "alertmanager.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([binary, f"--config.file={work / 'alertmanager.yml'}",
                                     f"--storage.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                                     "--cluster.listen-address=", "--log.level=warn"],
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, "HOME": str(work)})
        url = f"http://127.0.0.1:{port}"
        end = time.monotonic() + 30
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"alertmanager exited with {proc.returncode}: {log.read_text()[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{url}/-/ready")).status_code == 200:
                        break
                if time.monotonic() > end:
                    raise RuntimeError(f"alertmanager not ready within 30s: {log.read_text()[-2000:]}")
                await asyncio.sleep(0.1)
        yield RealAlertmanager(url, hook, proc, log)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        await hook.stop()
        shutil.rmtree(work, ignore_errors=True)
