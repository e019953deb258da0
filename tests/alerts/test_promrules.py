"""``inferwatch prometheus-rules``: our rules and SLOs as Prometheus rules that the real
``promtool`` accepts, with generated ``promtool test rules`` unit tests that pass."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from alerts.promrules import export_rules, rule_expr, translate_template
from alerts.rulepack import default_rules
from alerts.rules import Rule

CONFIG = """
storage: sqlite:///{db}
backends:
  - {{name: vllm-a, engine: vllm, url: "http://127.0.0.1:9/", alert_thresholds: {{QueueDepthHigh: 40, TTFTp99High: 2s}}}}
  - {{name: tgi.b, engine: tgi, url: "http://127.0.0.1:9/", labels: {{region: eu}}}}
slos:
  - {{name: ttft-1s, objective: 99%, good: ttft_seconds < 1}}
  - {{name: availability, objective: 99.9%, good: availability, selector: {{labels: {{region: eu}}}}}}
  - {{name: up, objective: 99.9%, good: up}}
rules:
  - {{name: EuP95, expr: "p95(e2e_latency_seconds[10m]) > 20s", selector: {{labels: {{region: eu}}}}}}
  - {{name: CachePrefix, expr: "prefix_cache_hit_ratio < 10%"}}
"""


def test_expressions_read_the_cumulative_series() -> None:
    rules = {r.name: r for r in default_rules(None, {"vllm-a": {"QueueDepthHigh": 40}})}
    assert rule_expr(rules["TTFTp99High"]) == \
        "histogram_quantile(0.99, sum by (le, backend) (rate(inferwatch_ttft_seconds_bucket[5m]))) > 5"
    assert rule_expr(rules["ErrorRateHigh"]) == ("(sum by (backend) (rate(inferwatch_request_errors_total[5m])) / "
                                                 "sum by (backend) (rate(inferwatch_requests_total[5m]))) > 0.01")
    # a per-backend threshold is its own branch; the others keep the default
    assert rule_expr(rules["QueueDepthHigh"]) == ('(inferwatch_queue_depth{backend="vllm-a"} > 40) or '
                                                  '(inferwatch_queue_depth{backend!~"vllm-a"} > 100)')
    eu = Rule.model_validate({"name": "X", "expr": "queue_depth > 3", "selector": {"backend": ["a.b", "c"],
                                                                                  "labels": {"region": "eu"}}})
    assert rule_expr(eu) == 'inferwatch_queue_depth{backend=~"a\\\\.b|c",region="eu"} > 3'
    assert translate_template("{{ backend }}: {{ value | percent }} (threshold {{ threshold | percent }})",
                              rules["ErrorRateHigh"]) == \
        "{{ $labels.backend }}: {{ $value | humanizePercentage }} (threshold 1%)"


def test_what_cannot_be_expressed_is_listed_with_the_reason() -> None:
    rule = Rule.model_validate({"name": "CachePrefix", "expr": "prefix_cache_hit_ratio < 10%"})
    out = export_rules([rule], [])
    assert out.skipped == {"CachePrefix": "/metrics exports no series for prefix_cache_hit_ratio"}
    assert out.groups == []


@pytest.mark.slow
def test_generated_rules_pass_promtool_check_and_their_unit_tests(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'; .ci/run installs it)")
    config = tmp_path / "inferwatch.yaml"
    config.write_text(CONFIG.format(db=tmp_path / "x.db"))
    out = tmp_path / "prometheus"
    res = subprocess.run([sys.executable, "-m", "inferwatch", "prometheus-rules", "-c", str(config), "-o", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "not exported: CachePrefix: /metrics exports no series for prefix_cache_hit_ratio" in res.stderr
    rules = yaml.safe_load((out / "inferwatch-rules.yaml").read_text())
    names = [r.get("alert") or r.get("record") for g in rules["groups"] for r in g["rules"]]
    assert {"TTFTp50High", "ErrorRateHigh", "QueueDepthHigh", "BackendDown", "EuP95",
            "SLOBurnRate:availability:page_quick", "inferwatch_slo:error_ratio:rate5m"} <= set(names)
    burn = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "SLOBurnRate:ttft-1s:page_quick")
    assert burn["keep_firing_for"] == "5m" and burn["labels"]["severity"] == "critical"
    check = subprocess.run([promtool, "check", "rules", str(out / "inferwatch-rules.yaml")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = yaml.safe_load((out / "inferwatch-rules.test.yaml").read_text())
    tested = {t["alert_rule_test"][0]["alertname"] for t in tests["tests"]}
    assert {"QueueDepthHigh", "ErrorRateHigh", "BackendDown", "KVCacheExhausted", "TTFTp50High",
            "TTFTp99High"} <= tested
    # histogram rules: fed buckets whose p50/p99 lie past the threshold; per-backend thresholds too
    p99 = next(t for t in tests["tests"] if t["alert_rule_test"][0]["alertname"] == "TTFTp99High")
    summaries = sorted(a["exp_annotations"]["summary"] for a in p99["alert_rule_test"][0]["exp_alerts"])
    assert summaries == ["unit-test: p99 time to first token 9.95s over 5m (threshold 5s)",
                        "vllm-a: p99 time to first token 3.98s over 5m (threshold 5s)"]
    # SLOs: none bad -> nothing fires; between the page thresholds -> all but page_quick; all bad -> all
    slo_tests = {t["name"]: t for t in tests["tests"] if t.get("name", "").startswith("SLO ")}
    firing = {name: {c["alertname"].rsplit(":", 1)[1] for c in t["alert_rule_test"] if c["exp_alerts"]}
              for name, t in slo_tests.items()}
    assert firing["SLO availability: 0.0000% of events bad"] == set()
    assert firing["SLO availability: 100.0000% of events bad"] == {"page_quick", "page_slow", "ticket_quick",
                                                                   "ticket_slow"}
    (mid,) = [n for n in firing if n.startswith("SLO availability:") and "0.0000%" not in n and "100.0" not in n]
    assert firing[mid] == {"page_slow", "ticket_quick", "ticket_slow"}
    assert any(n.startswith("SLO ttft-1s: ") and firing[n] == {"page_slow", "ticket_quick", "ticket_slow"}
               for n in firing)
    assert {n for n in firing if n.startswith("SLO up:")} == {"SLO up: 0.0000% of events bad",
                                                             "SLO up: 100.0000% of events bad"}
    run = subprocess.run([promtool, "test", "rules", "inferwatch-rules.test.yaml"], cwd=out,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
