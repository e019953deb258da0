"""`inferwatch demo` as a newcomer runs it: the simulated fleet shows up in the JSON API
within one scrape interval, on SQLite, and the process stops cleanly."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sim.fleet import DEMO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_demo_shows_the_fleet_within_one_scrape_interval(tmp_path: Path) -> None:
    port = _free_port()
    db = tmp_path / "demo.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferwatch", "demo", "--port", str(port), "--storage", f"sqlite:///{db}",
         "--interval", "2s", "--duration", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        started = time.time()
        assert "inferwatch demo" in banner, banner + (proc.stderr.read() if proc.poll() is not None else "")
        url = f"http://127.0.0.1:{port}/api/v1/backends"
        rows: list[dict] = []
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    rows = json.load(resp)
                if rows and all(r["last_scrape"] is not None for r in rows):
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert {r["name"] for r in rows} == {s.name for s in DEMO}
        for r in rows:
            assert r["up"] is True, (r["name"], r["reason"])
            # the first scrape of every backend happened within one interval (2 s) of the start
            assert r["last_scrape"] - started <= 2.0 + 0.5, r["name"]
            assert r["queue_depth"] is not None and r["requests_running"] is not None
        assert db.exists()
        # probes, the TLS endpoint's certificate and the GPU status show up too
        base = f"http://127.0.0.1:{port}/api/v1"
        probed: dict = {}
        certs: list[dict] = []
        while time.time() < deadline + 30:
            with urllib.request.urlopen(url, timeout=5) as resp:
                probed = {r["name"]: r.get("probe") for r in json.load(resp)}
            with urllib.request.urlopen(f"{base}/certificates", timeout=5) as resp:
                certs = json.load(resp)
            if probed.get("vllm-a") and probed.get("tgi-a") and certs:
                break
            time.sleep(0.3)
        for name in ("vllm-a", "tgi-a", "sglang-a"):
            assert probed[name] is not None and probed[name]["success_ratio"] == 1.0, (name, probed[name])
        assert probed["vllm-a"]["tls"]["p50"] > 0  # the https backend
        assert len(certs) == 1 and certs[0]["verified"] is True and 9.9 < certs[0]["days_left"] < 10.1
        with urllib.request.urlopen(f"{base}/gpus", timeout=5) as resp:
            gpus = json.load(resp)
        # alerts fire: the https backend's certificate expires in 10 days (< 14: warning)
        firing: list = []
        while time.time() < deadline + 40 and not firing:
            with urllib.request.urlopen(f"{base}/alerts", timeout=5) as resp:
                firing = [a for a in json.load(resp)["active"]
                          if a["state"] == "firing" and a["labels"]["alertname"] == "CertificateExpiringSoon"]
            time.sleep(0.3)
        assert firing and firing[0]["labels"]["target"] == certs[0]["target"], firing
        # without a driver NVML turns itself off and says why; with one, its GPUs are listed
        assert any(g.get("source") == "nvml" and (g.get("uuid") or (g.get("enabled") is False and g["reason"]))
                   for g in gpus), gpus
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode in (0, -15), proc.stderr.read() if proc.stderr else ""
