"""A simulated SGLang ``/metrics`` body (``--enable-metrics``), printed as SGLang's server prints it.

Families, HELP, types, labels and bucket edges follow ``sgl-project/sglang``
``python/sglang/srt/metrics/collector.py`` @ ``00ae9c1590d2d0bb6c0bfff39e312c34ae3dd538``
(``SchedulerMetricsCollector``, ``TokenizerMetricsCollector``) and ``sglang:func_latency_seconds``
from ``python/sglang/srt/metrics/func_timer.py`` (buckets ``0.05·1.5^i``, i < 18).

SGLang serves the prometheus_client *multiprocess* collector, which shapes the body:

* no ``_created`` series anywhere;
* ``mostrecent`` gauges lose the ``pid`` label; ``num_retracted_reqs`` / ``num_paused_reqs`` keep
  the default "all" mode and carry one sample per scheduler process with a ``pid`` label;
* a histogram family lists every ``_sum`` first, then, per label set, its buckets and its
  ``_count`` (``MultiProcessCollector._accumulate_metrics``): the samples of one label set are
  split across the family, ``_sum`` far from its buckets;
* families come in file-read order (tokenizer and scheduler families interleaved), labels sorted
  by name with ``le`` among them, numbers as ``floatToGoString`` (``8.128902e+06``).

Variants: ``None`` — one scheduler (``tp_rank="0"``) per model; ``"dp2"`` — DP attention with two
DP ranks per model (``dp_rank`` 0/1, ``tp_rank`` 0/1): the waiting/running counts are split
between the ranks, both report the same ``token_usage``, and the queue-time histogram is recorded
by rank 0 (rank 1 prints zeros), so the adapter's sums and maxima over ranks are exercised.

The HTTP middleware families (``sglang:http_requests_total``, ``sglang:http_responses_total``,
``sglang:http_requests_active``, from ``add_prometheus_track_response_middleware`` in
``python/sglang/srt/utils/common.py``) are printed too: every finished request is one POST to
``/v1/chat/completions``, answered ``500`` when the state counts it as an error (a ``500`` series
appears only once there is one, as a labelled child appears on first use) and ``200`` otherwise.

Simplification: ``sglang:num_requests_total`` counts every finished request of the state,
``sglang:num_aborted_requests_total`` only ``finished["abort"]`` (failed requests are not aborts).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from prometheus_client.utils import floatToGoString

from sim.engines.vllm import Labels, SampleT, family
from sim.state import ModelState, SimBackend

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

TTFT_BUCKETS = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 200.0, 400.0)
ITL_BUCKETS = (
    0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060, 0.080,
    0.100, 0.200, 0.400, 0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000,
)
E2E_BUCKETS = (
    0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 200.0,
    400.0, 600.0, 1200.0, 1800.0, 2400.0,
)
QUEUE_TIME_BUCKETS = (
    0.0, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0,
    80.0, 90.0, 100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0, 1000.0, 1200.0,
    1400.0, 1600.0, 1800.0, 2000.0, 2500.0, 3000.0,
)
RETRACTION_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 75, 100)
FUNC_LATENCY_BUCKETS = tuple(0.05 * 1.5**i for i in range(18))

LAYOUTS: Mapping[str, tuple[float, ...]] = {
    "ttft": TTFT_BUCKETS,
    "itl": ITL_BUCKETS,
    "e2e": E2E_BUCKETS,
    "queue_time": QUEUE_TIME_BUCKETS,
}

MAX_TOTAL_NUM_TOKENS = 462_000
_PID_BASE = 2_731


def _mp_histogram(name: str, series: list[tuple[Labels, tuple[float, ...], list[int] | list[float], float]]) -> list[SampleT]:
    """Multiprocess order: every ``_sum``, then per label set its cumulative buckets and ``_count``."""
    out: list[SampleT] = [(name + "_sum", labels, total) for labels, _, _, total in series]
    for labels, bounds, cumulative, _ in series:
        for b, n in zip((*bounds, math.inf), cumulative, strict=True):
            out.append((name + "_bucket", {**labels, "le": floatToGoString(b)}, float(n)))
        out.append((name + "_count", labels, float(cumulative[-1])))
    return out


class SglangRenderer:
    engine = "sglang"
    content_type = CONTENT_TYPE

    def __init__(self, variant: str | None = None) -> None:
        if variant not in (None, "dp2"):
            raise ValueError(f"unknown sglang variant {variant!r}; expected None or 'dp2'")
        self.ranks = 2 if variant == "dp2" else 1
        self.layouts = LAYOUTS

    # -- label sets ---------------------------------------------------------------------------------
    def _tok(self, st: ModelState) -> Labels:
        return {"model_name": st.model, "engine_type": "unified"}

    def _sched(self, st: ModelState, rank: int) -> Labels:
        labels = {"model_name": st.model, "engine_type": "unified", "tp_rank": str(rank), "pp_rank": "0",
                  "moe_ep_rank": "0"}
        if self.ranks > 1:
            labels["dp_rank"] = str(rank)
        return labels

    @staticmethod
    def _share(total: int, rank: int, ranks: int) -> int:
        """Split ``total`` over ranks, the first ranks taking the remainder."""
        return total // ranks + (1 if rank < total % ranks else 0)

    def render(self, backend: SimBackend) -> bytes:
        out: list[str] = []
        states = list(backend.models.values())
        uptime = max(0.0, backend.last - backend.started_at)
        per_rank = [(st, r) for st in states for r in range(self.ranks)]

        def sched_gauge(name: str, doc: str, value_of) -> None:  # noqa: ANN001
            family(out, name, "gauge", doc, [(name, self._sched(st, r), float(value_of(st, r))) for st, r in per_rank])

        def pid_gauge(name: str, doc: str) -> None:
            family(out, name, "gauge", doc, [
                (name, {**self._sched(st, r), "pid": str(_PID_BASE + i)}, 0.0) for i, (st, r) in enumerate(per_rank)
            ])

        def tok_counter(name: str, doc: str, value_of) -> None:  # noqa: ANN001
            family(out, name, "counter", doc, [(name + "_total", self._tok(st), float(value_of(st))) for st in states])

        def tok_histogram(name: str, doc: str, kind: str) -> None:
            family(out, name, "histogram", doc, _mp_histogram(name, [
                (self._tok(st), st.hist[kind].bounds, st.hist[kind].cumulative(), st.hist[kind].sum) for st in states
            ]))

        def hit_rate(st: ModelState, r: int) -> float:
            return st.prefix_hits / st.prefix_queries if st.prefix_queries else 0.0

        # tokenizer-manager families
        tok_counter("sglang:prompt_tokens", "Number of prefill tokens processed.", lambda st: st.prompt_tokens)
        tok_counter("sglang:generation_tokens", "Number of generation tokens processed.",
                    lambda st: st.generation_tokens)
        # scheduler gauges, interleaved as the collector reads its files
        sched_gauge("sglang:num_running_reqs", "The number of running requests.",
                    lambda st, r: self._share(st.running, r, self.ranks))
        sched_gauge("sglang:num_used_tokens", "The number of used tokens.",
                    lambda st, r: int(st.kv_cache_usage * MAX_TOTAL_NUM_TOKENS))
        sched_gauge("sglang:token_usage", "The token usage.", lambda st, r: round(st.kv_cache_usage, 2))
        sched_gauge("sglang:pending_prealloc_token_usage",
                    "The token usage for pending preallocated tokens (not preallocated yet).", lambda st, r: 0)
        sched_gauge("sglang:swa_token_usage", "The token usage for SWA layers.", lambda st, r: 0)
        sched_gauge("sglang:mamba_usage", "The token usage for Mamba layers.", lambda st, r: 0)
        sched_gauge("sglang:decode_sum_seq_lens", "The sum of all sequence lengths in decode.",
                    lambda st, r: self._share(st.running, r, self.ranks) * 520)
        sched_gauge("sglang:gen_throughput", "The generation throughput (token/s).",
                    lambda st, r: (st.generation_tokens / uptime / self.ranks) if uptime else 0.0)
        sched_gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue.",
                    lambda st, r: self._share(st.waiting, r, self.ranks))
        sched_gauge("sglang:num_grammar_queue_reqs", "The number of requests in the grammar waiting queue.",
                    lambda st, r: 0)
        sched_gauge("sglang:num_running_reqs_offline_batch",
                    "The number of running low-priority offline batch requests(label is 'batch').", lambda st, r: 0)
        sched_gauge("sglang:cache_hit_rate", "The prefix cache hit rate.", hit_rate)
        sched_gauge("sglang:max_total_num_tokens", "Maximum total number of tokens in the KV cache pool.",
                    lambda st, r: MAX_TOTAL_NUM_TOKENS)
        # tokenizer histograms
        tok_histogram("sglang:time_to_first_token_seconds", "Histogram of time to first token in seconds.", "ttft")
        tok_counter("sglang:cached_tokens", "Number of cached prompt tokens.", lambda st: st.prefix_hits)
        tok_counter("sglang:num_requests", "Number of requests processed.", lambda st: st.requests)
        tok_counter("sglang:num_so_requests", "Number of structured output requests processed.", lambda st: 0)
        tok_counter("sglang:num_aborted_requests", "Number of requests aborted.", lambda st: st.finished["abort"])
        tok_histogram("sglang:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", "itl")
        sched_gauge("sglang:spec_accept_length", "The average acceptance length of speculative decoding.",
                    lambda st, r: 0)
        sched_gauge("sglang:spec_accept_rate",
                    "The average acceptance rate of speculative decoding (`accepted tokens / total draft tokens` in batch).",
                    lambda st, r: 0)
        pid_gauge("sglang:num_retracted_reqs", "The number of retracted requests.")
        pid_gauge("sglang:num_paused_reqs", "The number of paused requests by async weight sync.")
        for name, doc in (
            ("sglang:num_prefill_prealloc_queue_reqs", "The number of requests in the prefill prealloc queue."),
            ("sglang:num_prefill_inflight_queue_reqs", "The number of requests in the prefill inflight queue."),
            ("sglang:num_decode_prealloc_queue_reqs", "The number of requests in the decode prealloc queue."),
            ("sglang:num_decode_transfer_queue_reqs", "The number of requests in the decode transfer queue."),
            ("sglang:kv_transfer_speed_gb_s", "The transfer speed of the KV cache in GB/s."),
            ("sglang:kv_transfer_latency_ms", "The transfer latency of the KV cache in ms."),
            ("sglang:kv_transfer_bootstrap_ms", "The bootstrap time of the KV transfer in ms."),
            ("sglang:kv_transfer_alloc_ms", "The allocation waiting time of the KV transfer in ms."),
            ("sglang:kv_transfer_total_mb", "The total number of tokens transferred in the KV cache."),
            ("sglang:utilization", "The utilization."),
        ):
            sched_gauge(name, doc, lambda st, r: 0)
        sched_gauge("sglang:engine_startup_time", "The time taken for the engine to start up.", lambda st, r: 41.87)
        sched_gauge("sglang:engine_load_weights_time", "The time taken for the engine to load weights.",
                    lambda st, r: 6.32)
        tok_histogram("sglang:e2e_request_latency_seconds", "Histogram of End-to-end request latency in seconds",
                      "e2e")
        family(out, "sglang:queue_time_seconds", "histogram", "Histogram of queueing time in seconds.",
               _mp_histogram("sglang:queue_time_seconds", [
                   (self._sched(st, r), st.hist["queue_time"].bounds,
                    st.hist["queue_time"].cumulative() if r == 0 else [0] * (len(QUEUE_TIME_BUCKETS) + 1),
                    st.hist["queue_time"].sum if r == 0 else 0.0)
                   for st, r in per_rank
               ]))
        family(out, "sglang:num_retractions", "histogram", "Histogram of retraction counts per request.",
               _mp_histogram("sglang:num_retractions", [
                   (self._tok(st), tuple(float(b) for b in RETRACTION_BUCKETS),
                    [st.hist["e2e"].count] * (len(RETRACTION_BUCKETS) + 1), 0.0)
                   for st in states
               ]))
        sched_gauge("sglang:new_token_ratio", "The new token ratio.", lambda st, r: 0.7)
        sched_gauge("sglang:is_cuda_graph", "Whether the batch is using CUDA graph.", lambda st, r: 1)
        sched_gauge("sglang:num_unique_running_routing_keys", "Number of unique routing keys in running batch.",
                    lambda st, r: 0)
        family(out, "sglang:realtime_tokens", "counter",
               "Total number of tokens processed (updated on each log interval). mode: prefill_compute, "
               "prefill_cache, decode.", [
                   ("sglang:realtime_tokens_total", {**self._sched(st, r), "mode": mode}, float(value))
                   for st, r in per_rank
                   for mode, value in (
                       ("prefill_compute", self._share(st.prompt_tokens - st.prefix_hits, r, self.ranks)),
                       ("prefill_cache", self._share(st.prefix_hits, r, self.ranks)),
                       ("decode", self._share(st.generation_tokens, r, self.ranks)),
                   )
               ])
        family(out, "sglang:cuda_graph_passes", "counter", "Total number of forward passes categorized by CUDA graph.", [
            ("sglang:cuda_graph_passes_total", {**self._sched(st, r), "mode": "decode_cuda_graph"},
             float(self._share(st.generation_tokens, r, self.ranks) // max(1, st.running)))
            for st, r in per_rank
        ])
        calls = sum(st.requests for st in states)
        errors = sum(st.errors for st in states)
        scrapes = 1.0 + uptime // 15
        chat, metrics = "/v1/chat/completions", "/metrics"
        family(out, "sglang:http_requests", "counter", "Total number of HTTP requests by endpoint and method", [
            ("sglang:http_requests_total", {"endpoint": chat, "method": "POST"}, float(calls)),
            ("sglang:http_requests_total", {"endpoint": metrics, "method": "GET"}, scrapes),
        ])
        family(out, "sglang:http_responses", "counter", "Total number of HTTP responses by endpoint and status code", [
            ("sglang:http_responses_total", {"endpoint": chat, "method": "POST", "status_code": "200"},
             float(calls - errors)),
            *([("sglang:http_responses_total", {"endpoint": chat, "method": "POST", "status_code": "500"},
                float(errors))] if errors else []),
            ("sglang:http_responses_total", {"endpoint": metrics, "method": "GET", "status_code": "200"},
             scrapes - 1),
        ])
        family(out, "sglang:http_requests_active", "gauge", "Number of currently active HTTP requests", [
            ("sglang:http_requests_active", {"endpoint": chat, "method": "POST"},
             float(sum(st.running + st.waiting for st in states))),
            ("sglang:http_requests_active", {"endpoint": metrics, "method": "GET"}, 1.0),
        ])
        family(out, "sglang:func_latency_seconds", "histogram", "Function latency in seconds",
               _mp_histogram("sglang:func_latency_seconds", [
                   ({"name": "generate_request"}, FUNC_LATENCY_BUCKETS, [calls] * (len(FUNC_LATENCY_BUCKETS) + 1),
                    0.00032 * calls),
               ]))
        return "".join(out).encode("utf-8")


def renderer(variant: str | None = None) -> SglangRenderer:
    return SglangRenderer(variant)
