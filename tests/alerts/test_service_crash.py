"""`inferwatch run` killed with SIGKILL while a page is queued and PagerDuty is unreachable:
after a restart the page arrives exactly once (one trigger per dedup_key), and the alert that is
still firing does not page again."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sim.engines import make_renderer
from sim.server import SimFleet
from sim.state import Profile, SimBackend
from tests.receivers import pagerduty_receiver

KEY = "R0123456789abcdef0123456789abcde"


def _start(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "inferwatch", "--log-level", "WARNING", "run", "-c", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _outbox(db: Path) -> list[tuple[str, str]]:
    try:
        with sqlite3.connect(db) as conn:
            return list(conn.execute("SELECT receiver, status FROM outbox"))
    except sqlite3.OperationalError:  # not migrated yet
        return []


async def _until(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    end = time.time() + timeout
    while time.time() < end:
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.mark.slow
async def test_sigkill_with_a_queued_page_delivers_it_exactly_once(tmp_path: Path) -> None:
    sim = SimBackend("vllm-a", make_renderer("vllm"), ("m",), Profile(queue_depth=3), seed=1, now=time.time())
    sim.incident.queue_extra = 150
    fleet = SimFleet([sim])
    await fleet.start()
    db = tmp_path / "crash.db"
    async with pagerduty_receiver() as pd:
        await pd.set_down(True)  # PagerDuty unreachable: connection refused
        config = tmp_path / "inferwatch.yaml"
        config.write_text(yaml.safe_dump({
            "storage": f"sqlite:///{db}", "scrape_interval": "0.5s", "scrape_timeout": "0.4s",
            "evaluation_interval": "0.5s", "default_rules": False, "gpus": {"nvml": "off"},
            "web": {"listen": "127.0.0.1:0"},
            "backends": [{"name": "vllm-a", "engine": "vllm", "url": fleet.url("vllm-a")}],
            "rules": [{"name": "QueueDepthHigh", "expr": "queue_depth > 100", "severity": "critical"}],
            "notifiers": {"pagerduty": {"routing_key": KEY, "url": pd.url}},
        }))
        first = _start(config)
        try:
            await _until(lambda: ("pagerduty", "pending") in _outbox(db))
            await asyncio.sleep(1.0)  # a few failed delivery attempts
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
        assert pd.received == []
        assert _outbox(db) == [("pagerduty", "pending")]
        await pd.set_down(False)
        second = _start(config)
        try:
            await _until(lambda: len(pd.received) >= 1)
            await asyncio.sleep(2.0)  # several more evaluations while the alert keeps firing
        finally:
            second.terminate()
            second.wait(20)
    await fleet.stop()
    assert pd.invalid == []
    triggers = [p for p in pd.payloads if p["event_action"] == "trigger"]
    assert len(triggers) == 1, pd.payloads  # delivered once; no second page after the restart
    assert triggers[0]["routing_key"] == KEY and triggers[0]["payload"]["source"] == "vllm-a"
    assert _outbox(db) == [("pagerduty", "delivered")]
