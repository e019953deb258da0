"""Alert latency: breach on a backend → notification at the receiver, inferwatch vs Prometheus +
Alertmanager on the same settings, measured side by side in the same run.

    .venv/bin/python -m bench.bench_alerting [--runs 3] [--rounds 5] [--hold 4]

This process serves one simulated vLLM backend in-process (``sim.server.SimFleet``, so that it can
flip ``incident.queue_extra``: the queue goes from 3 to 153 waiting requests and back) and a
loopback webhook receiver stamping every arrival (``time.time()``). Both systems watch the same
backend at the same time:

(a) **baseline**: Prometheus (``prometheus``, Debian's package) scrapes it every 1 s, evaluates
    ``vllm:num_requests_waiting > 100`` ``for: 2s`` every 1 s and sends to Alertmanager
    (``prometheus-alertmanager``): ``group_wait: 0s``, ``group_interval: 1s``,
    ``send_resolved: true``, webhook receiver → ``/am``.
(b) **inferwatch**: ``inferwatch run`` with ``scrape_interval: 1s``, ``evaluation_interval: 1s``,
    the rule ``queue_depth > 100`` ``for: 2s`` (``default_rules: false``) and the ``webhook``
    notifier → ``/iw``.

Each round: a random pause (so the breach falls anywhere on the scrape and evaluation grids), the
breach (queue up), wait for both triggers, hold ``--hold`` + U(0, 1) seconds, clear (queue down),
wait for both resolves. Each of ``--runs`` runs starts every process afresh with a new backend
name and new ports, so the phase between each system's scrape grid and evaluation grid changes
(both hash the target into a scrape offset). Prints per-round latencies, a per-run breakdown (when
the breach was scraped, when an evaluation found it pending, firing, when it arrived; from
inferwatch's SQLite tables and Prometheus's ``ALERTS`` series), medians over all rounds and the
ratio inferwatch / (Prometheus + Alertmanager).

Alertmanager semantics, for reading the numbers: Prometheus always sends ``endsAt`` (firing
alerts: ``now + 4 × max(evaluation_interval, resend_delay)``; resolved alerts: the resolve time),
so ``resolve_timeout`` (here 5 s) never ends an alert in this bench. A resolve reaches the receiver
at Alertmanager's next ``group_interval`` tick of that group (here ≤ 1 s) and only because of
``send_resolved: true``. A trigger for a new group goes out after ``group_wait`` (0 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from sim.engines import make_renderer
from sim.server import SimFleet
from sim.state import Profile, SimBackend

THRESHOLD = 100
EXTRA = 150  # queue 3 → 153


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status) == 200
    except OSError:
        return False


async def wait_http(url: str, proc: subprocess.Popen[bytes], deadline: float = 60.0) -> None:
    end = time.time() + deadline
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        if await asyncio.to_thread(_ready, url):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {deadline:g}s")


class Arrivals:
    """A loopback HTTP server recording ``(arrival time, path, status)`` for every POST."""

    def __init__(self) -> None:
        self.port = 0
        self.log: list[tuple[float, str, str]] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):  # idle keep-alive connections
            writer.close()
        await asyncio.sleep(0)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                at = time.time()
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                try:
                    status = str(json.loads(body).get("status", "?"))
                except (ValueError, AttributeError):
                    status = "?"
                self.log.append((at, path, status))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError, asyncio.LimitOverrunError,
                asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def first(self, path: str, status: str, after: float, timeout: float) -> float | None:
        """Seconds from ``after`` to the first ``status`` delivery at ``path`` arriving after it."""
        end = time.time() + timeout
        while time.time() < end:
            for at, p, s in self.log:
                if p == path and s == status and at >= after:
                    return at - after
            await asyncio.sleep(0.01)
        return None


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


async def run(args: argparse.Namespace, prom_bin: str, am_bin: str, work: Path,
              name: str) -> dict[str, dict[str, list[float | None]]]:
    sim = SimBackend(name, make_renderer("vllm"), ("m",), Profile(queue_depth=3), seed=1, now=time.time())
    fleet = SimFleet([sim])
    await fleet.start()
    hook = Arrivals()
    await hook.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        target = fleet.url(name).split("//", 1)[1]
        # -- Alertmanager ------------------------------------------------------------------------
        am_port = free_port()
        (work / "alertmanager.yml").write_text(yaml.safe_dump({
            "global": {"resolve_timeout": "5s"},
            "route": {"receiver": "hook", "group_by": ["alertname", "backend"], "group_wait": "0s",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "hook", "webhook_configs": [{"url": hook.url("/am"), "send_resolved": True}]}],
        }))
        am = _spawn([am_bin, f"--config.file={work / 'alertmanager.yml'}", f"--storage.path={work / 'am'}",
                     f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=", "--log.level=warn"],
                    work / "alertmanager.log")
        procs.append(am)
        # -- Prometheus --------------------------------------------------------------------------
        p_port = free_port()
        (work / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "bench", "interval": "1s", "rules": [{
            "alert": "QueueDepthHigh", "expr": f"vllm:num_requests_waiting > {THRESHOLD}", "for": "2s",
            "labels": {"severity": "critical", "backend": name}}]}]}))
        (work / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(work / "rules.yml")],
            "alerting": {"alertmanagers": [{"api_version": "v2", "static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
            "scrape_configs": [{"job_name": "sim", "static_configs": [{"targets": [target]}]}],
        }))
        prom = _spawn([prom_bin, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'tsdb'}",
                       f"--web.listen-address=127.0.0.1:{p_port}", "--log.level=warn"], work / "prometheus.log")
        procs.append(prom)
        # -- inferwatch ----------------------------------------------------------------------------
        i_port = free_port()
        (work / "inferwatch.yaml").write_text(yaml.safe_dump({
            "storage": f"sqlite:///{work / 'inferwatch.db'}", "scrape_interval": "1s", "scrape_timeout": "1s",
            "evaluation_interval": "1s", "web": {"listen": f"127.0.0.1:{i_port}"}, "default_rules": False,
            "rules": [{"name": "QueueDepthHigh", "expr": f"queue_depth > {THRESHOLD}", "for": "2s",
                       "severity": "critical"}],
            "notifiers": {"webhook": {"url": hook.url("/iw")}},
            "backends": [{"name": name, "engine": "vllm", "url": fleet.url(name)}],
        }))
        iw = _spawn([sys.executable, "-m", "inferwatch", "--log-level", "WARNING", "run", "-c",
                     str(work / "inferwatch.yaml")], work / "inferwatch.log")
        procs.append(iw)
        await wait_http(f"http://127.0.0.1:{am_port}/-/ready", am)
        await wait_http(f"http://127.0.0.1:{p_port}/-/ready", prom)
        await wait_http(f"http://127.0.0.1:{i_port}/healthz", iw)
        await asyncio.sleep(args.warmup)

        res: dict[str, dict[str, list[float | None]]] = {
            "inferwatch": {"trigger": [], "resolve": []}, "prometheus+alertmanager": {"trigger": [], "resolve": []}}
        paths = {"inferwatch": "/iw", "prometheus+alertmanager": "/am"}
        rounds: list[tuple[float, float]] = []
        for i in range(args.rounds):
            await asyncio.sleep(random.uniform(0.0, 1.0))
            sim.incident.queue_extra = EXTRA
            t_breach = time.time()
            trig = await asyncio.gather(*(hook.first(p, "firing", t_breach, args.timeout) for p in paths.values()))
            await asyncio.sleep(args.hold + random.uniform(0.0, 1.0))  # the clear, too, anywhere on the grids
            sim.incident.queue_extra = 0
            t_clear = time.time()
            resv = await asyncio.gather(*(hook.first(p, "resolved", t_clear, args.timeout) for p in paths.values()))
            rounds.append((t_breach, t_clear))
            for name, t, r in zip(paths, trig, resv, strict=True):
                res[name]["trigger"].append(t)
                res[name]["resolve"].append(r)
            print(f"round {i + 1}: " + "  ".join(f"{n}: trigger {_fmt(t)} resolve {_fmt(r)}"
                                                for n, t, r in zip(paths, trig, resv, strict=True)), flush=True)
            await asyncio.sleep(args.settle)
        await asyncio.sleep(2.0)  # let the last samples land
        stages = {"inferwatch": await asyncio.to_thread(inferwatch_stages, work / "inferwatch.db", rounds),
                  "prometheus+alertmanager": await asyncio.to_thread(prometheus_stages, p_port, rounds)}
        for name, path in paths.items():
            stages[name]["arrival"] = [(at, s) for at, p, s in hook.log if p == path]
        print_breakdown(stages, rounds)
        return res
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        await hook.stop()
        await fleet.stop()


# -- where the time goes --------------------------------------------------------------------------
# Per system, timestamped events: ``seen`` (scrapes, stamped with the scrape's start, that read the
# queue), ``pending`` / ``firing`` (evaluations that found the alert in that state), ``arrival``.

Events = dict[str, list[tuple[float, Any]]]


def inferwatch_stages(db: Path, rounds: list[tuple[float, float]]) -> Events:
    with sqlite3.connect(db) as conn:
        seen = conn.execute("SELECT ts, value FROM gauges WHERE signal = 'queue_depth' ORDER BY ts").fetchall()
        hist = conn.execute("SELECT ts, new_state FROM alert_history ORDER BY ts").fetchall()
    return {"seen": [(t, v) for t, v in seen], "pending": [(t, 1) for t, st in hist if st == "pending"],
            "firing": [(t, 1) for t, st in hist if st == "firing"],
            "resolved": [(t, 1) for t, st in hist if st == "resolved"]}


def _prom_samples(port: int, expr: str, span: float) -> list[tuple[float, float]]:
    query = urllib.parse.quote(f"{expr}[{span:.0f}s]")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?query={query}", timeout=30) as resp:
        body = json.loads(resp.read())
    return sorted((float(t), float(v)) for r in body["data"]["result"] for t, v in r["values"])


def prometheus_stages(port: int, rounds: list[tuple[float, float]]) -> Events:
    span = time.time() - rounds[0][0] + 60
    alerts = 'ALERTS{alertname="QueueDepthHigh",alertstate="%s"}'
    # ALERTS samples are written by every evaluation that finds the alert pending / firing
    return {"seen": _prom_samples(port, "vllm:num_requests_waiting", span),
            "pending": _prom_samples(port, alerts % "pending", span),
            "firing": _prom_samples(port, alerts % "firing", span)}


def _first(events: list[tuple[float, Any]], after: float, pred: Any = None) -> float | None:
    for t, v in events:
        if t >= after and (pred is None or pred(v)):
            return t - after
    return None


def print_breakdown(stages: dict[str, Events], rounds: list[tuple[float, float]]) -> None:
    print("\nwhere the time goes (median seconds after the breach / the clear):")
    for name, ev in stages.items():
        def med(values: list[float | None]) -> str:
            got = [v for v in values if v is not None]
            return f"{statistics.median(got):5.2f}" if got else "  -- "
        # a scrape stamped just before the flip may already carry the new value: allow 0.2 s
        seen = [_first(ev["seen"], b - 0.2, lambda v: v > THRESHOLD) for b, _ in rounds]
        seen = [None if x is None else x - 0.2 for x in seen]
        pend = [_first(ev["pending"], b) for b, _ in rounds]
        fire = [_first(ev["firing"], b) for b, _ in rounds]
        arr = [_first(ev["arrival"], b, lambda s: s == "firing") for b, _ in rounds]
        cseen = [_first(ev["seen"], c - 0.2, lambda v: v <= THRESHOLD) for _, c in rounds]
        cseen = [None if x is None else x - 0.2 for x in cseen]
        res = [_first(ev["resolved"], c) for _, c in rounds] if "resolved" in ev else []
        carr = [_first(ev["arrival"], c, lambda s: s == "resolved") for _, c in rounds]
        print(f"  {name:<24} trigger: scraped {med(seen)}  pending {med(pend)}  firing {med(fire)}  "
              f"arrived {med(arr)} | resolve: scraped {med(cseen)}"
              + (f"  resolved {med(res)}" if res else "") + f"  arrived {med(carr)}")


def _fmt(v: float | None) -> str:
    return "   --  " if v is None else f"{v:5.2f} s"


def _median(xs: list[float | None]) -> float | None:
    got = [x for x in xs if x is not None]
    return statistics.median(got) if got and len(got) == len(xs) else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="fresh processes (new grid phases) per run")
    ap.add_argument("--rounds", type=int, default=5, help="breach + clear cycles per run")
    ap.add_argument("--hold", type=float, default=4.0, help="seconds the breach stays after both triggers")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds between a round's resolves and the next breach")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=30.0, help="give up waiting for a notification after this")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    args = ap.parse_args()
    prom_bin = shutil.which("prometheus")
    am_bin = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if prom_bin is None or am_bin is None:
        print("the baseline needs the prometheus and prometheus-alertmanager binaries (Debian packages)", file=sys.stderr)
        return 2
    res: dict[str, dict[str, list[float | None]]] = {}
    for r in range(args.runs):
        # a new backend name and new ports per run: new phases of both systems' scrape and
        # evaluation grids (inferwatch's scrape offset hashes the name, Prometheus's the target)
        name = f"vllm-{random.randrange(16**6):06x}"
        print(f"run {r + 1}/{args.runs}: backend {name}", flush=True)
        work = Path(tempfile.mkdtemp(prefix="iw-bench-alert-"))
        try:
            for system, kinds in asyncio.run(run(args, prom_bin, am_bin, work, name)).items():
                for kind, values in kinds.items():
                    res.setdefault(system, {}).setdefault(kind, []).extend(values)
        finally:
            if args.keep:
                print(f"work directory: {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)

    print(f"\n{args.runs} runs x {args.rounds} rounds, scrape 1s, evaluation 1s, for: 2s, Alertmanager group_wait 0s / "
          f"group_interval 1s ({os.cpu_count()} CPUs)")
    med: dict[str, dict[str, float | None]] = {n: {k: _median(v) for k, v in r.items()} for n, r in res.items()}
    for name, m in med.items():
        print(f"  {name:<24} median trigger {_fmt(m['trigger'])}   median resolve {_fmt(m['resolve'])}")
    iw, base = med["inferwatch"], med["prometheus+alertmanager"]
    for kind in ("trigger", "resolve"):
        a, b = iw[kind], base[kind]
        ratio = f"{a / b:.2f}x" if a is not None and b else "n/a"
        print(f"  ratio inferwatch / prometheus+alertmanager ({kind}): {ratio}")
    return 0 if all(v is not None for m in med.values() for v in m.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
