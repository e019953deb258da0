"""Audits as the service runs them: an ``audits:`` entry is run by the collector, stored (SQLite and
PostgreSQL), exported as ``inferwatch_audit_check{target,check}``, and a check that goes from pass
to fail pages through the default ``AuditCheckRegressed`` rule — once, resolving when it passes
again — while a check that never passed does not page."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from alerts.engine import AlertEngine
from core.audit import AuditResult
from inferwatch.config import ConfigError, parse
from sim.certs import make_ca, make_leaf
from tests.audit_servers import KEY, SECURE_HEADERS, ApiApp, serve_hypercorn, write_chain
from tests.e2e_helpers import Clock, harness
from tests.receivers import webhook_receiver


@pytest.mark.slow
async def test_a_dropped_header_pages_once_and_resolves(store_url: str, tmp_path: Path) -> None:
    root = make_ca("svc root")
    ca = root.write_pem(tmp_path / "ca.pem")
    cert = write_chain(make_leaf(root, "localhost"), [], tmp_path)
    app = ApiApp(cors="star_credentials", rate_limit=None)  # CORS never passes: it must not page
    clock = Clock()
    with serve_hypercorn(app, cert=cert) as port:
        audit = {"name": "public-api", "url": f"https://localhost:{port}", "api_key": KEY, "ca_file": ca,
                 "interval": "1h", "stream_tokens": 16, "long_tokens": 20, "skip": ["rate_limit"]}
        async with webhook_receiver() as hook:
            async with harness([], store_url, clock, audits=[audit], notifiers={"webhook": {"url": hook.url}},
                               evaluation_interval="15s") as h, httpx.AsyncClient() as http:
                engine = AlertEngine(h.cfg, h.store.reads, h.store.alerts, h.store.silences, http, clock=clock)

                async def audit_and_evaluate() -> list[str]:
                    clock.advance(60)
                    got = await h.collector.observe_once()
                    assert [type(o) for o in got] == [AuditResult]
                    transitions = await engine.evaluate_once()
                    await engine.dispatcher.run_once(clock())
                    return sorted(f"{t.rule}:{t.labels['check']}:{t.old}->{t.new}" for t in transitions)

                assert await audit_and_evaluate() == []
                metrics = (await h.api.get("/metrics")).text
                assert 'inferwatch_audit_check{check="hsts",target="public-api"} 1.0' in metrics
                assert 'inferwatch_audit_check{check="cors",target="public-api"} 0.0' in metrics
                assert 'check="dns_resolves"' not in metrics  # skipped (localhost): no number
                assert KEY not in metrics

                app.headers = {k: v for k, v in SECURE_HEADERS.items() if k != "strict-transport-security"}
                assert await audit_and_evaluate() == ["AuditCheckRegressed:hsts:inactive->firing"]
                assert await audit_and_evaluate() == []  # still failing: no second page
                metrics = (await h.api.get("/metrics")).text
                assert 'inferwatch_audit_check{check="hsts",target="public-api"} 0.0' in metrics
                app.headers = SECURE_HEADERS
                assert await audit_and_evaluate() == ["AuditCheckRegressed:hsts:firing->resolved"]
                runs = h.store.observations.audit_history("public-api", 0.0)
        assert [next(c.status for c in r.checks if c.check == "hsts") for r in runs] == ["pass", "fail", "fail", "pass"]
        assert [p["status"] for p in hook.payloads] == ["firing", "resolved"]
        firing = hook.payloads[0]
        assert firing["rule"] == "AuditCheckRegressed" and firing["value"] == 1.0
        assert firing["labels"] == {"alertname": "AuditCheckRegressed", "target": "public-api", "check": "hsts",
                                    "severity": "critical"}
        assert firing["annotations"]["summary"] == "public-api: deployment check hsts fails now; it passed before"
        assert KEY not in str(hook.payloads)


def test_config_errors_name_the_field() -> None:
    base = {"storage": "sqlite:///x.db"}
    with pytest.raises(ConfigError) as exc:
        parse({**base, "audits": [{"url": "https://a.example", "skip": ["hstss"]}]}, "cfg.yaml")
    assert "audits[0].skip" in str(exc.value) or "audits.0.skip" in str(exc.value)
    assert "unknown check 'hstss'" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        parse({**base, "audits": [{"url": "https://a.example"}, {"url": "https://a.example"}]}, "cfg.yaml")
    assert "duplicate audit 'https://a.example'" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        parse({**base, "audits": [{"url": "a.example"}]}, "cfg.yaml")
    assert "https://api.example.com" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        parse({**base, "audits": [{"url": "https://a.example", "nameserver": "dns.example"}]}, "cfg.yaml")
    assert "invalid nameserver 'dns.example'" in str(exc.value)


async def test_reload_starts_restarts_and_stops_audits(tmp_path: Path) -> None:
    from collector.scheduler import Collector
    from inferwatch.stores import Stores

    def cfg(*audits: dict[str, object]):  # type: ignore[no-untyped-def]
        return parse({"storage": f"sqlite:///{tmp_path}/r.db", "gpus": {"nvml": "off"}, "audits": list(audits)},
                     "cfg.yaml")

    a = {"name": "a", "url": "https://a.example", "api_key": "k1"}
    b = {"name": "b", "url": "https://b.example"}
    first = cfg(a)
    stores = Stores.open(first.storage)
    stores.migrate()
    collector = Collector(first, stores.metrics, stores.observations)
    try:
        assert [s.name for s in collector.sources] == ["audit a"]
        assert await collector.reconfigure(cfg(a, b)) == (["audit b"], [])
        assert await collector.reconfigure(cfg({**a, "api_key": "k2"}, b)) == (["audit a"], ["audit a"])
        assert await collector.reconfigure(cfg(b)) == ([], ["audit a"])
    finally:
        await collector.stop()
        stores.close()
