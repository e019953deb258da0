"""inferwatch at fleet size, beside a real Prometheus scraping the same fleet in the same run.

    .venv/bin/python -m bench.bench_scale [--sizes 100,300,1000] [--models 4] [--interval 15]
                                          [--warmup 45] [--seconds 120] [--write BENCHMARKS.md]

For each fleet size N, one process serves N simulated vLLM backends on loopback, each serving
``--models`` models (4: a ~1,500-line exposition); then, in turn and on that same fleet:

1. **baseline**: Prometheus (Debian's ``prometheus``) scrapes every backend every ``--interval``
   seconds into a fresh TSDB;
2. **inferwatch**: ``inferwatch run`` with the default config (SQLite, the default rule pack
   evaluating) scrapes the same backends at the same interval into a fresh database.

Measured for each over ``--seconds`` after ``--warmup``: CPU seconds (user + system, the whole
process) per 1,000 scrapes started in the window, peak RSS (``VmHWM``), storage growth (TSDB
directory / database files, WAL included) per hour; for inferwatch also the scrape-start lag
p99 and skipped ticks (its own ``/metrics``), how many backends are up, and the time of
``GET /api/v1/backends``, the fleet page ``/`` and a backend's 24 h page while the collector runs
(median of 3). The table goes to stdout and, with ``--write``, into that file between the
``<!-- bench_scale -->`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
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
from dataclasses import dataclass, field
from pathlib import Path

import yaml

START, END = "<!-- bench_scale -->", "<!-- /bench_scale -->"
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




@dataclass
class Run:
    cpu: float = 0.0
    scrapes: float = 0.0
    rss_mib: float = 0.0
    bytes_per_hour: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def per_1000(self) -> float:
        return self.cpu / self.scrapes * 1000 if self.scrapes else float("nan")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def size_of(paths: list[Path]) -> int:
    """Bytes on disk (allocated blocks: a preallocated, sparse file counts what it holds)."""
    total = 0
    for p in paths:
        files = [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else ([p] if p.exists() else [])
        total += sum(f.stat().st_blocks * 512 for f in files)
    return total


def window(proc: subprocess.Popen[bytes], storage: list[Path], warmup: float, seconds: float
           ) -> tuple[float, float, float, float, int]:
    """(t0, t1, cpu, rss, bytes grown) over the measurement window."""
    time.sleep(warmup)
    t0, c0, s0 = time.time(), cpu_seconds(proc.pid), size_of(storage)
    time.sleep(seconds)
    t1, c1, s1 = time.time(), cpu_seconds(proc.pid), size_of(storage)
    return t0, t1, c1 - c0, peak_rss_mib(proc.pid), s1 - s0


def timed_get(url: str, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=120) as resp:
            resp.read()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def lag_p99(metrics: str) -> tuple[float, float]:
    """The p99 of ``inferwatch_scrape_start_lag_seconds`` (the upper bound of the bucket that
    holds it) and ``inferwatch_scrape_ticks_skipped_total``, from a /metrics text."""
    buckets: list[tuple[float, float]] = []
    skipped = 0.0
    for line in metrics.splitlines():
        if line.startswith("inferwatch_scrape_start_lag_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(le), float(line.rsplit(" ", 1)[1])))
        elif line.startswith("inferwatch_scrape_ticks_skipped_total "):
            skipped = float(line.rsplit(" ", 1)[1])
    if not buckets or buckets[-1][1] == 0:
        return float("nan"), skipped
    total = buckets[-1][1]
    return next(le for le, n in buckets if n >= 0.99 * total), skipped


def run_prometheus(prom_bin: str, work: Path, urls: dict[str, str], args: argparse.Namespace) -> Run:
    port = free_port()
    targets = [u.split("//", 1)[1] for u in urls.values()]
    (work / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": f"{args.interval:g}s", "scrape_timeout": f"{min(args.interval, 10):g}s"},
        "scrape_configs": [{"job_name": "sim", "static_configs": [{"targets": targets}]}],
    }))
    tsdb = work / "tsdb"
    prom = subprocess.Popen([prom_bin, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={tsdb}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready")
        t0, t1, cpu, rss, grown = window(prom, [tsdb], args.warmup, args.seconds)
        time.sleep(args.interval)  # scrapes started before t1 land
        return Run(cpu, prometheus_scrapes(port, t0, t1), rss, grown * 3600 / (t1 - t0))
    finally:
        prom.send_signal(signal.SIGTERM)
        prom.wait(60)


def run_inferwatch(work: Path, urls: dict[str, str], args: argparse.Namespace) -> Run:
    port = free_port()
    db = work / "bench.db"
    cfg = {"storage": f"sqlite:///{db}", "scrape_interval": f"{args.interval:g}s",
           "scrape_timeout": f"{min(args.interval, 10):g}s", "web": {"listen": f"127.0.0.1:{port}"},
           "backends": [{"name": n, "engine": "vllm", "url": u} for n, u in urls.items()]}
    (work / "inferwatch.yaml").write_text(yaml.safe_dump(cfg))
    iw = subprocess.Popen([sys.executable, "-m", "inferwatch", "--log-level", "ERROR", "run", "-c",
                           str(work / "inferwatch.yaml")], stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/healthz")
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        t0, t1, cpu, rss, grown = window(iw, files, args.warmup, args.seconds)
        run = Run(cpu, 0.0, rss, grown * 3600 / (t1 - t0))
        with urllib.request.urlopen(f"{base}/metrics", timeout=300) as resp:
            run.extra["lag_p99"], run.extra["skipped"] = lag_p99(resp.read().decode())
        with urllib.request.urlopen(f"{base}/api/v1/backends", timeout=300) as resp:
            rows = json.load(resp)
        run.extra["up"] = sum(1 for r in rows if r["up"])
        run.extra["api"] = timed_get(f"{base}/api/v1/backends")
        run.extra["fleet"] = timed_get(f"{base}/")
        run.extra["backend24h"] = timed_get(f"{base}/backends/{next(iter(urls))}?range=24h")
        time.sleep(args.interval)  # scrapes started before t1 land
        run.scrapes = inferwatch_scrapes(db, t0, t1)
        run.rss_mib = peak_rss_mib(iw.pid)
        return run
    finally:
        iw.send_signal(signal.SIGTERM)
        iw.wait(120)


def table(results: dict[int, tuple[Run, Run]], args: argparse.Namespace) -> str:
    smallest = min(results)
    lines = [
        f"{args.models}-model vLLM bodies, scrape every {args.interval:g}s, measured over {args.seconds:g}s after "
        f"{args.warmup:g}s; `python -m bench.bench_scale --sizes {','.join(map(str, sorted(results)))} "
        f"--models {args.models} --interval {args.interval:g} --seconds {args.seconds:g}` "
        f"({time.strftime('%Y-%m-%d')})",
        "",
        "| N | CPU-s / 1000 scrapes: Prometheus | inferwatch | ratio | per-scrape cost vs N=" + str(smallest)
        + " | up | lag p99 | skipped ticks | peak RSS MiB: Prometheus | inferwatch "
          "| storage MB/h: Prometheus | inferwatch | API | fleet page | 24 h page |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = results[smallest][1].per_1000
    for n in sorted(results):
        prom, iw = results[n]
        e = iw.extra
        lines.append(
            f"| {n} | {prom.per_1000:.2f} | {iw.per_1000:.2f} | **{iw.per_1000 / prom.per_1000:.2f}x** "
            f"| {iw.per_1000 / base:.2f}x | {e['up']:.0f}/{n} | {e['lag_p99']:g} s | {e['skipped']:.0f} "
            f"| {prom.rss_mib:.0f} | {iw.rss_mib:.0f} | {prom.bytes_per_hour / 1e6:.0f} | {iw.bytes_per_hour / 1e6:.0f} "
            f"| {e['api']:.2f} s | {e['fleet']:.2f} s | {e['backend24h']:.2f} s |")
    return "\n".join(lines)


def write_into(path: Path, text: str) -> None:
    doc = path.read_text() if path.exists() else ""
    block = f"{START}\n{text}\n{END}"
    if START in doc and END in doc:
        doc = doc[: doc.index(START)] + block + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip() + "\n\n## Fleet size (`python -m bench.bench_scale`)\n\n" + block + "\n"
    path.write_text(doc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,300,1000")
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--interval", type=float, default=15.0)
    ap.add_argument("--warmup", type=float, default=45.0)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--write", type=Path, default=None, help="update this markdown file's bench_scale table")
    args = ap.parse_args()
    prom_bin = shutil.which("prometheus")
    if prom_bin is None:
        print("the baseline needs the prometheus binary (Debian package 'prometheus')", file=sys.stderr)
        return 2
    results: dict[int, tuple[Run, Run]] = {}
    for n in (int(x) for x in args.sizes.split(",")):
        work = Path(tempfile.mkdtemp(prefix=f"iw-scale-{n}-"))
        urls_file = work / "urls.json"
        sim = subprocess.Popen([sys.executable, "-m", "sim", "--backends", str(n), "--models", str(args.models),
                                "--urls-file", str(urls_file)])
        try:
            while not urls_file.exists():
                if sim.poll() is not None:
                    raise RuntimeError("the simulator exited")
                time.sleep(0.1)
            urls = json.loads(urls_file.read_text())
            prom = run_prometheus(prom_bin, work, urls, args)
            iw = run_inferwatch(work, urls, args)
            results[n] = (prom, iw)
            print(f"N={n}: prometheus {prom.per_1000:.2f}, inferwatch {iw.per_1000:.2f} CPU-s/1000 scrapes "
                  f"({iw.per_1000 / prom.per_1000:.2f}x); {iw.extra}", flush=True)
        finally:
            sim.terminate()
            sim.wait(60)
            shutil.rmtree(work, ignore_errors=True)
    text = table(results, args)
    print(text)
    if args.write is not None:
        write_into(args.write, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
