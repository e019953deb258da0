"""Triton (+ TensorRT-LLM) adapter and simulated Triton bodies."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from core.conventions import (
    E2E_LATENCY_SECONDS,
    GENERATION_TOKENS_TOTAL,
    ITL_SECONDS,
    KV_CACHE_USAGE_RATIO,
    PROMPT_TOKENS_TOTAL,
    QUEUE_DEPTH,
    QUEUE_TIME_SECONDS,
    REQUEST_ERRORS_TOTAL,
    REQUESTS_RUNNING,
    REQUESTS_TOTAL,
    TTFT_SECONDS,
)
from core.samples import EngineSnapshot
from exporters.base import OptionsError
from exporters.families import MetricFamily
from exporters.parser import parse
from exporters.triton import adapter, default_entry_models
from sim.engines.triton import cpp_double, renderer
from sim.state import Profile, SimBackend

FIXTURE = Path(__file__).parents[1] / "testdata" / "expositions" / "triton-trtllm-ensemble.txt"


def _backend(variant: str | None, models: tuple[str, ...] = ("llama-3.1-8b",), **profile: float) -> SimBackend:
    return SimBackend("triton-a", renderer(variant), models=models, profile=Profile(**profile), seed=1, now=0)


def _total(snap: EngineSnapshot, signal: str) -> float:
    return sum(v for (s, _), v in {**snap.counters, **snap.gauges}.items() if s == signal)


def test_plain_models_counters_and_mean_latencies() -> None:
    b = _backend("plain", models=("a", "b"), error_ratio=0.1)
    snap = adapter({}).normalise(parse(b.render(now=60)))
    for name, st in b.models.items():
        ok = st.requests - st.errors
        assert snap.gauges[(QUEUE_DEPTH, name)] == st.waiting
        assert snap.counters[(REQUESTS_TOTAL, name)] == st.requests
        assert snap.counters[(REQUEST_ERRORS_TOTAL, name)] == st.errors
        e2e = snap.histograms[(E2E_LATENCY_SECONDS, name)]
        assert e2e.bounds == (math.inf,) and e2e.count == ok  # a mean, no percentiles
        # µs counter → seconds; mean = e2e sum / count
        assert e2e.sum / e2e.count == pytest.approx(st.hist["e2e"].sum / ok, rel=1e-7)
        qt = snap.histograms[(QUEUE_TIME_SECONDS, name)]
        assert qt.sum / qt.count == pytest.approx(st.hist["queue_time"].sum / ok, rel=1e-6)
        # first-response histograms are off by default: TTFT absent, not 0
        assert (TTFT_SECONDS, name) not in snap.histograms
        assert (ITL_SECONDS, name) not in snap.histograms
    # no TensorRT-LLM backend: no running, KV or token figures
    assert not any(s in (REQUESTS_RUNNING, KV_CACHE_USAGE_RATIO) for s, _ in snap.gauges)
    assert not any(s in (PROMPT_TOKENS_TOTAL, GENERATION_TOKENS_TOTAL) for s, _ in snap.counters)


def test_first_response_histogram_in_ms_becomes_ttft_seconds() -> None:
    b = _backend("plain+histograms")
    snap = adapter({}).normalise(parse(b.render(now=60)))
    st = b.models["llama-3.1-8b"]
    ttft = snap.histograms[(TTFT_SECONDS, "llama-3.1-8b")]
    assert ttft.bounds == pytest.approx((0.1, 0.5, 2.0, 5.0, math.inf))
    assert ttft.counts == tuple(float(c) for c in st.hist["ttft"].cumulative())
    assert ttft.sum == pytest.approx(st.hist["ttft"].sum)
    assert ttft.count == st.hist["ttft"].count == 120


def test_trtllm_ensemble_counts_each_request_once() -> None:
    b = _backend("trtllm", error_ratio=0.1)
    body = b.render(now=60)
    fams = parse(body)
    snap = adapter({}).normalise(fams)
    st = b.models["llama-3.1-8b"]
    ok = st.requests - st.errors
    # every step counts every request in the raw body ...
    success = {s.labels["model"]: s.value for s in fams["nv_inference_request_success"].samples}
    assert success == {"ensemble": ok, "preprocessing": st.requests, "tensorrt_llm": ok, "postprocessing": ok}
    # ... but the backend totals count it once, on the entry model
    assert _total(snap, REQUESTS_TOTAL) == st.requests
    assert _total(snap, REQUEST_ERRORS_TOTAL) == st.errors > 0
    assert {m for s, m in snap.counters if s == REQUESTS_TOTAL} == {"ensemble"}
    assert {m for s, m in snap.histograms if s in (E2E_LATENCY_SECONDS, TTFT_SECONDS)} == {"ensemble"}
    e2e = snap.histograms[(E2E_LATENCY_SECONDS, "ensemble")]
    assert e2e.sum / e2e.count == pytest.approx(st.hist["e2e"].sum / ok, rel=1e-7)
    assert snap.histograms[(TTFT_SECONDS, "ensemble")].count == ok


def test_trtllm_queue_is_in_the_backend_while_triton_pending_reads_zero() -> None:
    b = _backend("trtllm")
    b.incident.queue_extra = 9
    fams = parse(b.render(now=60))
    st = b.models["llama-3.1-8b"]
    assert st.waiting == 11
    assert {s.value for s in fams["nv_inference_pending_request_count"].samples} == {0.0}
    snap = adapter({}).normalise(fams)
    assert _total(snap, QUEUE_DEPTH) == 11
    assert snap.gauges[(QUEUE_DEPTH, "tensorrt_llm")] == 11
    assert snap.gauges[(REQUESTS_RUNNING, "tensorrt_llm")] == st.running == 4
    assert snap.gauges[(KV_CACHE_USAGE_RATIO, "tensorrt_llm")] == pytest.approx(st.kv_cache_usage, abs=1e-3)
    assert snap.counters[(PROMPT_TOKENS_TOTAL, "tensorrt_llm")] == st.hist["prompt_tokens"].sum
    assert snap.counters[(GENERATION_TOKENS_TOTAL, "tensorrt_llm")] == st.generation_tokens


def test_direct_trtllm_models_by_default() -> None:
    b = _backend(None, models=("a", "b"), error_ratio=0.1)
    fams = parse(b.render(now=60))
    assert {s.value for s in fams["nv_inference_pending_request_count"].samples} == {0.0}
    snap = adapter({}).normalise(fams)
    for name, st in b.models.items():
        assert snap.gauges[(QUEUE_DEPTH, name)] == st.waiting
        assert snap.gauges[(REQUESTS_RUNNING, name)] == st.running
        assert snap.counters[(REQUESTS_TOTAL, name)] == st.requests
        assert snap.counters[(REQUEST_ERRORS_TOTAL, name)] == st.errors
        assert snap.counters[(GENERATION_TOKENS_TOTAL, name)] == st.generation_tokens
        assert snap.histograms[(TTFT_SECONDS, name)].count == st.requests - st.errors


def test_queue_depth_sums_triton_pending_and_trtllm_waiting() -> None:
    text = (
        "# TYPE nv_inference_pending_request_count gauge\n"
        'nv_inference_pending_request_count{model="tensorrt_llm",version="1"} 3\n'
        "# TYPE nv_trt_llm_request_metrics gauge\n"
        'nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="waiting",version="1"} 5\n'
        'nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="active",version="1"} 9\n'
    )
    snap = adapter({}).normalise(parse(text))
    assert snap.gauges[(QUEUE_DEPTH, "tensorrt_llm")] == 8


def test_explicit_entry_models_override_the_heuristic() -> None:
    b = _backend("trtllm")
    snap = adapter({"entry_models": ["tensorrt_llm"]}).normalise(parse(b.render(now=60)))
    assert {m for s, m in snap.counters if s == REQUESTS_TOTAL} == {"tensorrt_llm"}
    assert _total(snap, REQUESTS_TOTAL) == b.models["llama-3.1-8b"].requests


def test_default_entry_heuristic() -> None:
    repo = {"ensemble", "preprocessing", "tensorrt_llm", "postprocessing", "tensorrt_llm_bls"}
    assert default_entry_models(repo) == {"ensemble", "tensorrt_llm_bls"}
    assert default_entry_models({"tensorrt_llm", "resnet"}) == {"tensorrt_llm", "resnet"}


def test_wanted_covers_everything_normalise_reads() -> None:
    a = adapter({})
    for body in (_backend("trtllm", error_ratio=0.1).render(now=60), _backend("plain+histograms").render(now=60),
                 _backend(None, models=("a", "b")).render(now=60),
                 FIXTURE.read_bytes()):
        assert a.normalise(parse(body, keep=a.wanted())) == a.normalise(parse(body))


def test_fixture_hand_checked() -> None:
    snap = adapter({}).normalise(parse(FIXTURE.read_bytes()))
    # ensemble only: success 10 + failure 2; preprocessing's 12 and tensorrt_llm's 12 dropped
    assert snap.counters[(REQUESTS_TOTAL, "ensemble")] == 12
    assert snap.counters[(REQUEST_ERRORS_TOTAL, "ensemble")] == 2
    assert _total(snap, REQUESTS_TOTAL) == 12
    e2e = snap.histograms[(E2E_LATENCY_SECONDS, "ensemble")]
    assert (e2e.sum, e2e.count) == (pytest.approx(25.0), 10)  # 25 000 000 µs over 10 → 2.5 s
    qt = snap.histograms[(QUEUE_TIME_SECONDS, "ensemble")]
    assert qt.sum == pytest.approx(150e-6)
    assert _total(snap, QUEUE_DEPTH) == 7  # pending 0 everywhere + waiting 7
    assert snap.gauges[(REQUESTS_RUNNING, "tensorrt_llm")] == 16  # scheduled, not active (23)
    assert snap.gauges[(KV_CACHE_USAGE_RATIO, "tensorrt_llm")] == 0.25  # no fraction: used/max
    assert snap.counters[(PROMPT_TOKENS_TOTAL, "tensorrt_llm")] == 3000
    assert snap.counters[(GENERATION_TOKENS_TOTAL, "tensorrt_llm")] == 2400
    ttft = snap.histograms[(TTFT_SECONDS, "ensemble")]
    assert ttft.bounds == pytest.approx((0.1, 0.5, 2.0, 5.0, math.inf))
    assert ttft.counts == (1, 8, 10, 10, 10)
    assert ttft.sum == pytest.approx(4.2)
    assert (TTFT_SECONDS, "tensorrt_llm") not in snap.histograms


def test_kv_fraction_preferred_over_used_over_max() -> None:
    fams = parse(FIXTURE.read_bytes())
    kv = fams["nv_trt_llm_kv_cache_block_metrics"]
    extra = kv.samples[0]._replace(labels={**kv.samples[0].labels, "kv_cache_block_type": "fraction"}, value=0.3)
    fams["nv_trt_llm_kv_cache_block_metrics"] = MetricFamily(kv.name, kv.type, kv.help, [*kv.samples, extra])
    snap = adapter({}).normalise(fams)
    assert snap.gauges[(KV_CACHE_USAGE_RATIO, "tensorrt_llm")] == 0.3


def test_prometheus_cpp_rendering() -> None:
    text = _backend("trtllm").render(now=60).decode()
    assert "\n\n" not in text
    kinds = [line.split()[-1] for line in text.splitlines() if line.startswith("# TYPE")]
    assert kinds == sorted(kinds, key=["counter", "gauge", "histogram"].index)
    assert 'nv_inference_request_failure{model="ensemble",reason="BACKEND",version="1"} 0\n' in text
    lines = [ln for ln in text.splitlines() if ln.startswith("nv_inference_first_response_histogram_ms")]
    assert lines[0].startswith("nv_inference_first_response_histogram_ms_count{")
    assert lines[1].startswith("nv_inference_first_response_histogram_ms_sum{")
    assert 'version="1",le="100"}' in lines[2]
    assert cpp_double(1.5e-6) == "1.5e-06" and cpp_double(256.0) == "256"
    assert cpp_double(123456789.25) == "123456789.25"


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"entry_model": ["x"]}, "entry_model"),
        ({"entry_models": "ensemble"}, "entry_models"),
        ({"entry_models": []}, "entry_models"),
        ({"entry_models": ["ensemble", 3]}, "entry_models[1]"),
    ],
)
def test_bad_options_name_their_path(options: dict[str, object], path: str) -> None:
    with pytest.raises(OptionsError) as err:
        adapter(options)
    assert err.value.path == path
