"""Generic Prometheus adapter: user-mapped names, option validation with paths."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from core.conventions import (
    E2E_LATENCY_SECONDS,
    KV_CACHE_USAGE_RATIO,
    QUEUE_DEPTH,
    REQUEST_ERRORS_TOTAL,
    REQUESTS_RUNNING,
    REQUESTS_TOTAL,
    TTFT_SECONDS,
)
from exporters.adapters import make_adapter
from exporters.base import OptionsError
from exporters.generic import adapter
from exporters.parser import parse

FIXTURE = Path(__file__).parents[1] / "testdata" / "expositions" / "prometheus-app.txt"

OPTIONS: dict[str, Any] = {
    "model_label": "model",
    "metrics": {
        "queue_depth": "my_queue_len",
        "ttft_seconds": {"family": "my_ttft_ms", "scale": 0.001},
        "requests_total": "http_requests_total",
        "request_errors_total": {"family": "http_requests", "where": {"code": ["500", "503"]}},
        "kv_cache_usage_ratio": {"family": "kv_used_ratio", "agg": "max"},
        "requests_running": "not_exported_here",
    },
}


def test_fixture_hand_checked() -> None:
    snap = adapter(OPTIONS).normalise(parse(FIXTURE.read_bytes()))
    assert snap.gauges[(QUEUE_DEPTH, "a")] == 5  # workers 0 + 1 summed away
    assert snap.gauges[(QUEUE_DEPTH, "b")] == 4
    assert snap.counters[(REQUESTS_TOTAL, "a")] == 100  # 90 + 4 + 1 + 5
    assert snap.counters[(REQUESTS_TOTAL, "b")] == 40
    assert snap.counters[(REQUEST_ERRORS_TOTAL, "a")] == 5  # codes 500 and 503 only
    assert (REQUEST_ERRORS_TOTAL, "b") not in snap.counters  # no matching series: absent
    assert snap.gauges[(KV_CACHE_USAGE_RATIO, "a")] == 0.75  # max over GPUs
    ttft = snap.histograms[(TTFT_SECONDS, "a")]
    assert ttft.bounds == pytest.approx((0.05, 0.25, 1.0, math.inf))
    assert ttft.counts == (10, 80, 94, 95)
    assert ttft.sum == pytest.approx(13.3) and ttft.count == 95
    # mapped but not in the body: absent, never 0
    assert not any(s == REQUESTS_RUNNING for s, _ in snap.gauges)


def test_wanted_covers_everything_normalise_reads() -> None:
    a = adapter(OPTIONS)
    body = FIXTURE.read_bytes()
    assert a.normalise(parse(body, keep=a.wanted())) == a.normalise(parse(body))
    assert {"http_requests", "http_requests_total", "my_ttft_ms"} <= a.wanted()


def test_untyped_total_family_found_under_either_spelling() -> None:
    body = "http_requests_total{code=\"500\"} 7\n"  # no TYPE: an untyped family named with _total
    for name in ("http_requests", "http_requests_total"):
        a = adapter({"metrics": {"request_errors_total": name}})
        assert a.normalise(parse(body, keep=a.wanted())).counters == {(REQUEST_ERRORS_TOTAL, ""): 7.0}


def test_mean_source_from_time_and_count_counters() -> None:
    body = (
        "# TYPE req_time_us counter\nreq_time_us_total 3000000\n"
        "# TYPE req counter\nreq_total 4\n"
    )
    a = adapter({"metrics": {"e2e_latency_seconds": {"family": "req_time_us", "kind": "mean",
                                                     "count_family": "req", "scale": 1e-6}}})
    h = a.normalise(parse(body)).histograms[(E2E_LATENCY_SECONDS, "")]
    assert h.bounds == (math.inf,) and h.count == 4 and h.sum == pytest.approx(3.0)


def test_registered_as_engine_prometheus() -> None:
    assert make_adapter("prometheus", {"metrics": {"queue_depth": "q"}}).engine == "prometheus"


@pytest.mark.parametrize(
    ("options", "path", "fragment"),
    [
        ({"metrics": {"ttft_secs": "x"}}, "metrics.ttft_secs", "unknown signal 'ttft_secs'; expected one of queue_depth"),
        ({"metrics": {}}, "metrics", "required"),
        ({}, "metrics", "required"),
        ({"metrics": {"queue_depth": "q"}, "model": "m"}, "model", "unknown option"),
        ({"model_label": 3, "metrics": {"queue_depth": "q"}}, "model_label", "label name"),
        ({"metrics": {"queue_depth": ""}}, "metrics.queue_depth", "family name"),
        ({"metrics": {"queue_depth": 5}}, "metrics.queue_depth", "mapping"),
        ({"metrics": {"queue_depth": {"name": "q"}}}, "metrics.queue_depth.name", "unknown key 'name'"),
        ({"metrics": {"queue_depth": {"scale": 2}}}, "metrics.queue_depth.family", "required"),
        ({"metrics": {"ttft_seconds": {"family": "t", "scale": "ms"}}}, "metrics.ttft_seconds.scale", "positive number"),
        ({"metrics": {"ttft_seconds": {"family": "t", "scale": 0}}}, "metrics.ttft_seconds.scale", "positive number"),
        ({"metrics": {"ttft_seconds": {"family": "t", "kind": "gauge"}}}, "metrics.ttft_seconds.kind", "cannot feed"),
        ({"metrics": {"queue_depth": {"family": "q", "kind": "histogram"}}}, "metrics.queue_depth.kind", "cannot feed"),
        ({"metrics": {"e2e_latency_seconds": {"family": "t", "kind": "mean"}}},
         "metrics.e2e_latency_seconds.count_family", "required"),
        ({"metrics": {"queue_depth": {"family": "q", "count_family": "c"}}},
         "metrics.queue_depth.count_family", "only applies"),
        ({"metrics": {"queue_depth": {"family": "q", "agg": "avg"}}}, "metrics.queue_depth.agg", "'sum' or 'max'"),
        ({"metrics": {"request_errors_total": {"family": "h", "where": ["500"]}}},
         "metrics.request_errors_total.where", "mapping"),
        ({"metrics": {"request_errors_total": {"family": "h", "where": {"code": [500, None]}}}},
         "metrics.request_errors_total.where.code[1]", "strings"),
        ({"metrics": {"queue_depth": ["a", {"family": 1}]}}, "metrics.queue_depth[1].family", "family name"),
    ],
)
def test_option_errors_name_their_path(options: dict[str, Any], path: str, fragment: str) -> None:
    with pytest.raises(OptionsError) as err:
        adapter(options)
    assert err.value.path == path
    assert fragment in err.value.message
    assert str(err.value).startswith(path + ": ")


def test_list_of_sources_takes_the_first_present() -> None:
    body = "# TYPE old_q gauge\nold_q 3\n# TYPE new_q gauge\nnew_q 5\n"
    a = adapter({"metrics": {"queue_depth": ["new_q", "old_q"]}})
    assert a.normalise(parse(body)).gauges == {(QUEUE_DEPTH, ""): 5.0}
    assert a.normalise(parse("# TYPE old_q gauge\nold_q 3\n")).gauges == {(QUEUE_DEPTH, ""): 3.0}
