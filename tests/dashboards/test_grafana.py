"""Grafana dashboards: the committed files match the generator, their structure is sound, and
every panel's PromQL returns data from a real Prometheus scraping inferwatch and the simulated
engines (GPU / incident-only panels: the query must at least parse)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dashboards import grafana

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "grafana"
PROMETHEUS = os.environ.get("INFERWATCH_PROMETHEUS", "/usr/bin/prometheus")
BACKEND = "vllm-a"  # the demo backend with everything: https, probe, TTFT/ITL/e2e histograms
#: a backend of each engine whose own histograms the backend dashboard shows (panel key inferwatch_engine)
ENGINE_BACKENDS = {"vllm": "vllm-a", "sglang": "sglang-a", "tgi": "tgi-a"}
#: every other variable at "All" (Grafana's allValue)
SUBSTITUTIONS = {"$backend": BACKEND, "$__rate_interval": "1m", "$__interval": "15s", "$__range": "1m",
                 **{f"${v}": ".*" for v in ("engine", "region", "model", "host", "gpu", "source", "slo", "target")}}


def _loaded() -> dict[str, dict[str, Any]]:
    return {stem: json.loads(text) for stem, text in
            ((Path(rel).stem, text) for rel, text in grafana.render().items() if rel.endswith(".json"))}


def _targets(dash: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in dash["panels"]:
        for target in panel["targets"]:
            yield panel, target


def _substitute(expr: str, engine: str | None = None) -> str:
    subs = {**SUBSTITUTIONS, "$backend": ENGINE_BACKENDS[engine]} if engine else SUBSTITUTIONS
    for var, value in sorted(subs.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(var, value)
    return expr


def _annotation_exprs(dash: dict[str, Any]) -> list[str]:
    return [a["expr"] for a in dash["annotations"]["list"] if "expr" in a]


# ------------------------------------------------------------------------- committed output


def test_committed_files_match_the_generator(tmp_path: Path) -> None:
    written = grafana.write_all(tmp_path)
    generated = sorted(p.relative_to(tmp_path).as_posix() for p in written)
    committed = sorted(p.relative_to(COMMITTED).as_posix() for p in COMMITTED.rglob("*") if p.is_file())
    assert committed == generated, "regenerate with: .venv/bin/python -m inferwatch grafana -o grafana"
    for rel in generated:
        assert (COMMITTED / rel).read_bytes() == (tmp_path / rel).read_bytes(), \
            f"grafana/{rel} is stale; regenerate with: .venv/bin/python -m inferwatch grafana -o grafana"


def test_output_is_deterministic_and_formatted() -> None:
    first, second = grafana.render(), grafana.render()
    assert first == second
    for rel, text in first.items():
        assert text.endswith("\n") and not text.endswith("\n\n"), rel
        if rel.endswith(".json"):
            assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_cli_writes_the_same_files(tmp_path: Path) -> None:
    from inferwatch.cli import main

    assert main(["grafana", "-o", str(tmp_path)]) == 0
    for rel, text in grafana.render().items():
        assert (tmp_path / rel).read_text(encoding="utf-8") == text


# -------------------------------------------------------------------------------- structure


def test_dashboard_structure() -> None:
    dashes = _loaded()
    assert set(dashes) == {"fleet", "backend", "gpus", "slos"}
    uids = [d["uid"] for d in dashes.values()]
    assert len(set(uids)) == len(uids)
    for stem, d in dashes.items():
        assert d["schemaVersion"] == 39, stem
        assert [i["name"] for i in d["__inputs"]] == ["DS_PROMETHEUS"], stem
        assert d["__inputs"][0]["pluginId"] == "prometheus"
        assert {r["id"] for r in d["__requires"]} >= {"grafana", "prometheus"}
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids), stem
        for panel in d["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
            assert panel["targets"], panel["title"]
            assert panel.get("inferwatch_needs") in (None, "gpu", "incident")
            gp = panel["gridPos"]
            assert 0 <= gp["x"] and gp["x"] + gp["w"] <= 24
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs))
            for t in panel["targets"]:
                assert t["expr"].strip(), panel["title"]
                assert t["datasource"] == panel["datasource"]
                leftover = re.findall(r"\$\w+", _substitute(t["expr"]))
                assert not leftover, (panel["title"], leftover)
    variables = {v["name"]: v for v in dashes["backend"]["templating"]["list"]}
    assert variables["backend"]["type"] == "query" and not variables["backend"]["multi"]
    assert variables["backend"]["definition"] == "label_values(inferwatch_backend_up, backend)"
    exprs = " ".join(t["expr"] for d in dashes.values() for _, t in _targets(d))
    for name in ("vllm:time_to_first_token_seconds_bucket", "sglang:time_to_first_token_seconds_bucket",
                 "tgi_request_duration_bucket", "inferwatch_probe_ttft_seconds", "inferwatch_gpu_power_watts",
                 "inferwatch_cert_expiry_timestamp_seconds", "inferwatch_gpu_last_xid_error",
                 "inferwatch_gpu_sm_clock_hertz", "inferwatch_gpu_tensor_active_ratio",
                 "inferwatch_slo_error_budget_remaining_ratio", "inferwatch_slo_burn_rate",
                 'inferwatch_ttft_seconds_bucket{backend="$backend",model=~"$model"}'):
        assert name in exprs, name
    assert all(p.get("inferwatch_needs") == "gpu" for p in dashes["gpus"]["panels"])


#: queries that cannot follow the variables, on purpose (their panel descriptions say why)
UNSCOPED = {"sum(inferwatch_alerts_firing) or vector(0)", "sum by (alertname, severity) (inferwatch_alerts_firing)"}
#: the variables each dashboard offers (besides the datasource)
VARIABLES = {"fleet": {"engine", "region", "backend", "model", "filters"}, "backend": {"backend", "model", "filters"},
             "gpus": {"host", "gpu", "source"}, "slos": {"slo", "backend", "target"}}


def test_every_query_follows_its_dashboards_variables() -> None:
    """On the fleet, backend and GPU dashboards every query uses every query variable (the ad hoc
    filters Grafana applies by itself); on the SLO dashboard each uses the one of its kind (SLO,
    TLS target, backend). The engines' own histograms are narrowed to the backend too."""
    for stem, d in _loaded().items():
        names = {v["name"] for v in d["templating"]["list"] if v["type"] in ("query", "adhoc")}
        assert names == VARIABLES[stem], stem
        used = {n for n in names if n != "filters"}
        for panel, t in _targets(d):
            if t["expr"] in UNSCOPED:
                assert "variables do not narrow it" in panel["description"] or "inferwatch" in panel["title"]
                continue
            refs = set(re.findall(r"\$(\w+)", t["expr"])) - {"__rate_interval", "__range", "__interval"}
            if stem == "slos":
                assert len(refs & used) == 1, (panel["title"], t["expr"])
            else:
                assert refs == used, (stem, panel["title"], t["expr"])
        for expr in _annotation_exprs(d):
            assert "ALERTS" in expr or "inferwatch_alerts_firing" in expr
    backend = _loaded()["backend"]
    engine_exprs = [t["expr"] for p, t in _targets(backend) if p.get("inferwatch_engine")]
    assert len(engine_exprs) >= 24 and all('backend="$backend"' in e for e in engine_exprs)
    fleet_vars = {v["name"]: v for v in _loaded()["fleet"]["templating"]["list"]}
    assert fleet_vars["backend"]["definition"] == \
        'label_values(inferwatch_backend_up{engine=~"$engine",region=~"$region"}, backend)'
    assert all(fleet_vars[n]["includeAll"] and fleet_vars[n]["allValue"] == ".*" for n in ("engine", "model"))


def _steps(panel: dict[str, Any]) -> list[tuple[float | None, str]]:
    return [(s["value"], s["color"]) for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]


def _panel(dash: dict[str, Any], title: str) -> dict[str, Any]:
    (panel,) = [p for p in dash["panels"] if p["title"] == title]
    return panel


def test_thresholds_come_from_the_rules_in_force() -> None:
    d = _loaded()
    assert _steps(_panel(d["fleet"], "TTFT p50 / p95 / p99 by backend")) == [(None, "green"), (0.5, "orange"),
                                                                           (5.0, "orange")]
    assert _steps(_panel(d["fleet"], "Error ratio")) == [(None, "green"), (0.01, "red")]
    assert _steps(_panel(d["fleet"], "KV-cache usage")) == [(None, "green"), (0.95, "orange")]
    assert _steps(_panel(d["fleet"], "Queue depth")) == [(None, "green"), (100.0, "orange")]
    assert _steps(_panel(d["gpus"], "GPU memory used share")) == [(None, "green"), (0.98, "orange")]
    assert _steps(_panel(d["slos"], "Certificate expiry (days)")) == [(None, "red"), (3.0, "orange"), (14.0, "green")]
    burn = [v for v, _ in _steps(_panel(d["slos"], "Burn rate per alert window"))]
    assert burn == [None, 1.0, 3.0, 6.0, 14.4]
    used = _panel(d["gpus"], "GPU memory used")
    assert any(t["expr"].startswith("0.98 * inferwatch_gpu_memory_total_bytes") for t in used["targets"])
    # every latency, ratio and memory panel shows a threshold, or says that no rule reads its signal
    for stem, dash in d.items():
        for p in dash["panels"]:
            if p["fieldConfig"]["defaults"]["unit"] in ("s", "percentunit", "bytes"):
                why = ("No alert rule", "NVML only", "memory rule fires", "differ per SLO")
                assert len(_steps(p)) > 1 or any(w in p["description"] for w in why), (stem, p["title"])
            if p["type"] == "timeseries" and len(_steps(p)) > 1:
                assert p["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "dashed"
    up = _panel(d["backend"], "Up")["fieldConfig"]["defaults"]["mappings"]
    assert up[0]["options"]["0"]["text"] == "down" and up[0]["options"]["1"]["text"] == "up"
    table = _panel(d["fleet"], "Backends")["fieldConfig"]["overrides"]
    assert any(o["matcher"]["options"] == "Value #A" and {"id": "mappings", "value": up} in o["properties"]
               for o in table)


def test_thresholds_follow_a_config(tmp_path: Path) -> None:
    """`inferwatch grafana -c` draws the config's thresholds (pack overrides, user rules, SLO windows)."""
    from inferwatch.cli import main

    cfg = tmp_path / "inferwatch.yaml"
    cfg.write_text(yaml.safe_dump({
        "backends": [{"name": "a", "url": "http://127.0.0.1:9/metrics", "engine": "vllm"}],
        "rule_overrides": {"TTFTp50High": {"threshold": "300ms"}, "KVCacheExhausted": {"enabled": False}},
        "rules": [{"name": "ITLHigh", "expr": "p99(itl_seconds[5m]) > 80ms", "severity": "critical"}],
        "slos": [{"name": "avail", "objective": 0.999, "window": "7d", "good": "up"}],
    }))
    assert main(["grafana", "-c", str(cfg), "-o", str(tmp_path / "out")]) == 0
    fleet = json.loads((tmp_path / "out/dashboards/fleet.json").read_text())
    backend = json.loads((tmp_path / "out/dashboards/backend.json").read_text())
    slos = json.loads((tmp_path / "out/dashboards/slos.json").read_text())
    assert _steps(_panel(fleet, "TTFT p50 / p95 / p99 by backend")) == [(None, "green"), (0.3, "orange"), (5.0, "orange")]
    assert _steps(_panel(fleet, "KV-cache usage")) == [(None, "green")]
    assert _steps(_panel(backend, "ITL p50 / p95 / p99")) == [(None, "green"), (0.08, "red")]
    burn = [v for v, _ in _steps(_panel(slos, "Burn rate per alert window"))]
    assert burn[:2] == [None, 1.0] and burn[-1] == pytest.approx(14.4 * 7 / 30)


def test_provisioning() -> None:
    files = grafana.render()
    ds = yaml.safe_load(files["provisioning/datasources/prometheus.yaml"])
    want = {"name": "Prometheus", "type": "prometheus", "url": "http://localhost:9090"}
    assert ds["datasources"][0].items() >= want.items()
    prov = yaml.safe_load(files["provisioning/dashboards/inferwatch.yaml"])
    assert prov["providers"][0]["type"] == "file" and prov["providers"][0]["options"]["path"]


# ------------------------------------------------------------------------ real Prometheus


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Stack(threading.Thread):
    """The demo fleet (one https backend, three probed) and an inferwatch Service scraping every
    second, on an event loop in a thread."""

    def __init__(self, workdir: Path, port: int) -> None:
        super().__init__(daemon=True)
        self.workdir = workdir
        self.port = port
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.targets: dict[str, str] = {}
        self.rules_file = workdir / "inferwatch-rules.yaml"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        from alerts.promrules import export_rules
        from inferwatch.config import parse
        from inferwatch.service import Service
        from inferwatch.stores import Stores
        from sim.fleet import build, demo_config, demo_tls
        from sim.server import SimFleet

        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        contexts, ca_file = demo_tls(self.workdir)
        fleet = SimFleet(build(), ssl=contexts)
        await fleet.start()
        data = demo_config(fleet, storage=f"sqlite:///{self.workdir / 'iw.db'}", listen=f"127.0.0.1:{self.port}",
                           interval="1s", ca_file=ca_file)
        data["scrape_timeout"] = "1s"
        data["evaluation_interval"] = "1s"
        data["gpus"] = {"nvml": "off"}
        cfg = parse(data, "<grafana-test>")
        # the demo's rules and SLOs as Prometheus rules, for the panels and annotations over them
        self.rules_file.write_text(yaml.safe_dump(export_rules(cfg.rules_in_force, cfg.slos).document()))
        store = Stores.open(cfg.storage)
        store.migrate()
        service = Service(cfg, store)
        server = service.server()
        await service.start()
        serving = asyncio.create_task(server.serve())
        self.targets = {name: fleet.url(name) for name in fleet.backends}
        self.ready.set()
        try:
            await self._stop_event.wait()
        finally:
            server.should_exit = True
            await serving
            await service.stop()
            await fleet.stop()
            store.close()

    def stop(self) -> None:
        if self._loop is not None and self._stop_event is not None:
            self._loop.call_soon_threadsafe(self._stop_event.set)
        self.join(15)


def _prometheus_config(inferwatch: str, engines: dict[str, str], rules: Path | None = None) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = [{"job_name": "inferwatch", "static_configs": [{"targets": [inferwatch]}]}]
    for name, url in sorted(engines.items()):
        scheme, _, hostport = url.partition("://")
        job: dict[str, Any] = {"job_name": f"engine-{name}", "scheme": scheme,
                               "static_configs": [{"targets": [hostport.rstrip("/")], "labels": {"backend": name}}]}
        if scheme == "https":
            job["tls_config"] = {"insecure_skip_verify": True}
        jobs.append(job)
    out: dict[str, Any] = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                           "scrape_configs": jobs}
    if rules is not None:
        out["rule_files"] = [str(rules)]
    return out


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(Prometheus URL, inferwatch URL): the demo fleet and inferwatch scraping it every 1 s, and
    a real Prometheus scraping inferwatch and every engine directly."""
    if not (Path(PROMETHEUS).is_file() or shutil.which(PROMETHEUS)):
        pytest.skip(f"the real-Prometheus dashboard test needs {PROMETHEUS} (Debian package 'prometheus')")
    stack = _Stack(tmp_path, _free_port())
    stack.start()
    assert stack.ready.wait(30), "the simulated fleet / inferwatch did not start"
    if stack.error is not None:
        raise stack.error
    prom_port = _free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(_prometheus_config(f"127.0.0.1:{stack.port}", stack.targets, stack.rules_file)))
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{prom_port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "Prometheus did not become ready"
            time.sleep(0.2)
        yield url, f"http://127.0.0.1:{stack.port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        stack.stop()


def _query(client: httpx.Client, url: str, expr: str) -> dict[str, Any]:
    resp = client.get(f"{url}/api/v1/query", params={"query": expr})
    body: dict[str, Any] = resp.json()
    return body


@pytest.fixture
def prometheus(stack: tuple[str, str]) -> str:
    return stack[0]


def test_every_panel_query_returns_data_from_real_prometheus(prometheus: str) -> None:
    queries: list[tuple[str, str, str, str | None]] = []  # dashboard, panel, expr, needs
    for stem, d in _loaded().items():
        for panel, target in _targets(d):
            expr = _substitute(target["expr"], panel.get("inferwatch_engine"))
            queries.append((stem, panel["title"], expr, panel.get("inferwatch_needs")))
        for expr in _annotation_exprs(d):
            queries.append((stem, "annotation", _substitute(expr), "incident"))
    # every query must parse at once (no data needed for that)
    with httpx.Client(timeout=5) as client:
        for stem, title, expr, _ in queries:
            body = _query(client, prometheus, expr)
            assert body["status"] == "success", (stem, title, expr, body)
        pending = [q for q in queries if q[3] is None]
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            time.sleep(1)
            still = []
            for q in pending:
                body = _query(client, prometheus, q[2])
                assert body["status"] == "success", (q, body)
                if not body["data"]["result"]:
                    still.append(q)
            pending = still
    assert not pending, "panels without data from a real Prometheus:\n" + "\n".join(
        f"  {s} / {t}: {e}" for s, t, e, _ in pending)


def _value(client: httpx.Client, url: str, expr: str) -> float:
    body = _query(client, url, expr)
    assert body["status"] == "success", (expr, body)
    (one,) = body["data"]["result"]
    return float(one["value"][1])


def test_prometheus_over_our_series_and_the_engines_agrees_with_the_api(stack: tuple[str, str]) -> None:
    """The same minute three ways: Prometheus's histogram_quantile over the engine's own buckets
    (scraped directly), over inferwatch's cumulative histograms, and inferwatch's API; and
    Prometheus's rate() over inferwatch's counters against the API's rate. Steady simulated
    traffic, everything scraped every 1 s."""
    prom, api = stack
    time.sleep(WINDOW_S + 8)  # the window fills on both sides
    q = "vllm-a"
    with httpx.Client(timeout=10) as client:
        got = client.get(f"{api}/api/v1/backends/{q}", params={"window": f"{WINDOW_S}s"}).json()
        w = f"{WINDOW_S}s"
        engine = {p: _value(client, prom, f'histogram_quantile({p}, sum by (le) '
                                          f'(rate(vllm:time_to_first_token_seconds_bucket{{backend="{q}"}}[{w}])))')
                  for p in (0.5, 0.95, 0.99)}
        ours = {p: _value(client, prom, f'histogram_quantile({p}, sum by (le) '
                                        f'(rate(inferwatch_ttft_seconds_bucket{{backend="{q}"}}[{w}])))')
                for p in (0.5, 0.95, 0.99)}
        tokens = _value(client, prom, f'sum(rate(inferwatch_generation_tokens_total{{backend="{q}"}}[{w}]))')
    report = {"api": got["ttft"], "engine buckets": engine, "our buckets": ours,
              "tokens/s": (tokens, got["tokens_per_second"])}
    print("\nagreement:", report)
    for p, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        assert engine[p] == pytest.approx(got["ttft"][key], rel=0.02), (key, report)
        assert ours[p] == pytest.approx(got["ttft"][key], rel=0.02), (key, report)
    assert tokens == pytest.approx(got["tokens_per_second"], rel=0.02), report


#: the window of the agreement test (seconds): ~480 requests of vllm-a, so that the second or so by
#: which Prometheus's and inferwatch's scrapes of the engine differ at each edge stays under 1 %
WINDOW_S = 120
