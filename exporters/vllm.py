"""vLLM ``/metrics`` → normalised signals.

Source of the names, types, labels and buckets: ``vllm-project/vllm``
``vllm/v1/metrics/loggers.py`` @ ``005a810bc40faa25b8870fbc8559c3462581eee3`` (0.10.x, where the
deprecated ``gpu_*`` families are still registered unconditionally), and the same file on the 0.11
development line for ``vllm:inter_token_latency_seconds`` (which makes
``vllm:time_per_output_token_seconds`` deprecated and feeds both from the same samples).

Every vLLM family carries the labels ``model_name`` (the served model name: our model) and
``engine`` (the data-parallel engine index): ``engine`` is summed away, so a DP deployment reports
one figure per model.

Old and new names (``combine="first"``, the new name listed first, never both added):

===========================  ===========================================  ==============================
signal                       V1 / 0.10+ name                              older name
===========================  ===========================================  ==============================
kv_cache_usage_ratio         ``vllm:kv_cache_usage_perc`` (0..1)          ``vllm:gpu_cache_usage_perc``
prefix_cache_queries_total   ``vllm:prefix_cache_queries``                ``vllm:gpu_prefix_cache_queries``
prefix_cache_hits_total      ``vllm:prefix_cache_hits``                   ``vllm:gpu_prefix_cache_hits``
itl_seconds                  ``vllm:inter_token_latency_seconds``         ``vllm:time_per_output_token_seconds``
===========================  ===========================================  ==============================

Despite the ``_perc`` suffix both KV-cache gauges are ratios ("1 means 100 percent usage"). With
several DP engines the per-engine KV ratios are combined with ``max`` (the fullest engine), the
request gauges with a sum.

**Requests and errors.** ``vllm:request_success{finished_reason}`` is incremented once per
finished request whatever the reason (``counter_request_success[finish_reason]`` in ``record``), so
its sum over ``finished_reason`` is ``requests_total``. The reasons are ``FinishReason`` rendered by
``str()``: ``stop``, ``length``, ``abort`` (0.10.x), plus ``error`` (and ``repetition``) on the later
line. ``request_errors_total`` counts only ``finished_reason="error"``: vLLM documents ``error`` as
"retryable request-level internal error … always converted to 500 Internal Server Error", while
``abort`` is "aborted by client" (a disconnect or cancel: the server did nothing wrong) and
``length`` / ``repetition`` are normal terminations. On a 0.10.x server, which has no ``error``
reason, ``request_errors_total`` is therefore *absent* (unknown, reported as null), not 0: that
release had no way to report a failed request in this family (engine-level failures kill the
engine, and the scrape fails instead). As soon as a server pre-creates the ``error`` series (vLLM
creates one series per ``FinishReason`` at start-up, at 0) the signal is present.

Histograms (seconds): ``vllm:time_to_first_token_seconds`` → ttft,
``vllm:e2e_request_latency_seconds`` → e2e, ``vllm:request_queue_time_seconds`` → queue_time.
"""

from __future__ import annotations

from core import conventions as c
from exporters.base import Options, reject_options
from exporters.mapping import EngineTable, SignalMap, Source

MODEL_LABEL = "model_name"
#: ``finished_reason`` values that mean the server failed the request (see module docstring).
ERROR_REASONS = frozenset({"error"})

TABLE = EngineTable(
    engine="vllm",
    model_label=MODEL_LABEL,
    signals=(
        SignalMap(c.QUEUE_DEPTH, (Source("vllm:num_requests_waiting", "gauge"),)),
        SignalMap(c.REQUESTS_RUNNING, (Source("vllm:num_requests_running", "gauge"),)),
        SignalMap(
            c.KV_CACHE_USAGE_RATIO,
            (
                Source("vllm:kv_cache_usage_perc", "gauge", agg="max"),
                Source("vllm:gpu_cache_usage_perc", "gauge", agg="max"),
            ),
        ),
        SignalMap(
            c.PREFIX_CACHE_QUERIES_TOTAL,
            (Source("vllm:prefix_cache_queries", "counter"), Source("vllm:gpu_prefix_cache_queries", "counter")),
        ),
        SignalMap(
            c.PREFIX_CACHE_HITS_TOTAL,
            (Source("vllm:prefix_cache_hits", "counter"), Source("vllm:gpu_prefix_cache_hits", "counter")),
        ),
        SignalMap(c.REQUESTS_TOTAL, (Source("vllm:request_success", "counter"),)),
        SignalMap(
            c.REQUEST_ERRORS_TOTAL,
            (Source("vllm:request_success", "counter", where={"finished_reason": ERROR_REASONS}),),
        ),
        SignalMap(c.PROMPT_TOKENS_TOTAL, (Source("vllm:prompt_tokens", "counter"),)),
        SignalMap(c.GENERATION_TOKENS_TOTAL, (Source("vllm:generation_tokens", "counter"),)),
        SignalMap(c.TTFT_SECONDS, (Source("vllm:time_to_first_token_seconds", "histogram"),)),
        SignalMap(
            c.ITL_SECONDS,
            (
                Source("vllm:inter_token_latency_seconds", "histogram"),
                Source("vllm:time_per_output_token_seconds", "histogram"),
            ),
        ),
        SignalMap(c.E2E_LATENCY_SECONDS, (Source("vllm:e2e_request_latency_seconds", "histogram"),)),
        SignalMap(c.QUEUE_TIME_SECONDS, (Source("vllm:request_queue_time_seconds", "histogram"),)),
    ),
)


def adapter(options: Options) -> EngineTable:
    """vLLM takes no options: every name variant is recognised without configuration."""
    reject_options("vllm", options)
    return TABLE
