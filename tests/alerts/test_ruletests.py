"""``inferwatch test-rules``: rule unit tests written like ``promtool test rules``, run on our own
evaluator — gauges with ``for``, histogram percentiles, ratios of counters (with a reset),
per-backend thresholds from the config, annotations rendered; failures reported with what was
expected and what fired; exit codes 0 and 1."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from inferwatch.cli import main

CONFIG = {
    "backends": [{"name": "vllm-a", "engine": "vllm", "url": "http://127.0.0.1:9",
                  "alert_thresholds": {"QueueDepthHigh": 40}}],
    "rules": [{"name": "ITLHigh", "expr": "p99(itl_seconds[5m]) > 100ms", "for": "2m", "severity": "critical",
               "annotations": {"summary": "{{ backend }} ITL p99 {{ value | duration }}"}}],
}
PASSING = {
    "rule_files": ["inferwatch.yaml"],
    "evaluation_interval": "1m",
    "tests": [
        {"name": "queue", "interval": "1m",
         "input_series": [{"series": 'queue_depth{backend="vllm-a"}', "values": "10 50x6"},
                          {"series": 'queue_depth{backend="vllm-b"}', "values": "90x6"}],
         "alert_rule_test": [
             {"eval_time": "1m", "alertname": "QueueDepthHigh", "exp_alerts": []},  # for: 1m not yet
             {"eval_time": "3m", "alertname": "QueueDepthHigh", "exp_alerts": [  # vllm-a's own threshold 40
                 {"exp_labels": {"alertname": "QueueDepthHigh", "backend": "vllm-a", "severity": "warning"},
                  "exp_annotations": {"summary": "vllm-a: 50 requests waiting (threshold 40)"}}]}]},
        {"name": "itl histogram", "interval": "1m",
         "input_series": [{"series": 'itl_seconds_bucket{backend="vllm-a",le="0.05"}', "values": "0+50x10"},
                          {"series": 'itl_seconds_bucket{backend="vllm-a",le="0.2"}', "values": "0+100x10"},
                          {"series": 'itl_seconds_bucket{backend="vllm-a",le="+Inf"}', "values": "0+100x10"}],
         "alert_rule_test": [{"eval_time": "8m", "alertname": "ITLHigh", "exp_alerts": [
             {"exp_labels": {"alertname": "ITLHigh", "backend": "vllm-a", "severity": "critical"},
              "exp_annotations": {"summary": "vllm-a ITL p99 197ms"}}]}]},
        {"name": "errors with a counter reset", "interval": "1m",
         "input_series": [{"series": 'requests_total{backend="vllm-a"}', "values": "0+100x4 0+100x6"},
                          {"series": 'request_errors_total{backend="vllm-a"}', "values": "0+5x4 0+5x6"}],
         "alert_rule_test": [{"eval_time": "10m", "alertname": "ErrorRateHigh", "exp_alerts": [
             {"exp_labels": {"alertname": "ErrorRateHigh", "backend": "vllm-a", "severity": "critical"}}]}]},
    ],
}


def _write(tmp: Path, tests: dict[str, object]) -> Path:
    (tmp / "inferwatch.yaml").write_text(yaml.safe_dump(CONFIG))
    path = tmp / "rules.test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    return path


def test_passing_tests_succeed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test-rules", str(_write(tmp_path, PASSING))]) == 0
    out = capsys.readouterr().out
    assert "SUCCESS (3 tests, 4 checks)" in out


def test_a_wrong_expectation_fails_with_expected_and_got(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = yaml.safe_load(yaml.safe_dump(PASSING))
    wrong["tests"][1]["alert_rule_test"][0]["exp_alerts"][0]["exp_annotations"]["summary"] = "vllm-a ITL p99 1s"
    wrong["tests"][0]["alert_rule_test"][0]["eval_time"] = "2m"  # by 2m vllm-a has fired
    assert main(["test-rules", str(_write(tmp_path, wrong))]) == 1
    out = capsys.readouterr().out
    assert "FAILED:" in out
    assert "queue: alertname QueueDepthHigh, time 120s" in out and "expected: []" in out
    assert "itl histogram: alertname ITLHigh, time 480s" in out and "vllm-a ITL p99 197ms" in out


def test_a_bad_file_names_the_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = yaml.safe_load(yaml.safe_dump(PASSING))
    bad["tests"][0]["input_series"][1]["values"] = "90x"
    assert main(["test-rules", str(_write(tmp_path, bad))]) == 1
    assert "tests[0].input_series[1]: values: cannot read '90x'" in capsys.readouterr().out
