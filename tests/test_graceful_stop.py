"""``inferwatch run`` stops within 10 s of SIGTERM under load: 200 simulated backends (4 models
each) scraped every 2 s, the API and /metrics hammered by clients, every backend's alert
firing into a webhook that never answers (each send would wait out its 10 s timeout) — and
nothing is lost: the last scrapes are written, the notifications not yet delivered stay pending
in the outbox for the next start."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.alertmanager_helpers import free_port

BACKENDS = 200
STOP_WITHIN = 10.0



class _Silent(threading.Thread):
    """A webhook that reads requests and never answers them."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.port = free_port()
        self.accepted = 0
        self._ready = threading.Event()

    def run(self) -> None:
        async def main() -> None:
            async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                self.accepted += 1
                await asyncio.sleep(3600)

            server = await asyncio.start_server(hold, "127.0.0.1", self.port)
            self._ready.set()
            async with server:
                await server.serve_forever()

        asyncio.run(main())

    def wait(self) -> None:
        assert self._ready.wait(10)


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.1)


@pytest.mark.slow
def test_sigterm_under_load_stops_within_10s_and_loses_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    urls_file = tmp_path / "urls.json"
    fleet = subprocess.Popen([sys.executable, "-m", "sim", "--backends", str(BACKENDS), "--models", "4",
                              "--urls-file", str(urls_file)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    hook = _Silent()
    hook.start()
    hook.wait()
    proc: subprocess.Popen[bytes] | None = None
    stop_hammer = threading.Event()
    try:
        _wait_for(urls_file, fleet)
        urls = json.loads(urls_file.read_text())
        port = free_port()
        db = tmp_path / "iw.db"
        cfg = {
            "storage": f"sqlite:///{db}", "scrape_interval": "2s", "evaluation_interval": "2s",
            "web": {"listen": f"127.0.0.1:{port}"}, "external_url": f"http://127.0.0.1:{port}",
            "backends": [{"name": n, "url": u, "engine": "vllm"} for n, u in sorted(urls.items())],
            "default_rules": False,
            "rules": [{"name": "Always", "expr": "queue_depth > -1", "severity": "warning"}],
            "notifiers": {"webhook": {"url": f"http://127.0.0.1:{hook.port}/hook"}},
        }
        (tmp_path / "inferwatch.yaml").write_text(yaml.safe_dump(cfg))
        proc = subprocess.Popen([sys.executable, "-m", "inferwatch", "run", "-c", str(tmp_path / "inferwatch.yaml")],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
        base = f"http://127.0.0.1:{port}"
        end = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/api/v1/backends", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < end, "inferwatch did not start"
            time.sleep(0.5)

        def hammer(path: str) -> None:
            with httpx.Client(timeout=30) as client:
                while not stop_hammer.is_set():
                    try:
                        client.get(base + path)
                    except httpx.HTTPError:
                        pass

        for path in ("/api/v1/backends", "/metrics", "/", "/api/v1/backends", "/metrics"):
            threading.Thread(target=hammer, args=(path,), daemon=True).start()
        time.sleep(12)  # load: scrapes, evaluations, a send hanging at the webhook, clients
        assert hook.accepted >= 1
        before = sqlite3.connect(db).execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
        assert before >= BACKENDS - 1  # every alert's trigger is waiting behind the hanging send
        sent_at, signalled = time.monotonic(), time.time()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(30)
        finally:
            stop_hammer.set()
        took = time.monotonic() - sent_at
        log = proc.stdout.read().decode() if proc.stdout else ""
        print(f"\nstopped {took:.2f}s after SIGTERM (rc {rc})")
        assert took < STOP_WITHIN, (took, log[-3000:])
        assert rc == 0, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        con = sqlite3.connect(db)
        pending = con.execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
        assert pending >= BACKENDS - 1, pending  # nothing lost: they go out after the next start
        # the last scrapes before the signal were written (the collector's final flush)
        newest = con.execute("SELECT MAX(ts) FROM scrape_status").fetchone()[0]
        assert newest >= signalled - 4.0, (newest, signalled)
    finally:
        stop_hammer.set()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        fleet.send_signal(signal.SIGTERM)
        try:
            fleet.wait(15)
        except subprocess.TimeoutExpired:
            fleet.kill()
