"""Every page in a real browser against the demo: the fleet table shows the API's numbers,
charts are drawn by Plotly, the time-range picker switches the backend page, and each page
leaves a screenshot in test-artifacts/."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest

from tests.browser.conftest import screenshot

pytestmark = pytest.mark.slow


def _traces(driver: Any, timeout: float = 30.0) -> list[Any]:
    from selenium.webdriver.common.by import By

    end = time.time() + timeout
    while time.time() < end:
        found = driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .trace")
        if found:
            return list(found)
        time.sleep(0.3)
    return []


def test_fleet_table_matches_the_api(demo_url: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(demo_url + "/")
    assert _traces(browser), "no chart drawn on the fleet page"
    shown = {}
    for row in browser.find_elements(By.CSS_SELECTOR, "tr.backend-row"):
        cells = {c.get_attribute("data-key"): c.get_attribute("data-value") for c in row.find_elements(By.CSS_SELECTOR, "td")}
        shown[row.get_attribute("data-name")] = cells
    with urllib.request.urlopen(demo_url + "/api/v1/backends", timeout=10) as resp:
        api = {b["name"]: b for b in json.load(resp)}
    screenshot(browser, "page-fleet")
    assert set(shown) == set(api)
    for name, b in api.items():
        assert shown[name]["engine"] == b["engine"]
        assert shown[name]["status"] == ("up" if b["up"] else "down")
        # the simulator holds requests running constant: the same number on the page and in the API
        assert json.loads(shown[name]["requests_running"]) == b["requests_running"], name


def test_backend_page_range_picker_and_charts(demo_url: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(demo_url + "/backends/vllm-a")
    assert _traces(browser)
    browser.find_element(By.LINK_TEXT, "24h").click()
    end = time.time() + 20
    while time.time() < end and "range=24h" not in browser.current_url:
        time.sleep(0.2)
    assert "range=24h" in browser.current_url
    current = browser.find_element(By.CSS_SELECTOR, "form.range a[aria-current=page]")
    assert current.text == "24h"
    assert len(_traces(browser)) >= 3
    screenshot(browser, "page-backend-24h")


@pytest.mark.parametrize("path", ["/gpus", "/slos", "/alerts"])
def test_other_pages_load(demo_url: str, browser: Any, path: str) -> None:
    browser.get(demo_url + path)
    assert "inferwatch" in browser.title
    assert "Traceback" not in browser.page_source
    screenshot(browser, "page-" + path.strip("/"))
