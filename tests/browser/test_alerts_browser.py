"""The /alerts page in a real browser: the demo's expiring certificate fires an alert, a silence
created from the form mutes it, and the Expire button ends the silence."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.browser.conftest import screenshot

pytestmark = pytest.mark.slow


def _wait(driver: Any, url: str, predicate: Any, timeout: float = 40.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        driver.get(url)
        if predicate(driver.page_source):
            return
        time.sleep(0.5)
    raise AssertionError(f"{url}: condition not met within {timeout:g}s")


def _rows_when(driver: Any, predicate: Any, timeout: float = 20.0) -> list[Any]:
    """The silence rows once ``predicate`` holds (a form POST navigates: wait for the new page)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d: Any) -> list[Any] | bool:
        try:
            rows = d.find_elements(By.CSS_SELECTOR, "#silences .silence-row")
            return rows if predicate(rows) else False
        except StaleElementReferenceException:
            return False

    result: list[Any] = WebDriverWait(driver, timeout, poll_frequency=0.2).until(ready)
    return result


def test_silence_form_mutes_and_expire_unmutes(demo_url: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    url = demo_url + "/alerts"
    _wait(browser, url, lambda html: "CertificateExpiringSoon" in html)
    screenshot(browser, "alerts-firing")
    form = browser.find_element(By.ID, "new-silence")
    form.find_element(By.NAME, "matchers").send_keys("alertname=CertificateExpiringSoon")
    created_by = form.find_element(By.NAME, "created_by")
    created_by.clear()
    created_by.send_keys("browser-test")
    form.find_element(By.NAME, "comment").send_keys("renewal scheduled")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # back on /alerts (303): the silence is listed, and after the next evaluation the alert is muted
    rows = _rows_when(browser, lambda rows: len(rows) == 1 and "renewal scheduled" in rows[0].text)
    assert browser.current_url == url and "active" in rows[0].text
    _wait(browser, url, lambda html: "silenced by" in html)
    screenshot(browser, "alerts-silenced")
    browser.find_element(By.CSS_SELECTOR, "#silences .silence-row button").click()
    _rows_when(browser, lambda rows: len(rows) == 1 and "expired" in rows[0].text)
    _wait(browser, url, lambda html: "silenced by" not in html)


def test_fleet_page_draws_plotly_charts_under_the_csp(demo_url: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    _wait(browser, demo_url + "/", lambda html: "vllm-a" in html)
    end = time.time() + 30
    traces: list[Any] = []
    while time.time() < end and not traces:
        traces = browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .trace")
        time.sleep(0.5)
    screenshot(browser, "fleet")
    errors = [e for e in browser.get_log("browser") if "Content Security Policy" in e.get("message", "")]
    assert not errors, errors
    assert traces, "Plotly drew no trace on the fleet page"
    # the numbers in the table are the API's
    rows = browser.find_elements(By.CSS_SELECTOR, "table tbody tr")
    assert len(rows) >= 6


def test_api_docs_render_offline_under_the_csp(demo_url: str, browser: Any) -> None:
    """/api/docs draws every route of /api/openapi.json with our own script: no CDN, no CSP error."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(demo_url + "/api/docs")
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#apidocs .op"))
    ops = browser.find_elements(By.CSS_SELECTOR, "#apidocs .op h2")
    titles = [o.text for o in ops]
    assert "GET /api/v1/backends" in titles and "POST /api/v1/silences" in titles and "POST /-/reload" in titles
    backends = browser.find_element(By.ID, "get--api-v1-backends")
    assert "window" in backends.find_element(By.CSS_SELECTOR, "table.params").text
    assert not browser.find_elements(By.ID, "apidocs-error")
    logs = browser.get_log("browser") if hasattr(browser, "get_log") else []
    assert not [entry for entry in logs if "Content Security Policy" in entry.get("message", "")], logs
    screenshot(browser, "api-docs")


def test_silence_button_prefills_the_alerts_labels(demo_url: str, browser: Any) -> None:
    """Each firing alert has a "Silence…" button: the form comes prefilled with its labels, one
    submit mutes exactly that alert. Values show in their rule's unit."""
    from selenium.webdriver.common.by import By

    url = demo_url + "/alerts"
    _wait(browser, url, lambda html: "CertificateExpiringSoon" in html and "Silence…" in html)
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#active .alert-row")
               if "CertificateExpiringSoon" in r.text and r.find_elements(By.CSS_SELECTOR, "a.silence"))
    assert row.find_element(By.CSS_SELECTOR, "td.num").text.endswith(" days")  # not a raw float
    row.find_element(By.CSS_SELECTOR, "a.silence").click()
    form = browser.find_element(By.ID, "new-silence")
    lines = form.find_element(By.NAME, "matchers").get_attribute("value").splitlines()
    assert "alertname=CertificateExpiringSoon" in lines and "severity=warning" in lines
    assert any(line.startswith("target=") for line in lines)
    screenshot(browser, "alerts-silence-prefilled")
    form.find_element(By.NAME, "created_by").send_keys("browser-test")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    rows = _rows_when(browser, lambda rows: any("silencing CertificateExpiringSoon" in r.text for r in rows))
    mine = next(r for r in rows if "silencing CertificateExpiringSoon" in r.text and "active" in r.text)
    assert "alertname=CertificateExpiringSoon" in mine.text
    _wait(browser, url, lambda html: "silenced by" in html)
    mine = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#silences .silence-row")
                if "silencing CertificateExpiringSoon" in r.text and "active" in r.text)
    mine.find_element(By.CSS_SELECTOR, "button").click()  # leave the demo as it was
    _rows_when(browser, lambda rows: all("active" not in r.text for r in rows))
