"""What a chart shows when there is little or nothing to draw: a note naming the engine where it
does not export the signal, single points as markers, a 0-100 % axis for an empty ratio chart, the
Plotly toolbar off the title."""

from __future__ import annotations

from pathlib import Path

import httpx

from dashboards import figures as f
from inferwatch.config import parse
from inferwatch.stores import Stores
from tests.web.test_dashboard import Page
from web.app import create_app


def test_single_points_are_markers_and_empty_ratio_axes_fit() -> None:
    lone = f.lines("t", {"x": [(0.0, None), (60.0, 5.0), (120.0, None)]})
    assert lone["data"][0]["mode"] == "lines+markers"
    dense = f.lines("t", {"x": [(0.0, 1.0), (60.0, 2.0), (120.0, 3.0)]})
    assert dense["data"][0]["mode"] == "lines"
    empty_ratio = f.lines("Error ratio", {"errors": [(0.0, None), (60.0, None)]}, y_format=".1%")
    assert empty_ratio["layout"]["yaxis"]["range"] == [0, 1]
    assert "range" not in f.lines("Error ratio", {"e": [(0.0, 0.02)]}, y_format=".1%")["layout"]["yaxis"]
    assert dense["layout"]["modebar"] == {"orientation": "v"} and dense["layout"]["title"]["xanchor"] == "left"


async def test_engines_without_a_signal_get_a_note_instead_of_empty_axes(tmp_path: Path) -> None:
    cfg = parse({"storage": f"sqlite:///{tmp_path}/n.db", "gpus": {"nvml": "off"},
                 "backends": [{"name": "tgi-a", "engine": "tgi", "url": "http://127.0.0.1:9"},
                              {"name": "llama", "engine": "llamacpp", "url": "http://127.0.0.1:9",
                               "probe": {"model": "m"}},
                              {"name": "vllm-a", "engine": "vllm", "url": "http://127.0.0.1:9"}]})
    store = Stores.open(cfg.storage)
    store.migrate()
    app = create_app(cfg, store.reads, store.alerts, store.silences, clock=lambda: 1_700_000_000.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        tgi = (await client.get("/backends/tgi-a")).text
        assert 'id="chart-ttft"><p class="muted">TGI does not export time to first token. A probe (probe: in the ' \
               'backend config) measures it as users feel it.</p>' in tgi
        assert "TGI does not export inter-token latency." in tgi and "TGI does not export KV-cache usage." in tgi
        assert {"e2e", "queue", "tokens", "errors"} <= set(Page(tgi).charts_by_id())  # TGI has those
        llama = (await client.get("/backends/llama")).text
        assert "llama.cpp does not export time to first token. The probe chart below measures it" in llama
        assert "llama.cpp does not export request and error counters." in llama
        assert "probe" in Page(llama).charts_by_id()
        vllm = (await client.get("/backends/vllm-a")).text
        assert "does not export" not in vllm
    store.close()
