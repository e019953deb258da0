"""The HTML dashboard over a scraped simulated fleet: the fleet table shows the API's numbers,
charts carry embedded data, everything is escaped, CSP holds (no inline code), a 7-day range
stays within the point budget, and the empty and unknown states say so."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from collector import query
from collector.scheduler import Collector
from dashboards import data as d
from inferwatch.config import parse
from inferwatch.stores import Stores
from sim.engines import make_renderer
from sim.state import Profile, SimBackend
from tests.e2e_helpers import Clock, harness
from tests.fake_nvml import FakeGpu, FakeNvml, GiB
from web.app import create_app
from web.routes.pages import COLUMNS
from web.security import CSP

PROFILE = Profile(request_rate=4.0, queue_depth=5, running=9, kv_cache_usage=0.3, error_ratio=0.1)
EVIL = "<script>x</script>"


class Page(HTMLParser):
    """Fleet rows (data-key -> data-value per row), script tags, chart data blocks."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: dict[str, dict[str, str]] = {}
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._row: str | None = None
        self._script: dict[str, str | None] | None = None
        self._buf: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and "backend-row" in (a.get("class") or ""):
            self._row = a["data-name"] or ""
            self.rows[self._row] = {}
        elif tag == "td" and self._row is not None and a.get("data-key"):
            self.rows[self._row][a["data-key"] or ""] = a.get("data-value") or ""
        elif tag == "script":
            self._script, self._buf = a, []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None
        elif tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._buf)))
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._buf.append(data)

    def charts(self) -> list[dict[str, Any]]:
        return [json.loads(body) for attrs, body in self.scripts if "chart-data" in (attrs.get("class") or "")]

    def charts_by_id(self) -> dict[str, dict[str, Any]]:
        """Chart id (``ttft``, ``queue`` …) -> its figure."""
        return {(attrs.get("data-target") or "").removeprefix("chart-"): json.loads(body)
                for attrs, body in self.scripts if "chart-data" in (attrs.get("class") or "")}


def _value(api: dict[str, Any], key: str) -> Any:
    cur: Any = api
    for part in key.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


def _assert_safe(resp: httpx.Response) -> Page:
    assert resp.headers["content-security-policy"] == CSP
    assert "text/html" in resp.headers["content-type"]
    page = Page(resp.text)
    for attrs, body in page.scripts:  # only external scripts and JSON data blocks: CSP-compatible
        if attrs.get("type") == "application/json":
            json.loads(body)
        else:
            assert attrs.get("src", "").startswith("/static/") and body.strip() == "", attrs
    return page


def _fleet(clock: Clock) -> list[SimBackend]:
    return [
        SimBackend("multi", make_renderer("vllm"), ("model-a", "model-b"), PROFILE, seed=11, now=clock()),
        SimBackend(EVIL, make_renderer("vllm"), ("m",), PROFILE, seed=12, now=clock()),
        SimBackend("cpp", make_renderer("llamacpp"), ("gemma",), PROFILE, seed=13, now=clock()),
    ]


@pytest.mark.slow
async def test_pages_show_the_api_numbers_escaped_and_under_csp(tmp_path: Path) -> None:
    clock = Clock()
    slos = [{"name": "ttft-1s", "objective": "99%", "window": "1h", "good": "ttft_seconds < 1"}]
    async with harness(_fleet(clock), f"sqlite:///{tmp_path}/dash.db", clock, slos=slos) as h:
        # before any scrape: the page says it is waiting
        first = await h.api.get("/")
        assert first.status_code == 200 and "Waiting for first scrape" in first.text
        assert "waiting for first scrape" in (await h.api.get("/backends/multi")).text.lower()

        await h.collector.scrape_once()
        for _ in range(4):
            clock.advance(60)
            await h.collector.scrape_once()

        api = await h.backends("5m")
        resp = await h.api.get("/", params={"window": "5m"})
        assert resp.status_code == 200
        assert "Waiting for first scrape" not in resp.text
        page = _assert_safe(resp)
        assert set(page.rows) == set(api)
        for name, cells in page.rows.items():
            assert cells["status"] == "up"
            for col in COLUMNS:
                shown = json.loads(cells[col["key"]])
                want = _value(api[name], col["key"])
                assert shown == want, (name, col["key"], shown, want)
        assert api["multi"]["ttft"]["p50"] is not None and api["cpp"]["ttft"] is None
        # the backend name is text, never markup
        assert EVIL not in resp.text and "&lt;script&gt;x&lt;/script&gt;" in resp.text
        # fleet TTFT chart: p50/p95/p99 with points that carry values
        (chart,) = page.charts()
        assert [t["name"] for t in chart["data"]] == ["p50", "p95", "p99"]
        assert all(any(v is not None for v in t["y"]) for t in chart["data"])

        # backend detail: every chart has traces with points; the escaped name works in the path
        for name in ("multi", EVIL):
            resp = await h.api.get(f"/backends/{quote(name, safe='')}", params={"range": "15m"})
            assert resp.status_code == 200, resp.text
            page = _assert_safe(resp)
            if name == EVIL:
                assert EVIL not in resp.text
            charts = page.charts()
            assert {c["layout"]["title"]["text"] for c in charts} >= {
                "Time to first token", "Inter-token latency", "End-to-end latency", "Queue depth and running requests",
                "Tokens per second", "Error ratio", "KV-cache usage"}
            for c in charts:
                lines = [t for t in c["data"] if t["name"] != "scrape errors"]
                assert lines and all(any(v is not None for v in t["y"]) for t in lines), c["layout"]["title"]
        queue = next(c for c in charts if c["layout"]["title"]["text"].startswith("Queue"))
        assert PROFILE.queue_depth in queue["data"][0]["y"]

        # 7 days: the step keeps every trace within the point budget
        resp = await h.api.get("/backends/multi", params={"range": "7d"})
        assert resp.status_code == 200
        for c in Page(resp.text).charts():
            for t in c["data"]:
                assert 0 < len(t["x"]) <= d.MAX_POINTS and len(t["x"]) == len(t["y"])
        custom = await h.api.get("/backends/multi", params={"range": "custom", "from": str(clock() - 600),
                                                            "to": str(clock())})
        assert custom.status_code == 200 and Page(custom.text).charts()

        # unknown backend: an HTML 404
        missing = await h.api.get("/backends/nope")
        assert missing.status_code == 404 and "No backend named" in missing.text
        _assert_safe(missing)
        # bad ranges and windows: an HTML 400 naming the parameter and the fix, styled like the pages
        for path, params, message in [
            ("/backends/multi", {"range": "2y"}, "range: unknown range &#39;2y&#39;; expected one of 15m, 1h"),
            ("/backends/multi", {"range": "custom", "from": str(clock()), "to": str(clock() - 60)},
             "from: must be before to"),
            ("/backends/multi", {"range": "custom", "from": "yesterday"},
             "from: &#39;yesterday&#39; is neither Unix seconds nor an ISO 8601 time"),
            ("/backends/multi", {"range": "custom"}, "from: required with range=custom"),
            ("/gpus", {"range": "1y"}, "range: unknown range &#39;1y&#39;"),
            ("/", {"window": "an hour"}, "window: invalid duration &#39;an hour&#39;"),
            ("/", {"refresh": "1s"}, "refresh: between 2s and 1h"),
            ("/", {"refresh": "often"}, "refresh: invalid duration &#39;often&#39;"),
        ]:
            bad = await h.api.get(path, params=params)
            assert bad.status_code == 400, (path, params)
            assert bad.headers["content-type"].startswith("text/html"), (path, params)
            assert message in bad.text, (path, params, bad.text[-400:])
            _assert_safe(bad)

        h.collector.start_nvml()
        gpus = await h.api.get("/gpus")
        assert gpus.status_code == 200 and "NVML is off" in gpus.text and "gpus.nvml: off" in gpus.text
        _assert_safe(gpus)
        slo_page = await h.api.get("/slos")
        assert slo_page.status_code == 200 and "ttft-1s" in slo_page.text and "ttft_seconds &lt; 1" in slo_page.text
        slo_charts = _assert_safe(slo_page).charts()
        # one burn-down chart per SLO: the API's burn-down (the clock stands still), and the 0 % line
        [slo_api] = (await h.api.get("/api/v1/slos")).json()
        [burn] = slo_charts
        left, spent = burn["data"]
        assert left["name"] == "error budget left" and burn["layout"]["yaxis"]["tickformat"] == ".0%"
        assert left["y"] == [r for _, r in slo_api["burn_down"]]
        assert len(left["y"]) * slo_api["burn_down_step"] == pytest.approx(3600.0)
        assert left["x"] == [round(t * 1000) for t, _ in slo_api["burn_down"]]
        assert left["y"][-1] == slo_api["error_budget"]["remaining"] is not None
        assert spent["y"] == [0.0, 0.0] and spent["x"] == burn["layout"]["xaxis"]["range"]
        assert f'data-key="remaining" data-value="{json.dumps(slo_api["error_budget"]["remaining"])}"' in slo_page.text
        assert "99 % / 1h" in slo_page.text
        assert "/alerts" in slo_page.text  # shared navigation


async def test_static_assets_and_never_up_backend(tmp_path: Path) -> None:
    cfg = parse({"storage": f"sqlite:///{tmp_path}/x.db",
                 "backends": [{"name": "a", "engine": "vllm", "url": "http://127.0.0.1:9"}]})
    store = Stores.open(cfg.storage)
    store.migrate()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(cfg, store.reads, store.alerts, store.silences)), base_url="http://t") as api:
        js = await api.get("/static/plotly.min.js")  # httpx asks for gzip and inflates it
        assert js.status_code == 200 and "javascript" in js.headers["content-type"] and len(js.content) > 1_000_000
        assert js.headers["content-encoding"] == "gzip" and js.headers["vary"] == "Accept-Encoding"
        assert int(js.headers["content-length"]) < len(js.content) / 3  # 4.8 MB travels as about 1.4 MB
        plain = await api.get("/static/plotly.min.js", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == js.content
        assert "content-encoding" not in (await api.get("/")).headers  # pages are not compressed
        own = await api.get("/static/dashboard.js")
        assert own.status_code == 200 and "javascript" in own.headers["content-type"]
        assert (await api.get("/static/dashboard.css")).headers["content-type"].startswith("text/css")
        assert (await api.get("/static/../app.py")).status_code == 404
        assert (await api.get("/static/app.py")).status_code == 404
        resp = await api.get("/")
        assert resp.status_code == 200 and "Waiting for first scrape" in resp.text
        assert "strict-transport-security" not in resp.headers
        https = await api.get("https://t/")
        assert "max-age" in https.headers["strict-transport-security"]
        assert (await api.get("/slos")).status_code == 200
        # a backend that refuses every scrape: down with the reason, "never been up"
        collector = Collector(cfg, store.metrics, store.observations, clock=lambda: 1_700_000_000.0)
        try:
            await collector.scrape_once()
        finally:
            await collector.stop()
        fleet = Page((await api.get("/")).text)
        assert fleet.rows["a"]["status"] == "down"
        detail = await api.get("/backends/a")
        assert detail.status_code == 200 and "has never been up" in detail.text
    store.close()


def test_step_and_downsampling_budget() -> None:
    for window in d.RANGES.values():
        step = d.choose_step(window, min_step=15)
        assert len(query.step_grid(0.0, window, step)[1]) <= d.MAX_POINTS
    pts = [(float(i), float(i)) for i in range(2000)]
    out = d.downsample(pts, 500)
    assert len(out) == 500 and out[0] == (3.0, 1.5)


@pytest.mark.slow
async def test_gpu_page_and_probe_vs_engine_chart(tmp_path: Path) -> None:
    clock = Clock()
    sim = SimBackend("plain", make_renderer("vllm"), ("m",), PROFILE, seed=1, now=clock())
    fake = FakeNvml([FakeGpu("GPU-aaaa", used=30 * GiB), FakeGpu("GPU-bbbb", used=10 * GiB, util_pct=0)])
    probe = {"model": "m", "max_tokens": 8, "interval": "30s", "timeout": "5s"}
    async with harness([sim], f"sqlite:///{tmp_path}/gpu.db", clock, nvml=fake,
                       backend_extra={"plain": {"probe": probe}}) as h:
        await h.collector.scrape_once()
        for _ in range(3):
            clock.advance(60)
            await h.collector.scrape_once()
            await h.collector.observe_once()
        resp = await h.api.get("/gpus")
        assert resp.status_code == 200
        page = _assert_safe(resp)
        assert "30.0 GiB" in resp.text and "NVML is off" not in resp.text
        titles = [c["layout"]["title"]["text"] for c in page.charts()]
        assert sum("memory" in t for t in titles) == 2 and {"Utilisation", "Temperature", "Power"} <= set(titles)
        mem = next(c for c in page.charts() if "memory" in c["layout"]["title"]["text"])
        assert [t["name"] for t in mem["data"]] == ["used", "total"] and mem["data"][0]["y"]

        # the loopback backend's GPUs are this machine's: its fullest GPU in the API and the fleet
        gpus = [g for g in (await h.api.get("/api/v1/gpus")).json() if g.get("host") == h.collector.host]
        assert len(gpus) == 2
        want = max(g["memory_used_ratio"] for g in gpus)
        assert want == pytest.approx(30 * GiB / (81559 * 2**20), rel=0.02)  # GPU-aaaa: 30 GiB of an H100
        (summary,) = (await h.api.get("/api/v1/backends")).json()
        assert summary["gpu_memory_used_ratio"] == want
        assert (await h.api.get("/api/v1/backends/plain")).json()["gpu_memory_used_ratio"] == want
        fleet = Page((await h.api.get("/")).text)
        assert json.loads(fleet.rows["plain"]["gpu_memory_used_ratio"]) == want
        assert fleet.rows["plain"]["model"] == "m"

        detail = Page((await h.api.get("/backends/plain", params={"range": "15m"})).text)
        (pv,) = [c for c in detail.charts() if c["layout"]["title"]["text"].startswith("TTFT p50: probe")]
        measured = [v for v in pv["data"][0]["y"] if v is not None]
        assert pv["data"][0]["name"] == "probe (measured)" and len(measured) >= 2 and all(v > 0 for v in measured)


def test_every_fleet_column_reads_a_typed_summary_figure() -> None:
    from collector.summary import COLUMN_KEYS

    assert [col["key"] for col in COLUMNS] == list(COLUMN_KEYS)
