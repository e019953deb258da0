"""Alert periods on the backend page's time axis: which periods a range shows (pure), and how
they are drawn (shaded, started with a line, labelled, escaped), through the stored history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from alerts.model import AlertState, Transition, fingerprint
from dashboards import data as d
from dashboards import figures as f
from inferwatch.config import parse
from inferwatch.stores import Stores
from tests.web.test_dashboard import Page
from web.app import create_app

EVIL = "<img src=x onerror=alert(1)>"


def _labels(rule: str, backend: str) -> dict[str, str]:
    return {"alertname": rule, "backend": backend, "severity": "critical"}


def _resolved(rule: str, backend: str, fired: float, resolved: float, summary: str = "") -> Transition:
    labels = _labels(rule, backend)
    return Transition(fingerprint(labels), rule, labels, {"summary": summary}, "firing", "resolved", resolved,
                      None, fired - 30.0, fired)


def _firing(rule: str, backend: str, fired: float, summary: str = "") -> AlertState:
    labels = _labels(rule, backend)
    return AlertState(fingerprint(labels), rule, labels, "firing", 1.0, fired - 30.0, fired,
                      annotations={"summary": summary})


HISTORY = [
    _resolved("BackendDown", "a", 1_000.0, 1_300.0, "a is down"),  # inside the range
    _resolved("TTFTp99High", "a", 500.0, 900.0),  # ended before the range: not shown
    _resolved("ErrorRateHigh", "a", 1_800.0, 2_600.0),  # started inside, resolved after the range end
    _resolved("BackendDown", "b", 1_000.0, 1_300.0),  # another backend
    _resolved("QueueDepthHigh", "a", 700.0, 1_100.0),  # began before the range, ended inside
]
STATES = [_firing("QueueDepthHigh", "a", 1_900.0, "queue 140"), _firing("BackendDown", "b", 1_500.0),
          _firing("CertificateExpiringSoon", "a", 2_500.0)]  # fired after the range end: not shown


def test_spans_overlapping_the_range_only_of_that_backend() -> None:
    spans = d.alert_spans(HISTORY, STATES, "a", since=1_000.0, until=2_000.0)
    assert [(s.rule, s.start, s.end, s.summary) for s in spans] == [
        ("QueueDepthHigh", 700.0, 1_100.0, ""),
        ("BackendDown", 1_000.0, 1_300.0, "a is down"),
        ("ErrorRateHigh", 1_800.0, 2_600.0, ""),
        ("QueueDepthHigh", 1_900.0, None, "queue 140"),
    ]
    assert d.alert_spans(HISTORY, STATES, "c", 0.0, 5_000.0) == []


def test_marks_are_clipped_to_the_range_and_escaped() -> None:
    spans = [d.AlertSpan("QueueDepthHigh", "warning", 700.0, 1_100.0, ""),
             d.AlertSpan("BackendDown", "critical", 1_500.0, None, EVIL)]
    fig = f.add_alert_marks(f.lines("q", {"queue": [(1_000.0, 1.0)]}), spans, (1_000.0, 2_000.0))
    shapes, notes = fig["layout"]["shapes"], fig["layout"]["annotations"]
    rects = [(s["x0"], s["x1"]) for s in shapes if s["type"] == "rect"]
    assert rects == [(1_000_000, 1_100_000), (1_500_000, 2_000_000)]  # clipped at both ends, in ms
    # a start line only where the period starts inside the range
    assert [s["x0"] for s in shapes if s["type"] == "line"] == [1_500_000]
    assert [n["text"] for n in notes] == ["QueueDepthHigh", "BackendDown"]
    assert "still firing" in notes[1]["hovertext"]
    assert EVIL not in notes[1]["hovertext"] and "&lt;img src=x onerror=alert(1)&gt;" in notes[1]["hovertext"]
    assert shapes[1]["fillcolor"] == f.SEVERITY_COLORS["critical"]


def marked_app(tmp_path: Path) -> tuple[FastAPI, Stores]:
    """The web app of backend ``a`` with ``HISTORY`` and ``STATES`` stored, its clock at 2,000 s."""
    store = Stores.open(f"sqlite:///{tmp_path}/marks.db")
    store.migrate()
    store.alerts.record_transitions(HISTORY)
    store.alerts.save_alert_states({s.fingerprint: s for s in STATES})
    cfg = parse({"storage": f"sqlite:///{tmp_path}/marks.db", "gpus": {"nvml": "off"},
                 "backends": [{"name": "a", "engine": "vllm", "url": "http://127.0.0.1:9"}]})
    return create_app(cfg, store.reads, store.alerts, store.silences, clock=lambda: 2_000.0), store


async def test_backend_page_marks_the_stored_alert_periods(tmp_path: Path) -> None:
    app, store = marked_app(tmp_path)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        resp = await client.get("/backends/a", params={"range": "custom", "from": "1000", "to": "2000"})
        assert resp.status_code == 200, resp.text
        charts: dict[str, dict[str, Any]] = Page(resp.text).charts_by_id()
        assert {"ttft", "itl", "e2e", "queue", "tokens", "errors", "kv"} <= set(charts)
        # each period on the charts of the signal its rule reads; BackendDown on every chart
        want = {"queue": ["QueueDepthHigh", "BackendDown", "QueueDepthHigh"],
                "errors": ["BackendDown", "ErrorRateHigh"]}
        periods = {"QueueDepthHigh": [(1_000_000, 1_100_000), (1_900_000, 2_000_000)],
                   "BackendDown": [(1_000_000, 1_300_000)], "ErrorRateHigh": [(1_800_000, 2_000_000)]}
        for key, chart in charts.items():
            names = [n["text"] for n in chart["layout"]["annotations"]]
            assert names == want.get(key, ["BackendDown"]), key
            rects = sorted((s["x0"], s["x1"]) for s in chart["layout"]["shapes"] if s["type"] == "rect")
            assert rects == sorted(r for rule in dict.fromkeys(names) for r in periods[rule]), key
        assert 'id="alert-spans"' in resp.text and "still firing" in resp.text and "queue 140" in resp.text
        # later, the range no longer reaches the resolved periods; the ones still firing stay
        later = await client.get("/backends/a", params={"range": "custom", "from": "2700", "to": "3000"})
        notes = Page(later.text).charts_by_id()["queue"]["layout"]["annotations"]
        assert [n["text"] for n in notes] == ["QueueDepthHigh"]  # the certificate shades no chart
        assert all("still firing" in n["hovertext"] for n in notes)
        assert "CertificateExpiringSoon" in later.text  # but is listed above the charts
    store.close()
