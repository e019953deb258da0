"""Chromium on the demo's audit pages: the audited endpoint is listed, its checklist shows the
simulator's gaps (no HSTS, no auth) with their fixes and history, no CSP error; screenshot in
test-artifacts/."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from tests.browser.conftest import screenshot


def test_the_demo_audit_page(demo_url: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    end = time.time() + 60
    audits: list[dict[str, Any]] = []
    while time.time() < end and not audits:
        with urllib.request.urlopen(demo_url + "/api/v1/audits", timeout=5) as resp:
            audits = json.load(resp)
        time.sleep(0.5)
    assert [a["target"] for a in audits] == ["vllm-a"], audits
    browser.get(demo_url + "/audits")
    assert " ago" in browser.find_element(By.CSS_SELECTOR, "#audits td.last-run").text
    browser.find_element(By.LINK_TEXT, "vllm-a").click()
    groups = [g.text for g in browser.find_elements(By.CSS_SELECTOR, "#checklist th.group")]
    assert groups == ["DNS", "TLS", "HTTP", "Streaming", "Rate limiting", "Auth"]
    rows = {r.get_attribute("id"): r for r in browser.find_elements(By.CSS_SELECTOR, "#checklist tbody tr")}
    assert len(rows) == 20
    hsts = rows["check-hsts"].text
    assert "FAIL" in hsts and "no Strict-Transport-Security header" in hsts and "failing since" in hsts
    assert "401" not in rows["check-auth_required"].text and "FAIL" in rows["check-auth_required"].text
    assert rows["check-tls_expiry"].find_element(By.CSS_SELECTOR, ".status").text == "WARN"
    cells = rows["check-hsts"].find_elements(By.CSS_SELECTOR, ".cell.bad")
    assert cells and "fail — no Strict-Transport-Security header" in (cells[-1].get_attribute("title") or "")
    screenshot(browser, "page-audit")
    errors = [e for e in browser.get_log("browser") if "Content Security Policy" in e.get("message", "")]
    assert not errors, errors
