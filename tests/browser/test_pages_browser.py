"""Every page in a real browser against the demo: the fleet table shows the API's numbers,
charts are drawn by Plotly, the time-range picker (presets and a custom from/to) switches the
backend page, the GPU page lists the demo's simulated GPU node, and each page leaves a
screenshot in test-artifacts/."""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from sim.fleet import ON_GPU_NODE
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.slow


#: seconds a simulated GPU node may take to answer a scrape, on a slow machine (its timeout: 0.8 s)
SLACK = 10


def _traces(driver: Any, timeout: float = 30.0) -> list[Any]:
    from selenium.webdriver.common.by import By

    end = time.time() + timeout
    while time.time() < end:
        found = driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .trace")
        if found:
            return list(found)
        time.sleep(0.3)
    return []


def _until(what: str, probe: Callable[[], Any], timeout: float = 60.0, every: float = 0.3) -> Any:
    """``probe()``'s first truthy result; fail naming ``what`` after ``timeout`` seconds. A probe
    that fails while a page is loading (a stale element, a refused connection) is asked again."""
    from selenium.common.exceptions import WebDriverException

    end = time.time() + timeout
    while True:
        try:
            got = probe()
        except (OSError, WebDriverException):
            got = None
        if got:
            return got
        if time.time() > end:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(every)


def _api(demo_url: str, path: str) -> Any:
    with urllib.request.urlopen(demo_url + path, timeout=10) as resp:
        return json.load(resp)


def _gpus(demo_url: str) -> list[dict[str, Any]]:
    """The GPUs of /api/v1/gpus (not the "NVML is off" or a source's error entry)."""
    return [g for g in _api(demo_url, "/api/v1/gpus") if g.get("enabled", True) and g.get("uuid")]


def _utc(text: str) -> float:
    """``2024-05-01 12:00:00 UTC`` (the pages' time format) → Unix seconds."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC).timestamp()


def _axis_ms(v: Any) -> float:
    """A Plotly date-axis range end: epoch ms as given, or the date string Plotly may turn it
    into ("2024-05-01 12:00:00[.fff]", UTC)."""
    if isinstance(v, int | float):
        return float(v)
    return datetime.fromisoformat(str(v).replace(" ", "T")).replace(tzinfo=UTC).timestamp() * 1000


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
        # the backends on the simulated GPU node show its fullest GPU (about 90 %, as vLLM holds
        # it; under 93 % by design); the others have no GPU reading: null, never 0
        gpu_page, gpu_api = json.loads(shown[name]["gpu_memory_used_ratio"]), b["gpu_memory_used_ratio"]
        if name in ON_GPU_NODE:
            assert 0.85 < gpu_page <= 0.93 and 0.85 < gpu_api <= 0.93, (name, gpu_page, gpu_api)
        else:
            assert gpu_page is None and gpu_api is None, name


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


def test_backend_page_custom_range(demo_url: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    # some TTFT data first, so that the custom range below has points to draw
    _until("three TTFT p50 points of vllm-a", lambda: sum(
        v is not None for _, v in _api(demo_url, "/api/v1/backends/vllm-a/series?signal=ttft_seconds"
                                                 "&quantile=0.5&window=5m&step=1s")["points"]) >= 3)
    to = float(math.floor(time.time()))  # a whole second just past: not the "now" default
    since = to - 20 * 60

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S")  # no zone: read as UTC

    def submit_range(start: str, end: str) -> None:
        form = browser.find_element(By.CSS_SELECTOR, "form.range")
        for name, value in (("from", start), ("to", end)):
            box = form.find_element(By.NAME, name)
            box.clear()
            box.send_keys(value)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    browser.get(demo_url + "/backends/vllm-a")
    assert _traces(browser), "no chart drawn on the backend page"
    submit_range(iso(since), iso(to))
    _until("the custom range page", lambda: "range=custom" in browser.current_url
           and browser.find_elements(By.XPATH, "//p[contains(., 'one point per')]"), timeout=30)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(browser.current_url).query)
    assert query == {"range": ["custom"], "from": [iso(since)], "to": [iso(to)]}
    line = browser.find_element(By.XPATH, "//p[contains(., 'one point per')]").text
    step = float(line.split("one point per ")[1].split()[0])
    shown = f"{datetime.fromtimestamp(since, UTC):%Y-%m-%d %H:%M:%S} UTC – {datetime.fromtimestamp(to, UTC):%Y-%m-%d %H:%M:%S} UTC"
    assert line.startswith(shown + "; one point per "), line
    # the form keeps the range; no preset is marked current
    form = browser.find_element(By.CSS_SELECTOR, "form.range")
    assert form.find_element(By.NAME, "from").get_attribute("value") == iso(since)
    assert form.find_element(By.NAME, "to").get_attribute("value") == iso(to)
    assert not form.find_elements(By.CSS_SELECTOR, "a[aria-current=page]")
    assert len(_traces(browser)) >= 3
    # the TTFT chart's x axis spans exactly the chosen range, and its points lie inside it
    plot = _until("the TTFT chart drawn", lambda: browser.execute_script(
        "var gd = document.getElementById('chart-ttft');"
        "return gd && gd.layout && gd.data ? {range: gd.layout.xaxis.range,"
        " x: gd.data.map(function (t) { return t.x || []; }),"
        " y: gd.data.map(function (t) { return t.y || []; })} : null;"), timeout=30)
    assert [_axis_ms(v) for v in plot["range"]] == [since * 1000, to * 1000], plot["range"]
    xs = [_axis_ms(x) for trace in plot["x"] for x in trace]
    # (points sit at the ends of the steps covering the range: the last one at most a step past it)
    assert xs and all(since * 1000 < x <= (to + step) * 1000 for x in xs), (min(xs), max(xs))
    assert any(y is not None for trace in plot["y"] for y in trace), "no TTFT point in the custom range"
    screenshot(browser, "page-backend-custom")

    # from after to: a 400 that says so, not a traceback
    submit_range(iso(to), iso(since))

    def error_text() -> str | None:
        text = browser.find_element(By.TAG_NAME, "body").text
        return text if "must be before" in text else None

    body = _until("the error page", error_text, timeout=30)
    assert "from: must be before to" in body
    assert "Traceback" not in browser.page_source and "Internal Server Error" not in body
    screenshot(browser, "page-backend-custom-error")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(browser.current_url, timeout=10)
    assert err.value.code == 400
    assert "from: must be before to" in err.value.read().decode()


def test_gpu_page_lists_the_demo_gpus(demo_url: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    from sim.engines import dcgm
    from sim.fleet import GPU_NODE
    from web.render import fmt

    # the simulated GPU node (a dcgm-exporter) is read within a scrape interval or two
    _until("the demo's GPUs in /api/v1/gpus",
           lambda: len([g for g in _gpus(demo_url) if g["source"] == "dcgm"]) == len(dcgm.GPUS))
    browser.get(demo_url + "/gpus")
    assert "inferwatch" in browser.title and "Traceback" not in browser.page_source
    rows = []
    for tr in browser.find_elements(By.CSS_SELECTOR, "table#gpus tbody tr"):
        cells = [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        rows.append({"host": cells[0], "index": cells[1], "name": cells[2], "source": cells[3],
                     "used": cells[4], "total": cells[5], "last": cells[10]})
    api = _gpus(demo_url)  # right after reading the page
    # one row per GPU, with the API's identity columns
    key = ("host", "index", "name", "source")
    assert sorted(tuple(r[k] for k in key) for r in rows) == sorted(tuple(g[k] or "" for k in key) for g in api)
    sim = {(GPU_NODE, str(r.gpu.index)): r for r in dcgm.readings(0, time.time())}
    dcgm_rows = [r for r in rows if r["source"] == "dcgm"]
    assert {(r["host"], r["index"]) for r in dcgm_rows} == set(sim)
    assert {g["uuid"] for g in api if g["source"] == "dcgm"} == {r.uuid for r in sim.values()}
    by_key = {(g["host"], g["index"], g["source"]): g for g in api}
    for r in rows:
        g = by_key[(r["host"], r["index"], r["source"])]
        assert r["total"] == fmt(g["memory_total_bytes"], "bytes")  # constant: exactly the API's
        if r["source"] != "dcgm":
            assert re.fullmatch(r"\d+\.\d GiB|–", r["used"]), r  # a real GPU's moving reading
            continue
        assert r["name"] == dcgm.MODEL and r["total"] == fmt(dcgm.TOTAL_MIB * 2**20, "bytes")
        # memory moves every scrape: the page's value is the simulator's for the instant of the
        # reading the page shows: the sim answers that scrape within its 0.8 s timeout of the "last
        # reading" second; SLACK seconds allow for a slow, loaded machine
        t0 = _utc(r["last"])
        possible = {fmt(rd.fb_used_mib * 2**20, "bytes")
                    for k in range(0, (1 + SLACK) * 20 + 1)
                    for rd in [dcgm.reading(0, dcgm.GPUS[int(r["index"])], t0 + k / 20)]}
        assert r["used"] in possible, (r, sorted(possible))
        # and the API's (that reading or a later one) is the simulator's just after its reading time,
        # to the few MiB the load curve moves in 1/20 s
        ts = g["last_reading"]
        assert ts >= t0
        used_mib = g["memory_used_bytes"] / 2**20
        assert any(abs(dcgm.reading(0, dcgm.GPUS[int(r["index"])], ts + k / 20).fb_used_mib - used_mib) <= 5
                   for k in range(0, SLACK * 20 + 1)), g
    # Plotly drew the memory charts (used and total per GPU), with points
    assert _traces(browser), "no chart drawn on the GPU page"
    for i in range(len(rows)):
        data = _until(f"memory chart {i} drawn", lambda i=i: browser.execute_script(
            "var gd = document.getElementById('chart-mem' + arguments[0]);"
            "return gd && gd.data && gd.querySelectorAll('.scatterlayer .trace').length >= 2"
            " ? gd.data.map(function (t) { return (t.y || []).length; }) : null;", i), timeout=30)
        assert len(data) >= 2 and all(n >= 1 for n in data[:2]), data
    screenshot(browser, "page-gpus-with-gpus")


@pytest.mark.parametrize("path", ["/slos", "/alerts"])
def test_other_pages_load(demo_url: str, browser: Any, path: str) -> None:
    browser.get(demo_url + path)
    assert "inferwatch" in browser.title
    assert "Traceback" not in browser.page_source
    screenshot(browser, "page-" + path.strip("/"))


def test_slos_page_matches_the_api_and_draws_the_burn_down(demo_url: str, browser: Any) -> None:
    """/slos on the demo: one row per SLO of /api/v1/slos, in its order, name and objective exact.
    The demo keeps scraping, so the budget moves between requests: the page's good and total
    events lie between the API's answers just before and just after it (both only grow while the
    demo is younger than the 1h window) and its budget left is theirs exactly. Plotly draws one
    burn-down per SLO whose last point is the row's budget left (the same view draws both)."""
    from selenium.webdriver.common.by import By

    _until("every demo SLO has events", lambda: all(s["error_budget"] for s in _api(demo_url, "/api/v1/slos")))
    before = {s["name"]: s for s in _api(demo_url, "/api/v1/slos")}
    browser.get(demo_url + "/slos")
    shown: dict[str, dict[str, Any]] = {}
    for row in browser.find_elements(By.CSS_SELECTOR, "tr.slo-row"):
        cells = {c.get_attribute("data-key"): c for c in row.find_elements(By.CSS_SELECTOR, "td[data-key]")}
        left = cells["remaining"]
        shown[row.get_attribute("data-name")] = {
            "objective": json.loads(cells["objective"].get_attribute("data-value")),
            "remaining": json.loads(left.get_attribute("data-value")),
            "good": json.loads(left.get_attribute("data-good")),
            "total": json.loads(left.get_attribute("data-total"))}
    after = {s["name"]: s for s in _api(demo_url, "/api/v1/slos")}
    assert list(shown) == list(after) == list(before), "one row per SLO, in the API's order"
    assert len(after) == 2, "the demo configures two SLOs"
    for name, s in after.items():
        row = shown[name]
        assert row["objective"] == s["objective"], name
        for key in ("good", "total"):
            assert before[name]["events"][key] <= row[key] <= s["events"][key], (name, key, row,
                                                                                 before[name]["events"], s["events"])
        allowed = (1 - s["objective"]) * row["total"]
        assert row["remaining"] == pytest.approx(1 - (row["total"] - row["good"]) / allowed, rel=1e-9, abs=1e-12), row

    # one burn-down per SLO, drawn by Plotly: the budget-left line (ending at the row's value) and 0 %
    charts = _until("the burn-down charts drawn", lambda: browser.execute_script(
        "var out = [];"
        "document.querySelectorAll('.slo-chart').forEach(function (gd) {"
        "  if (!gd.data || gd.querySelectorAll('.scatterlayer .trace').length < 2) { return; }"
        "  var y = gd.data[0].y;"
        "  out.push({slo: gd.dataset.slo, names: gd.data.map(function (t) { return t.name; }),"
        "            points: y.length, last: y[y.length - 1], zero: gd.data[1].y});"
        "});"
        "return out.length === arguments[0] ? out : null;", len(after)), timeout=30)
    assert [c["slo"] for c in charts] == list(after)
    assert len(_traces(browser)) >= 2 * len(after)
    for c in charts:
        assert c["names"] == ["error budget left", "budget spent (0 %)"], c
        assert c["points"] == len(after[c["slo"]]["burn_down"]) and c["zero"] == [0, 0], c
        assert c["last"] == shown[c["slo"]]["remaining"], c
    screenshot(browser, "page-slos")


_VISIBLE_ROWS = """
return Array.from(document.querySelectorAll('#fleet tbody tr.backend-row'))
  .filter(r => !r.classList.contains('hidden'))
  .map(r => [r.dataset.name, r.querySelector('td[data-key="' + arguments[0] + '"]').dataset.value]);
"""


def test_fleet_sort_and_filter_survive_the_refresh_and_a_reload(demo_url: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(demo_url + "/?refresh=2s")
    _until("the fleet table", lambda: browser.find_elements(By.CSS_SELECTOR, "tr.backend-row"))
    header = browser.find_element(By.CSS_SELECTOR, 'th[data-sort="requests_running"]')
    header.click()
    header.click()  # second click: descending
    assert "sort=requests_running%3Adesc" in browser.current_url or "sort=requests_running:desc" in browser.current_url
    shown = browser.execute_script(_VISIBLE_ROWS, "requests_running")
    values = [json.loads(v) for _, v in shown]
    assert values == sorted(values, reverse=True) and len(shown) == 6, shown
    assert shown[0][0] == "vllm-b"  # the simulator holds 8 running there, 4 elsewhere

    box = browser.find_element(By.ID, "filter")
    box.send_keys("region=demo variant=default")
    visible = [n for n, _ in browser.execute_script(_VISIBLE_ROWS, "requests_running")]
    assert set(visible) == {"vllm-a", "tgi-a", "sglang-a", "llamacpp-a"}, visible

    # the page refreshes its cells in place: a marker set on this document survives, the status
    # line moves on, and the sort and filter still hold
    browser.execute_script("window.__kept = 42;")
    before = browser.find_element(By.ID, "refresh-status").text
    _until("a refresh", lambda: browser.find_element(By.ID, "refresh-status").text.startswith("updated")
           and browser.find_element(By.ID, "refresh-status").text != before, timeout=30)
    assert browser.execute_script("return window.__kept;") == 42
    after = browser.execute_script(_VISIBLE_ROWS, "requests_running")
    assert [n for n, _ in after] == [n for n, _ in shown if n in visible], after
    assert browser.find_element(By.CSS_SELECTOR, 'th[data-sort="requests_running"]').get_attribute("class") == "num sorted-desc"

    # sorted by a figure that moves (tokens/s over the window): each refresh re-sorts by the new values
    tps = browser.find_element(By.CSS_SELECTOR, 'th[data-sort="tokens_per_second"]')
    tps.click()
    first = browser.execute_script(_VISIBLE_ROWS, "tokens_per_second")
    _until("new tokens/s values from a refresh",
           lambda: browser.execute_script(_VISIBLE_ROWS, "tokens_per_second") not in ([], first)
           and {n for n, _ in browser.execute_script(_VISIBLE_ROWS, "tokens_per_second")} == set(visible), timeout=60)
    moved = [json.loads(v) for _, v in browser.execute_script(_VISIBLE_ROWS, "tokens_per_second")]
    assert moved == sorted(moved), moved

    # the state lives in the URL: a reload (or a shared link) opens the same view
    browser.refresh()
    _until("the fleet table again", lambda: browser.find_elements(By.CSS_SELECTOR, "tr.backend-row"))
    assert browser.execute_script("return window.__kept;") is None  # a new document indeed
    assert browser.find_element(By.ID, "filter").get_attribute("value") == "region=demo variant=default"
    again = [json.loads(v) for _, v in browser.execute_script(_VISIBLE_ROWS, "tokens_per_second")]
    assert len(again) == len(visible) and again == sorted(again)
    assert "sort=tokens_per_second" in browser.current_url
    screenshot(browser, "page-fleet-sorted-filtered")
