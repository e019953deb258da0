"""The JSON API and /metrics over a scraped simulated fleet: shapes, per-model breakdown,
series, validation errors, auth, and a /metrics body Prometheus accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.audit import AuditResult, CheckResult
from core.quantiles import histogram_quantile
from inferwatch.config import parse
from inferwatch.stores import Stores
from sim.engines import make_renderer
from sim.state import Profile, SimBackend
from tests.e2e_helpers import Clock, harness
from tests.web.test_dashboard import Page
from web.app import create_app

PROFILE = Profile(request_rate=4.0, queue_depth=5, running=9, kv_cache_usage=0.3, error_ratio=0.1)


def _fleet(clock: Clock) -> list[SimBackend]:
    return [
        SimBackend("multi", make_renderer("vllm"), ("model-a", "model-b"), PROFILE, seed=11, now=clock()),
        SimBackend("cpp", make_renderer("llamacpp"), ("gemma",), PROFILE, seed=12, now=clock()),
    ]


async def _scraped(h, n: int = 3) -> None:  # type: ignore[no-untyped-def]
    await h.collector.scrape_once()
    for _ in range(n):
        h.clock.advance(60)
        await h.collector.scrape_once()


@pytest.mark.slow
async def test_backend_fields_and_per_model_breakdown(tmp_path: Path) -> None:
    clock = Clock()
    sims = _fleet(clock)
    async with harness(sims, f"sqlite:///{tmp_path}/api.db", clock) as h:
        await _scraped(h)
        got = await h.backends()
        multi = got["multi"]
        for key in ("name", "engine", "up", "last_scrape", "queue_depth", "requests_running", "ttft", "itl", "e2e",
                    "tokens_per_second", "error_ratio", "kv_cache_usage_ratio", "labels"):
            assert key in multi, key
        assert multi["labels"] == {"team": "e2e"}
        assert multi["last_scrape"] == clock()
        assert set(multi["models"]) == {"model-a", "model-b"}
        a, b = multi["models"]["model-a"], multi["models"]["model-b"]
        # the backend figure is the sum over models for counts and rates, the max for ratios
        assert multi["queue_depth"] == a["queue_depth"] + b["queue_depth"] == 2 * PROFILE.queue_depth
        assert multi["tokens_per_second"] == pytest.approx(a["tokens_per_second"] + b["tokens_per_second"])
        assert multi["kv_cache_usage_ratio"] == max(a["kv_cache_usage_ratio"], b["kv_cache_usage_ratio"])
        sim_a = sims[0].models["model-a"]
        assert a["ttft"]["count"] > 0 and a["ttft"]["count"] + b["ttft"]["count"] == multi["ttft"]["count"]
        assert a["ttft"]["count"] <= sim_a.hist["ttft"].count
        # llama.cpp exposes no latency histograms and no request counters: unavailable, not 0
        cpp = got["cpp"]
        assert cpp["up"] is True
        assert cpp["ttft"] is None and cpp["e2e"] is None and cpp["error_ratio"] is None
        assert cpp["tokens_per_second"] > 0
        # one backend
        one = (await h.api.get("/api/v1/backends/multi", params={"window": "2m"})).json()
        assert one["name"] == "multi" and one["window_seconds"] == 120
        assert (await h.api.get("/api/v1/backends/nope")).status_code == 404


@pytest.mark.slow
async def test_series_points_cover_each_step(tmp_path: Path) -> None:
    clock = Clock()
    async with harness(_fleet(clock), f"sqlite:///{tmp_path}/series.db", clock) as h:
        await _scraped(h, n=4)
        resp = await h.api.get("/api/v1/backends/multi/series",
                               params={"signal": "ttft_seconds", "quantile": 0.99, "window": "4m", "step": "1m"})
        assert resp.status_code == 200, resp.text
        pts = resp.json()["points"]
        assert [t for t, _ in pts] == [clock() - 180, clock() - 120, clock() - 60, clock()]
        assert all(v is not None and 0 < v < 10 for _, v in pts)
        rate = (await h.api.get("/api/v1/backends/multi/series",
                                params={"signal": "generation_tokens_total", "window": "4m", "step": "1m"})).json()
        assert all(v is not None and v > 0 for _, v in rate["points"])
        queue = (await h.api.get("/api/v1/backends/multi/series",
                                 params={"signal": "queue_depth", "window": "4m", "step": "1m"})).json()
        assert [v for _, v in queue["points"]] == [2 * PROFILE.queue_depth] * 4
        up = (await h.api.get("/api/v1/backends/multi/series", params={"signal": "up", "window": "4m", "step": "1m"})).json()
        assert [v for _, v in up["points"]] == [1.0] * 4


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"signal": "ttft", "window": "1h"}, "signal: unknown signal 'ttft'"),
        ({"signal": "ttft_seconds", "window": "an hour"}, "window: invalid duration 'an hour'"),
        ({"signal": "ttft_seconds", "window": "30d", "step": "1s"}, "step: 30d/1s gives more than"),
        ({"signal": "queue_depth", "quantile": 0.5}, "quantile: only histogram signals have quantiles"),
    ],
)
async def test_series_rejects_bad_parameters_with_a_clear_message(tmp_path: Path, params: dict, message: str) -> None:
    cfg = parse({"storage": f"sqlite:///{tmp_path}/x.db", "backends": [{"name": "a", "engine": "vllm", "url": "http://127.0.0.1:9"}]})
    store = Stores.open(cfg.storage)
    store.migrate()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(cfg, store.reads, store.alerts, store.silences)), base_url="http://t") as api:
        resp = await api.get("/api/v1/backends/a/series", params=params)
        assert resp.status_code == 400
        assert resp.json()["detail"].startswith(message)
        bad_window = await api.get("/api/v1/backends", params={"window": "-5m"})
        assert bad_window.status_code == 400 and "window:" in bad_window.json()["detail"]
    store.close()


async def test_bearer_token_guards_api_but_not_health(tmp_path: Path) -> None:
    cfg = parse({"storage": f"sqlite:///{tmp_path}/x.db", "web": {"auth": {"tokens": ["${T}"]}},
                 "backends": [{"name": "a", "engine": "vllm", "url": "http://127.0.0.1:9"}]}, env={"T": "tok-123"})
    store = Stores.open(cfg.storage)
    store.migrate()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(cfg, store.reads, store.alerts, store.silences)), base_url="http://t") as api:
        assert (await api.get("/api/v1/backends")).status_code == 401
        assert (await api.get("/api/v1/backends", headers={"Authorization": "Bearer wrong"})).status_code == 401
        ok = await api.get("/api/v1/backends", headers={"Authorization": "Bearer tok-123"})
        assert ok.status_code == 200
        assert ok.json()[0]["up"] is False and ok.json()[0]["reason"] == "not scraped yet"
        assert ok.headers["cache-control"] == "no-store"
        assert ok.headers["x-content-type-options"] == "nosniff"
        assert (await api.get("/healthz")).status_code == 200
        assert (await api.get("/readyz")).json() == {"status": "ready"}
        assert "tok-123" not in (await api.get("/metrics")).text
    store.close()


@pytest.mark.slow
async def test_metrics_exposition_is_valid_and_matches_api(tmp_path: Path) -> None:
    clock = Clock()
    async with harness(_fleet(clock), f"sqlite:///{tmp_path}/m.db", clock) as h:
        await _scraped(h)
        api = (await h.backends())["multi"]
        resp = await h.api.get("/metrics")
        assert resp.headers["content-type"].startswith("text/plain")
        fams = {f.name: f for f in text_string_to_metric_families(resp.text)}
        # the API's windowed percentiles: gauges labelled with their percentile and window
        window = fams["inferwatch_ttft_window_seconds"]
        assert window.type == "gauge"
        p99 = [s for s in window.samples if s.labels["percentile"] == "0.99" and s.labels["backend"] == "multi"]
        assert p99 and p99[0].labels["window"] == "5m" and p99[0].value == pytest.approx(api["ttft"]["p99"])
        queue = [s for s in fams["inferwatch_queue_depth"].samples if s.labels["backend"] == "multi"]
        assert queue[0].value == api["queue_depth"]
        # cumulative histograms on the engine's buckets, per model: what histogram_quantile and
        # rate() read; every delta so far is inside the API's window, so they say the same
        ttft = fams["inferwatch_ttft_seconds"]
        assert ttft.type == "histogram"
        mine = [s for s in ttft.samples if s.labels["backend"] == "multi"]
        assert {s.labels.get("model") for s in mine} == {"model-a", "model-b"}
        counts = sum(s.value for s in mine if s.name == "inferwatch_ttft_seconds_count")
        assert counts == api["ttft"]["count"] > 0
        by_le: dict[float, float] = {}
        for s in mine:
            if s.name == "inferwatch_ttft_seconds_bucket":
                by_le[float(s.labels["le"])] = by_le.get(float(s.labels["le"]), 0.0) + s.value
        bounds = sorted(by_le)
        assert histogram_quantile(0.99, bounds, [by_le[b] for b in bounds]) == pytest.approx(api["ttft"]["p99"])
        assert "inferwatch_ttft_seconds_sum{" in resp.text
        assert "inferwatch_ttft_seconds_created{" in resp.text and "inferwatch_requests_created{" in resp.text
        # counters since the start: the engine's increase over the scrapes, per model
        tokens = fams["inferwatch_generation_tokens"]
        assert tokens.type == "counter"
        total = sum(s.value for s in tokens.samples if s.labels["backend"] == "multi" and s.name.endswith("_total"))
        assert total == pytest.approx(api["tokens_per_second"] * 180.0)  # three 60 s intervals
        assert not [s for s in ttft.samples if s.labels["backend"] == "cpp"]  # unavailable: absent
        assert [s.labels["version"] for s in fams["inferwatch_build_info"].samples]


@pytest.mark.slow
async def test_metrics_pass_promtool_check_metrics(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'; .ci/run installs it)")
    clock = Clock()
    async with harness(_fleet(clock), f"sqlite:///{tmp_path}/p.db", clock) as h:
        await _scraped(h)
        h.store.observations.write_observations(audits=[AuditResult("https://api.example.com/v1", "https://api.example.com/v1", clock(), 4.2, (
            CheckResult("hsts", "pass", "max-age=63072000"), CheckResult("cors", "fail", "*", "fix it"),
            CheckResult("tls13", "warn", "TLS 1.2"), CheckResult("dns_ttl", "skip", "an IP address")))])
        text = (await h.api.get("/metrics")).text
    assert "inferwatch_ttft_seconds_bucket{" in text and "inferwatch_requests_total{" in text
    assert 'inferwatch_audit_check{check="tls13",target="https://api.example.com/v1"} 0.5' in text
    res = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == "" and res.stderr.strip() == "", res.stdout + res.stderr  # not even lint warnings


@pytest.mark.slow
async def test_histogram_series_in_one_read_equals_series_per_quantile(tmp_path: Path) -> None:
    from collector import query

    clock = Clock()
    async with harness(_fleet(clock), f"sqlite:///{tmp_path}/hs.db", clock) as h:
        await _scraped(h, n=4)
        both = query.histogram_series(h.store.metrics, "multi", ["ttft_seconds", "e2e_latency_seconds"], clock(), 240, 60)
        for signal in ("ttft_seconds", "e2e_latency_seconds"):
            for q in (0.5, 0.95, 0.99):
                assert both[signal][q] == query.series(h.store.metrics, "multi", signal, clock(), 240, 60, q)
        assert all(v is not None for _, v in both["ttft_seconds"][0.99])


@pytest.mark.slow
async def test_a_down_backend_has_no_present_tense(store_url: str) -> None:
    """While a backend's latest scrape failed its rates, percentiles, queue and KV cache are null
    in the API and absent from /metrics (Prometheus marks the series stale); the charts keep the
    history; the first good scrape brings them back."""
    clock = Clock()
    sims = _fleet(clock)
    async with harness(sims, store_url, clock) as h:
        await _scraped(h)
        before = (await h.backends())["multi"]
        assert before["tokens_per_second"] > 0 and before["ttft"]["p99"] is not None
        sims[0].incident.http_status = 503
        h.clock.advance(60)
        await h.collector.scrape_once()
        down = (await h.backends())["multi"]
        assert down["up"] is False
        current = ("queue_depth", "requests_running", "ttft", "itl", "e2e", "queue_time", "tokens_per_second",
                   "prompt_tokens_per_second", "requests_per_second", "error_ratio", "kv_cache_usage_ratio",
                   "prefix_cache_hit_ratio")
        assert {k: down[k] for k in current} == dict.fromkeys(current)
        assert all(v is None for m in down["models"].values() for v in m.values() if not isinstance(v, dict))
        row = Page((await h.api.get("/")).text).rows["multi"]  # the fleet page: no last tokens/s either
        assert row["status"] == "down" and row["tokens_per_second"] == "null" and row["queue_depth"] == "null"
        text = (await h.api.get("/metrics")).text
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        assert [s.value for s in fams["inferwatch_backend_up"].samples if s.labels["backend"] == "multi"] == [0.0]
        for name in ("inferwatch_tokens_per_second", "inferwatch_queue_depth", "inferwatch_ttft_window_seconds"):
            assert not [s for s in fams[name].samples if s.labels.get("backend") == "multi"], name
        history = (await h.api.get("/api/v1/backends/multi/series",
                                   params={"signal": "generation_tokens_total", "window": "5m", "step": "1m"})).json()
        assert any(v for _, v in history["points"])  # the chart keeps what came before
        sims[0].incident.http_status = None
        h.clock.advance(60)
        await h.collector.scrape_once()
        assert (await h.backends())["multi"]["tokens_per_second"] > 0


@pytest.mark.slow
async def test_metrics_export_each_slo_as_the_api_shows_it(tmp_path: Path) -> None:
    clock = Clock()
    slos = [{"name": "ttft-1s", "objective": "99%", "window": "1h", "good": "ttft_seconds < 1",
             "alerting": {"page_quick": {"long": "5m", "short": "1m", "factor": 14.4},
                          "page_slow": {"long": "15m", "short": "3m", "factor": 6},
                          "ticket_quick": {"long": "30m", "short": "5m", "factor": 3},
                          "ticket_slow": {"long": "1h", "short": "10m", "factor": 1}}}]
    async with harness(_fleet(clock), f"sqlite:///{tmp_path}/slo.db", clock, slos=slos) as h:
        await _scraped(h)
        [api] = (await h.api.get("/api/v1/slos")).json()
        text = (await h.api.get("/metrics")).text
    fams = {f.name: f for f in text_string_to_metric_families(text)}

    def one(name: str, **labels: str) -> float:
        (value,) = [s.value for s in fams[name].samples if s.labels == {"slo": "ttft-1s", **labels}]
        return value

    assert one("inferwatch_slo_objective_ratio") == 0.99 and one("inferwatch_slo_window_seconds") == 3600
    assert one("inferwatch_slo_sli_ratio") == pytest.approx(api["sli"])
    assert one("inferwatch_slo_error_budget_remaining_ratio") == pytest.approx(api["error_budget"]["remaining"])
    burn = {s.labels["window"]: s.value for s in fams["inferwatch_slo_burn_rate"].samples}
    assert burn.keys() == {w for w, r in api["burn_rates"].items() if r is not None} and burn
    for w, r in burn.items():
        assert r == pytest.approx(api["burn_rates"][w]), w
