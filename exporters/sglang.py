"""SGLang ``/metrics`` → normalised signals.

Source of the names, types, labels and buckets: ``sgl-project/sglang``
``python/sglang/srt/metrics/collector.py`` @ ``00ae9c1590d2d0bb6c0bfff39e312c34ae3dd538``
(``SchedulerMetricsCollector``, ``TokenizerMetricsCollector``). The model label is ``model_name``.

SGLang serves ``/metrics`` through prometheus_client's multiprocess collector: every scheduler
process (one per TP/PP/DP rank) and the tokenizer manager write their own files and the scrape
merges them. What that means per metric, and how each is combined here (every label other than
``model_name`` is aggregated away):

* Scheduler gauges carry ``engine_type, tp_rank, pp_rank, moe_ep_rank`` (+ ``dp_rank`` with DP
  attention) and use ``multiprocess_mode="mostrecent"``, so there is no ``pid`` label; only
  schedulers with ``attn_tp_rank == 0`` publish (``current_scheduler_metrics_enabled``), i.e. one
  series per DP group, each describing *its own* batch and queue.

  - ``sglang:num_queue_reqs`` → queue_depth and ``sglang:num_running_reqs`` → requests_running:
    **summed** over ranks (DP groups hold disjoint requests).
  - ``sglang:token_usage`` (used KV tokens ÷ pool size, 0..1) → kv_cache_usage_ratio: **max**
    over ranks (the fullest pool).
  - ``sglang:cache_hit_rate`` (0..1) → prefix_cache_hit_ratio: **max** over ranks.

  Caveat: with ``--enable-metrics-for-all-schedulers`` every TP rank of a group publishes the same
  batch, and the summed running/queue figures are multiplied by the attention-TP size. Ratios
  (max) are unaffected.
* ``sglang:num_retracted_reqs`` / ``num_paused_reqs`` use the default "all" mode and carry a
  ``pid`` label; nothing here reads them.
* Tokenizer counters and histograms (labels ``model_name, engine_type``) are summed over
  processes by the collector itself; ``sglang:queue_time_seconds`` is a scheduler histogram and is
  summed over ranks (each request waits in exactly one rank's queue).

Counters: ``sglang:num_requests_total`` → requests_total (incremented once per finished request,
``observe_one_finished_request``); ``sglang:prompt_tokens_total`` / ``generation_tokens_total`` →
token counters; ``sglang:cached_tokens_total`` → prefix_cache_hits_total and
``sglang:prompt_tokens_total`` → prefix_cache_queries_total (cached tokens are the part of the
prompt served from the radix cache; the counter exists only after the first hit, until then hits
are unknown).

**Errors.** SGLang has no per-model failed-request counter. ``sglang:num_aborted_requests_total``
counts calls of ``TokenizerManager.abort_request``: client disconnects, explicit
``/abort_request`` and pause-with-abort — not server failures, so it is not used. What *is* there
is the HTTP middleware that ``--enable-metrics`` installs (``add_prometheus_track_response_middleware``
in ``python/sglang/srt/utils/common.py``, same commit): ``sglang:http_responses_total{endpoint,
status_code, method}``, ``status_code=str(response.status_code)``, ``endpoint`` the route path.
``request_errors_total`` is that counter restricted to the generation routes (``/generate``,
``/v1/completions``, ``/v1/chat/completions``, ``/v1/responses``) and to 5xx statuses: server
failures, like vLLM's ``error`` reason; 4xx (validation: prompt too long, bad parameters) are the
client's error and are not counted. The family has no ``model_name`` label, so the error count is
backend-wide (model ``""``); the backend's error ratio divides it by the summed
``num_requests_total``, while a per-model error ratio is unknown. A server without the
middleware (metrics off, or a release before it) has no error figure: absent, not 0.

Histograms: ``sglang:time_to_first_token_seconds`` → ttft; ``sglang:inter_token_latency_seconds``
(or ``sglang:time_per_output_token_seconds`` on older releases) → itl — SGLang observes ITL in
batches (``_sum`` += interval, the bucket += number of new tokens; ``_count`` is derived from the
buckets); ``sglang:e2e_request_latency_seconds`` → e2e; ``sglang:queue_time_seconds`` → queue_time.
"""

from __future__ import annotations

from core import conventions as c
from exporters.base import Options, reject_options
from exporters.mapping import EngineTable, SignalMap, Source

MODEL_LABEL = "model_name"
#: Route paths (``endpoint`` label of ``sglang:http_responses_total``) that generate tokens.
GENERATION_ENDPOINTS = frozenset({"/generate", "/v1/completions", "/v1/chat/completions", "/v1/responses"})
#: ``status_code`` values that mean the server failed the request.
SERVER_ERROR_STATUSES = frozenset(str(code) for code in range(500, 600))

TABLE = EngineTable(
    engine="sglang",
    model_label=MODEL_LABEL,
    signals=(
        SignalMap(c.QUEUE_DEPTH, (Source("sglang:num_queue_reqs", "gauge"),)),
        SignalMap(c.REQUESTS_RUNNING, (Source("sglang:num_running_reqs", "gauge"),)),
        SignalMap(c.KV_CACHE_USAGE_RATIO, (Source("sglang:token_usage", "gauge", agg="max"),)),
        SignalMap(c.PREFIX_CACHE_HIT_RATIO, (Source("sglang:cache_hit_rate", "gauge", agg="max"),)),
        SignalMap(c.PREFIX_CACHE_QUERIES_TOTAL, (Source("sglang:prompt_tokens", "counter"),)),
        SignalMap(c.PREFIX_CACHE_HITS_TOTAL, (Source("sglang:cached_tokens", "counter"),)),
        SignalMap(c.REQUESTS_TOTAL, (Source("sglang:num_requests", "counter"),)),
        SignalMap(
            c.REQUEST_ERRORS_TOTAL,
            (
                Source(
                    "sglang:http_responses",
                    "counter",
                    where={"endpoint": GENERATION_ENDPOINTS, "status_code": SERVER_ERROR_STATUSES},
                ),
            ),
        ),
        SignalMap(c.PROMPT_TOKENS_TOTAL, (Source("sglang:prompt_tokens", "counter"),)),
        SignalMap(c.GENERATION_TOKENS_TOTAL, (Source("sglang:generation_tokens", "counter"),)),
        SignalMap(c.TTFT_SECONDS, (Source("sglang:time_to_first_token_seconds", "histogram"),)),
        SignalMap(
            c.ITL_SECONDS,
            (
                Source("sglang:inter_token_latency_seconds", "histogram"),
                Source("sglang:time_per_output_token_seconds", "histogram"),
            ),
        ),
        SignalMap(c.E2E_LATENCY_SECONDS, (Source("sglang:e2e_request_latency_seconds", "histogram"),)),
        SignalMap(c.QUEUE_TIME_SECONDS, (Source("sglang:queue_time_seconds", "histogram"),)),
    ),
)


def adapter(options: Options) -> EngineTable:
    """SGLang takes no options."""
    reject_options("sglang", options)
    return TABLE
