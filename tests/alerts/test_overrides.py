"""Every default threshold is overridable, fleet-wide and per backend, from the config file; the
alert engine's own metrics are valid Prometheus exposition."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from alerts.engine import AlertEngine
from inferwatch.config import ConfigError, parse
from inferwatch.stores import Stores
from web.app import create_app

BACKENDS = [{"name": "vllm-a", "engine": "vllm", "url": "http://127.0.0.1:1", "alert_thresholds": {"QueueDepthHigh": 50}},
            {"name": "vllm-b", "engine": "vllm", "url": "http://127.0.0.1:2"}]


def test_fleet_wide_and_per_backend_thresholds() -> None:
    cfg = parse({"backends": BACKENDS, "rule_overrides": {"QueueDepthHigh": {"threshold": 200, "for": "2m"},
                                                          "GPUMemoryHigh": {"enabled": False}}})
    rules = {r.name: r for r in cfg.rules_in_force}
    q = rules["QueueDepthHigh"]
    assert q.threshold_for({"backend": "vllm-a"}) == 50 and q.threshold_for({"backend": "vllm-b"}) == 200
    assert q.for_ == 120.0
    assert "GPUMemoryHigh" not in rules and "BackendDown" in rules


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"rule_overrides": {"QueueDepth": {"threshold": 1}}}, "rule_overrides: unknown rule 'QueueDepth'"),
        ({"backends": [{**BACKENDS[1], "alert_thresholds": {"Nope": 1}}]}, "backends[0].alert_thresholds: unknown rule 'Nope'"),
    ],
    ids=["unknown default rule", "unknown rule in a backend's thresholds"],
)
def test_override_mistakes_name_the_field(extra: dict, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse({"backends": BACKENDS[1:], **extra})
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


async def test_alert_metrics_pass_promtool(tmp_path: Path) -> None:
    cfg = parse({"storage": f"sqlite:///{tmp_path}/m.db", "backends": BACKENDS})
    store = Stores.open(cfg.storage)
    store.migrate()
    async with httpx.AsyncClient() as http:
        engine = AlertEngine(cfg, store.reads, store.alerts, store.silences, http)
        await engine.evaluate_once()
        app = create_app(cfg, store.reads, store.alerts, store.silences, alerts=engine)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
            text = (await api.get("/metrics")).text
    store.close()
    assert "inferwatch_notification_delivery_seconds_bucket{le=\"+Inf\"} 0.0" in text
    assert "inferwatch_rule_evaluations_total 1.0" in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'; .ci/run installs it)")
    res = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_rule_values_come_from_the_store_like_the_api(tmp_path: Path) -> None:
    from alerts.data import fetch_values
    from alerts.evaluate import labelset
    from alerts.rulepack import DEFAULT_RULES
    from core.samples import CounterDelta, GaugePoint, ScrapeRecord

    cfg = parse({"storage": f"sqlite:///{tmp_path}/v.db", "backends": BACKENDS})
    store = Stores.open(cfg.storage)
    store.migrate()
    now = 1_700_000_000.0
    store.metrics.write([ScrapeRecord("vllm-a", now - 30, True, None, 0.01, gauges=(GaugePoint("queue_depth", "m", 7.0),),
                              counters=(CounterDelta("requests_total", "m", 1000.0, 60.0),
                                        CounterDelta("request_errors_total", "m", 50.0, 60.0))),
                 ScrapeRecord("vllm-b", now - 30, False, "connection refused", 0.01)])
    rules = [r for r in DEFAULT_RULES if r.name in ("ErrorRateHigh", "QueueDepthHigh", "BackendDown")]
    values = fetch_values(rules, store.reads, cfg, now)
    store.close()
    a, b = labelset({"backend": "vllm-a"}), labelset({"backend": "vllm-b"})
    assert values["ErrorRateHigh"][a] == pytest.approx(0.05) and values["ErrorRateHigh"][b] is None
    assert values["QueueDepthHigh"][a] == 7.0 and values["QueueDepthHigh"][b] is None  # down: no stale gauge
    assert values["BackendDown"][a] == 1.0 and values["BackendDown"][b] == 0.0


def test_throughput_baseline_against_its_own_median_and_cached_reference(tmp_path: Path) -> None:
    from alerts.data import fetch_values
    from alerts.evaluate import labelset
    from alerts.rulepack import DEFAULT_RULES
    from core.samples import CounterDelta, ScrapeRecord

    cfg = parse({"storage": f"sqlite:///{tmp_path}/t.db", "backends": BACKENDS[1:], "scrape_interval": "60s"})
    store = Stores.open(cfg.storage)
    store.migrate()
    now = 1_700_000_000.0
    records = []
    for i in range(120, 0, -1):  # two hours at 100 tokens/s, then the last 5 minutes at 20 tokens/s
        rate = 20.0 if i <= 5 else 100.0
        records.append(ScrapeRecord("vllm-b", now - 60 * i + 60, True, None, 0.01,
                                    counters=(CounterDelta("generation_tokens_total", "m", rate * 60, 60.0),)))
    store.metrics.write(records)
    [rule] = [r for r in DEFAULT_RULES if r.name == "TokenThroughputDegraded"]
    cache: dict = {}
    value = fetch_values([rule], store.reads, cfg, now, cache)[rule.name][labelset({"backend": "vllm-b"})]
    assert value == pytest.approx(20.0 / 100.0)  # 20 % of its own 24 h median: below the 50 % threshold
    assert rule.holds(value, {"backend": "vllm-b"})
    assert len(cache) == 1
    # within the cache's life the reference is not recomputed (it would now include more 20 tok/s)
    store.metrics.write([ScrapeRecord("vllm-b", now + 60, True, None, 0.01,
                              counters=(CounterDelta("generation_tokens_total", "m", 1200.0, 60.0),))])
    again = fetch_values([rule], store.reads, cfg, now + 60, cache)[rule.name][labelset({"backend": "vllm-b"})]
    store.close()
    assert again == pytest.approx(20.0 / 100.0)


def test_a_backend_certificate_alert_names_its_backend(tmp_path: Path) -> None:
    from alerts.data import fetch_values
    from alerts.evaluate import labelset
    from alerts.rulepack import DEFAULT_RULES
    from core.samples import CertResult

    cfg = parse({"storage": f"sqlite:///{tmp_path}/c.db",
                 "backends": [{"name": "secure", "engine": "vllm", "url": "https://127.0.0.1:8443"}],
                 "tls": [{"url": "https://api.example.com"}]})
    store = Stores.open(cfg.storage)
    store.migrate()
    now = 1_700_000_000.0
    store.observations.write_observations(certs=[CertResult("127.0.0.1:8443", now, True, not_after=now + 5 * 86400),
                                    CertResult("api.example.com:443", now, True, not_after=now + 2 * 86400)])
    [rule] = [r for r in DEFAULT_RULES if r.name == "CertificateExpiringSoon"]
    values = fetch_values([rule], store.reads, cfg, now)[rule.name]
    store.close()
    assert values[labelset({"target": "127.0.0.1:8443", "backend": "secure"})] == pytest.approx(5.0)
    assert values[labelset({"target": "api.example.com:443"})] == pytest.approx(2.0)
