"""Alert periods drawn by Plotly in Chromium: each shaded only on the charts of the signal its rule
reads (QueueDepthHigh on the queue chart, ErrorRateHigh on the error chart), BackendDown on every
chart, a certificate alert on none (it is listed above the charts)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.alertmanager_helpers import free_port
from tests.browser.conftest import screenshot
from tests.dashboards.test_alert_marks import marked_app

pytestmark = pytest.mark.slow



def test_alert_periods_are_shaded_on_the_charts_of_their_signal(tmp_path: Path, browser: Any) -> None:
    app, store = marked_app(tmp_path)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        end = time.time() + 20
        while not server.started:
            assert time.time() < end, "server did not start"
            time.sleep(0.05)
        browser.get(f"http://127.0.0.1:{port}/backends/a?range=custom&from=1000&to=2000")
        drawn: dict[str, list[str]] = {}
        end = time.time() + 20
        while time.time() < end:  # Plotly draws after load: read each chart's annotations as drawn
            drawn = browser.execute_script(
                "var out = {}; document.querySelectorAll('.chart').forEach(function (el) {"
                " if (el.layout) { out[el.id] = (el.layout.annotations || []).map(function (a) { return a.text; }); }"
                "}); return out;")
            if len(drawn) >= 7:
                break
            time.sleep(0.2)
        assert drawn["chart-queue"] == ["QueueDepthHigh", "BackendDown", "QueueDepthHigh"]
        assert drawn["chart-errors"] == ["BackendDown", "ErrorRateHigh"]
        for chart in ("chart-ttft", "chart-itl", "chart-e2e", "chart-tokens", "chart-kv"):
            assert drawn[chart] == ["BackendDown"], chart
        rects = browser.execute_script(
            "return document.querySelectorAll('#chart-queue .shapelayer path').length;")
        assert rects >= 3  # the periods are painted, not only described
        screenshot(browser, "backend-alert-shading")
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()
