"""vLLM adapter against the simulated vLLM body (both name generations) and a real-shaped fixture."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from core import conventions as c
from core.samples import EngineSnapshot, Histogram
from exporters.adapters import make_adapter
from exporters.base import OptionsError
from exporters.parser import parse
from exporters.vllm import TABLE, adapter
from sim.engines.vllm import renderer
from sim.state import Profile, SimBackend

FIXTURES = Path(__file__).resolve().parents[1] / "testdata" / "expositions"
MODELS = ("m1", "m2")


def _backend(variant: str | None = None, **profile: float) -> SimBackend:
    return SimBackend("vllm-a", renderer(variant), models=MODELS, profile=Profile(**profile), seed=1, now=0)


def _snapshot(body: bytes, keep: frozenset[str] | None = None) -> EngineSnapshot:
    return TABLE.normalise(parse(body, keep=keep))


def _hist(backend: SimBackend, model: str, kind: str) -> Histogram:
    h = backend.models[model].hist[kind]
    cum = h.cumulative()
    return Histogram(bounds=(*h.bounds, math.inf), counts=tuple(float(x) for x in cum), sum=h.sum, count=float(h.count))


def _assert_hist(got: Histogram, want: Histogram) -> None:
    assert got.bounds == want.bounds
    assert got.counts == want.counts
    assert got.count == want.count
    assert got.sum == pytest.approx(want.sum, rel=1e-12)


@pytest.mark.parametrize("variant", [None, "v0"])
def test_snapshot_equals_the_simulated_truth(variant: str | None) -> None:
    b = _backend(variant, error_ratio=0.1)
    snap = _snapshot(b.render(now=60))
    for m in MODELS:
        st = b.models[m]
        assert st.requests > 50 and st.errors > 0  # real numbers, not zeros
        assert snap.gauges[(c.QUEUE_DEPTH, m)] == st.waiting
        assert snap.gauges[(c.REQUESTS_RUNNING, m)] == st.running
        assert snap.gauges[(c.KV_CACHE_USAGE_RATIO, m)] == pytest.approx(st.kv_cache_usage)
        assert snap.counters[(c.REQUESTS_TOTAL, m)] == st.requests
        assert snap.counters[(c.REQUEST_ERRORS_TOTAL, m)] == st.errors
        assert snap.counters[(c.PROMPT_TOKENS_TOTAL, m)] == st.prompt_tokens
        assert snap.counters[(c.GENERATION_TOKENS_TOTAL, m)] == st.generation_tokens
        assert snap.counters[(c.PREFIX_CACHE_QUERIES_TOTAL, m)] == st.prefix_queries
        assert snap.counters[(c.PREFIX_CACHE_HITS_TOTAL, m)] == st.prefix_hits
        for signal, kind in ((c.TTFT_SECONDS, "ttft"), (c.ITL_SECONDS, "itl"), (c.E2E_LATENCY_SECONDS, "e2e"),
                             (c.QUEUE_TIME_SECONDS, "queue_time")):
            _assert_hist(snap.histograms[(signal, m)], _hist(b, m, kind))
    # the two models differ: the breakdown is per model, not a copy of one
    assert snap.counters[(c.PROMPT_TOKENS_TOTAL, "m1")] != snap.counters[(c.PROMPT_TOKENS_TOTAL, "m2")]
    assert c.PREFIX_CACHE_HIT_RATIO not in {s for s, _ in snap.gauges}  # vLLM exports counters, no ratio
    itl = snap.histograms[(c.ITL_SECONDS, "m1")]
    assert itl.count == sum(w for _, _, w in b.truth[("m1", "itl")])  # one observation per output gap


def test_old_and_new_names_give_the_same_snapshot() -> None:
    old, new = _backend("v0", error_ratio=0.05), _backend(None, error_ratio=0.05)
    body_old, body_new = old.render(now=90), new.render(now=90)
    assert b"vllm:kv_cache_usage_perc" not in body_old and b"vllm:inter_token_latency_seconds" not in body_old
    assert b"vllm:kv_cache_usage_perc" in body_new and b"vllm:gpu_cache_usage_perc" in body_new
    assert _snapshot(body_old) == _snapshot(body_new)


@pytest.mark.parametrize("variant", [None, "v0"])
def test_wanted_covers_everything_normalise_reads(variant: str | None) -> None:
    body = _backend(variant, error_ratio=0.1).render(now=60)
    kept = parse(body, keep=TABLE.wanted())
    assert "python_gc_objects_collected" not in kept and "http_requests" not in kept
    assert _snapshot(body, keep=TABLE.wanted()) == _snapshot(body)


def test_body_is_prometheus_client_shaped() -> None:
    text = _backend().render(now=30).decode()
    assert text.startswith("# HELP python_gc_objects_collected_total Objects collected during gc\n")
    assert '# TYPE vllm:prompt_tokens_created gauge\nvllm:prompt_tokens_created{engine="0",model_name="m1"} 0.0\n' in text
    assert 'vllm:time_to_first_token_seconds_bucket{engine="0",le="2560.0",model_name="m1"}' in text
    assert 'vllm:request_success_total{engine="0",finished_reason="abort",model_name="m2"} 0.0' in text
    assert "# TYPE http_request_duration_highr_seconds histogram" in text
    assert renderer().content_type == "text/plain; version=0.0.4; charset=utf-8"


def test_abort_is_not_an_error_and_new_names_win() -> None:
    fams = parse((FIXTURES / "vllm-0.10.2-dp2.txt").read_bytes())
    snap = TABLE.normalise(fams)
    m = "Qwen/Qwen3-0.6B"
    # hand-checked from the fixture: two DP engines summed, KV ratio the larger one
    assert snap.gauges == {
        (c.QUEUE_DEPTH, m): 1.0,
        (c.REQUESTS_RUNNING, m): 5.0,
        (c.KV_CACHE_USAGE_RATIO, m): 0.125,
    }
    assert snap.counters == {
        (c.PREFIX_CACHE_QUERIES_TOTAL, m): 2000.0,  # new name only: not 4000 (old + new)
        (c.PREFIX_CACHE_HITS_TOTAL, m): 800.0,
        (c.REQUESTS_TOTAL, m): 12.0,  # stop 8 + length 1 + abort 2 + error 1
        (c.REQUEST_ERRORS_TOTAL, m): 1.0,  # the two aborts are not errors
        (c.PROMPT_TOKENS_TOTAL, m): 2000.0,
        (c.GENERATION_TOKENS_TOTAL, m): 500.0,
    }
    ttft = snap.histograms[(c.TTFT_SECONDS, m)]
    assert len(ttft.bounds) == 23 and ttft.bounds[-1] == math.inf
    assert ttft.counts[:8] == (0.0, 0.0, 0.0, 1.0, 4.0, 7.0, 8.0, 8.0)
    assert ttft.counts[8:] == (9.0,) * 15
    assert (ttft.sum, ttft.count) == (0.5, 9.0)
    assert snap.histograms[(c.ITL_SECONDS, m)] == Histogram((0.01, 0.025, math.inf), (100.0, 340.0, 344.0), 5.5, 344.0)
    assert snap.histograms[(c.E2E_LATENCY_SECONDS, m)] == Histogram((0.3, 0.5, math.inf), (3.0, 5.0, 12.0), 9.5, 12.0)
    assert (c.QUEUE_TIME_SECONDS, m) not in snap.histograms  # not in this body: absent, not empty


def test_errors_absent_when_the_server_has_no_error_reason() -> None:
    text = (FIXTURES / "vllm-0.10.2-dp2.txt").read_text()
    text = "\n".join(line for line in text.splitlines() if 'finished_reason="error"' not in line) + "\n"
    snap = TABLE.normalise(parse(text))
    assert (c.REQUEST_ERRORS_TOTAL, "Qwen/Qwen3-0.6B") not in snap.counters
    assert snap.counters[(c.REQUESTS_TOTAL, "Qwen/Qwen3-0.6B")] == 11.0


def test_old_names_are_used_when_new_ones_are_missing() -> None:
    text = (FIXTURES / "vllm-0.10.2-dp2.txt").read_text()
    text = text.replace("vllm:kv_cache_usage_perc", "vllm:other_gauge").replace(
        "vllm:inter_token_latency_seconds", "vllm:other_histogram")
    text = text.replace('vllm:gpu_cache_usage_perc{engine="1",model_name="Qwen/Qwen3-0.6B"} 0.0625',
                        'vllm:gpu_cache_usage_perc{engine="1",model_name="Qwen/Qwen3-0.6B"} 0.5')
    snap = TABLE.normalise(parse(text))
    assert snap.gauges[(c.KV_CACHE_USAGE_RATIO, "Qwen/Qwen3-0.6B")] == 0.5
    assert snap.histograms[(c.ITL_SECONDS, "Qwen/Qwen3-0.6B")].count == 344.0


def test_adapter_options() -> None:
    assert adapter({}) is TABLE
    assert make_adapter("vllm") is TABLE
    with pytest.raises(OptionsError) as err:
        adapter({"model_label": "x"})
    assert err.value.path == "model_label"
    with pytest.raises(ValueError):
        renderer("v2")


def test_the_process_start_time_is_read_where_the_engine_prints_it() -> None:
    """vLLM (prometheus_client's process collector) prints ``process_start_time_seconds``: a
    counter reset's delta then covers only the time since (collector.deltas)."""
    from sim.engines import make_renderer
    from sim.state import SimBackend

    b = SimBackend("v", make_renderer("vllm"), ("m",), seed=1, now=1_700_000_000.0)
    body = b.render(now=1_700_000_060.0)
    assert TABLE.normalise(parse(body, keep=TABLE.wanted())).started == pytest.approx(1_700_000_000.0)
    b.restart(1_700_000_100.0)
    assert TABLE.normalise(parse(b.render(now=1_700_000_130.0))).started == pytest.approx(1_700_000_100.0)
    assert TABLE.normalise(parse(b"vllm:num_requests_running{model_name=\"m\"} 1\n")).started is None
