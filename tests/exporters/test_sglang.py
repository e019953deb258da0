"""SGLang adapter against the simulated multiprocess body and a real-shaped DP fixture."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from core import conventions as c
from core.samples import EngineSnapshot, Histogram
from exporters.base import OptionsError
from exporters.parser import parse
from exporters.sglang import TABLE, adapter
from sim.engines.sglang import QUEUE_TIME_BUCKETS, renderer
from sim.state import Profile, SimBackend

FIXTURES = Path(__file__).resolve().parents[1] / "testdata" / "expositions"
MODELS = ("m1", "m2")


def _backend(variant: str | None = None, **profile: float) -> SimBackend:
    return SimBackend("sglang-a", renderer(variant), models=MODELS, profile=Profile(**profile), seed=1, now=0)


def _snapshot(body: bytes, keep: frozenset[str] | None = None) -> EngineSnapshot:
    return TABLE.normalise(parse(body, keep=keep))


def _hist(backend: SimBackend, model: str, kind: str) -> Histogram:
    h = backend.models[model].hist[kind]
    return Histogram(bounds=(*h.bounds, math.inf), counts=tuple(float(x) for x in h.cumulative()), sum=h.sum,
                     count=float(h.count))


@pytest.mark.parametrize("variant", [None, "dp2"])
def test_snapshot_equals_the_simulated_truth(variant: str | None) -> None:
    b = _backend(variant, error_ratio=0.1, queue_depth=5, running=7)
    snap = _snapshot(b.render(now=60))
    for m in MODELS:
        st = b.models[m]
        assert st.requests > 50 and st.prefix_hits > 0
        assert snap.gauges[(c.QUEUE_DEPTH, m)] == st.waiting == 5  # summed over DP ranks (3 + 2)
        assert snap.gauges[(c.REQUESTS_RUNNING, m)] == st.running == 7
        assert snap.gauges[(c.KV_CACHE_USAGE_RATIO, m)] == round(st.kv_cache_usage, 2)  # max, not 2 × ratio
        assert snap.gauges[(c.PREFIX_CACHE_HIT_RATIO, m)] == pytest.approx(st.prefix_hits / st.prefix_queries)
        assert snap.counters[(c.REQUESTS_TOTAL, m)] == st.requests
        assert snap.counters[(c.PROMPT_TOKENS_TOTAL, m)] == st.prompt_tokens
        assert snap.counters[(c.GENERATION_TOKENS_TOTAL, m)] == st.generation_tokens
        assert snap.counters[(c.PREFIX_CACHE_QUERIES_TOTAL, m)] == st.prompt_tokens
        assert snap.counters[(c.PREFIX_CACHE_HITS_TOTAL, m)] == st.prefix_hits
        for signal, kind in ((c.TTFT_SECONDS, "ttft"), (c.ITL_SECONDS, "itl"), (c.E2E_LATENCY_SECONDS, "e2e"),
                             (c.QUEUE_TIME_SECONDS, "queue_time")):
            got, want = snap.histograms[(signal, m)], _hist(b, m, kind)
            assert (got.bounds, got.counts, got.count) == (want.bounds, want.counts, want.count)
            assert got.sum == pytest.approx(want.sum, rel=1e-12)
        # errors come from the HTTP middleware, which has no model label: backend-wide only
        assert st.errors > 0 and (c.REQUEST_ERRORS_TOTAL, m) not in snap.counters
    assert snap.counters[(c.REQUEST_ERRORS_TOTAL, "")] == sum(st.errors for st in b.models.values())
    assert snap.counters[(c.PROMPT_TOKENS_TOTAL, "m1")] != snap.counters[(c.PROMPT_TOKENS_TOTAL, "m2")]


def test_dp_ranks_split_the_queue() -> None:
    text = _backend("dp2", queue_depth=5).render(now=30).decode()
    assert 'sglang:num_queue_reqs{dp_rank="0",engine_type="unified",model_name="m1",moe_ep_rank="0",pp_rank="0",tp_rank="0"} 3.0' in text
    assert 'sglang:num_queue_reqs{dp_rank="1",engine_type="unified",model_name="m1",moe_ep_rank="0",pp_rank="0",tp_rank="1"} 2.0' in text


def test_body_is_multiprocess_shaped() -> None:
    text = _backend().render(now=30).decode()
    assert "_created" not in text
    lines = text.splitlines()
    # every _sum of a family before its first bucket
    first_bucket = next(i for i, ln in enumerate(lines) if ln.startswith("sglang:time_to_first_token_seconds_bucket"))
    sums = [i for i, ln in enumerate(lines) if ln.startswith("sglang:time_to_first_token_seconds_sum")]
    assert len(sums) == 2 and max(sums) < first_bucket
    assert 'pid="' in text.split("# TYPE sglang:num_retracted_reqs gauge")[1].split("# HELP")[0]
    assert 'pid="' not in text.split("# TYPE sglang:num_running_reqs gauge")[1].split("# HELP")[0]
    assert 'sglang:queue_time_seconds_bucket{engine_type="unified",le="0.0",model_name="m1"' in text
    assert len(QUEUE_TIME_BUCKETS) == 36


@pytest.mark.parametrize("variant", [None, "dp2"])
def test_wanted_covers_everything_normalise_reads(variant: str | None) -> None:
    body = _backend(variant).render(now=60)
    kept = parse(body, keep=TABLE.wanted())
    assert "sglang:num_used_tokens" not in kept and "sglang:func_latency_seconds" not in kept
    assert _snapshot(body, keep=TABLE.wanted()) == _snapshot(body)


def test_real_shaped_fixture() -> None:
    snap = TABLE.normalise(parse((FIXTURES / "sglang-dp2-multiprocess.txt").read_bytes()))
    m = "Qwen/Qwen3-8B"
    assert snap.gauges == {
        (c.QUEUE_DEPTH, m): 8.0,  # 3 + 5 over two DP ranks
        (c.REQUESTS_RUNNING, m): 44.0,  # 24 + 20
        (c.KV_CACHE_USAGE_RATIO, m): 0.81,  # max(0.73, 0.81)
        (c.PREFIX_CACHE_HIT_RATIO, m): 0.47,  # max(0.42, 0.47)
    }
    assert snap.counters == {
        (c.PREFIX_CACHE_QUERIES_TOTAL, m): 8128902.0,
        (c.PREFIX_CACHE_HITS_TOTAL, m): 3100000.0,
        (c.REQUESTS_TOTAL, m): 11228.0,  # aborted (17) are included, and are not errors
        (c.REQUEST_ERRORS_TOTAL, ""): 11.0,  # 500 on chat + 503 on /generate; not 400, not /health
        (c.PROMPT_TOKENS_TOTAL, m): 8128902.0,
        (c.GENERATION_TOKENS_TOTAL, m): 7557572.0,
    }
    ttft = snap.histograms[(c.TTFT_SECONDS, m)]
    assert ttft.bounds == (0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0,
                           200.0, 400.0, math.inf)
    assert ttft.counts[:8] == (0.0, 2.0, 40.0, 310.0, 1100.0, 2600.0, 9800.0, 11000.0)
    assert (ttft.counts[-1], ttft.sum, ttft.count) == (11200.0, 15234.125, 11200.0)
    q = snap.histograms[(c.QUEUE_TIME_SECONDS, m)]
    assert q.bounds[:2] == (0.0, 0.1) and len(q.bounds) == 37
    assert q.counts[:5] == (0.0, 9000.0, 10200.0, 10900.0, 10928.0)  # ranks 0 and 1 added bucket by bucket
    assert (q.sum, q.count) == (713.75, 10928.0)
    assert (c.ITL_SECONDS, m) not in snap.histograms and (c.E2E_LATENCY_SECONDS, m) not in snap.histograms


def test_older_tpot_name_feeds_itl() -> None:
    text = ('# TYPE sglang:time_per_output_token_seconds histogram\n'
            'sglang:time_per_output_token_seconds_sum{model_name="m"} 0.5\n'
            'sglang:time_per_output_token_seconds_bucket{le="0.05",model_name="m"} 9.0\n'
            'sglang:time_per_output_token_seconds_bucket{le="+Inf",model_name="m"} 10.0\n'
            'sglang:time_per_output_token_seconds_count{model_name="m"} 10.0\n')
    snap = TABLE.normalise(parse(text))
    assert snap.histograms[(c.ITL_SECONDS, "m")] == Histogram((0.05, math.inf), (9.0, 10.0), 0.5, 10.0)


def test_adapter_options() -> None:
    assert adapter({}) is TABLE
    with pytest.raises(OptionsError):
        adapter({"ranks": "sum"})
    with pytest.raises(ValueError):
        renderer("tp8")


def test_no_error_figure_without_the_http_middleware() -> None:
    text = (FIXTURES / "sglang-dp2-multiprocess.txt").read_text()
    text = "\n".join(ln for ln in text.splitlines() if "http_responses" not in ln) + "\n"
    snap = TABLE.normalise(parse(text))
    assert not any(s == c.REQUEST_ERRORS_TOTAL for s, _ in snap.counters)  # unknown, not 0


def test_no_errors_yet_means_no_500_series_but_zero_errors_is_still_unknown() -> None:
    b = _backend()  # error_ratio 0: no 500 responses, so no 5xx series at all
    snap = _snapshot(b.render(now=60))
    assert (c.REQUEST_ERRORS_TOTAL, "") not in snap.counters
