"""Rule evaluation reads the fleet once per round, not once per backend: the number of store
reads of one evaluation does not grow with the number of backends (what made 1,000 backends
pin a core: every backend's ``up`` read every backend's status)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from alerts.data import fetch_values
from alerts.rulepack import DEFAULT_RULES
from collector.store import MetricsStore
from core.samples import GaugePoint, ScrapeRecord
from inferwatch.config import parse
from inferwatch.stores import Stores

NOW = 1_700_000_000.0
#: the fleet-wide reads an evaluation may make; each must happen a bounded number of times
FLEET_READS = ("latest_status", "latest_gauges", "counter_totals", "histogram_deltas")


def _reads_of_one_evaluation(tmp_path: Path, n: int, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    backends = [{"name": f"b{i}", "engine": "vllm", "url": f"http://127.0.0.1:{10000 + i}"} for i in range(n)]
    cfg = parse({"storage": f"sqlite:///{tmp_path}/c{n}.db", "backends": backends})
    stores = Stores.open(cfg.storage)
    stores.migrate()
    stores.metrics.write([ScrapeRecord(f"b{i}", NOW - 10, i % 3 != 0, None if i % 3 else "connection refused", 0.01,
                                       gauges=(GaugePoint("queue_depth", "", float(i)),)) for i in range(n)])
    calls: Counter[str] = Counter()
    for name in (*FLEET_READS, "status_series", "gauge_steps", "counter_steps"):
        original = getattr(MetricsStore, name)

        def counted(self: MetricsStore, *args: object, _name: str = name, _original: object = original,
                    **kwargs: object) -> object:
            calls[_name] += 1
            return _original(self, *args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(MetricsStore, name, counted)
    rules = [r for r in DEFAULT_RULES if not r.name.startswith("TokenThroughput")]  # baselines: own test
    values = fetch_values(rules, stores.reads, cfg, NOW)
    monkeypatch.undo()
    stores.close()
    assert len(values["BackendDown"]) == n
    return calls


def test_an_evaluation_reads_the_fleet_a_fixed_number_of_times(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = _reads_of_one_evaluation(tmp_path, 5, monkeypatch)
    large = _reads_of_one_evaluation(tmp_path, 60, monkeypatch)
    assert small == large, (small, large)
    assert all(small[name] <= 1 for name in FLEET_READS), small


def test_baseline_references_refresh_a_few_backends_a_round(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 24 h reference reads hours of one backend's rows: a round recomputes at most its budget
    of them, the others keep their last value, and every backend gets one within a few rounds."""
    from alerts.data import refresh_budget
    from alerts.evaluate import labelset
    from core.samples import CounterDelta

    n = 40
    backends = [{"name": f"b{i}", "engine": "vllm", "url": f"http://127.0.0.1:{10000 + i}"} for i in range(n)]
    cfg = parse({"storage": f"sqlite:///{tmp_path}/r.db", "backends": backends})
    stores = Stores.open(cfg.storage)
    stores.migrate()
    stores.metrics.write([ScrapeRecord(f"b{i}", NOW - 60 * k, True, None, 0.01,
                                       counters=(CounterDelta("generation_tokens_total", "", 6000.0, 60.0),))
                          for i in range(n) for k in range(1, 30)])
    rule = next(r for r in DEFAULT_RULES if r.name == "TokenThroughputDegraded")
    assert refresh_budget([rule], 1000, 15.0) == 100  # 1,000 backends: a 24 h median each 5 min
    calls: Counter[str] = Counter()
    original = MetricsStore.counter_steps

    def counted(self: MetricsStore, *args: object, **kwargs: object) -> object:
        calls["counter_steps"] += 1
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(MetricsStore, "counter_steps", counted)
    references: dict = {}
    seen: set[str] = set()
    for round_ in range(4):
        calls.clear()
        values = fetch_values([rule], stores.reads, cfg, NOW + round_, references, budget=12)
        assert calls["counter_steps"] <= 12, calls
        seen |= {f"b{i}" for i in range(n) if values[rule.name][labelset({"backend": f"b{i}"})] is not None}
    stores.close()
    assert seen == {f"b{i}" for i in range(n)}  # 40 references in rounds of 12: all after 4
