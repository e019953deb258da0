"""How much the service keeps in memory: the longest rule window, 5 to 15 minutes, never beyond
raw retention."""

from __future__ import annotations

from typing import Any

import pytest

from inferwatch.config import parse
from inferwatch.service import live_horizon


@pytest.mark.parametrize(("extra", "seconds"), [
    pytest.param({}, 300.0, id="default rules: 5m windows"),
    pytest.param({"rules": [{"name": "Slow", "expr": "p99(ttft_seconds[10m]) > 2"}]}, 600.0, id="a 10m rule"),
    pytest.param({"rules": [{"name": "Hour", "expr": "p99(ttft_seconds[1h]) > 2"}]}, 300.0,
                 id="an hour-long window is read from the store"),
    pytest.param({"retention": {"raw": "2m"}}, 120.0, id="never beyond raw retention"),
])
def test_live_horizon(extra: dict[str, Any], seconds: float) -> None:
    assert live_horizon(parse(extra)) == seconds
