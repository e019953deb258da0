"""Collector CPU per scrape against a real Prometheus scraping the same simulated fleet.

    .venv/bin/python -m bench.bench_collector [--backends 1000] [--interval 5] [--seconds 60]

One process serves ``--backends`` simulated vLLM servers on loopback (``python -m sim``). Then,
in turn and on the same fleet:

1. **baseline**: Prometheus (the ``prometheus`` binary on PATH, Debian's package) scrapes every
   backend every ``--interval`` seconds into a throw-away TSDB;
2. **inferwatch**: ``inferwatch run`` scrapes the same backends at the same interval into SQLite.

For each, the CPU time (user + system, from ``/proc/<pid>/stat``) spent over ``--seconds`` after a
warm-up, divided by the scrapes started in that span (Prometheus: ``count_over_time(up[…])`` at
the window's end, from its own API; inferwatch: ``scrape_status`` rows in the window, from its
SQLite file), both counted after the window closes. Prints CPU-seconds per 1,000 scrapes and the ratio inferwatch / Prometheus.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return str(resp.read().decode())


def wait_http(url: str, deadline: float = 60.0) -> None:
    end = time.time() + deadline
    while time.time() < end:
        try:
            get(url)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {deadline:g}s")


def inferwatch_scrapes(db: Path, t0: float, t1: float) -> float:
    # one scrape_status row per scrape attempt, stamped with the scrape's start
    with sqlite3.connect(db) as conn:
        return float(conn.execute("SELECT count(*) FROM scrape_status WHERE ts > ? AND ts <= ?", (t0, t1)).fetchone()[0])


def prometheus_scrapes(port: int, t0: float, t1: float) -> float:
    # every completed scrape (success or not) appends one `up` sample for its target
    query = urllib.parse.quote(f"sum(count_over_time(up[{(t1 - t0) * 1000:.0f}ms]))")
    body = json.loads(get(f"http://127.0.0.1:{port}/api/v1/query?query={query}&time={t1:.3f}"))
    return float(body["data"]["result"][0]["value"][1])


def measure(proc: subprocess.Popen[bytes], scrapes: Callable[[float, float], float], warmup: float,
            seconds: float) -> tuple[float, float]:
    """CPU spent in (t0, t1] and the scrapes started in that span (counted afterwards, so that
    answering the count costs nothing inside the window)."""
    time.sleep(warmup)
    t0, c0 = time.time(), cpu_seconds(proc.pid)
    time.sleep(seconds)
    t1, c1 = time.time(), cpu_seconds(proc.pid)
    time.sleep(2 * 5.0)  # let scrapes started before t1 land in storage
    return c1 - c0, scrapes(t0, t1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=15.0)
    args = ap.parse_args()
    prom_bin = shutil.which("prometheus")
    if prom_bin is None:
        print("the baseline needs the prometheus binary (Debian package 'prometheus')", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="iw-bench-"))
    urls_file = work / "urls.json"
    sim = subprocess.Popen([sys.executable, "-m", "sim", "--backends", str(args.backends), "--urls-file", str(urls_file)])
    procs: list[subprocess.Popen[bytes]] = [sim]
    try:
        while not urls_file.exists():
            time.sleep(0.1)
        urls = json.loads(urls_file.read_text())
        results = {}

        # -- baseline: Prometheus -------------------------------------------------------------
        pport = free_port()
        targets = [u.split("//", 1)[1] for u in urls.values()]
        (work / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": f"{args.interval:g}s", "scrape_timeout": f"{min(args.interval, 4):g}s"},
            "scrape_configs": [{"job_name": "sim", "static_configs": [{"targets": targets}]}],
        }))
        prom = subprocess.Popen([prom_bin, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{pport}", "--log.level=warn"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(prom)
        wait_http(f"http://127.0.0.1:{pport}/-/ready")
        results["prometheus"] = measure(prom, lambda t0, t1: prometheus_scrapes(pport, t0, t1), args.warmup, args.seconds)
        prom.send_signal(signal.SIGTERM)
        prom.wait(30)

        # -- inferwatch ---------------------------------------------------------------------------
        iport = free_port()
        cfg = {"storage": f"sqlite:///{work / 'bench.db'}", "scrape_interval": f"{args.interval:g}s",
               "scrape_timeout": f"{min(args.interval, 4):g}s", "web": {"listen": f"127.0.0.1:{iport}"},
               "backends": [{"name": n, "engine": "vllm", "url": u} for n, u in urls.items()]}
        (work / "inferwatch.yaml").write_text(yaml.safe_dump(cfg))
        iw = subprocess.Popen([sys.executable, "-m", "inferwatch", "--log-level", "ERROR", "run", "-c",
                               str(work / "inferwatch.yaml")], stdout=subprocess.DEVNULL)
        procs.append(iw)
        wait_http(f"http://127.0.0.1:{iport}/healthz")
        results["inferwatch"] = measure(iw, lambda t0, t1: inferwatch_scrapes(work / "bench.db", t0, t1),
                                        args.warmup, args.seconds)
        iw.send_signal(signal.SIGTERM)
        iw.wait(30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)

    print(f"{args.backends} simulated vLLM backends, scrape every {args.interval:g}s, measured over {args.seconds:g}s")
    per = {}
    for name, (cpu, n) in results.items():
        per[name] = cpu / n * 1000 if n else float("nan")
        print(f"  {name:<11} {cpu:7.2f} CPU-s for {n:8.0f} scrapes = {per[name]:.2f} CPU-s per 1000 scrapes")
    print(f"  ratio inferwatch / prometheus = {per['inferwatch'] / per['prometheus']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
