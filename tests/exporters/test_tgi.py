"""TGI adapter and simulated TGI body: real numbers in, the same numbers out."""

from __future__ import annotations

import math
import re
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
from exporters.base import OptionsError
from exporters.parser import parse
from exporters.tgi import adapter
from sim.engines.tgi import DURATION_BUCKETS, renderer, rust_f64
from sim.state import Profile, SimBackend

FIXTURE = Path(__file__).parents[1] / "testdata" / "expositions" / "tgi-3.3.7.txt"


def _backend(models: tuple[str, ...] = ("llama-3.1-8b",), **profile: float) -> SimBackend:
    return SimBackend("tgi-a", renderer(), models=models, profile=Profile(**profile), seed=1, now=0)


def test_sim_body_normalises_to_the_state() -> None:
    b = _backend()
    snap = adapter({}).normalise(parse(b.render(now=60)))
    st = b.models["llama-3.1-8b"]
    assert st.requests == 120
    assert snap.gauges[(QUEUE_DEPTH, "")] == st.waiting == 2
    assert snap.gauges[(REQUESTS_RUNNING, "")] == st.running == 4
    assert snap.counters[(REQUESTS_TOTAL, "")] == st.requests
    assert snap.counters[(REQUEST_ERRORS_TOTAL, "")] == 0  # TGI has the counter, it is 0
    assert snap.counters[(PROMPT_TOKENS_TOTAL, "")] == st.hist["prompt_tokens"].sum == st.prompt_tokens
    assert snap.counters[(GENERATION_TOKENS_TOTAL, "")] == st.generation_tokens
    e2e = snap.histograms[(E2E_LATENCY_SECONDS, "")]
    assert e2e.bounds == DURATION_BUCKETS + (math.inf,)
    assert len(e2e.bounds) == 36
    assert e2e.counts == tuple(float(c) for c in st.hist["e2e"].cumulative())
    assert e2e.sum == st.hist["e2e"].sum  # Rust Display round-trips exactly
    assert e2e.count == st.hist["e2e"].count == 120
    q = snap.histograms[(QUEUE_TIME_SECONDS, "")]
    assert q.sum == pytest.approx(st.hist["queue_time"].sum) and q.count == 120
    # TGI has no TTFT, no inter-token latency (its mean time per token is a per-request mean that
    # includes the prefill) and no KV-cache figure: absent, not 0
    assert (ITL_SECONDS, "") not in snap.histograms
    assert (TTFT_SECONDS, "") not in snap.histograms
    assert (KV_CACHE_USAGE_RATIO, "") not in snap.gauges


def test_errors_counted_from_failure_and_requests_are_success_plus_failure() -> None:
    b = _backend(error_ratio=0.25)
    body = b.render(now=60)
    snap = adapter({}).normalise(parse(body))
    st = b.models["llama-3.1-8b"]
    assert st.errors > 0
    assert b"tgi_request_failure{err=\"generation\"} " + str(st.errors).encode() in body
    assert snap.counters[(REQUEST_ERRORS_TOTAL, "")] == st.errors
    assert snap.counters[(REQUESTS_TOTAL, "")] == st.requests
    assert snap.histograms[(E2E_LATENCY_SECONDS, "")].count == st.requests - st.errors


def test_several_sim_models_are_summed_into_one_unlabelled_body() -> None:
    b = _backend(models=("a", "b"))
    snap = adapter({}).normalise(parse(b.render(now=60)))
    assert snap.counters[(REQUESTS_TOTAL, "")] == sum(st.requests for st in b.models.values())
    assert snap.gauges[(QUEUE_DEPTH, "")] == sum(st.waiting for st in b.models.values())
    assert {m for _, m in snap.counters} == {""}


def test_no_requests_yet_means_no_request_figures() -> None:
    b = _backend()
    snap = adapter({}).normalise(parse(b.render(now=0)))
    assert snap.gauges[(QUEUE_DEPTH, "")] == 2
    assert not snap.counters and not snap.histograms


def test_wanted_covers_everything_normalise_reads() -> None:
    a = adapter({})
    for body in (_backend(error_ratio=0.2).render(now=60), FIXTURE.read_bytes()):
        assert a.normalise(parse(body, keep=a.wanted())) == a.normalise(parse(body))


def test_rendering_quirks_of_metrics_exporter_prometheus() -> None:
    text = _backend(error_ratio=0.2).render(now=60).decode()
    assert not re.search(r"^\w+_total[ {]", text, re.M)  # no counter gets a _total suffix
    blocks = text.split("\n\n")
    assert blocks[-1] == ""  # every family, the last one too, ends with a blank line
    kinds = [line.split()[-1] for line in text.splitlines() if line.startswith("# TYPE")]
    assert kinds == sorted(kinds, key=["counter", "gauge", "histogram"].index)
    assert "# HELP tgi_request_duration Request duration\n" in text  # the first description wins
    assert "# HELP tgi_request_failure" not in text  # never described
    assert "# HELP tgi_batch_max_total_tokens" not in text  # described under another name
    assert 'tgi_request_duration_bucket{le="0.00015000000000000001"}' in text
    assert "tgi_batch_current_size 4\n" in text


def test_rust_f64_display() -> None:
    assert rust_f64(1.0) == "1"
    assert rust_f64(0.5) == "0.5"
    assert rust_f64(1e20) == "100000000000000000000"
    assert rust_f64(1.5e-7) == "0.00000015"
    assert rust_f64(math.inf) == "inf"


def test_fixture_hand_checked() -> None:
    snap = adapter({}).normalise(parse(FIXTURE.read_bytes()))
    assert snap.gauges == {(QUEUE_DEPTH, ""): 3.0, (REQUESTS_RUNNING, ""): 5.0}
    # success 12 + failures 2 (validation) + 1 (generation); tgi_request_count (17) is not used
    assert snap.counters[(REQUESTS_TOTAL, "")] == 15
    assert snap.counters[(REQUEST_ERRORS_TOTAL, "")] == 3
    assert snap.counters[(PROMPT_TOKENS_TOTAL, "")] == 5130
    assert snap.counters[(GENERATION_TOKENS_TOTAL, "")] == 1544
    e2e = snap.histograms[(E2E_LATENCY_SECONDS, "")]
    assert (e2e.sum, e2e.count) == (12.25, 12)
    i = e2e.bounds.index(0.7481827642679213)
    assert e2e.counts[i - 1 : i + 4] == (0, 4, 10, 10, 12)
    assert e2e.counts[-1] == 12
    q = snap.histograms[(QUEUE_TIME_SECONDS, "")]
    assert (q.sum, q.count) == (0.2, 12)
    assert (ITL_SECONDS, "") not in snap.histograms
    assert (TTFT_SECONDS, "") not in snap.histograms


def test_options_are_rejected() -> None:
    with pytest.raises(OptionsError) as err:
        adapter({"model_label": "x"})
    assert err.value.path == "model_label"
