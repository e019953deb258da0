"""The fleet table colours each cell against the alert rules in force for its backend: the
default pack, fleet-wide overrides, per-backend ``alert_thresholds``, user rules with selectors."""

from __future__ import annotations

from pathlib import Path

import httpx

from core.samples import GaugePoint, ScrapeRecord
from dashboards import data as d
from inferwatch.config import parse
from inferwatch.stores import Stores
from tests.web.test_dashboard import Page
from web.app import create_app
from web.routes.pages import COLUMNS

KEYS = [col["key"] for col in COLUMNS]


def _cfg(db: str, **extra: object) -> object:
    return parse({"storage": db, "gpus": {"nvml": "off"}, **extra, "backends": [
        {"name": "us", "engine": "vllm", "url": "http://127.0.0.1:9", "labels": {"region": "us"}},
        {"name": "eu", "engine": "vllm", "url": "http://127.0.0.1:10", "labels": {"region": "eu"},
         "alert_thresholds": {"TTFTp99High": "2s", "QueueDepthHigh": 40}},
    ]})


def test_default_pack_thresholds() -> None:
    cfg = _cfg("sqlite://")
    t = d.column_thresholds(cfg.rules_in_force, cfg.backends, KEYS)  # type: ignore[attr-defined]
    assert t["us"] == {"queue_depth": 100.0, "requests_running": None, "ttft.p50": 0.5, "ttft.p95": None,
                       "ttft.p99": 5.0, "e2e.p99": None, "tokens_per_second": None, "error_ratio": 0.01,
                       "kv_cache_usage_ratio": 0.95, "gpu_memory_used_ratio": 0.98}
    assert t["eu"]["ttft.p99"] == 2.0 and t["eu"]["queue_depth"] == 40.0  # its alert_thresholds


def test_overrides_user_rules_selectors_and_disabled_rules() -> None:
    cfg = _cfg("sqlite://",
               rule_overrides={"QueueDepthHigh": {"threshold": 3}, "ErrorRateHigh": {"enabled": False}},
               rules=[{"name": "EuTTFTp95", "expr": "p95(ttft_seconds[5m]) > 800ms", "selector": {"labels": {"region": "eu"}}},
                      {"name": "StrictP50", "expr": "p50(ttft_seconds[5m]) > 200ms"},
                      {"name": "LowKV", "expr": "kv_cache_usage_ratio < 10%"}])  # "lower is bad": not a cell threshold
    t = d.column_thresholds(cfg.rules_in_force, cfg.backends, KEYS)  # type: ignore[attr-defined]
    assert t["us"]["queue_depth"] == 3.0 and t["eu"]["queue_depth"] == 40.0  # the per-backend value wins
    assert t["us"]["error_ratio"] is None and t["eu"]["error_ratio"] is None  # rule disabled: nothing judges it
    assert t["us"]["ttft.p95"] is None and t["eu"]["ttft.p95"] == 0.8  # selector
    assert t["us"]["ttft.p50"] == 0.2  # the lowest of the default (500 ms) and the user rule
    assert t["us"]["kv_cache_usage_ratio"] == 0.95  # KVCacheExhausted's; LowKV ("lower is bad") adds none


async def test_fleet_cells_are_coloured_against_their_backends_thresholds(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/t.db"
    cfg = _cfg(db, rule_overrides={"QueueDepthHigh": {"threshold": 30}})
    store = Stores.open(db)
    store.migrate()
    store.metrics.write([ScrapeRecord(name, 100.0, True, None, 0.01, gauges=(GaugePoint("queue_depth", "", 35.0),))
                 for name in ("us", "eu")])
    app = create_app(cfg, store.reads, store.alerts, store.silences, clock=lambda: 110.0)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        resp = await client.get("/")
    store.close()
    assert resp.status_code == 200
    cls = {}
    for name in ("us", "eu"):
        # the same queue of 35: over the fleet-wide 30 for us, amber under eu's own 40 (> 80 % of it)
        row = resp.text.split(f'data-name="{name}"', 1)[1].split("</tr>", 1)[0]
        cell = row.split('data-key="queue_depth"', 1)[1].split(">", 1)[0]
        cls[name] = cell
        assert Page(resp.text).rows[name]["queue_depth"] == "35.0"
    assert 'data-bad="30.0"' in cls["us"] and 'class="num bad"' in cls["us"]
    assert 'data-bad="40.0"' in cls["eu"] and 'class="num warn"' in cls["eu"]
